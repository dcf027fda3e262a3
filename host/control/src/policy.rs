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

use crate::integers::{integer, optional_integer};
use crate::limits::PlatformLimits;

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
/// manifest, this policy and the platform maximum. Every field has a documented maximum
/// ([`PolicyMaxima`], docs/skills-api.md); a value above it is refused, not clamped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TenantPolicy {
    /// Fuel units per invocation.
    #[schema(minimum = 1, maximum = 10_000_000_000_000_u64)]
    #[serde(deserialize_with = "integer")]
    pub max_fuel: u64,
    /// Memory per invocation, MiB.
    #[schema(minimum = 1, maximum = 16_384)]
    #[serde(deserialize_with = "integer")]
    pub max_memory_mb: u64,
    /// Wall time per invocation, ms.
    #[schema(minimum = 1, maximum = 3_600_000)]
    #[serde(deserialize_with = "integer")]
    pub max_timeout_ms: u64,
    /// Invocations of the tenant running at once (per server).
    #[schema(minimum = 1, maximum = 1_024)]
    #[serde(deserialize_with = "integer")]
    pub max_concurrency: u32,
    /// The quota period.
    pub quota_period: QuotaPeriod,
    /// Invocations per period; none = unlimited.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_u64)]
    #[serde(deserialize_with = "optional_integer")]
    pub max_invocations: Option<u64>,
    /// Fuel per period, all invocations together; none = unlimited.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_000_u64)]
    #[serde(deserialize_with = "optional_integer")]
    pub max_total_fuel: Option<u64>,
    /// Bytes all of the tenant's skills may keep in `kv` together, each entry charged its
    /// key, its value and 256 bytes of overhead.
    #[schema(minimum = 0, maximum = 1_099_511_627_776_u64)]
    #[serde(deserialize_with = "integer")]
    pub max_kv_bytes: u64,
    /// Outbound HTTP destinations skills may reach on this tenant's behalf: a destination a
    /// skill declares is allowed only if it also matches one of these. None = whatever
    /// the skill declares.
    #[schema(value_type = Option<Vec<HostPatternText>>, max_items = 100)]
    #[serde(serialize_with = "compact_hosts")]
    pub http_allow: Option<Vec<HostPattern>>,
    /// Tasks the tenant may have queued at once; a submission beyond it answers 429.
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "integer")]
    pub max_queued_tasks: u64,
    /// Tasks of the tenant running at once, on all replicas together; the others wait in
    /// the queue.
    #[schema(minimum = 1, maximum = 1_024)]
    #[serde(deserialize_with = "integer")]
    pub max_running_tasks: u32,
}

/// The text of an outbound HTTP destination, `[scheme://]host[:port]`, as the API states it:
/// [`HOST_PATTERN`] within 1 to 253 characters. (The parser, `HostPattern`, is the rule; the
/// pattern says the same for clients.)
pub struct HostPatternText;

/// The regular expression of a destination's text.
pub const HOST_PATTERN: &str = "^((https?|\\*)://)?(\\*|(\\*\\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\\.?)(:(\\*|[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?/?$";

/// The most characters of a destination's text.
pub const HOST_MAX_CHARS: usize = 253;

impl utoipa::PartialSchema for HostPatternText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(HOST_PATTERN))
            .min_length(Some(1))
            .max_length(Some(HOST_MAX_CHARS))
            .into()
    }
}

impl ToSchema for HostPatternText {}

/// Writes host patterns in their shortest form, so an answer never holds a longer entry than
/// the request did (the document bounds their length).
fn compact_hosts<S: serde::Serializer>(
    hosts: &Option<Vec<HostPattern>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::Serialize as _;
    hosts
        .as_ref()
        .map(|hosts| hosts.iter().map(HostPattern::compact).collect::<Vec<_>>())
        .serialize(serializer)
}

/// The largest value each policy field accepts.
pub struct PolicyMaxima;

impl PolicyMaxima {
    /// `max_fuel`: 10^13 (over half an hour of a core's tightest loop).
    pub const FUEL: u64 = 10_000_000_000_000;
    /// `max_memory_mb`: 16 GiB.
    pub const MEMORY_MB: u64 = 16_384;
    /// `max_timeout_ms`: one hour.
    pub const TIMEOUT_MS: u64 = 3_600_000;
    /// `max_concurrency`.
    pub const CONCURRENCY: u32 = 1_024;
    /// `max_invocations`: 10^12 a period.
    pub const INVOCATIONS: u64 = 1_000_000_000_000;
    /// `max_total_fuel`: 10^18 a period (fits the usage counters' signed 64 bits).
    pub const TOTAL_FUEL: u64 = 1_000_000_000_000_000_000;
    /// `max_kv_bytes`: 1 TiB.
    pub const KV_BYTES: u64 = 1 << 40;
    /// Entries of `http_allow`.
    pub const HTTP_ALLOW: usize = 100;
    /// `max_queued_tasks`.
    pub const QUEUED_TASKS: u64 = 1_000_000;
    /// `max_running_tasks`.
    pub const RUNNING_TASKS: u32 = 1_024;
}

impl Default for TenantPolicy {
    fn default() -> Self {
        Self {
            max_fuel: 10_000_000_000,
            max_memory_mb: 256,
            max_timeout_ms: 30_000,
            max_concurrency: 16,
            quota_period: QuotaPeriod::Month,
            max_invocations: None,
            max_total_fuel: None,
            max_kv_bytes: 64 << 20,
            http_allow: None,
            max_queued_tasks: 10_000,
            max_running_tasks: 8,
        }
    }
}

impl TenantPolicy {
    /// Checks every value is within its bounds; the error names the field.
    pub fn check(&self) -> Result<(), PolicyError> {
        fn within(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), PolicyError> {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(PolicyError {
                    field,
                    message: format!("{field}: {value} is not between {min} and {max}"),
                })
            }
        }
        type M = PolicyMaxima;
        within("max_fuel", self.max_fuel, 1, M::FUEL)?;
        within("max_memory_mb", self.max_memory_mb, 1, M::MEMORY_MB)?;
        within("max_timeout_ms", self.max_timeout_ms, 1, M::TIMEOUT_MS)?;
        within(
            "max_concurrency",
            u64::from(self.max_concurrency),
            1,
            u64::from(M::CONCURRENCY),
        )?;
        if let Some(n) = self.max_invocations {
            within("max_invocations", n, 0, M::INVOCATIONS)?;
        }
        if let Some(n) = self.max_total_fuel {
            within("max_total_fuel", n, 0, M::TOTAL_FUEL)?;
        }
        within("max_kv_bytes", self.max_kv_bytes, 0, M::KV_BYTES)?;
        within(
            "max_queued_tasks",
            self.max_queued_tasks,
            1,
            M::QUEUED_TASKS,
        )?;
        within(
            "max_running_tasks",
            u64::from(self.max_running_tasks),
            1,
            u64::from(M::RUNNING_TASKS),
        )?;
        if let Some(hosts) = &self.http_allow
            && hosts.len() > M::HTTP_ALLOW
        {
            return Err(PolicyError {
                field: "http_allow",
                message: format!("http_allow: at most {} entries", M::HTTP_ALLOW),
            });
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

/// A policy value out of its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The field.
    pub field: &'static str,
    /// What is wrong, naming the bounds.
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
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

    /// Forgets every cached policy (changes may have been missed).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
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
