//! Tenant policies: per-invocation limits and per-period quotas of one tenant, and the
//! in-memory cache the invoke path reads them from.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omniforge_registry::{HostPattern, RequestedLimits};
use omniforge_runtime::InvocationLimits;
use omniforge_store::{Database, StoreError, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::PlatformLimits;

/// How long a quota period lasts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    #[default]
    Month,
}

/// One tenant's limits and quotas. Every invocation runs with the minimum of the skill's
/// manifest, this policy and the platform maximum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TenantPolicy {
    /// Fuel units per invocation.
    pub max_fuel: u64,
    /// Memory per invocation, MiB.
    pub max_memory_mb: u64,
    /// Wall time per invocation, ms.
    pub max_timeout_ms: u64,
    /// Invocations of the tenant running at once (per server).
    pub max_concurrency: u32,
    /// The quota period.
    pub quota_period: QuotaPeriod,
    /// Invocations per period; none = unlimited.
    pub max_invocations: Option<u64>,
    /// Fuel per period, all invocations together; none = unlimited.
    pub max_total_fuel: Option<u64>,
    /// Outbound HTTP destinations skills may reach on this tenant's behalf: a destination a
    /// skill declares is allowed only if it also matches one of these. None = whatever
    /// the skill declares.
    #[schema(value_type = Option<Vec<String>>)]
    pub http_allow: Option<Vec<HostPattern>>,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        Self {
            max_fuel: 10_000_000_000,
            max_memory_mb: 256,
            max_timeout_ms: 30_000,
            max_concurrency: 64,
            quota_period: QuotaPeriod::Month,
            max_invocations: None,
            max_total_fuel: None,
            http_allow: None,
        }
    }
}

impl TenantPolicy {
    /// Checks the values are usable.
    pub fn check(&self) -> Result<(), String> {
        if self.max_fuel == 0 || self.max_memory_mb == 0 || self.max_timeout_ms == 0 {
            return Err("max_fuel, max_memory_mb and max_timeout_ms must be positive".into());
        }
        if self.max_concurrency == 0 {
            return Err("max_concurrency must be positive".into());
        }
        Ok(())
    }

    /// The limits of one invocation: min(manifest request, this policy, platform maximum).
    pub fn limits(
        &self,
        requested: &RequestedLimits,
        platform: &PlatformLimits,
    ) -> InvocationLimits {
        let min3 = |asked: Option<u64>, policy: u64, max: u64| {
            asked.unwrap_or(u64::MAX).min(policy).min(max)
        };
        InvocationLimits {
            fuel: Some(min3(requested.fuel, self.max_fuel, platform.fuel)),
            memory_bytes: min3(requested.memory_mb, self.max_memory_mb, platform.memory_mb)
                .saturating_mul(1 << 20),
            timeout: Duration::from_millis(min3(
                requested.timeout_ms,
                self.max_timeout_ms,
                platform.timeout_ms,
            )),
            output_bytes: platform.output_bytes,
            tenant_concurrency: self.max_concurrency,
            ..InvocationLimits::platform_default()
        }
    }
}

/// Tenant policies cached in memory; a policy set through this server applies at once, one
/// set elsewhere within the recheck interval.
pub struct Policies {
    db: Database,
    default: Arc<TenantPolicy>,
    recheck: Duration,
    cache: Mutex<HashMap<TenantId, (Instant, Arc<TenantPolicy>)>>,
    /// Bumped by [`Policies::forget`]; a read that raced a change is not cached.
    generation: AtomicU64,
}

impl Policies {
    /// Policies over `db`, with `default` for tenants without one.
    pub fn new(db: Database, default: TenantPolicy, recheck: Duration) -> Self {
        Self {
            db,
            default: Arc::new(default),
            recheck,
            cache: Mutex::default(),
            generation: AtomicU64::new(0),
        }
    }

    /// The policy of `tenant`.
    pub async fn get(&self, tenant: &TenantId) -> Result<Arc<TenantPolicy>, StoreError> {
        if let Some((at, policy)) = self.lock().get(tenant)
            && at.elapsed() < self.recheck
        {
            return Ok(Arc::clone(policy));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        // Boxed: the rare path, kept out of every invocation's future.
        let stored = Box::pin(self.db.tenant(tenant).policy()).await?;
        let policy = match stored {
            None => Arc::clone(&self.default),
            Some(text) => Arc::new(
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("policy of tenant {tenant}: {e}")))?,
            ),
        };
        let mut cache = self.lock();
        if self.generation.load(Ordering::SeqCst) == generation {
            cache.insert(tenant.clone(), (Instant::now(), Arc::clone(&policy)));
        }
        Ok(policy)
    }

    /// Forgets the cached policy of `tenant` (after it was changed).
    pub fn forget(&self, tenant: &TenantId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().remove(tenant);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Instant, Arc<TenantPolicy>)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_the_minimum_of_manifest_policy_and_platform() {
        let policy = TenantPolicy {
            max_fuel: 1_000,
            max_memory_mb: 64,
            max_timeout_ms: 5_000,
            ..TenantPolicy::default()
        };
        let platform = PlatformLimits {
            fuel: 10_000,
            memory_mb: 32,
            timeout_ms: 60_000,
            output_bytes: 1024,
        };
        let asked = RequestedLimits {
            fuel: Some(500),
            memory_mb: None,
            timeout_ms: Some(10_000),
        };
        let limits = policy.limits(&asked, &platform);
        assert_eq!(limits.fuel, Some(500));
        assert_eq!(limits.memory_bytes, 32 << 20);
        assert_eq!(limits.timeout, Duration::from_millis(5_000));
        assert_eq!(limits.output_bytes, 1024);
        assert_eq!(limits.tenant_concurrency, policy.max_concurrency);
    }
}
