//! Who is calling: API keys and JWT bearer tokens turned into a [`Principal`] with the
//! permissions its roles grant, narrowed by the credential's scopes.

pub mod api_key;
pub mod jwt;
pub mod rbac;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use omniforge_store::{
    ApiKeyCredential, ApiKeyId, AuditContext, Database, Role, TenantId, TenantStatus, User, UserId,
    UserStatus, now_ms,
};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use jwt::JwtVerifier;
use rbac::{Permission, PermissionSet};

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API key.
    ApiKey(ApiKeyId),
    /// A JWT bearer token.
    Token,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The tenant it acts in: the scope of every tenant-owned query it makes.
    pub tenant: TenantId,
    /// The user it acts as.
    pub user: UserId,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// Whether the user administers the platform.
    pub platform_admin: bool,
    /// What it may do: its roles' permissions within the credential's scopes.
    pub permissions: PermissionSet,
    /// How it authenticated.
    pub credential: Credential,
}

impl Principal {
    /// Whether it holds `permission`.
    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(permission)
    }

    /// Whether it holds the owner role (needed to grant or take away ownership).
    pub fn is_owner(&self) -> bool {
        self.roles.contains(&Role::Owner)
    }

    /// The actor recorded in audit events.
    pub fn actor(&self) -> String {
        match &self.credential {
            Credential::ApiKey(key) => format!("user:{} key:{key}", self.user),
            Credential::Token => format!("user:{} token", self.user),
        }
    }

    /// The audit context for a change made in request `request_id`.
    pub fn audit(&self, request_id: &str) -> AuditContext {
        AuditContext {
            actor: self.actor(),
            request_id: request_id.to_owned(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Set by the route's access guard. A handler asking for a principal on a route
        // without a guard fails closed.
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::internal("a handler needs a principal its route does not require")
        })
    }
}

/// A verified key remembered in memory, so a request costs a hash lookup, not argon2.
struct CachedKey {
    credential: Arc<ApiKeyCredential>,
    checked_at: Instant,
}

/// Most keys remembered at once; beyond it the cache starts over.
const KEY_CACHE_CAPACITY: usize = 10_000;
/// `last_used_at` is written at most this often per key.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// Turns the `Authorization` header into a [`Principal`].
pub struct Authenticator {
    db: Database,
    jwt: Option<JwtVerifier>,
    recheck: Duration,
    keys: Mutex<HashMap<[u8; 32], CachedKey>>,
    /// Secret verifications (argon2, ~20 ms of a core each) per key prefix. A key in use is
    /// verified once and then answered from memory, so only guesses at a known prefix's
    /// secret (or a cold key under such an attack) meet this limit. Keyed by the prefixes of
    /// stored keys only (unknown ones are refused before any verification), so made-up
    /// prefixes cannot grow it. `None`: unlimited.
    verifications: Option<DefaultKeyedRateLimiter<String>>,
}

impl Authenticator {
    /// An authenticator over `db`; `recheck` is how long a verified key is trusted from
    /// memory before its record is read again; `verifications_per_minute` caps secret
    /// verifications per key prefix (0: no cap).
    pub fn new(
        db: Database,
        jwt: Option<JwtVerifier>,
        recheck: Duration,
        verifications_per_minute: u32,
    ) -> Self {
        Self {
            db,
            jwt,
            recheck,
            keys: Mutex::new(HashMap::new()),
            verifications: NonZeroU32::new(verifications_per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
        }
    }

    /// Drops the verification counts of prefixes back to full allowance (called periodically).
    pub fn shrink(&self) {
        if let Some(limiter) = &self.verifications {
            limiter.retain_recent();
        }
    }

    /// Authenticates a request. Missing, malformed, unknown, wrong, revoked and expired
    /// credentials answer 401; a suspended tenant answers 403.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("send an API key or token: Authorization: Bearer …")
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("malformed Authorization header: expected Bearer …")
            })?;
        if token.starts_with(api_key::KEY_PREFIX) {
            return self.api_key(token).await;
        }
        match &self.jwt {
            Some(jwt) => self.token(jwt, token).await,
            None => Err(ApiError::unauthorized("not an OmniForge API key")),
        }
    }

    async fn api_key(&self, token: &str) -> Result<Principal, ApiError> {
        let (prefix, secret) =
            api_key::parse(token).ok_or_else(|| ApiError::unauthorized("malformed API key"))?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let credential = match self.cached(&digest) {
            Some((credential, true)) => credential,
            // Boxed: the rare path, kept out of every request's future.
            cached => Box::pin(self.api_key_from_db(prefix, secret, digest, cached)).await?,
        };
        let key = &credential.key;
        let now = now_ms();
        if key.revoked_at_ms.is_some() {
            return Err(ApiError::unauthorized("this API key was revoked"));
        }
        if key.expires_at_ms.is_some_and(|at| at <= now) {
            return Err(ApiError::unauthorized("this API key has expired"));
        }
        check_user(&credential.user, credential.tenant_status)?;
        if key
            .last_used_at_ms
            .is_none_or(|at| now - at >= TOUCH_INTERVAL_MS)
        {
            self.touch(&digest, &key.id, now);
        }
        let scopes = PermissionSet::from_scopes(&key.scopes).unwrap_or_default();
        Ok(principal(
            &credential.user,
            scopes,
            Credential::ApiKey(key.id.clone()),
        ))
    }

    /// The credential of a key not remembered, or remembered too long ago, from the database.
    async fn api_key_from_db(
        &self,
        prefix: &str,
        secret: &str,
        digest: [u8; 32],
        cached: Option<(Arc<ApiKeyCredential>, bool)>,
    ) -> Result<Arc<ApiKeyCredential>, ApiError> {
        Ok(match cached {
            Some((stale, _)) => {
                // Re-read the record (cheap, indexed) instead of re-running argon2: the
                // presented key already matched this hash.
                let fresh = self
                    .db
                    .platform()
                    .api_key_for_authentication(prefix)
                    .await?;
                match fresh {
                    Some(fresh) if fresh.secret_hash == stale.secret_hash => {
                        self.remember(digest, fresh)
                    }
                    _ => {
                        self.forget_digest(&digest);
                        return Err(ApiError::unauthorized("invalid API key"));
                    }
                }
            }
            None => {
                let found = self
                    .db
                    .platform()
                    .api_key_for_authentication(prefix)
                    .await?;
                let Some(found) = found else {
                    return Err(ApiError::unauthorized("invalid API key"));
                };
                if let Some(limiter) = &self.verifications
                    && let Err(not_until) = limiter.check_key(&found.key.prefix)
                {
                    tracing::warn!(key = %found.key.id, "API key verifications limited");
                    return Err(ApiError::too_many_requests(
                        "too many attempts with this API key's prefix; wait before trying again",
                        "api_key_verifications",
                        not_until.wait_time_from(DefaultClock::default().now()),
                    ));
                }
                let secret = secret.to_owned();
                let hash = found.secret_hash.clone();
                let matches =
                    tokio::task::spawn_blocking(move || api_key::verify_secret(&secret, &hash))
                        .await
                        .map_err(ApiError::internal)?;
                if !matches {
                    return Err(ApiError::unauthorized("invalid API key"));
                }
                self.remember(digest, found)
            }
        })
    }

    async fn token(&self, jwt: &JwtVerifier, token: &str) -> Result<Principal, ApiError> {
        let verified = jwt
            .verify(token)
            .await
            .map_err(|reason| ApiError::unauthorized(format!("invalid token: {reason}")))?;
        let (user, tenant_status) = self
            .db
            .platform()
            .user_for_token(&verified.tenant, &verified.subject)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the token's user is not known here"))?;
        check_user(&user, tenant_status)?;
        // Identity providers add their own scopes (openid, profile); only ours narrow.
        let scopes = match &verified.scope {
            None => PermissionSet::all(),
            Some(scope) => scope
                .split_whitespace()
                .filter_map(|s| s.parse::<Permission>().ok())
                .collect(),
        };
        Ok(principal(&user, scopes, Credential::Token))
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<(Arc<ApiKeyCredential>, bool)> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.get(digest).map(|c| {
            (
                Arc::clone(&c.credential),
                c.checked_at.elapsed() < self.recheck,
            )
        })
    }

    fn remember(&self, digest: [u8; 32], credential: ApiKeyCredential) -> Arc<ApiKeyCredential> {
        let credential = Arc::new(credential);
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= KEY_CACHE_CAPACITY {
            keys.clear();
        }
        keys.insert(
            digest,
            CachedKey {
                credential: Arc::clone(&credential),
                checked_at: Instant::now(),
            },
        );
        credential
    }

    fn forget_digest(&self, digest: &[u8; 32]) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest);
    }

    /// Forgets a key at once (it was revoked through this server).
    pub fn forget_key(&self, id: &ApiKeyId) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, c| &c.credential.key.id != id);
    }

    /// Forgets every remembered key (a user was disabled or a tenant suspended).
    pub fn forget_all(&self) {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Records the key's use in the background; the request does not wait for the write.
    fn touch(&self, digest: &[u8; 32], id: &ApiKeyId, now: i64) {
        if let Some(cached) = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(digest)
        {
            Arc::make_mut(&mut cached.credential).key.last_used_at_ms = Some(now);
        }
        let db = self.db.clone();
        let id = id.clone();
        tokio::spawn(async move {
            if let Err(e) = db.platform().touch_api_key(&id, now).await {
                tracing::warn!(error = %e, key = %id, "recording an API key's use failed");
            }
        });
    }
}

fn check_user(user: &User, tenant_status: TenantStatus) -> Result<(), ApiError> {
    if user.status != UserStatus::Active {
        return Err(ApiError::unauthorized("this user is disabled"));
    }
    if tenant_status != TenantStatus::Active {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tenant-suspended",
            "this tenant is suspended",
        ));
    }
    Ok(())
}

fn principal(user: &User, scopes: PermissionSet, credential: Credential) -> Principal {
    Principal {
        tenant: user.tenant_id.clone(),
        user: user.id.clone(),
        roles: user.roles.clone(),
        platform_admin: user.is_platform_admin,
        permissions: PermissionSet::for_roles(&user.roles, user.is_platform_admin)
            .intersect(scopes),
        credential,
    }
}
