//! The `kv` capability backed by the database: scoped to (tenant, skill name), shared by all
//! of the skill's versions and by every replica of the server. Storage is limited per skill
//! (`skills.kv_quota_bytes`) and per tenant over all its skills (the policy's
//! `max_kv_bytes`).

use std::sync::Arc;

use async_trait::async_trait;
use omniforge_runtime::capabilities::{KvScope, KvStore, KvStoreError};
use omniforge_store::{Database, KvIncrement, KvQuota, KvWrite, StoreError};

use crate::policy::Policies;

/// [`KvStore`] over the server's database, with storage quotas per skill and per tenant.
pub struct DbKvStore {
    db: Database,
    policies: Arc<Policies>,
    scope_quota_bytes: u64,
}

impl DbKvStore {
    /// A store over `db` allowing `scope_quota_bytes` per skill, and per tenant what its
    /// policy allows.
    pub fn new(db: Database, policies: Arc<Policies>, scope_quota_bytes: u64) -> Self {
        Self {
            db,
            policies,
            scope_quota_bytes,
        }
    }

    async fn quota(&self, scope: &KvScope) -> Result<KvQuota, KvStoreError> {
        let policy = self
            .policies
            .get(&scope.tenant)
            .await
            .map_err(unavailable)?;
        Ok(KvQuota {
            scope_bytes: self.scope_quota_bytes,
            tenant_bytes: policy.max_kv_bytes,
        })
    }
}

fn unavailable(error: StoreError) -> KvStoreError {
    tracing::warn!("kv store: {error}");
    KvStoreError::Unavailable("the key-value store failed; try again".into())
}

#[async_trait]
impl KvStore for DbKvStore {
    async fn get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, KvStoreError> {
        self.db
            .tenant(&scope.tenant)
            .kv_get(&scope.skill, key)
            .await
            .map_err(unavailable)
    }

    async fn set(&self, scope: &KvScope, key: &str, value: Vec<u8>) -> Result<(), KvStoreError> {
        match self
            .db
            .tenant(&scope.tenant)
            .kv_set(&scope.skill, key, &value, self.quota(scope).await?)
            .await
            .map_err(unavailable)?
        {
            KvWrite::Written => Ok(()),
            KvWrite::QuotaExceeded => Err(KvStoreError::QuotaExceeded),
        }
    }

    async fn delete(&self, scope: &KvScope, key: &str) -> Result<(), KvStoreError> {
        self.db
            .tenant(&scope.tenant)
            .kv_delete(&scope.skill, key)
            .await
            .map_err(unavailable)
    }

    async fn exists(&self, scope: &KvScope, key: &str) -> Result<bool, KvStoreError> {
        Ok(self.get(scope, key).await?.is_some())
    }

    async fn list_keys(
        &self,
        scope: &KvScope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, KvStoreError> {
        self.db
            .tenant(&scope.tenant)
            .kv_list_keys(&scope.skill, prefix, limit)
            .await
            .map_err(unavailable)
    }

    async fn increment(&self, scope: &KvScope, key: &str, delta: i64) -> Result<i64, KvStoreError> {
        match self
            .db
            .tenant(&scope.tenant)
            .kv_increment(&scope.skill, key, delta, self.quota(scope).await?)
            .await
            .map_err(unavailable)?
        {
            KvIncrement::Value(n) => Ok(n),
            KvIncrement::NotACounter => Err(KvStoreError::NotACounter),
            KvIncrement::QuotaExceeded => Err(KvStoreError::QuotaExceeded),
        }
    }
}
