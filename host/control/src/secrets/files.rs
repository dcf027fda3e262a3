//! Secrets from files: `<dir>/<tenant id>/<name>`, one file per secret, read at every use so
//! a changed file takes effect at once. This is how a Kubernetes Secret mounted as a volume
//! looks (one Secret per tenant, mounted at `<dir>/<tenant id>`): its keys are files, and
//! the kubelet's own `..data` links are skipped because no secret name starts with `.`.
//!
//! A value is the file's text without one final line break, since editors and `echo` add
//! one that no credential has.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use omniforge_runtime::capabilities::SecretValue;
use omniforge_store::{SecretName, TenantId};
use zeroize::Zeroizing;

use super::{MAX_VALUE_BYTES, ProviderKind, SecretInfo, SecretProvider, SecretsError};

/// Secrets in a directory per tenant.
pub struct FileSecrets {
    dir: PathBuf,
}

impl FileSecrets {
    /// Secrets under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn tenant_dir(&self, tenant: &TenantId) -> Option<PathBuf> {
        // Tenant ids are `ten_` and base32/hex; anything else never names a directory.
        let id = tenant.as_str();
        let plain = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        plain.then(|| self.dir.join(id))
    }
}

fn unavailable(path: &Path, error: impl std::fmt::Display) -> SecretsError {
    tracing::warn!(path = %path.display(), "reading a secret file failed: {error}");
    SecretsError::Unavailable("the secret's file cannot be read".into())
}

#[async_trait]
impl SecretProvider for FileSecrets {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Files
    }

    async fn get(
        &self,
        tenant: &TenantId,
        name: &SecretName,
    ) -> Result<Option<SecretValue>, SecretsError> {
        let Some(dir) = self.tenant_dir(tenant) else {
            return Ok(None);
        };
        let path = dir.join(name.as_str());
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable(&path, e)),
        };
        if bytes.len() > MAX_VALUE_BYTES + 2 {
            return Err(unavailable(&path, "larger than 64 KiB"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| unavailable(&path, "not UTF-8"))?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        Ok(Some(SecretValue::new(text.to_owned())))
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&SecretName>,
        limit: u32,
    ) -> Result<Vec<SecretInfo>, SecretsError> {
        let Some(dir) = self.tenant_dir(tenant) else {
            return Ok(Vec::new());
        };
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(unavailable(&dir, e)),
        };
        let mut found = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| unavailable(&dir, e))?
        {
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<SecretName>().ok())
            else {
                continue;
            };
            if after.is_some_and(|after| &name <= after) {
                continue;
            }
            // Follows links, as reading does: a mounted Secret's files are links.
            let Ok(meta) = tokio::fs::metadata(entry.path()).await else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_millis()).ok());
            found.push(SecretInfo {
                name,
                version: None,
                created_at_ms: None,
                updated_at_ms: modified,
                updated_by: None,
            });
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.truncate(limit as usize);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mounted_secret_is_read_per_tenant_without_its_final_newline() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("ten_a");
        std::fs::create_dir_all(a.join("..2026_12_03")).unwrap();
        std::fs::write(a.join("..2026_12_03/api-token"), "a-token\n").unwrap();
        std::os::unix::fs::symlink("..2026_12_03/api-token", a.join("api-token")).unwrap();
        std::fs::write(a.join("multi"), "line1\nline2\n\n").unwrap();
        std::fs::create_dir_all(root.path().join("ten_b")).unwrap();
        std::fs::write(root.path().join("ten_b/api-token"), "b-token").unwrap();
        let secrets = FileSecrets::new(root.path());
        let get = |tenant: &str, name: &str| {
            let (tenant, name) = (TenantId::new(tenant), name.parse::<SecretName>().unwrap());
            let secrets = &secrets;
            async move {
                secrets
                    .get(&tenant, &name)
                    .await
                    .unwrap()
                    .map(|v| v.expose().to_owned())
            }
        };
        assert_eq!(get("ten_a", "api-token").await.as_deref(), Some("a-token"));
        assert_eq!(
            get("ten_a", "multi").await.as_deref(),
            Some("line1\nline2\n")
        );
        assert_eq!(get("ten_b", "api-token").await.as_deref(), Some("b-token"));
        assert_eq!(get("ten_c", "api-token").await, None);
        assert_eq!(get("../ten_a", "api-token").await, None);
        let names: Vec<String> = secrets
            .list(&TenantId::new("ten_a"), None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["api-token", "multi"]);
    }
}
