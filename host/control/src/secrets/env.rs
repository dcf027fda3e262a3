//! Secrets from environment variables: `OMNIFORGE_SECRET__<tenant id>__<name>`, read once
//! when the server starts (a changed value needs a restart, as any environment does).
//!
//! Names keep their case and characters, so `api-token` of tenant `ten_0193…` is
//! `OMNIFORGE_SECRET__ten_0193…__api-token`: Kubernetes' `env:` and `env(1)` set such names;
//! a shell's `export` only takes the ones without `-` and `.`. A tenant id never holds `__`,
//! so the first `__` after the prefix ends it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use omniforge_runtime::capabilities::SecretValue;
use omniforge_store::{SecretName, TenantId};

use super::{ProviderKind, SecretInfo, SecretProvider, SecretsError};

/// The prefix of every secret's variable.
pub const PREFIX: &str = "OMNIFORGE_SECRET__";

/// Secrets from the environment, by tenant and name.
pub struct EnvSecrets {
    values: BTreeMap<(TenantId, SecretName), SecretValue>,
}

impl EnvSecrets {
    /// The secrets among `vars` (the process's environment, or a test's). Variables with the
    /// prefix whose rest is not `<tenant>__<name>` are ignored with a warning.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut values = BTreeMap::new();
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix(PREFIX) else {
                continue;
            };
            let parsed = rest
                .split_once("__")
                .filter(|(tenant, _)| !tenant.is_empty())
                .and_then(|(tenant, name)| Some((tenant, name.parse::<SecretName>().ok()?)));
            match parsed {
                Some((tenant, name)) => {
                    values.insert((TenantId::new(tenant), name), SecretValue::new(value));
                }
                None => tracing::warn!(
                    variable = %var,
                    "ignored: a secret's variable is {PREFIX}<tenant id>__<name>"
                ),
            }
        }
        Self { values }
    }
}

#[async_trait]
impl SecretProvider for EnvSecrets {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Env
    }

    async fn get(
        &self,
        tenant: &TenantId,
        name: &SecretName,
    ) -> Result<Option<SecretValue>, SecretsError> {
        Ok(self.values.get(&(tenant.clone(), name.clone())).cloned())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&SecretName>,
        limit: u32,
    ) -> Result<Vec<SecretInfo>, SecretsError> {
        Ok(self
            .values
            .keys()
            .filter(|(t, name)| t == tenant && after.is_none_or(|after| name > after))
            .take(limit as usize)
            .map(|(_, name)| SecretInfo {
                name: name.clone(),
                version: None,
                created_at_ms: None,
                updated_at_ms: None,
                updated_by: None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn variables_name_their_tenant_and_secret_exactly() {
        let secrets = EnvSecrets::from_vars([
            (
                "OMNIFORGE_SECRET__ten_a__api-token".into(),
                "a-token".into(),
            ),
            ("OMNIFORGE_SECRET__ten_a__db.password".into(), "pw".into()),
            (
                "OMNIFORGE_SECRET__ten_b__api-token".into(),
                "b-token".into(),
            ),
            ("OMNIFORGE_SECRET__ten_a__.bad".into(), "x".into()),
            ("OMNIFORGE_SECRET____x".into(), "x".into()),
            ("PATH".into(), "/bin".into()),
        ]);
        let a = TenantId::new("ten_a");
        let token: SecretName = "api-token".parse().unwrap();
        let value = secrets.get(&a, &token).await.unwrap().unwrap();
        assert_eq!(value.expose(), "a-token");
        assert_eq!(
            secrets
                .get(&TenantId::new("ten_b"), &token)
                .await
                .unwrap()
                .unwrap()
                .expose(),
            "b-token"
        );
        assert!(
            secrets
                .get(&TenantId::new("ten_c"), &token)
                .await
                .unwrap()
                .is_none()
        );
        let names: Vec<String> = secrets
            .list(&a, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["api-token", "db.password"]);
        let after = secrets.list(&a, Some(&token), 10).await.unwrap();
        assert_eq!(after.len(), 1);
    }
}
