//! Settings of the durable task workers of this process (`[tasks]`).

use omniforge_control::TaskSettings;
use omniforge_workflow::reliability::BreakerPolicy;
use serde::Deserialize;

/// Task worker settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// Tasks this process runs at once (each tenant also within its `max_running_tasks`).
    pub workers: u32,
    /// How long a claimed task is held without its lease being extended, ms: the tasks of a
    /// process that died run again this long after it died. Leases are extended every
    /// third of it.
    pub lease_ms: u64,
    /// Attempts a task gets when its runs keep being lost to dying processes; then it fails.
    pub max_attempts: u32,
    /// How often expired leases are looked for (and missed wake-ups caught), ms.
    pub sweep_ms: u64,
    /// Finished tasks and their events are deleted this long after they ended, ms.
    pub retention_ms: u64,
    /// How long idempotency keys are remembered, ms (at least a day).
    pub idempotency_ttl_ms: u64,
    /// On shutdown, how long running tasks may finish before they are put back in the
    /// queue, ms.
    pub drain_ms: u64,
    /// Task event streams (`text/event-stream`) one tenant may hold open on this server;
    /// one more answers 429.
    pub streams_per_tenant: u32,
    /// An open task event stream authenticates its request again this often, ms: a revoked
    /// key or a lost permission ends it.
    pub stream_recheck_ms: u64,
    /// The window over which a workflow step's circuit breaker computes its skill's failure
    /// rate, ms.
    pub breaker_window_ms: u64,
    /// Fewer calls than this in the window never open a breaker.
    pub breaker_min_calls: u64,
    /// The failure rate (0 to 1) at or above which a breaker opens.
    pub breaker_failure_rate: f64,
    /// How long an open breaker fails calls fast before it lets one probe through, ms.
    pub breaker_open_ms: u64,
}

impl Default for TasksConfig {
    fn default() -> Self {
        let d = TaskSettings::default();
        Self {
            workers: u32::try_from(d.workers).unwrap_or(32),
            lease_ms: d.lease_ms,
            max_attempts: d.max_attempts,
            sweep_ms: d.sweep_ms,
            retention_ms: d.retention_ms,
            idempotency_ttl_ms: d.idempotency_ttl_ms,
            drain_ms: d.drain_ms,
            streams_per_tenant: 1000,
            stream_recheck_ms: 60_000,
            breaker_window_ms: d.breakers.window_ms,
            breaker_min_calls: u64::from(d.breakers.min_calls),
            breaker_failure_rate: d.breakers.failure_rate,
            breaker_open_ms: d.breakers.open_ms,
        }
    }
}

/// A day, the shortest time idempotency keys are kept.
const DAY_MS: u64 = 24 * 3_600_000;

impl TasksConfig {
    /// The workers' settings.
    pub fn settings(&self) -> TaskSettings {
        TaskSettings {
            workers: self.workers as usize,
            lease_ms: self.lease_ms,
            max_attempts: self.max_attempts,
            sweep_ms: self.sweep_ms,
            retention_ms: self.retention_ms,
            idempotency_ttl_ms: self.idempotency_ttl_ms,
            drain_ms: self.drain_ms,
            breakers: BreakerPolicy {
                window_ms: self.breaker_window_ms,
                min_calls: u32::try_from(self.breaker_min_calls).unwrap_or(u32::MAX),
                failure_rate: self.breaker_failure_rate,
                open_ms: self.breaker_open_ms,
            },
        }
    }

    /// Adds a problem for every unusable value.
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if !(1..=4096).contains(&self.workers) {
            problems.push("tasks.workers: must be 1 to 4096".into());
        }
        if !(300..=3_600_000).contains(&self.lease_ms) {
            problems.push("tasks.lease_ms: must be 300 to 3600000".into());
        }
        if !(1..=100).contains(&self.max_attempts) {
            problems.push("tasks.max_attempts: must be 1 to 100".into());
        }
        if !(10..=60_000).contains(&self.sweep_ms) {
            problems.push("tasks.sweep_ms: must be 10 to 60000".into());
        }
        if self.retention_ms < 60_000 {
            problems.push("tasks.retention_ms: must be at least 60000".into());
        }
        if self.idempotency_ttl_ms < DAY_MS {
            problems.push(format!(
                "tasks.idempotency_ttl_ms: must be at least {DAY_MS} (a day)"
            ));
        }
        if self.streams_per_tenant == 0 {
            problems.push("tasks.streams_per_tenant: must be positive".into());
        }
        if !(100..=3_600_000).contains(&self.stream_recheck_ms) {
            problems.push("tasks.stream_recheck_ms: must be 100 to 3600000".into());
        }
        if self.drain_ms > 3_600_000 {
            problems.push("tasks.drain_ms: must be at most 3600000".into());
        }
        if !(1_000..=86_400_000).contains(&self.breaker_window_ms) {
            problems.push("tasks.breaker_window_ms: must be 1000 to 86400000".into());
        }
        if !(1..=10_000).contains(&self.breaker_min_calls) {
            problems.push("tasks.breaker_min_calls: must be 1 to 10000".into());
        }
        if !(self.breaker_failure_rate > 0.0 && self.breaker_failure_rate <= 1.0) {
            problems.push("tasks.breaker_failure_rate: must be above 0 and at most 1".into());
        }
        if !(100..=86_400_000).contains(&self.breaker_open_ms) {
            problems.push("tasks.breaker_open_ms: must be 100 to 86400000".into());
        }
    }
}
