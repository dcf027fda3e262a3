//! Per-tenant concurrency limit: how many invocations of one tenant may run at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::invocation::TenantId;

/// Counts running invocations per tenant. The limit comes with each request (tenant
/// policies change at run time), so this is a counter, not a fixed-size semaphore.
#[derive(Debug, Default)]
pub(crate) struct TenantConcurrency {
    running: Mutex<HashMap<TenantId, u32>>,
}

impl TenantConcurrency {
    /// A permit if the tenant runs fewer than `limit` invocations; `None` if it is at it.
    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        tenant: &TenantId,
        limit: u32,
    ) -> Option<ConcurrencyPermit> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let count = running.entry(tenant.clone()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ConcurrencyPermit {
            owner: Arc::clone(self),
            tenant: tenant.clone(),
        })
    }

    #[cfg(test)]
    fn running(&self, tenant: &TenantId) -> u32 {
        self.running
            .lock()
            .unwrap()
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }
}

/// One running invocation of a tenant; released on drop.
pub(crate) struct ConcurrencyPermit {
    owner: Arc<TenantConcurrency>,
    tenant: TenantId,
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        let mut running = self.owner.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = running.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_limited_per_tenant_and_released_on_drop() {
        let limiter = Arc::new(TenantConcurrency::default());
        let a = TenantId::new("a");
        let b = TenantId::new("b");
        let first = limiter.try_acquire(&a, 2).unwrap();
        let _second = limiter.try_acquire(&a, 2).unwrap();
        assert!(limiter.try_acquire(&a, 2).is_none());
        assert!(
            limiter.try_acquire(&b, 2).is_some(),
            "another tenant is unaffected"
        );
        drop(first);
        assert!(limiter.try_acquire(&a, 2).is_some());
        assert_eq!(
            limiter.running(&b),
            0,
            "released permits leave no entry behind"
        );
    }
}
