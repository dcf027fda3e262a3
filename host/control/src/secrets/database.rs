//! The default provider: values sealed in the server's database under its key ring, and the
//! rotation that re-seals them under a new key.

use std::sync::Arc;

use async_trait::async_trait;
use omniforge_runtime::capabilities::SecretValue;
use omniforge_store::{AuditContext, Database, SecretName, StoredSecret, TenantId};

use super::keyring::KeyRing;
use super::{ProviderKind, SecretInfo, SecretProvider, SecretsError};

/// Secrets sealed in the database. Without a key ring, nothing can be set or read, and both
/// say how to configure one; listing and deleting still work (they need no key).
pub struct DbSecrets {
    db: Database,
    keys: Option<Arc<KeyRing>>,
}

impl DbSecrets {
    /// Secrets in `db`, sealed under `keys`.
    pub fn new(db: Database, keys: Option<Arc<KeyRing>>) -> Self {
        Self { db, keys }
    }

    fn keys(&self) -> Result<&KeyRing, SecretsError> {
        self.keys.as_deref().ok_or(SecretsError::NotConfigured)
    }
}

#[async_trait]
impl SecretProvider for DbSecrets {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Db
    }

    async fn get(
        &self,
        tenant: &TenantId,
        name: &SecretName,
    ) -> Result<Option<SecretValue>, SecretsError> {
        let keys = self.keys()?;
        let Some(stored) = self.db.tenant(tenant).sealed_secret(name).await? else {
            return Ok(None);
        };
        keys.open(tenant, name, &stored)
            .map(Some)
            .map_err(|e| SecretsError::Unavailable(format!("secret {name:?} cannot be read: {e}")))
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&SecretName>,
        limit: u32,
    ) -> Result<Vec<SecretInfo>, SecretsError> {
        let records = self
            .db
            .tenant(tenant)
            .secrets(after.map(SecretName::as_str), limit)
            .await?;
        Ok(records.into_iter().map(SecretInfo::from).collect())
    }

    async fn put(
        &self,
        tenant: &TenantId,
        audit: &AuditContext,
        name: &SecretName,
        value: &SecretValue,
    ) -> Result<(SecretInfo, bool), SecretsError> {
        let sealed = self
            .keys()?
            .seal(tenant, name, value.expose())
            .map_err(|e| SecretsError::Unavailable(format!("no randomness to seal with: {e}")))?;
        let (record, created) = self
            .db
            .tenant(tenant)
            .put_secret(audit, name, &sealed)
            .await?;
        Ok((record.into(), created))
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        audit: &AuditContext,
        name: &SecretName,
    ) -> Result<bool, SecretsError> {
        Ok(self.db.tenant(tenant).delete_secret(audit, name).await?)
    }
}

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Values re-sealed under the current key.
    pub resealed: u64,
    /// Values a tenant changed while the rotation ran: already under the current key.
    pub changed_meanwhile: u64,
    /// Values that did not open (tenant, name and why), left as they were.
    pub failed: Vec<(TenantId, SecretName, String)>,
}

/// Re-seals every stored value that is not under `keys`' current key with it, opening each
/// with whichever of `keys` sealed it. Values that do not open are reported and left alone;
/// a value a tenant sets meanwhile is sealed under the current key already and is kept.
/// Running it again after an interruption carries on where it stopped.
pub async fn rotate(db: &Database, keys: &KeyRing) -> Result<Rotation, SecretsError> {
    const BATCH: u32 = 200;
    let current = keys.current().id().to_owned();
    let mut rotation = Rotation::default();
    let mut after: Option<StoredSecret> = None;
    loop {
        let batch = db
            .platform()
            .secrets_not_under(
                &current,
                after.as_ref().map(|s| (&s.tenant, &s.name)),
                BATCH,
            )
            .await?;
        let Some(last) = batch.last().cloned() else {
            break;
        };
        for stored in batch {
            let value = match keys.open(&stored.tenant, &stored.name, &stored.sealed) {
                Ok(value) => value,
                Err(e) => {
                    rotation.failed.push((
                        stored.tenant.clone(),
                        stored.name.clone(),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            let resealed = keys
                .seal(&stored.tenant, &stored.name, value.expose())
                .map_err(|e| {
                    SecretsError::Unavailable(format!("no randomness to seal with: {e}"))
                })?;
            if db.platform().reseal_secret(&stored, &resealed).await? {
                rotation.resealed += 1;
            } else {
                rotation.changed_meanwhile += 1;
            }
        }
        after = Some(last);
    }
    Ok(rotation)
}
