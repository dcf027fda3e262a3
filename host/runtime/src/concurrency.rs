//! What may run at once: invocations per tenant, and the host-wide memory budget of running
//! sandboxes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// Memory reserved by running invocations, host-wide. Each invocation reserves its whole
/// memory limit before its sandbox is created and returns it when it ends, so the sandboxes
/// running at once can never together need more than the budget, whichever tenants they
/// belong to. Reserved in MiB (rounded up).
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    free_mb: Arc<Semaphore>,
    total_mb: u32,
    wait: Duration,
}

impl MemoryBudget {
    /// A budget of `bytes`, where an invocation waits at most `wait` for room.
    pub(crate) fn new(bytes: u64, wait: Duration) -> Self {
        let total_mb = u32::try_from(bytes >> 20).unwrap_or(u32::MAX).max(1);
        Self {
            free_mb: Arc::new(Semaphore::new(total_mb as usize)),
            total_mb,
            wait,
        }
    }

    /// The whole budget, in bytes.
    pub(crate) fn total_bytes(&self) -> u64 {
        u64::from(self.total_mb) << 20
    }

    /// Reserves `bytes`, waiting briefly for room; `None` when there is none in time (or
    /// the request is larger than the whole budget).
    pub(crate) async fn reserve(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        let mb = u32::try_from(bytes.div_ceil(1 << 20)).ok()?.max(1);
        if mb > self.total_mb {
            return None;
        }
        if let Ok(permit) = Arc::clone(&self.free_mb).try_acquire_many_owned(mb) {
            return Some(permit);
        }
        tokio::time::timeout(self.wait, Arc::clone(&self.free_mb).acquire_many_owned(mb))
            .await
            .ok()?
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_budget_admits_what_fits_and_waits_briefly_for_the_rest() {
        let budget = MemoryBudget::new(100 << 20, Duration::from_millis(50));
        let big = budget.reserve(60 << 20).await.expect("60 of 100 MiB fit");
        let small = budget.reserve(30 << 20).await.expect("90 of 100 MiB fit");
        assert!(budget.reserve(20 << 20).await.is_none(), "110 MiB do not");
        assert!(
            budget.reserve(101 << 20).await.is_none(),
            "more than the whole budget"
        );
        drop(big);
        assert!(budget.reserve(20 << 20).await.is_some());
        drop(small);
        // Someone waiting gets room as soon as it is returned.
        let held = budget.reserve(100 << 20).await.unwrap();
        let waiting = async { budget.reserve(1).await };
        let release = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(held);
        };
        let (got, ()) = tokio::join!(waiting, release);
        assert!(got.is_some());
    }

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
