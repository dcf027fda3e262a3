//! Request rate limits per credential and per tenant (GCRA through `governor`), checked
//! right after authentication. `tower-governor` keys its limits on the raw request (peer
//! address, headers) before any handler runs; ours key on the authenticated principal, so
//! the `governor` limiters are used directly. Callers hold a [`RequestLimiter`]:
//! [`RateLimits`] counts in this process, [`shared::SharedRateLimits`] across replicas
//! (Redis).

pub mod shared;

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use omniforge_store::{ApiKeyId, TenantId, UserId};

use crate::config::RateLimitConfig;

/// Counts requests against the rate limits and says which one refuses.
#[async_trait]
pub trait RequestLimiter: Send + Sync + 'static {
    /// Counts one request of `credential` in `tenant`.
    async fn check(&self, tenant: &TenantId, credential: &CredentialKey) -> Result<(), Refused>;

    /// Drops state no longer needed (called periodically).
    fn shrink(&self);
}

/// Why a request may not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A rate limit is reached.
    Limited(RateLimited),
    /// The shared counters cannot be reached and the failure mode is `closed`.
    Unavailable(String),
}

/// Which limit refused a request, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// `api_key` or `tenant`.
    pub limit: &'static str,
    /// When to try again.
    pub retry_after: Duration,
}

/// Whose requests one credential limit counts: an API key's, or a token user's. Cheap to
/// clone (the ids are shared strings), so checking allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialKey {
    /// Requests made with this API key.
    ApiKey(ApiKeyId),
    /// Requests made with any token of this user.
    User(UserId),
}

/// The limiters of this server.
pub struct RateLimits {
    per_credential: Option<DefaultKeyedRateLimiter<CredentialKey>>,
    per_tenant: Option<DefaultKeyedRateLimiter<TenantId>>,
    clock: DefaultClock,
}

fn limiter<K: Hash + Eq + Clone>(rate: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl RateLimits {
    /// Limiters as configured; a zero rate turns that limit off.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            per_credential: limiter(config.per_key_per_second, config.per_key_burst),
            per_tenant: limiter(config.per_tenant_per_second, config.per_tenant_burst),
            clock: DefaultClock::default(),
        }
    }
}

impl RateLimits {
    /// Counts one request here (the shared limiter's fallback checks through this too).
    pub fn check_here(
        &self,
        tenant: &TenantId,
        credential: &CredentialKey,
    ) -> Result<(), RateLimited> {
        if let Some(limiter) = &self.per_credential
            && let Err(not_until) = limiter.check_key(credential)
        {
            return Err(RateLimited {
                limit: "api_key",
                retry_after: not_until.wait_time_from(self.clock.now()),
            });
        }
        if let Some(limiter) = &self.per_tenant
            && let Err(not_until) = limiter.check_key(tenant)
        {
            return Err(RateLimited {
                limit: "tenant",
                retry_after: not_until.wait_time_from(self.clock.now()),
            });
        }
        Ok(())
    }

    /// Drops the state of keys that are back to full capacity.
    pub fn shrink_here(&self) {
        if let Some(limiter) = &self.per_credential {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.per_tenant {
            limiter.retain_recent();
        }
    }
}

#[async_trait]
impl RequestLimiter for RateLimits {
    async fn check(&self, tenant: &TenantId, credential: &CredentialKey) -> Result<(), Refused> {
        self.check_here(tenant, credential)
            .map_err(Refused::Limited)
    }

    fn shrink(&self) {
        self.shrink_here();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> CredentialKey {
        CredentialKey::ApiKey(ApiKeyId::new(id))
    }

    #[test]
    fn a_credential_past_its_burst_waits_and_others_do_not() {
        let limits = RateLimits::new(&RateLimitConfig {
            per_key_per_second: 1,
            per_key_burst: 2,
            per_tenant_per_second: 0,
            per_tenant_burst: 0,
            ..RateLimitConfig::default()
        });
        let acme = TenantId::new("acme");
        let (a, b) = (key("key-a"), key("key-b"));
        assert!(limits.check_here(&acme, &a).is_ok());
        assert!(limits.check_here(&acme, &a).is_ok());
        let refused = limits.check_here(&acme, &a).unwrap_err();
        assert_eq!(refused.limit, "api_key");
        assert!(
            refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(1)
        );
        assert!(limits.check_here(&acme, &b).is_ok());
    }

    #[test]
    fn the_tenant_limit_counts_every_credential() {
        let limits = RateLimits::new(&RateLimitConfig {
            per_key_per_second: 0,
            per_key_burst: 0,
            per_tenant_per_second: 1,
            per_tenant_burst: 2,
            ..RateLimitConfig::default()
        });
        let acme = TenantId::new("acme");
        assert!(limits.check_here(&acme, &key("key-a")).is_ok());
        assert!(limits.check_here(&acme, &key("key-b")).is_ok());
        assert_eq!(
            limits.check_here(&acme, &key("key-c")).unwrap_err().limit,
            "tenant"
        );
        assert!(
            limits
                .check_here(&TenantId::new("globex"), &key("key-d"))
                .is_ok()
        );
    }
}
