//! The queue bound (`max_queued_tasks`) without counting the queue for every submission.
//!
//! Counting a tenant's queued tasks reads as many index entries as are queued (up to the
//! bound), so counting on every submission makes a deep queue slow to fill further: the
//! cost of a submission grew with the queue. Instead a count is kept per tenant for a
//! moment ([`FRESH`]) and this process's own admissions are added to it; a submission the
//! estimate would refuse is counted afresh first, so a refusal is always exact. The
//! estimate errs only upwards for this process's work (tasks claimed since are still
//! counted), and downwards by what other replicas queued within [`FRESH`]: the bound can be
//! passed by that much on a multi-replica deployment, never refused wrongly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use omniforge_store::{StoreError, TenantId, TenantStore};

/// How long a count stands in for the queue.
const FRESH: Duration = Duration::from_secs(1);

/// Counts kept at most before stale ones are dropped.
const KEPT: usize = 4096;

/// Recent queue counts per tenant.
#[derive(Default)]
pub(super) struct QueueBound {
    counts: Mutex<HashMap<TenantId, Counted>>,
}

/// A tenant's queue as counted, plus what this process queued since.
struct Counted {
    at: Instant,
    queued: u64,
}

impl QueueBound {
    /// Whether the store's tenant may queue one more task under `max_queued`; when it may,
    /// the task is counted.
    pub(super) async fn admit(
        &self,
        store: &TenantStore<'_>,
        max_queued: u64,
    ) -> Result<bool, StoreError> {
        let tenant = store.tenant_id();
        if self.take(tenant, max_queued) {
            return Ok(true);
        }
        let queued = store.queued_tasks(max_queued).await?;
        let room = queued < max_queued;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= KEPT {
            counts.retain(|_, counted| counted.at.elapsed() < FRESH);
        }
        counts.insert(
            tenant.clone(),
            Counted {
                at: Instant::now(),
                queued: queued + u64::from(room),
            },
        );
        Ok(room)
    }

    /// Counts one more task against a fresh count with room left; false when there is none.
    fn take(&self, tenant: &TenantId, max_queued: u64) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match counts.get_mut(tenant) {
            Some(counted) if counted.at.elapsed() < FRESH && counted.queued < max_queued => {
                counted.queued += 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_count_admits_until_the_bound_and_a_stale_one_admits_nothing() {
        let bound = QueueBound::default();
        let tenant = TenantId::new("ten_acme");
        assert!(!bound.take(&tenant, 10), "nothing counted yet");
        bound.counts.lock().unwrap().insert(
            tenant.clone(),
            Counted {
                at: Instant::now(),
                queued: 8,
            },
        );
        assert!(bound.take(&tenant, 10));
        assert!(bound.take(&tenant, 10));
        assert!(
            !bound.take(&tenant, 10),
            "the bound is reached: count again"
        );
        bound.counts.lock().unwrap().insert(
            tenant.clone(),
            Counted {
                at: Instant::now() - FRESH,
                queued: 0,
            },
        );
        assert!(!bound.take(&tenant, 10), "a stale count is counted again");
    }
}
