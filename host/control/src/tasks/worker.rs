//! The workers of one process: the claimer, the lease keeper, the cancel watcher and the
//! sweeper, started together by [`Tasks::run_workers`] and stopped by [`Tasks::drain`].
//!
//! Claiming is fair between tenants: each round asks for the waiting tenants, least
//! recently served first, and gives each at most its share of the free slots (and no more
//! than its running limit leaves room for), so a tenant with thousands of queued tasks
//! cannot keep another's one task waiting for more than a round.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use omniforge_store::{Claim, TaskId, now_ms};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Tasks;

/// Tenants looked at in one claiming round.
const TENANTS_PER_ROUND: u32 = 64;

/// How often a worker asks the database whether a task it runs was asked to cancel (a
/// cancel made on this replica, or signalled by another, arrives at once; this bounds the
/// rest).
const CANCEL_POLL: Duration = Duration::from_millis(250);

/// How often finished tasks past their retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

impl Tasks {
    /// Starts this process's workers; they run until [`Tasks::drain`].
    pub fn run_workers(self: &Arc<Self>) {
        let stop = self.draining.clone();
        let slots = Arc::new(Semaphore::new(self.settings.workers.max(1)));
        tokio::spawn(Arc::clone(self.signals()).listen(stop.clone()));
        tokio::spawn(Arc::clone(self).claimer(slots, stop.clone()));
        tokio::spawn(Arc::clone(self).lease_keeper(stop.clone()));
        tokio::spawn(Arc::clone(self).cancel_watcher(stop.clone()));
        tokio::spawn(Arc::clone(self).sweeper(stop));
    }

    /// Stops claiming, lets running tasks finish for up to the drain time, then stops the
    /// rest, which go back to the queue for another process (or this one after a restart).
    pub async fn drain(&self) {
        self.draining.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.settings.drain_ms);
        while !self.running_ids().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.running_ids();
        if left.is_empty() {
            return;
        }
        tracing::warn!(
            tasks = left.len(),
            "drain time over: putting running tasks back in the queue"
        );
        for handle in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            handle.token.cancel();
        }
        // Their runners put them back; the sweep recovers any that cannot finish that.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !self.running_ids().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is stopping (runs stopped now are put back, not canceled).
    pub(super) fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    pub(super) fn running_ids(&self) -> Vec<TaskId> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    async fn claimer(self: Arc<Self>, slots: Arc<Semaphore>, stop: CancellationToken) {
        let mut runs = JoinSet::new();
        loop {
            while runs.try_join_next().is_some() {}
            let free = slots.available_permits();
            let claimed = if free == 0 {
                0
            } else {
                match self.claim_round(&slots, free, &mut runs).await {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!("claiming tasks failed: {e}");
                        0
                    }
                }
            };
            // A full round may have left more waiting; otherwise wait for a submission, a
            // freed slot, or the sweep interval.
            if claimed > 0 && slots.available_permits() > 0 {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.signals().woken() => {}
                () = tokio::time::sleep(self.sweep_interval()) => {}
            }
        }
        // Runs already started finish (or are stopped by `drain`) in their own tasks.
        runs.detach_all();
    }

    async fn claim_round(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        free: usize,
        runs: &mut JoinSet<()>,
    ) -> Result<usize, omniforge_store::StoreError> {
        let platform = self.db.platform();
        let tenants = platform.waiting_tenants(TENANTS_PER_ROUND).await?;
        if tenants.is_empty() {
            return Ok(0);
        }
        let share = free.div_ceil(tenants.len()).max(1);
        let mut left = free;
        let mut claimed = 0;
        for tenant in tenants {
            if left == 0 || self.is_draining() {
                break;
            }
            let policy = self.invocations.policies().get(&tenant).await?;
            let limit = u32::try_from(share.min(left)).unwrap_or(u32::MAX);
            let tasks = platform
                .claim_tasks(&Claim {
                    tenant: &tenant,
                    max_running: policy.max_running_tasks,
                    limit,
                    owner: &self.owner,
                    lease_ms: i64::try_from(self.settings.lease_ms).unwrap_or(i64::MAX),
                    now_ms: now_ms(),
                })
                .await?;
            for task in tasks {
                let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
                    // Cannot happen: a round claims at most the free slots, and only the
                    // claimer takes them. Should it, the lease lapses and the task runs
                    // again elsewhere.
                    tracing::error!(task = %task.id, "claimed a task without a free slot");
                    continue;
                };
                left = left.saturating_sub(1);
                claimed += 1;
                let handle = self.register(&task.id);
                let tasks = Arc::clone(self);
                let span = tracing::info_span!(
                    "task",
                    task = %task.id,
                    tenant = %task.tenant_id,
                    attempt = task.attempts,
                );
                runs.spawn(
                    async move {
                        tasks.run_task(task, handle).await;
                        drop(permit);
                        tasks.signals().wake();
                    }
                    .instrument(span),
                );
            }
        }
        Ok(claimed)
    }

    /// Extends the leases of the tasks this process runs; a task whose lease was lost
    /// (another process took it over after it lapsed) is stopped here.
    async fn lease_keeper(self: Arc<Self>, stop: CancellationToken) {
        let every = Duration::from_millis((self.settings.lease_ms / 3).max(10));
        let lease_ms = i64::try_from(self.settings.lease_ms).unwrap_or(i64::MAX);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                // Runs still finishing after the drain started keep their leases.
                () = stop.cancelled(), if self.running_ids().is_empty() => return,
            }
            let local = self.running_ids();
            if local.is_empty() {
                continue;
            }
            match self
                .db
                .platform()
                .extend_leases(&self.owner, lease_ms, now_ms())
                .await
            {
                Ok(held) => {
                    let held: HashSet<TaskId> = held.into_iter().collect();
                    // A run that ended since `local` was read is gone from both; stopping
                    // its handle does nothing.
                    for lost in local.iter().filter(|id| !held.contains(*id)) {
                        if let Some(handle) = self.handle(lost) {
                            tracing::warn!(task = %lost, "lost the lease of a running task; stopping it");
                            handle.token.cancel();
                        }
                    }
                }
                Err(e) => tracing::warn!("cannot extend task leases: {e}"),
            }
        }
    }

    /// Stops the tasks this process runs when their tenant cancels them elsewhere.
    async fn cancel_watcher(self: Arc<Self>, stop: CancellationToken) {
        let mut signalled = self.signals().follow_cancels();
        loop {
            tokio::select! {
                () = stop.cancelled(), if self.running_ids().is_empty() => return,
                Ok(id) = signalled.recv() => {
                    self.stop_local(&id);
                    continue;
                }
                () = tokio::time::sleep(CANCEL_POLL) => {}
            }
            if self.running_ids().is_empty() {
                continue;
            }
            match self.db.platform().cancels_for(&self.owner).await {
                Ok(ids) => {
                    for id in ids {
                        self.stop_local(&id);
                    }
                }
                Err(e) => tracing::warn!("cannot read task cancels: {e}"),
            }
        }
    }

    /// Puts tasks whose worker died back in the queue, and purges old finished tasks.
    async fn sweeper(self: Arc<Self>, stop: CancellationToken) {
        let mut last_purge = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.sweep_interval()) => {}
            }
            let platform = self.db.platform();
            let gave_up = self.problems.gave_up(self.settings.max_attempts);
            match platform
                .sweep_tasks(self.settings.max_attempts, &gave_up, now_ms())
                .await
            {
                Ok(0) => {}
                Ok(recovered) => {
                    tracing::info!(
                        recovered,
                        "put tasks whose worker stopped back in the queue"
                    );
                    self.signals().wake();
                }
                Err(e) => tracing::warn!("cannot sweep tasks: {e}"),
            }
            if last_purge.elapsed() >= PURGE_EVERY {
                last_purge = tokio::time::Instant::now();
                let now = now_ms();
                let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                if let Err(e) = platform
                    .purge_tasks(
                        now.saturating_sub(ms(self.settings.retention_ms)),
                        now.saturating_sub(ms(self.settings.idempotency_ttl_ms)),
                        1000,
                    )
                    .await
                {
                    tracing::warn!("cannot purge old tasks: {e}");
                }
            }
        }
    }
}
