//! Settings of the MCP endpoint (`/mcp`): how many change streams a tenant may hold open and
//! how often a held one checks that its credentials still hold.

use serde::Deserialize;

/// MCP settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// `subscriptions/listen` streams one tenant may hold open on this server at once; one
    /// more is refused. Each holds a connection and a task for as long as the client wants.
    pub listeners_per_tenant: u32,
    /// How often an open stream authenticates its request's credentials again: a revoked
    /// key, a disabled user or an expired token ends it within this.
    pub listen_recheck_ms: u64,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            listeners_per_tenant: 16,
            listen_recheck_ms: 60_000,
        }
    }
}

impl McpConfig {
    /// Adds a problem for every unusable value.
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.listeners_per_tenant == 0 {
            problems.push("mcp.listeners_per_tenant: must be positive".into());
        }
        if !(100..=3_600_000).contains(&self.listen_recheck_ms) {
            problems.push("mcp.listen_recheck_ms: must be 100 to 3600000".into());
        }
    }
}
