//! Long-lived streams each tenant may hold open on this server (MCP change streams, task
//! event streams): each holds a connection and a task for as long as its client wants, so
//! one tenant must not be able to open them without bound ([`StreamSlots`]), nor keep one
//! open after its credentials stopped holding ([`still_allowed`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use omniforge_store::TenantId;

use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::router::principal_of;

/// Open streams of one kind, counted per tenant.
pub struct StreamSlots {
    open: Mutex<HashMap<TenantId, u32>>,
    per_tenant: u32,
}

/// One open stream, counted until it drops.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    tenant: TenantId,
}

impl StreamSlots {
    /// Room for `per_tenant` streams of each tenant.
    pub fn new(per_tenant: u32) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(HashMap::new()),
            per_tenant,
        })
    }

    /// How many streams a tenant may hold.
    pub fn per_tenant(&self) -> u32 {
        self.per_tenant
    }

    /// A slot for one more stream of `tenant`, unless it holds as many as it may.
    pub fn admit(self: &Arc<Self>, tenant: &TenantId) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(tenant.clone()).or_insert(0);
        if *count >= self.per_tenant {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: Arc::clone(self),
            tenant: tenant.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

/// Whether the credentials a stream was opened with (its request's `headers`, sent from
/// `peer`) still give `tenant` the `permission` the stream needs: a revoked key, a disabled
/// user, an expired token or a lost permission say no. A failure of the server itself (the
/// database unreachable for a moment) says yes: the next check decides.
pub async fn still_allowed(
    app: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    tenant: &TenantId,
    permission: Permission,
) -> bool {
    match principal_of(app, headers, peer).await {
        Ok(principal) => principal.tenant == *tenant && principal.can(permission),
        Err(error) if error.status().is_server_error() => {
            tracing::warn!(error = %error.message(), "cannot check a stream's credentials now");
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_holds_at_most_its_number_of_streams_and_a_closed_one_frees_its_place() {
        let slots = StreamSlots::new(2);
        let (acme, other) = (TenantId::new("ten_acme"), TenantId::new("ten_other"));
        let first = slots.admit(&acme).expect("one");
        let _second = slots.admit(&acme).expect("two");
        assert!(slots.admit(&acme).is_none(), "a third is refused");
        assert!(slots.admit(&other).is_some(), "other tenants count apart");
        drop(first);
        assert!(
            slots.admit(&acme).is_some(),
            "a closed stream frees its place"
        );
    }
}
