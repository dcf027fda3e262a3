//! Who is calling: API keys and JWT bearer tokens turned into a [`Principal`] with the
//! permissions its roles grant, narrowed by the credential's scopes.
//!
//! Failure policy: every failed authentication counts against the client's address
//! ([`failures`]); a wrong secret also counts against the key prefix it named. Successes
//! never count, so a valid credential is not refused because others failed: refusals before
//! any verification happen only when both the address and the prefix have used up their
//! failures. Argon2 work is bounded host-wide by a small semaphore, so floods of
//! verifications queue there instead of taking every core.

pub mod api_key;
pub mod client;
pub mod failures;
pub mod jwt;
pub mod key_cache;
mod principal;
pub mod rbac;

pub use principal::{Credential, Principal};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use omniforge_store::{
    ApiKeyCredential, ApiKeyId, Database, TenantStatus, User, UserStatus, now_ms,
};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use failures::{FailureLimiter, address_key};
use jwt::JwtVerifier;
use key_cache::{KeyCache, KeyDigest, Remembered};
use rbac::{Permission, PermissionSet};

/// `last_used_at` is written at most this often per key.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// The authenticator's settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// How long a verified key is trusted from memory before its record is read again.
    pub recheck: Duration,
    /// Most verified keys remembered.
    pub key_cache_capacity: usize,
    /// Wrong secrets per key prefix per minute before that prefix's failures are refused
    /// (0: unlimited).
    pub failed_verifications_per_minute: u32,
    /// Failed authentications per client address per minute (0: unlimited).
    pub failed_auth_per_minute: u32,
    /// Argon2 verifications running at once, host-wide.
    pub concurrent_verifications: u32,
    /// How long a verification waits for its turn before the request is answered 503.
    pub verification_wait: Duration,
}

/// Why an attempt failed, and whether the failure counts against the client's address.
struct Failed {
    error: ApiError,
    counts: bool,
}

impl Failed {
    /// A failed authentication: counted.
    fn auth(detail: impl Into<String>) -> Self {
        Self {
            error: ApiError::unauthorized(detail),
            counts: true,
        }
    }
}

impl From<ApiError> for Failed {
    /// Anything else (the store failed, the tenant is suspended): not the client's failure.
    fn from(error: ApiError) -> Self {
        Self {
            error,
            counts: false,
        }
    }
}

impl From<omniforge_store::StoreError> for Failed {
    fn from(error: omniforge_store::StoreError) -> Self {
        ApiError::from(error).into()
    }
}

/// Turns the `Authorization` header into a [`Principal`].
pub struct Authenticator {
    db: Database,
    jwt: Option<JwtVerifier>,
    keys: Arc<KeyCache>,
    /// Wrong secrets per key prefix. Keyed only by prefixes of stored keys (unknown ones fail
    /// before any verification), so made-up prefixes cannot grow it.
    failed_verifications: Option<FailureLimiter<String>>,
    /// Failed authentications per client address.
    failed_auth: Option<FailureLimiter<IpAddr>>,
    /// Argon2 verifications at once (each ~20 ms of a core).
    verifying: Arc<Semaphore>,
    verification_wait: Duration,
}

impl Authenticator {
    /// An authenticator over `db`.
    pub fn new(db: Database, jwt: Option<JwtVerifier>, settings: &AuthSettings) -> Self {
        Self {
            db,
            jwt,
            keys: Arc::new(KeyCache::new(settings.key_cache_capacity, settings.recheck)),
            failed_verifications: FailureLimiter::per_minute(
                settings.failed_verifications_per_minute,
            ),
            failed_auth: FailureLimiter::per_minute(settings.failed_auth_per_minute),
            verifying: Arc::new(Semaphore::new(
                settings.concurrent_verifications.max(1) as usize
            )),
            verification_wait: settings.verification_wait,
        }
    }

    /// The cache of verified keys, which forgets what a published
    /// [`Change`](omniforge_control::Change) concerns.
    pub fn keys(&self) -> &Arc<KeyCache> {
        &self.keys
    }

    /// Forgets failure counts that are all forgiven (called periodically).
    pub fn shrink(&self) {
        if let Some(limiter) = &self.failed_verifications {
            limiter.shrink();
        }
        if let Some(limiter) = &self.failed_auth {
            limiter.shrink();
        }
    }

    /// Authenticates a request from `client`. Missing, malformed, unknown, wrong, revoked and
    /// expired credentials answer 401, or 429 once the client has failed too often; a
    /// suspended tenant answers 403.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Result<Principal, ApiError> {
        let client = client.map(address_key);
        let failed = match self.attempt(headers, client).await {
            Ok(principal) => return Ok(principal),
            Err(failed) => failed,
        };
        if failed.counts
            && let (Some(limiter), Some(client)) = (&self.failed_auth, client)
            && let Err(wait) = limiter.record(&client)
        {
            tracing::warn!(%client, "failed authentications limited");
            return Err(too_many_failures(wait));
        }
        Err(failed.error)
    }

    async fn attempt(
        &self,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Result<Principal, Failed> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| Failed::auth("send an API key or token: Authorization: Bearer …"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Failed::auth("malformed Authorization header: expected Bearer …"))?;
        if token.starts_with(api_key::KEY_PREFIX) {
            return self.api_key(token, client).await;
        }
        match &self.jwt {
            Some(jwt) => self.token(jwt, token).await,
            None => Err(Failed::auth("not an OmniForge API key")),
        }
    }

    async fn api_key(&self, token: &str, client: Option<IpAddr>) -> Result<Principal, Failed> {
        let (prefix, secret) =
            api_key::parse(token).ok_or_else(|| Failed::auth("malformed API key"))?;
        let digest: KeyDigest = Sha256::digest(token.as_bytes()).into();
        let credential = match self.keys.get(&digest) {
            Some(Remembered {
                credential,
                fresh: true,
            }) => credential,
            // Boxed: the rare path, kept out of every request's future.
            remembered => {
                Box::pin(self.api_key_from_db(prefix, secret, digest, remembered, client)).await?
            }
        };
        let key = &credential.key;
        let now = now_ms();
        if key.revoked_at_ms.is_some() {
            return Err(Failed::auth("this API key was revoked"));
        }
        if key.expires_at_ms.is_some_and(|at| at <= now) {
            return Err(Failed::auth("this API key has expired"));
        }
        check_user(&credential.user, credential.tenant_status)?;
        if key
            .last_used_at_ms
            .is_none_or(|at| now - at >= TOUCH_INTERVAL_MS)
        {
            self.touch(&digest, &key.id, now);
        }
        let scopes = PermissionSet::from_scopes(&key.scopes).unwrap_or_default();
        let minted_by = key
            .created_by
            .clone()
            .filter(|creator| *creator != key.user_id);
        Ok(principal(
            &credential.user,
            scopes,
            key.scopes.iter().any(|s| s == "*"),
            Credential::ApiKey {
                id: key.id.clone(),
                minted_by,
            },
        ))
    }

    /// The credential of a key not remembered, or remembered too long ago, from the database.
    async fn api_key_from_db(
        &self,
        prefix: &str,
        secret: &str,
        digest: KeyDigest,
        remembered: Option<Remembered>,
        client: Option<IpAddr>,
    ) -> Result<Arc<ApiKeyCredential>, Failed> {
        let found = self
            .db
            .platform()
            .api_key_for_authentication(prefix)
            .await?;
        if let Some(stale) = remembered {
            // The presented key already matched this hash: re-reading the record (cheap,
            // indexed) is enough, no argon2.
            return match found {
                Some(fresh) if fresh.secret_hash == stale.credential.secret_hash => {
                    Ok(self.keys.put(digest, fresh))
                }
                _ => {
                    self.keys.forget_digest(&digest);
                    Err(Failed::auth("invalid API key"))
                }
            };
        }
        let Some(found) = found else {
            return Err(Failed::auth("invalid API key"));
        };
        let prefix = found.key.prefix.clone();
        // A client that keeps failing on a prefix that keeps failing is refused before any
        // verification. Either alone is not enough: a valid key must keep working from
        // another address while its prefix is flooded, and from its own address when others
        // there fail on other prefixes.
        if let (Some(by_address), Some(by_prefix), Some(client)) =
            (&self.failed_auth, &self.failed_verifications, client)
            && by_address.limited(&client).is_some()
            && let Some(wait) = by_prefix.limited(&prefix)
        {
            return Err(too_many_failures(wait).into());
        }
        if !self.verify(secret, &found.secret_hash).await? {
            if let Some(limiter) = &self.failed_verifications
                && let Err(wait) = limiter.record(&prefix)
            {
                tracing::warn!(key = %found.key.id, "wrong secrets for this API key limited");
                return Err(Failed {
                    error: ApiError::too_many_requests(
                        "too many wrong secrets for this API key's prefix; wait before trying \
                         again",
                        "api_key_verifications",
                        wait,
                    ),
                    counts: true,
                });
            }
            return Err(Failed::auth("invalid API key"));
        }
        Ok(self.keys.put(digest, found))
    }

    /// Runs argon2 on a blocking thread once one of the few verification slots is free.
    async fn verify(&self, secret: &str, hash: &str) -> Result<bool, ApiError> {
        let slot = tokio::time::timeout(
            self.verification_wait,
            Arc::clone(&self.verifying).acquire_owned(),
        )
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many API keys are being verified at once; try again",
            )
            .with_retry_after(Duration::from_secs(1))
        })?
        .map_err(ApiError::internal)?;
        let (secret, hash) = (secret.to_owned(), hash.to_owned());
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            api_key::verify_secret(&secret, &hash)
        })
        .await
        .map_err(ApiError::internal)
    }

    async fn token(&self, jwt: &JwtVerifier, token: &str) -> Result<Principal, Failed> {
        let verified = jwt
            .verify(token)
            .await
            .map_err(|reason| Failed::auth(format!("invalid token: {reason}")))?;
        let (user, tenant_status) = self
            .db
            .platform()
            .user_for_token(&verified.tenant, &verified.subject)
            .await?
            .ok_or_else(|| Failed::auth("the token's user is not known here"))?;
        check_user(&user, tenant_status)?;
        // Identity providers add their own scopes (openid, profile); only ours narrow.
        let (scopes, unscoped) = match &verified.scope {
            None => (PermissionSet::all(), true),
            Some(scope) => (
                scope
                    .split_whitespace()
                    .filter_map(|s| s.parse::<Permission>().ok())
                    .collect(),
                false,
            ),
        };
        Ok(principal(&user, scopes, unscoped, Credential::Token))
    }

    /// Records the key's use in the background; the request does not wait for the write.
    fn touch(&self, digest: &KeyDigest, id: &ApiKeyId, now: i64) {
        self.keys.touch(digest, now);
        let db = self.db.clone();
        let id = id.clone();
        tokio::spawn(async move {
            if let Err(e) = db.platform().touch_api_key(&id, now).await {
                tracing::warn!(error = %e, key = %id, "recording an API key's use failed");
            }
        });
    }
}

fn too_many_failures(wait: Duration) -> ApiError {
    ApiError::too_many_requests(
        "too many failed authentications from this address; wait before trying again",
        "failed_authentications",
        wait,
    )
}

fn check_user(user: &User, tenant_status: TenantStatus) -> Result<(), Failed> {
    if user.status != UserStatus::Active {
        return Err(Failed::auth("this user is disabled"));
    }
    if tenant_status != TenantStatus::Active {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tenant-suspended",
            "this tenant is suspended",
        )
        .into());
    }
    Ok(())
}

fn principal(
    user: &User,
    scopes: PermissionSet,
    unscoped: bool,
    credential: Credential,
) -> Principal {
    Principal {
        tenant: user.tenant_id.clone(),
        user: user.id.clone(),
        permissions: PermissionSet::of_user(user).intersect(scopes),
        unscoped,
        credential,
    }
}
