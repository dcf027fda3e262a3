//! The `kv` capability's data: keys and values of one (tenant, skill) scope.
//!
//! Writes are single statements or compare-and-swap loops, so concurrent invocations of the
//! same skill never lose an increment on either engine.

use crate::database::{BeginExclusive, with_pool};
use crate::error::StoreError;
use crate::records::now_ms;
use crate::tenant::TenantStore;

/// Result of a write that may hit the scope's storage quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvWrite {
    /// Stored.
    Written,
    /// Not stored: the scope would exceed its quota.
    QuotaExceeded,
}

/// Result of an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvIncrement {
    /// The counter's new value.
    Value(i64),
    /// The key holds a value that is not an 8-byte counter.
    NotACounter,
    /// Creating the counter would exceed the scope's quota.
    QuotaExceeded,
}

/// One kv entry in a tenant export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KvExportEntry {
    /// The skill whose store holds it (`namespace/name`).
    pub skill: String,
    /// The key.
    pub key: String,
    /// The value, base64 (standard alphabet, padded): values are arbitrary bytes.
    pub value_base64: String,
    /// When it was last written, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

/// A stored key back as the string the skill wrote. Keys are stored as their UTF-8 bytes
/// (so U+0000 is a key character like any other on both engines) and only ever written
/// from strings, so anything else is corruption.
fn key_from_bytes(key: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(key).map_err(|_| StoreError::Corrupt("a kv key is not UTF-8".into()))
}

/// How many times a compare-and-swap is retried under contention before giving up.
const CAS_ATTEMPTS: usize = 64;

impl TenantStore<'_> {
    /// Every kv entry of the tenant, all skills, ordered by skill and key (for exports).
    pub(crate) async fn export_kv(&self) -> Result<Vec<KvExportEntry>, StoreError> {
        use base64::Engine as _;
        let rows: Vec<(String, Vec<u8>, Vec<u8>, i64)> = with_pool!(self.db(), |pool| {
            sqlx::query_as(
                "SELECT skill, key, value, updated_at_ms FROM kv_entries WHERE tenant_id = $1 \
                 ORDER BY skill, key",
            )
            .bind(self.tenant_id().as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(skill, key, value, updated_at_ms)| {
                Ok(KvExportEntry {
                    skill,
                    key: key_from_bytes(key)?,
                    value_base64: base64::engine::general_purpose::STANDARD.encode(value),
                    updated_at_ms,
                })
            })
            .collect()
    }

    /// The value under `key` in `skill`'s store.
    pub async fn kv_get(&self, skill: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(with_pool!(self.db(), |pool| {
            sqlx::query_scalar(
                "SELECT value FROM kv_entries WHERE tenant_id = $1 AND skill = $2 AND key = $3",
            )
            .bind(self.tenant_id().as_str())
            .bind(skill)
            .bind(key.as_bytes())
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Stores `value` under `key`, unless the scope's keys and values would exceed
    /// `quota_bytes` together.
    pub async fn kv_set(
        &self,
        skill: &str,
        key: &str,
        value: &[u8],
        quota_bytes: u64,
    ) -> Result<KvWrite, StoreError> {
        let written = self.kv_write(skill, key, value, quota_bytes, true).await?;
        Ok(written.unwrap_or(KvWrite::Written))
    }

    /// The one quota-checked write: replaces the key's value (`replace`), or inserts it only
    /// if absent (`None` when it exists). The key's current size does not count against the
    /// quota, since the write replaces it.
    async fn kv_write(
        &self,
        skill: &str,
        key: &str,
        value: &[u8],
        quota_bytes: u64,
        replace: bool,
    ) -> Result<Option<KvWrite>, StoreError> {
        let size = (key.len() + value.len()) as i64;
        let t = self.tenant_id().as_str();
        // Concurrent writes to one scope must not all pass the quota check.
        let scope = format!("kv/{t}/{skill}");
        let on_conflict = if replace {
            "DO UPDATE SET value = excluded.value, size_bytes = excluded.size_bytes, \
             updated_at_ms = excluded.updated_at_ms"
        } else {
            "DO NOTHING"
        };
        let insert = format!(
            "INSERT INTO kv_entries (tenant_id, skill, key, value, size_bytes, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, skill, key) {on_conflict}"
        );
        Ok(with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_exclusive(&scope).await?;
            let others: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM kv_entries \
                 WHERE tenant_id = $1 AND skill = $2 AND key <> $3",
            )
            .bind(t)
            .bind(skill)
            .bind(key.as_bytes())
            .fetch_one(&mut *tx)
            .await?;
            if others.saturating_add(size) as u64 > quota_bytes {
                Some(KvWrite::QuotaExceeded)
            } else {
                let inserted = sqlx::query(sqlx::AssertSqlSafe(insert))
                    .bind(t)
                    .bind(skill)
                    .bind(key.as_bytes())
                    .bind(value)
                    .bind(size)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                (inserted == 1).then_some(KvWrite::Written)
            }
        }))
    }

    /// Removes `key`; removing a missing key succeeds.
    pub async fn kv_delete(&self, skill: &str, key: &str) -> Result<(), StoreError> {
        with_pool!(self.db(), |pool| {
            sqlx::query("DELETE FROM kv_entries WHERE tenant_id = $1 AND skill = $2 AND key = $3")
                .bind(self.tenant_id().as_str())
                .bind(skill)
                .bind(key.as_bytes())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Up to `limit` keys starting with `prefix`, in byte order.
    pub async fn kv_list_keys(
        &self,
        skill: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        // A range scan from the prefix, stopping at the first key past it: no LIKE, so `%`
        // and `_` in keys are plain characters.
        let keys: Vec<Vec<u8>> = with_pool!(self.db(), |pool| {
            sqlx::query_scalar(
                "SELECT key FROM kv_entries WHERE tenant_id = $1 AND skill = $2 AND key >= $3 \
                 ORDER BY key LIMIT $4",
            )
            .bind(self.tenant_id().as_str())
            .bind(skill)
            .bind(prefix.as_bytes())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await?
        });
        keys.into_iter()
            .take_while(|k| k.starts_with(prefix.as_bytes()))
            .map(key_from_bytes)
            .collect()
    }

    /// Adds `delta` to the little-endian i64 counter under `key` (missing = 0).
    pub async fn kv_increment(
        &self,
        skill: &str,
        key: &str,
        delta: i64,
        quota_bytes: u64,
    ) -> Result<KvIncrement, StoreError> {
        let t = self.tenant_id().as_str();
        for _ in 0..CAS_ATTEMPTS {
            let Some(old) = self.kv_get(skill, key).await? else {
                let value = delta.to_le_bytes();
                match self
                    .kv_write(skill, key, &value, quota_bytes, false)
                    .await?
                {
                    Some(KvWrite::Written) => return Ok(KvIncrement::Value(delta)),
                    Some(KvWrite::QuotaExceeded) => return Ok(KvIncrement::QuotaExceeded),
                    None => continue, // created meanwhile: increment that value
                }
            };
            let Ok(bytes) = <[u8; 8]>::try_from(old.as_slice()) else {
                return Ok(KvIncrement::NotACounter);
            };
            let new = i64::from_le_bytes(bytes).wrapping_add(delta);
            let swapped = with_pool!(self.db(), |pool| {
                sqlx::query(
                    "UPDATE kv_entries SET value = $4, updated_at_ms = $6 WHERE tenant_id = $1 \
                     AND skill = $2 AND key = $3 AND value = $5",
                )
                .bind(t)
                .bind(skill)
                .bind(key.as_bytes())
                .bind(new.to_le_bytes().as_slice())
                .bind(old.as_slice())
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
            });
            if swapped == 1 {
                return Ok(KvIncrement::Value(new));
            }
        }
        Err(StoreError::Conflict(format!(
            "the counter {key:?} is contended; try again"
        )))
    }
}
