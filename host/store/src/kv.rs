//! The `kv` capability's data: keys and values of one (tenant, skill) scope.
//!
//! Writes are short transactions or compare-and-swap loops, so concurrent invocations of the
//! same skill never lose an increment on either engine. Storage is charged per entry (key,
//! value and a fixed overhead) and kept as running totals per skill and per tenant, so a
//! write checks its quotas in constant time, whatever the store holds.

use omniforge_types::SkillName;

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

/// Bytes a kv entry is charged beyond its key and value: its row and its index entry, which
/// hold the tenant id and the skill's name again for every entry. Measured at 191 bytes on
/// SQLite and 241 on PostgreSQL for a typical skill name (`examples/kv_footprint.rs`,
/// docs/performance.md), rounded up. Without it, many tiny entries would take far more disk
/// than they are charged for.
pub const KV_ENTRY_OVERHEAD: u64 = 256;

/// The lock scope of writes to one key. The key is base64-encoded: it may hold U+0000,
/// which PostgreSQL text (the advisory lock's hash input) cannot.
fn lock_scope(tenant: &str, skill: &str, key: &str) -> String {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD_NO_PAD.encode(key);
    format!("kv/{tenant}/{skill}/{key}")
}

/// What one kv entry is charged.
fn entry_charge(key: &str, value: &[u8]) -> i64 {
    (key.len() + value.len()) as i64 + KV_ENTRY_OVERHEAD as i64
}

/// The kv storage quotas a write must fit: the skill's own and the tenant's total over all
/// its skills, each counting every entry's key, value and [`KV_ENTRY_OVERHEAD`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    /// Bytes one skill's store may be charged.
    pub scope_bytes: u64,
    /// Bytes all of the tenant's skills' stores together may be charged.
    pub tenant_bytes: u64,
}

impl KvQuota {
    fn scope_max(self) -> i64 {
        i64::try_from(self.scope_bytes).unwrap_or(i64::MAX)
    }

    fn tenant_max(self) -> i64 {
        i64::try_from(self.tenant_bytes).unwrap_or(i64::MAX)
    }
}

/// The kv storage charged now: one skill's, and its tenant's over all skills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    /// Bytes charged to the skill's store.
    pub scope_bytes: i64,
    /// Entries in it.
    pub scope_entries: i64,
    /// Bytes charged to all of the tenant's stores.
    pub tenant_bytes: i64,
    /// Entries in them.
    pub tenant_entries: i64,
}

/// One kv entry in a tenant export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KvExportEntry {
    /// The skill whose store holds it.
    pub skill: SkillName,
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
                    skill: skill.parse().map_err(|e| {
                        StoreError::Corrupt(format!("a kv entry's skill name: {e}"))
                    })?,
                    key: key_from_bytes(key)?,
                    value_base64: base64::engine::general_purpose::STANDARD.encode(value),
                    updated_at_ms,
                })
            })
            .collect()
    }

    /// The value under `key` in `skill`'s store.
    pub async fn kv_get(
        &self,
        skill: &SkillName,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let skill = skill.as_str();
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

    /// Stores `value` under `key`, unless the skill's or the tenant's kv storage would
    /// exceed its quota.
    pub async fn kv_set(
        &self,
        skill: &SkillName,
        key: &str,
        value: &[u8],
        quota: KvQuota,
    ) -> Result<KvWrite, StoreError> {
        let skill = skill.as_str();
        let written = self.kv_write(skill, key, value, quota, true).await?;
        Ok(written.unwrap_or(KvWrite::Written))
    }

    /// The one quota-checked write: replaces the key's value (`replace`), or inserts it only
    /// if absent (`None` when it exists). Only the change in the entry's charge counts
    /// against the quotas, checked and added to the running totals in the same short
    /// transaction, which runs alone among writes of the same key.
    async fn kv_write(
        &self,
        skill: &str,
        key: &str,
        value: &[u8],
        quota: KvQuota,
        replace: bool,
    ) -> Result<Option<KvWrite>, StoreError> {
        let charge = entry_charge(key, value);
        let t = self.tenant_id().as_str();
        let scope = lock_scope(t, skill, key);
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
            let old: Option<i64> = sqlx::query_scalar(
                "SELECT size_bytes FROM kv_entries WHERE tenant_id = $1 AND skill = $2 AND key = $3",
            )
            .bind(t)
            .bind(skill)
            .bind(key.as_bytes())
            .fetch_optional(&mut *tx)
            .await?;
            if old.is_some() && !replace {
                return Ok(None);
            }
            let delta = charge - old.unwrap_or(0);
            let added = i64::from(old.is_none());
            // A growing write must fit both quotas; a shrinking one always may.
            let (tenant_max, scope_max) = if delta > 0 {
                (quota.tenant_max(), quota.scope_max())
            } else {
                (i64::MAX, i64::MAX)
            };
            if delta > tenant_max || delta > scope_max {
                return Ok(Some(KvWrite::QuotaExceeded));
            }
            let tenant_ok = sqlx::query(
                "INSERT INTO kv_tenant_usage (tenant_id, bytes, entries) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET bytes = kv_tenant_usage.bytes + \
                 excluded.bytes, entries = kv_tenant_usage.entries + excluded.entries \
                 WHERE kv_tenant_usage.bytes + excluded.bytes <= $4",
            )
            .bind(t)
            .bind(delta)
            .bind(added)
            .bind(tenant_max)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let scope_ok = sqlx::query(
                "INSERT INTO kv_usage (tenant_id, skill, bytes, entries) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, skill) DO UPDATE SET bytes = kv_usage.bytes + \
                 excluded.bytes, entries = kv_usage.entries + excluded.entries \
                 WHERE kv_usage.bytes + excluded.bytes <= $5",
            )
            .bind(t)
            .bind(skill)
            .bind(delta)
            .bind(added)
            .bind(scope_max)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if tenant_ok == 0 || scope_ok == 0 {
                // Dropping the transaction rolls back whichever total was added to.
                return Ok(Some(KvWrite::QuotaExceeded));
            }
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind(t)
                .bind(skill)
                .bind(key.as_bytes())
                .bind(value)
                .bind(charge)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Some(KvWrite::Written)
        }))
    }

    /// Removes `key`; removing a missing key succeeds.
    pub async fn kv_delete(&self, skill: &SkillName, key: &str) -> Result<(), StoreError> {
        let skill = skill.as_str();
        let t = self.tenant_id().as_str();
        let scope = lock_scope(t, skill, key);
        with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_exclusive(&scope).await?;
            let freed: Option<i64> = sqlx::query_scalar(
                "DELETE FROM kv_entries WHERE tenant_id = $1 AND skill = $2 AND key = $3 \
                 RETURNING size_bytes",
            )
            .bind(t)
            .bind(skill)
            .bind(key.as_bytes())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(freed) = freed {
                sqlx::query(
                    "UPDATE kv_tenant_usage SET bytes = bytes - $2, entries = entries - 1 \
                     WHERE tenant_id = $1",
                )
                .bind(t)
                .bind(freed)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE kv_usage SET bytes = bytes - $3, entries = entries - 1 \
                     WHERE tenant_id = $1 AND skill = $2",
                )
                .bind(t)
                .bind(skill)
                .bind(freed)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The kv storage the whole tenant is charged for: bytes and entries.
    pub async fn kv_tenant_usage(&self) -> Result<(i64, i64), StoreError> {
        self.usage_of("")
            .await
            .map(|u| (u.tenant_bytes, u.tenant_entries))
    }

    /// The kv storage `skill` and the whole tenant are charged for.
    pub async fn kv_usage(&self, skill: &SkillName) -> Result<KvUsage, StoreError> {
        self.usage_of(skill.as_str()).await
    }

    /// [`Self::kv_usage`] by the name as stored (empty: no skill's row, the tenant's only).
    async fn usage_of(&self, skill: &str) -> Result<KvUsage, StoreError> {
        let t = self.tenant_id().as_str();
        /// Bytes and entries of one total, if it has a row yet.
        type Total = Option<(i64, i64)>;
        let (scope, tenant): (Total, Total) = with_pool!(self.db(), |pool| {
            let scope = sqlx::query_as(
                "SELECT bytes, entries FROM kv_usage WHERE tenant_id = $1 AND skill = $2",
            )
            .bind(t)
            .bind(skill)
            .fetch_optional(pool)
            .await?;
            let tenant =
                sqlx::query_as("SELECT bytes, entries FROM kv_tenant_usage WHERE tenant_id = $1")
                    .bind(t)
                    .fetch_optional(pool)
                    .await?;
            (scope, tenant)
        });
        let (scope_bytes, scope_entries) = scope.unwrap_or_default();
        let (tenant_bytes, tenant_entries) = tenant.unwrap_or_default();
        Ok(KvUsage {
            scope_bytes,
            scope_entries,
            tenant_bytes,
            tenant_entries,
        })
    }

    /// Up to `limit` keys starting with `prefix`, in byte order.
    pub async fn kv_list_keys(
        &self,
        skill: &SkillName,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let skill = skill.as_str();
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
        skill: &SkillName,
        key: &str,
        delta: i64,
        quota: KvQuota,
    ) -> Result<KvIncrement, StoreError> {
        let name = skill;
        let skill = skill.as_str();
        let t = self.tenant_id().as_str();
        for _ in 0..CAS_ATTEMPTS {
            let Some(old) = self.kv_get(name, key).await? else {
                let value = delta.to_le_bytes();
                match self.kv_write(skill, key, &value, quota, false).await? {
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
