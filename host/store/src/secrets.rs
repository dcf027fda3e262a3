//! Tenant secrets as the database keeps them: sealed values and their metadata. Sealing and
//! opening belong to the server's key ring (`omniforge-control`'s `secrets`); this module
//! never sees a value in clear, so nothing it logs or returns can leak one.

use omniforge_types::{SecretName, TenantId};
use serde::Serialize;
use serde_json::json;

use crate::audit::{page_size, record_audit};
use crate::database::with_pool;
use crate::error::StoreError;
use crate::platform::Platform;
use crate::records::{AuditContext, now_ms};
use crate::tenant::TenantStore;

/// What is known about a secret besides its value: listings and exports show this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRecord {
    /// The name.
    pub name: SecretName,
    /// 1 when set first, one more at every change.
    pub version: i64,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms.
    pub updated_at_ms: i64,
    /// Who set the current value (`user:<id> key:<id>`, …).
    pub updated_by: String,
}

/// A value as stored: sealed under the key-encryption key that `key_id` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Nonce, ciphertext and tag, in the key ring's format.
    pub sealed: Vec<u8>,
    /// The fingerprint of the key that sealed it.
    pub key_id: String,
}

/// A stored secret that key rotation re-seals: where it is and how it is sealed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// Its tenant.
    pub tenant: TenantId,
    /// Its name.
    pub name: SecretName,
    /// Its value as stored.
    pub sealed: SealedSecret,
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    name: String,
    version: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
    updated_by: String,
}

impl TryFrom<RecordRow> for SecretRecord {
    type Error = StoreError;

    fn try_from(row: RecordRow) -> Result<Self, StoreError> {
        Ok(SecretRecord {
            name: parse_name(&row.name)?,
            version: row.version,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
            updated_by: row.updated_by,
        })
    }
}

fn parse_name(name: &str) -> Result<SecretName, StoreError> {
    name.parse()
        .map_err(|e| StoreError::Corrupt(format!("a secret's name: {e}")))
}

const RECORD_COLUMNS: &str = "name, version, created_at_ms, updated_at_ms, updated_by";

impl TenantStore<'_> {
    /// Sets secret `name` to `value` (sealed), creating it or replacing its value; answers
    /// its record and whether it was created. Audited as `secret.set`, without the value.
    pub async fn put_secret(
        &self,
        audit: &AuditContext,
        name: &SecretName,
        value: &SealedSecret,
    ) -> Result<(SecretRecord, bool), StoreError> {
        let t = self.tenant_id().as_str();
        let now = now_ms();
        let actor = audit.actor_in(t).to_owned();
        let row: RecordRow = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            let row: RecordRow = sqlx::query_as(
                "INSERT INTO secrets (tenant_id, name, sealed, key_id, version, created_at_ms, \
                 updated_at_ms, updated_by) VALUES ($1, $2, $3, $4, 1, $5, $5, $6) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET sealed = excluded.sealed, \
                 key_id = excluded.key_id, version = secrets.version + 1, \
                 updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by \
                 RETURNING name, version, created_at_ms, updated_at_ms, updated_by",
            )
            .bind(t)
            .bind(name.as_str())
            .bind(&value.sealed)
            .bind(&value.key_id)
            .bind(now)
            .bind(&actor)
            .fetch_one(&mut *tx)
            .await?;
            record_audit!(
                &mut *tx,
                t,
                audit,
                "secret.set",
                "secret",
                name.as_str(),
                json!({ "version": row.version })
            )?;
            tx.commit().await?;
            row
        });
        let record = SecretRecord::try_from(row)?;
        let created = record.version == 1;
        Ok((record, created))
    }

    /// Deletes secret `name`; false if the tenant has none by that name. Audited as
    /// `secret.delete`.
    pub async fn delete_secret(
        &self,
        audit: &AuditContext,
        name: &SecretName,
    ) -> Result<bool, StoreError> {
        let t = self.tenant_id().as_str();
        Ok(with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM secrets WHERE tenant_id = $1 AND name = $2")
                .bind(t)
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted > 0 {
                record_audit!(
                    &mut *tx,
                    t,
                    audit,
                    "secret.delete",
                    "secret",
                    name.as_str(),
                    json!({})
                )?;
                tx.commit().await?;
            }
            deleted > 0
        }))
    }

    /// One page of the tenant's secrets by name, after `after`: metadata only.
    pub async fn secrets(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SecretRecord>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM secrets WHERE tenant_id = $1 \
             AND ($2 IS NULL OR name > $2) ORDER BY name LIMIT $3"
        );
        let rows: Vec<RecordRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(after)
                .bind(page_size(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(SecretRecord::try_from).collect()
    }

    /// Secret `name` as stored, if the tenant set it.
    pub async fn sealed_secret(
        &self,
        name: &SecretName,
    ) -> Result<Option<SealedSecret>, StoreError> {
        let row: Option<(Vec<u8>, String)> = with_pool!(self.db(), |pool| {
            sqlx::query_as("SELECT sealed, key_id FROM secrets WHERE tenant_id = $1 AND name = $2")
                .bind(self.tenant_id().as_str())
                .bind(name.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(sealed, key_id)| SealedSecret { sealed, key_id }))
    }

    /// Every secret's record, by name (for exports, which never carry values).
    pub(crate) async fn export_secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        let sql =
            format!("SELECT {RECORD_COLUMNS} FROM secrets WHERE tenant_id = $1 ORDER BY name");
        let rows: Vec<RecordRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(SecretRecord::try_from).collect()
    }
}

impl Platform<'_> {
    /// Up to `limit` stored secrets of any tenant that are not sealed under `key_id`, the
    /// ones a key rotation still has to re-seal, by tenant and name after `after`.
    pub async fn secrets_not_under(
        &self,
        key_id: &str,
        after: Option<(&TenantId, &SecretName)>,
        limit: u32,
    ) -> Result<Vec<StoredSecret>, StoreError> {
        let (after_tenant, after_name) = after.map_or((None, None), |(t, n)| {
            (Some(t.as_str().to_owned()), Some(n.as_str().to_owned()))
        });
        let rows: Vec<(String, String, Vec<u8>, String)> = with_pool!(self.db(), |pool| {
            sqlx::query_as(
                "SELECT tenant_id, name, sealed, key_id FROM secrets WHERE key_id <> $1 \
                 AND ($2 IS NULL OR tenant_id > $2 OR (tenant_id = $2 AND name > $3)) \
                 ORDER BY tenant_id, name LIMIT $4",
            )
            .bind(key_id)
            .bind(after_tenant)
            .bind(after_name)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(tenant, name, sealed, key_id)| {
                Ok(StoredSecret {
                    tenant: TenantId::from(tenant),
                    name: parse_name(&name)?,
                    sealed: SealedSecret { sealed, key_id },
                })
            })
            .collect()
    }

    /// Replaces `stored`'s sealed value with `resealed` (the same value under another key)
    /// unless it changed since it was read: false then, and a tenant's newer value stays.
    /// Neither the version nor the audit log changes: the value is the same.
    pub async fn reseal_secret(
        &self,
        stored: &StoredSecret,
        resealed: &SealedSecret,
    ) -> Result<bool, StoreError> {
        let updated = with_pool!(self.db(), |pool| {
            sqlx::query(
                "UPDATE secrets SET sealed = $1, key_id = $2 WHERE tenant_id = $3 AND name = $4 \
                 AND key_id = $5 AND sealed = $6",
            )
            .bind(&resealed.sealed)
            .bind(&resealed.key_id)
            .bind(stored.tenant.as_str())
            .bind(stored.name.as_str())
            .bind(&stored.sealed.key_id)
            .bind(&stored.sealed.sealed)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated > 0)
    }
}
