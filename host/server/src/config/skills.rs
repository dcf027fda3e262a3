//! The `[skills]` and `[rate_limits]` sections: packages, platform limits, the default tenant
//! policy, usage accounting, and request rates.

use std::path::PathBuf;

use omniforge_control::PlatformLimits;
use serde::Deserialize;

/// Skills: packages, platform limits, the default tenant policy, usage accounting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SkillsConfig {
    /// Largest package upload, in bytes (413 beyond it).
    pub max_package_bytes: u64,
    /// Per-invocation upper bounds no tenant policy or manifest can lift.
    pub platform_max: PlatformLimits,
    /// The policy of tenants that have none of their own.
    pub default_policy: omniforge_control::policy::TenantPolicy,
    /// Storage of the `kv` capability per (tenant, skill): every entry's key, value and 256
    /// bytes of overhead. The tenant's total over all skills is its policy's `max_kv_bytes`.
    pub kv_quota_bytes: u64,
    /// Usage counters are written to the database at least this often.
    pub usage_flush_ms: u64,
    /// Skill metadata and tenant policies cached in memory are read again after this long
    /// (changes made through this server apply at once).
    pub metadata_recheck_ms: u64,
    /// Directory of compiled components; default `<data_dir>/artifacts`. Safe to share
    /// between servers of the same version (entries are content-addressed and written
    /// atomically).
    pub artifact_cache_dir: Option<PathBuf>,
    /// Memory all running sandboxes may reserve together, MiB: each invocation reserves its
    /// memory limit before it starts, waits up to `memory_budget_wait_ms` for room, and is
    /// refused (429, `limit: memory_budget`) beyond. Default: half of the machine's (or the
    /// container's) memory.
    pub memory_budget_mb: Option<u64>,
    /// How long an invocation waits for room in the memory budget.
    pub memory_budget_wait_ms: u64,
    /// How long a publish waits for its component to compile before answering (`compiled:
    /// false` beyond), and an invocation of a component still compiling before answering 503
    /// `skill-compiling`; at most a third of `http.request_timeout_ms`.
    pub compile_wait_ms: u64,
    /// Components compiled at once (each compile may take hundreds of MB, in a child
    /// process with `compile_in_subprocess`).
    pub concurrent_compiles: usize,
    /// Publishes handled at once; more are answered 429 with `Retry-After`.
    pub concurrent_publishes: usize,
    /// Compile components and validate packages in child processes (`omniforge internal
    /// compile` and `validate`), away from the server's memory; off, on blocking threads of
    /// the server. Honoured by `omniforge serve` (the library's `Server::start` works
    /// in-process).
    pub compile_in_subprocess: bool,
    /// Long guests executing at once on the guest threads (one thread per slot, at a lower OS
    /// priority than the threads serving requests); more wait for a slot, taking turns at
    /// every fuel yield with the tenant holding the fewest slots first. Default: the cores.
    pub cpu_slots: Option<usize>,
    /// Fuel a running guest burns between yields to the executor (10,000 to 100,000,000):
    /// where its deadline is checked, its CPU slot passes on, and a long guest moves off the
    /// thread serving requests. Smaller costs CPU-bound guests more (docs/performance.md,
    /// "Noisy neighbour").
    pub fuel_yield_interval: u64,
    /// The longest chain of skills calling skills (`omniforge:skill/skills`), the top-level
    /// invocation counting as 1; a call that would go deeper is refused with `denied`.
    pub max_depth: u32,
}

/// Request rates per API key (or token user) and per tenant; 0 turns a limit off.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained requests per second of one credential.
    pub per_key_per_second: u32,
    /// Requests one credential may send at once above the sustained rate.
    pub per_key_burst: u32,
    /// Sustained requests per second of one tenant, all credentials together.
    pub per_tenant_per_second: u32,
    /// Burst of one tenant.
    pub per_tenant_burst: u32,
    /// Wrong secrets per minute for one API key prefix before further wrong secrets for it
    /// are answered 429. Only failures count: a valid key is never refused for them.
    #[serde(alias = "key_verifications_per_minute")]
    pub failed_key_verifications_per_minute: u32,
    /// Failed authentications per minute from one client address (an IPv6 /64) before
    /// further failures from it are answered 429; valid credentials are never refused.
    pub failed_auth_per_minute: u32,
}

impl Default for SkillsConfig {
    fn default() -> Self {
        Self {
            max_package_bytes: 64 << 20,
            platform_max: PlatformLimits::default(),
            default_policy: omniforge_control::policy::TenantPolicy::default(),
            kv_quota_bytes: 16 << 20,
            usage_flush_ms: 1_000,
            metadata_recheck_ms: 2_000,
            artifact_cache_dir: None,
            memory_budget_mb: None,
            compile_wait_ms: 10_000,
            concurrent_compiles: 2,
            concurrent_publishes: 2,
            memory_budget_wait_ms: 1_000,
            compile_in_subprocess: true,
            max_depth: 8,
            cpu_slots: None,
            fuel_yield_interval: 1_000_000,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_key_per_second: 1_000,
            per_key_burst: 2_000,
            per_tenant_per_second: 5_000,
            per_tenant_burst: 10_000,
            failed_key_verifications_per_minute: 10,
            failed_auth_per_minute: 60,
        }
    }
}

impl SkillsConfig {
    /// Adds a problem for every unusable value.
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if !(1..=1 << 32).contains(&self.max_package_bytes) {
            problems.push("skills.max_package_bytes: must be between 1 and 4294967296".into());
        }
        if self.usage_flush_ms == 0 || self.usage_flush_ms > 1_000 {
            problems.push(
                "skills.usage_flush_ms: must be 1 to 1000 (a crash loses at most that much usage)"
                    .into(),
            );
        }
        let max = &self.platform_max;
        if max.fuel == 0 || max.memory_mb == 0 || max.timeout_ms == 0 || max.output_bytes == 0 {
            problems.push("skills.platform_max: every limit must be positive".into());
        }
        // The same ceilings as a tenant policy's: a platform maximum above them could never
        // be used.
        type M = omniforge_control::policy::PolicyMaxima;
        if max.fuel > M::FUEL || max.memory_mb > M::MEMORY_MB || max.timeout_ms > M::TIMEOUT_MS {
            problems.push(format!(
                "skills.platform_max: fuel at most {}, memory_mb at most {}, timeout_ms at most {}",
                M::FUEL,
                M::MEMORY_MB,
                M::TIMEOUT_MS
            ));
        }
        if max.output_bytes > 1 << 30 {
            problems.push("skills.platform_max.output_bytes: at most 1073741824".into());
        }
        if self.concurrent_compiles == 0 || self.concurrent_publishes == 0 {
            problems.push(
                "skills.concurrent_compiles, skills.concurrent_publishes: must be positive".into(),
            );
        }
        if self.cpu_slots == Some(0) {
            problems.push("skills.cpu_slots: must be positive".into());
        }
        if !(10_000..=100_000_000).contains(&self.fuel_yield_interval) {
            problems.push("skills.fuel_yield_interval: must be 10000 to 100000000".into());
        }
        if !(1..=64).contains(&self.max_depth) {
            problems.push("skills.max_depth: must be 1 to 64".into());
        }
        if self.memory_budget_mb == Some(0) {
            problems.push("skills.memory_budget_mb: must be positive".into());
        }
        if let Err(e) = self.default_policy.check() {
            problems.push(format!("skills.default_policy: {e}"));
        }
    }
}
