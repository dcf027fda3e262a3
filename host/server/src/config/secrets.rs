//! Where tenant secrets live and the key that seals them (docs/secrets.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use omniforge_control::secrets::{AwsOptions, Kek, KeyRing, ProviderKind};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::Secret;

/// Tenant secrets' provider and key-encryption keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// `db` (sealed in the database; the default), `env`, `files` or `aws`.
    pub provider: ProviderKind,
    /// The key-encryption key of the `db` provider: 32 bytes as base64 or hex. Without one
    /// (here or in `key_file`), secrets can be listed and deleted but not set or read.
    pub key: Option<Secret>,
    /// A file holding the key (a mounted Kubernetes Secret, say).
    pub key_file: Option<PathBuf>,
    /// The key before the current one, still opening values sealed under it until
    /// `omniforge admin rotate-secrets-key` re-seals them.
    pub previous_key: Option<Secret>,
    /// A file holding the previous key.
    pub previous_key_file: Option<PathBuf>,
    /// The `files` provider's directory: `<dir>/<tenant id>/<name>`.
    pub dir: Option<PathBuf>,
    /// The `aws` provider.
    pub aws: AwsSecretsConfig,
}

/// AWS Secrets Manager.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSecretsConfig {
    /// The region (default: `AWS_REGION` or `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// The service's URL (default: the region's public endpoint); a compatible server's.
    pub endpoint: Option<String>,
    /// What every secret's name starts with, before `<tenant id>/<name>`.
    pub prefix: String,
    /// How long a value read is reused, ms; 0 reads it at every use.
    pub cache_ttl_ms: u64,
    /// The access key id (default: `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// The secret access key (default: `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<Secret>,
    /// A session token of temporary credentials (default: `AWS_SESSION_TOKEN`).
    pub session_token: Option<Secret>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Db,
            key: None,
            key_file: None,
            previous_key: None,
            previous_key_file: None,
            dir: None,
            aws: AwsSecretsConfig::default(),
        }
    }
}

impl Default for AwsSecretsConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint: None,
            prefix: "omniforge/".into(),
            cache_ttl_ms: 30_000,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
        }
    }
}

/// Reads a key given inline or in a file; `None` when neither is.
fn read_key(
    what: &str,
    inline: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Option<Kek>, String> {
    let text = match (inline, file) {
        (None, None) => return Ok(None),
        (Some(key), _) => Zeroizing::new(key.expose().to_owned()),
        (None, Some(path)) => Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("secrets.{what}_file: cannot read {}: {e}", path.display()))?,
        ),
    };
    Kek::parse(&text)
        .map(Some)
        .map_err(|e| format!("secrets.{what}: {e}"))
}

impl SecretsConfig {
    /// The key ring of the `db` provider: `None` when no key is configured.
    pub fn key_ring(&self) -> Result<Option<KeyRing>, String> {
        let Some(current) = read_key("key", self.key.as_ref(), self.key_file.as_deref())? else {
            if self.previous_key.is_some() || self.previous_key_file.is_some() {
                return Err(
                    "secrets.previous_key: give the current key too (secrets.key or key_file)"
                        .into(),
                );
            }
            return Ok(None);
        };
        let previous = read_key(
            "previous_key",
            self.previous_key.as_ref(),
            self.previous_key_file.as_deref(),
        )?;
        Ok(Some(KeyRing::new(current, previous.into_iter().collect())))
    }

    /// The `aws` provider's options.
    pub fn aws_options(&self) -> Result<AwsOptions, String> {
        let aws = &self.aws;
        let region = aws
            .region
            .clone()
            .ok_or("secrets.aws.region: name the region (or set AWS_REGION)")?;
        let access_key_id = aws.access_key_id.clone().ok_or(
            "secrets.aws: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        )?;
        let secret_access_key = aws
            .secret_access_key
            .as_ref()
            .ok_or("secrets.aws: no secret access key (set AWS_SECRET_ACCESS_KEY)")?;
        Ok(AwsOptions {
            endpoint: aws
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com")),
            region,
            prefix: aws.prefix.clone(),
            access_key_id,
            secret_access_key: Zeroizing::new(secret_access_key.expose().to_owned()),
            session_token: aws
                .session_token
                .as_ref()
                .map(|t| Zeroizing::new(t.expose().to_owned())),
            cache_ttl: Duration::from_millis(aws.cache_ttl_ms),
        })
    }

    /// Adds a problem for every unusable combination.
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.key.is_some() && self.key_file.is_some() {
            problems.push("secrets: give key or key_file, not both".into());
        }
        if self.previous_key.is_some() && self.previous_key_file.is_some() {
            problems.push("secrets: give previous_key or previous_key_file, not both".into());
        }
        for (what, key) in [("key", &self.key), ("previous_key", &self.previous_key)] {
            if let Some(key) = key
                && let Err(e) = Kek::parse(key.expose())
            {
                problems.push(format!("secrets.{what}: {e}"));
            }
        }
        match self.provider {
            ProviderKind::Files if self.dir.is_none() => problems.push(
                "secrets.dir: the files provider reads <dir>/<tenant id>/<name>; name the dir \
                 (OMNIFORGE_SECRETS_DIR)"
                    .into(),
            ),
            ProviderKind::Aws => {
                if let Err(problem) = self.aws_options() {
                    problems.push(problem);
                }
                if let Some(endpoint) = &self.aws.endpoint
                    && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
                {
                    problems.push(format!(
                        "secrets.aws.endpoint: {endpoint:?} is not an http:// or https:// URL"
                    ));
                }
            }
            _ => {}
        }
    }
}
