//! Verified API keys remembered in memory, so a request with a key in use costs a hash
//! lookup instead of an argon2 verification.
//!
//! Bounded by use (least recently used entries go first), never flushed as a whole, and
//! forgotten only where a change concerns them: one key, one user's keys, one tenant's keys.
//! A flush would send every tenant's keys back through argon2 and its limits at once.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;
use omniforge_store::{ApiKeyCredential, ApiKeyId, TenantId, UserId};

/// SHA-256 of the whole presented key: the cache never holds a key or its secret.
pub type KeyDigest = [u8; 32];

struct CachedKey {
    credential: Arc<ApiKeyCredential>,
    checked_at: Instant,
}

/// A remembered key as found: its credential, and whether it is recent enough to be trusted
/// without reading its record again.
pub struct Remembered {
    /// The credential as last read.
    pub credential: Arc<ApiKeyCredential>,
    /// Read within the recheck interval.
    pub fresh: bool,
}

/// The cache of verified keys.
pub struct KeyCache {
    entries: Mutex<LruCache<KeyDigest, CachedKey>>,
    recheck: Duration,
}

impl KeyCache {
    /// A cache of at most `capacity` keys, each trusted for `recheck` after its record was
    /// read.
    pub fn new(capacity: usize, recheck: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("at least one");
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            recheck,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<KeyDigest, CachedKey>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The remembered credential of the key with this digest.
    pub fn get(&self, digest: &KeyDigest) -> Option<Remembered> {
        self.lock().get(digest).map(|c| Remembered {
            credential: Arc::clone(&c.credential),
            fresh: c.checked_at.elapsed() < self.recheck,
        })
    }

    /// Remembers a credential just read (and verified, or matched to a verified hash).
    pub fn put(&self, digest: KeyDigest, credential: ApiKeyCredential) -> Arc<ApiKeyCredential> {
        let credential = Arc::new(credential);
        self.lock().put(
            digest,
            CachedKey {
                credential: Arc::clone(&credential),
                checked_at: Instant::now(),
            },
        );
        credential
    }

    /// Notes a use of the key, so the cached record shows it too.
    pub fn touch(&self, digest: &KeyDigest, at_ms: i64) {
        if let Some(cached) = self.lock().peek_mut(digest) {
            Arc::make_mut(&mut cached.credential).key.last_used_at_ms = Some(at_ms);
        }
    }

    /// Forgets one presented key.
    pub fn forget_digest(&self, digest: &KeyDigest) {
        self.lock().pop(digest);
    }

    /// Forgets a key by id (it was revoked).
    pub fn forget_key(&self, id: &ApiKeyId) {
        self.forget_where(|c| &c.key.id == id);
    }

    /// Forgets the keys of one user (their roles or status changed).
    pub fn forget_user(&self, tenant: &TenantId, user: &UserId) {
        self.forget_where(|c| &c.key.tenant_id == tenant && &c.key.user_id == user);
    }

    /// Forgets the keys of one tenant (it was suspended or resumed).
    pub fn forget_tenant(&self, tenant: &TenantId) {
        self.forget_where(|c| &c.key.tenant_id == tenant);
    }

    fn forget_where(&self, concerned: impl Fn(&ApiKeyCredential) -> bool) {
        let mut entries = self.lock();
        let doomed: Vec<KeyDigest> = entries
            .iter()
            .filter(|(_, cached)| concerned(&cached.credential))
            .map(|(digest, _)| *digest)
            .collect();
        for digest in doomed {
            entries.pop(&digest);
        }
    }

    /// Forgets every key.
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl omniforge_control::changes::CredentialCache for KeyCache {
    fn forget_key(&self, key: &ApiKeyId) {
        KeyCache::forget_key(self, key);
    }

    fn forget_user(&self, tenant: &TenantId, user: &UserId) {
        KeyCache::forget_user(self, tenant, user);
    }

    fn forget_tenant(&self, tenant: &TenantId) {
        KeyCache::forget_tenant(self, tenant);
    }

    fn forget_all(&self) {
        KeyCache::forget_all(self);
    }
}
