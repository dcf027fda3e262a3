//! The `kv` capability: a key-value store scoped to one tenant and one skill, behind the
//! [`KvStore`] trait so the server can back it with its database; [`MemoryKvStore`] is the
//! in-process implementation.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use thiserror::Error;
use wasmtime::component::{HasData, Linker};

use crate::bindings::omniforge::skill::kv::{self, KvError};
use crate::capabilities::HasCapability;
use crate::invocation::{SkillName, TenantId};
use crate::state::InvocationState;

/// Whose keys an operation touches: one tenant's view of one skill's store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvScope {
    /// The tenant the skill runs for.
    pub tenant: TenantId,
    /// The skill; its entries are shared by all its versions.
    pub skill: SkillName,
}

/// Why a [`KvStore`] operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KvStoreError {
    /// The scope's storage quota would be exceeded.
    #[error("key-value quota exceeded")]
    QuotaExceeded,
    /// `increment` found a value that is not an 8-byte counter.
    #[error("the value is not a counter")]
    NotACounter,
    /// The backing store failed; retrying may succeed.
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
}

/// Storage behind the `kv` capability. Implementations must keep scopes apart and make
/// `increment` atomic. Key and value sizes are checked before the store is called.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The value under `key`.
    async fn get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, KvStoreError>;
    /// Stores `value` under `key`.
    async fn set(&self, scope: &KvScope, key: &str, value: Vec<u8>) -> Result<(), KvStoreError>;
    /// Removes `key`; removing a missing key succeeds.
    async fn delete(&self, scope: &KvScope, key: &str) -> Result<(), KvStoreError>;
    /// Whether `key` has a value.
    async fn exists(&self, scope: &KvScope, key: &str) -> Result<bool, KvStoreError>;
    /// Up to `limit` keys starting with `prefix`, in byte order.
    async fn list_keys(
        &self,
        scope: &KvScope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, KvStoreError>;
    /// Adds `delta` to the little-endian i64 counter under `key` (missing = 0); returns it.
    async fn increment(&self, scope: &KvScope, key: &str, delta: i64) -> Result<i64, KvStoreError>;
}

/// Size bounds the capability enforces before calling the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most keys one `list-keys` call returns.
    pub max_list_keys: u32,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 512,
            max_value_bytes: 1 << 20,
            max_list_keys: 1000,
        }
    }
}

/// An in-process [`KvStore`]: fast, shared by all invocations of one runtime, gone when the
/// process exits. Each scope may hold at most `quota_bytes` of keys and values.
#[derive(Debug)]
pub struct MemoryKvStore {
    scopes: Mutex<HashMap<KvScope, ScopeData>>,
    quota_bytes: usize,
}

#[derive(Debug, Default)]
struct ScopeData {
    entries: BTreeMap<String, Vec<u8>>,
    bytes: usize,
}

impl ScopeData {
    fn put(&mut self, key: &str, value: Vec<u8>, quota: usize) -> Result<(), KvStoreError> {
        let old = self.entries.get(key).map_or(0, |v| key.len() + v.len());
        let bytes = self.bytes - old + key.len() + value.len();
        if bytes > quota {
            return Err(KvStoreError::QuotaExceeded);
        }
        self.bytes = bytes;
        self.entries.insert(key.to_owned(), value);
        Ok(())
    }
}

impl MemoryKvStore {
    /// A store allowing each scope `quota_bytes` of keys and values.
    pub fn new(quota_bytes: usize) -> Self {
        Self {
            scopes: Mutex::new(HashMap::new()),
            quota_bytes,
        }
    }

    fn with_scope<R>(&self, scope: &KvScope, f: impl FnOnce(&mut ScopeData) -> R) -> R {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        f(scopes.entry(scope.clone()).or_default())
    }
}

impl Default for MemoryKvStore {
    /// 16 MiB per scope.
    fn default() -> Self {
        Self::new(16 << 20)
    }
}

#[async_trait]
impl KvStore for MemoryKvStore {
    async fn get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, KvStoreError> {
        Ok(self.with_scope(scope, |s| s.entries.get(key).cloned()))
    }

    async fn set(&self, scope: &KvScope, key: &str, value: Vec<u8>) -> Result<(), KvStoreError> {
        self.with_scope(scope, |s| s.put(key, value, self.quota_bytes))
    }

    async fn delete(&self, scope: &KvScope, key: &str) -> Result<(), KvStoreError> {
        self.with_scope(scope, |s| {
            if let Some(old) = s.entries.remove(key) {
                s.bytes -= key.len() + old.len();
            }
        });
        Ok(())
    }

    async fn exists(&self, scope: &KvScope, key: &str) -> Result<bool, KvStoreError> {
        Ok(self.with_scope(scope, |s| s.entries.contains_key(key)))
    }

    async fn list_keys(
        &self,
        scope: &KvScope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, KvStoreError> {
        Ok(self.with_scope(scope, |s| {
            s.entries
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(limit)
                .map(|(k, _)| k.clone())
                .collect()
        }))
    }

    async fn increment(&self, scope: &KvScope, key: &str, delta: i64) -> Result<i64, KvStoreError> {
        self.with_scope(scope, |s| {
            let current = match s.entries.get(key) {
                None => 0,
                Some(v) => i64::from_le_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| KvStoreError::NotACounter)?,
                ),
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| KvStoreError::Unavailable("counter overflow".into()))?;
            s.put(key, next.to_le_bytes().to_vec(), self.quota_bytes)?;
            Ok(next)
        })
    }
}

/// Per-invocation state of the `kv` capability: the store if granted, and the scope.
pub(crate) struct KvState {
    store: Option<Arc<dyn KvStore>>,
    scope: KvScope,
    limits: KvLimits,
}

impl KvState {
    /// `store` is `None` when the invocation was not granted the key-value store.
    pub(crate) fn new(store: Option<Arc<dyn KvStore>>, scope: KvScope, limits: KvLimits) -> Self {
        Self {
            store,
            scope,
            limits,
        }
    }

    fn granted(&self) -> Result<&dyn KvStore, KvError> {
        self.store.as_deref().ok_or(KvError::Denied)
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.len() > self.limits.max_key_bytes {
            return Err(KvError::TooLarge(format!(
                "key is {} bytes; the limit is {}",
                key.len(),
                self.limits.max_key_bytes
            )));
        }
        Ok(())
    }
}

/// Borrowed view of [`KvState`] that implements the generated `kv::Host`.
struct GuestKv<'a>(&'a mut KvState);

struct KvCapability;

impl HasData for KvCapability {
    type Data<'a> = GuestKv<'a>;
}

impl super::Capability for KvState {
    fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        kv::add_to_linker::<InvocationState, KvCapability>(linker, |s| {
            GuestKv(HasCapability::<KvState>::capability(s))
        })
    }

    fn new(setup: &super::Setup<'_>) -> Self {
        let scope = KvScope {
            tenant: setup.context.tenant.clone(),
            skill: setup.context.skill.clone(),
        };
        let store = setup.grants.kv.then(|| Arc::clone(&setup.invoker.kv));
        Self::new(store, scope, setup.invoker.config.kv)
    }
}

impl From<KvStoreError> for KvError {
    fn from(e: KvStoreError) -> Self {
        match e {
            KvStoreError::QuotaExceeded => KvError::QuotaExceeded,
            KvStoreError::NotACounter => KvError::NotACounter,
            KvStoreError::Unavailable(message) => KvError::Unavailable(message),
        }
    }
}

impl kv::Host for GuestKv<'_> {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        let state = &*self.0;
        let store = state.granted()?;
        state.check_key(&key)?;
        Ok(store.get(&state.scope, &key).await?)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        let state = &*self.0;
        let store = state.granted()?;
        state.check_key(&key)?;
        if value.len() > state.limits.max_value_bytes {
            return Err(KvError::TooLarge(format!(
                "value is {} bytes; the limit is {}",
                value.len(),
                state.limits.max_value_bytes
            )));
        }
        Ok(store.set(&state.scope, &key, value).await?)
    }

    async fn delete(&mut self, key: String) -> Result<(), KvError> {
        let state = &*self.0;
        let store = state.granted()?;
        state.check_key(&key)?;
        Ok(store.delete(&state.scope, &key).await?)
    }

    async fn exists(&mut self, key: String) -> Result<bool, KvError> {
        let state = &*self.0;
        let store = state.granted()?;
        state.check_key(&key)?;
        Ok(store.exists(&state.scope, &key).await?)
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, KvError> {
        let state = &*self.0;
        let store = state.granted()?;
        state.check_key(&prefix)?;
        let limit = limit.min(state.limits.max_list_keys) as usize;
        Ok(store.list_keys(&state.scope, &prefix, limit).await?)
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, KvError> {
        let state = &*self.0;
        let store = state.granted()?;
        state.check_key(&key)?;
        Ok(store.increment(&state.scope, &key, delta).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(tenant: &str, skill: &str) -> KvScope {
        KvScope {
            tenant: TenantId::new(tenant),
            skill: skill.parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn scopes_do_not_see_each_other() {
        let store = MemoryKvStore::default();
        store
            .set(&scope("a", "x/y"), "k", b"1".to_vec())
            .await
            .unwrap();
        assert_eq!(store.get(&scope("b", "x/y"), "k").await.unwrap(), None);
        assert_eq!(store.get(&scope("a", "x/z"), "k").await.unwrap(), None);
        assert_eq!(
            store.get(&scope("a", "x/y"), "k").await.unwrap(),
            Some(b"1".to_vec())
        );
    }

    #[tokio::test]
    async fn quota_counts_keys_and_values_and_frees_on_delete() {
        let store = MemoryKvStore::new(10);
        let s = scope("a", "x/y");
        store.set(&s, "k", vec![0; 9]).await.unwrap();
        assert_eq!(
            store.set(&s, "j", vec![0; 1]).await,
            Err(KvStoreError::QuotaExceeded)
        );
        store.set(&s, "k", vec![0; 2]).await.unwrap(); // replacing frees the old value
        store.delete(&s, "k").await.unwrap();
        store.set(&s, "j", vec![0; 9]).await.unwrap();
    }

    #[tokio::test]
    async fn increment_counts_and_rejects_non_counters() {
        let store = MemoryKvStore::default();
        let s = scope("a", "x/y");
        assert_eq!(store.increment(&s, "n", 2).await.unwrap(), 2);
        assert_eq!(store.increment(&s, "n", -5).await.unwrap(), -3);
        store.set(&s, "text", b"abc".to_vec()).await.unwrap();
        assert_eq!(
            store.increment(&s, "text", 1).await,
            Err(KvStoreError::NotACounter)
        );
    }

    #[tokio::test]
    async fn list_keys_is_by_prefix_in_order_and_limited() {
        let store = MemoryKvStore::default();
        let s = scope("a", "x/y");
        for k in ["b2", "a", "b1", "b3", "c"] {
            store.set(&s, k, vec![]).await.unwrap();
        }
        assert_eq!(store.list_keys(&s, "b", 2).await.unwrap(), ["b1", "b2"]);
    }
}
