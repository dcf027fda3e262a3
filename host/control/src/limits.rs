//! The one mapping from a manifest, a tenant policy and the platform maximum to what an
//! invocation may use and reach: `omniforge serve`, `omniforge run` and `omniforge skill
//! test` all call these, so a skill behaves the same under each.

use std::time::Duration;

use omniforge_registry::{HostPattern, Permissions};
use omniforge_runtime::capabilities::HttpPolicy;
use omniforge_runtime::{Grants, InvocationLimits};
use serde::Deserialize;

use omniforge_registry::RequestedLimits;

use crate::policy::{PolicyMaxima, TenantPolicy};

/// Per-invocation upper bounds of the platform: the runtime enforces exactly these (no other
/// built-in maximum applies), whatever a policy or manifest asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformLimits {
    /// Fuel units.
    pub fuel: u64,
    /// Memory over all linear memories, MiB.
    pub memory_mb: u64,
    /// Wall time, ms.
    pub timeout_ms: u64,
    /// Output, bytes.
    pub output_bytes: u64,
}

impl Default for PlatformLimits {
    fn default() -> Self {
        Self {
            fuel: 100_000_000_000,
            memory_mb: 512,
            timeout_ms: 60_000,
            output_bytes: 16 << 20,
        }
    }
}

impl PlatformLimits {
    /// The runtime's upper bound of every invocation: exactly this maximum (an operator's
    /// raised maximum is the one in force; the runtime's built-in default would clamp it
    /// silently). Concurrency per tenant is bounded by the policies' own maximum.
    pub fn runtime_limits(&self) -> InvocationLimits {
        InvocationLimits {
            fuel: Some(self.fuel),
            memory_bytes: self.memory_mb << 20,
            timeout: Duration::from_millis(self.timeout_ms),
            output_bytes: self.output_bytes,
            tenant_concurrency: PolicyMaxima::CONCURRENCY,
            ..InvocationLimits::platform_default()
        }
    }
}

/// What a manifest's permissions grant one invocation: the key-value store, the HTTP
/// destinations it declares (narrowed to the tenant's allow list when its policy has one),
/// the tenant secrets it names, and the skills it may call with their version requirements.
pub fn grants(permissions: &Permissions, tenant_http_allow: Option<&[HostPattern]>) -> Grants {
    Grants {
        kv: permissions.kv,
        http: HttpPolicy {
            allowed: permissions.http.clone(),
            tenant_allowed: tenant_http_allow.map(<[HostPattern]>::to_vec),
            ..HttpPolicy::default()
        },
        secrets: permissions
            .secrets
            .iter()
            .map(|name| name.as_str().to_owned())
            .collect(),
        skills: permissions.skills.clone(),
    }
}

/// What a skill runs with outside a server (`omniforge run`, `omniforge skill test`): the
/// limits a fresh server gives it, under the default tenant policy and platform maximum.
pub fn default_limits(requested: &RequestedLimits) -> InvocationLimits {
    TenantPolicy::default().limits(requested, &PlatformLimits::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_grants_what_it_declares_within_the_tenants_allow_list() {
        let permissions: Permissions = toml::from_str(
            "kv = true\nhttp = [\"api.example.com\"]\nsecrets = [\"api-token\"]\n\
             skills = { \"acme/text-stats\" = \"^1.2\" }",
        )
        .unwrap();
        let open = grants(&permissions, None);
        assert!(open.kv);
        assert_eq!(open.http.allowed, permissions.http);
        assert_eq!(open.http.tenant_allowed, None);
        assert_eq!(open.secrets.into_iter().collect::<Vec<_>>(), ["api-token"]);
        assert_eq!(
            open.skills.into_iter().collect::<Vec<_>>(),
            [("acme/text-stats".parse().unwrap(), "^1.2".parse().unwrap())]
        );
        assert!(!open.http.allow_private_networks);
        let narrowed = grants(&permissions, Some(&[]));
        assert_eq!(narrowed.http.tenant_allowed, Some(Vec::new()));
        assert_eq!(grants(&Permissions::default(), None), Grants::default());
    }

    #[test]
    fn outside_a_server_a_skill_gets_what_a_fresh_server_gives_it() {
        let policy = TenantPolicy::default();
        let unasked = default_limits(&RequestedLimits::default());
        assert_eq!(unasked.fuel, Some(policy.max_fuel));
        assert_eq!(unasked.memory_bytes, policy.max_memory_mb << 20);
        assert_eq!(
            unasked.timeout,
            Duration::from_millis(policy.max_timeout_ms)
        );
        let modest = RequestedLimits {
            fuel: Some(1_000),
            memory_mb: Some(16),
            timeout_ms: Some(u64::MAX),
        };
        let limits = default_limits(&modest);
        assert_eq!(limits.fuel, Some(1_000));
        assert_eq!(limits.memory_bytes, 16 << 20);
        assert_eq!(limits.timeout, Duration::from_millis(policy.max_timeout_ms));
    }

    #[test]
    fn the_runtime_enforces_the_configured_maximum() {
        let max = PlatformLimits {
            memory_mb: 2048,
            timeout_ms: 120_000,
            ..PlatformLimits::default()
        };
        let limits = max.runtime_limits();
        assert_eq!(limits.memory_bytes, 2048 << 20);
        assert_eq!(limits.timeout, Duration::from_secs(120));
        assert_eq!(limits.fuel, Some(max.fuel));
        assert_eq!(limits.tenant_concurrency, PolicyMaxima::CONCURRENCY);
    }
}
