//! A tenant's task metrics: counts per state, queue depth, and wait and run time
//! percentiles per skill over a recent window.

use std::collections::BTreeMap;

use omniforge_store::{StoreError, TaskState, TenantId, now_ms};
use serde::Serialize;
use utoipa::ToSchema;

use super::Tasks;

/// The most finished tasks a window's percentiles are computed from (the most recent).
const WINDOW_TASKS: u32 = 10_000;

/// Percentiles of a duration, ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Longest.
    pub max: f64,
}

impl Percentiles {
    fn of(mut values: Vec<i64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let at = |q: f64| {
            let rank = (q * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1] as f64
        };
        Some(Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: values[values.len() - 1] as f64,
        })
    }
}

/// Wait and run times of one skill's tasks that ended in the window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SkillTimes {
    /// Tasks that ended in the window.
    pub finished: u64,
    /// From when a task could start to when its first run started, ms (tasks that
    /// started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<Percentiles>,
    /// From its first run's start to its end, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_ms: Option<Percentiles>,
}

/// A tenant's task metrics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskMetrics {
    /// Tasks per state (every state, zero included).
    pub states: BTreeMap<String, i64>,
    /// Queued tasks that could start now (the rest wait for their `not_before_ms`).
    pub queue_depth: i64,
    /// The window the times cover, ms before now.
    pub window_ms: u64,
    /// Times per skill (`namespace/name`) of the tasks that ended in the window.
    pub skills: BTreeMap<String, SkillTimes>,
}

impl Tasks {
    /// The tenant's task metrics, times over the last `window_ms`.
    pub async fn metrics(
        &self,
        tenant: &TenantId,
        window_ms: u64,
    ) -> Result<TaskMetrics, StoreError> {
        let store = self.db.tenant(tenant);
        let now = now_ms();
        let (counts, queue_depth) = store.task_counts(now).await?;
        let mut states: BTreeMap<String, i64> = TaskState::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect();
        for count in counts {
            states.insert(count.state.as_str().to_owned(), count.count);
        }
        let since = now.saturating_sub(i64::try_from(window_ms).unwrap_or(i64::MAX));
        let mut per_skill: BTreeMap<String, (u64, Vec<i64>, Vec<i64>)> = BTreeMap::new();
        for timing in store.task_timings(since, WINDOW_TASKS).await? {
            let entry = per_skill.entry(timing.skill).or_default();
            entry.0 += 1;
            if let Some(started) = timing.started_at_ms {
                entry.1.push((started - timing.ready_at_ms).max(0));
                entry.2.push((timing.finished_at_ms - started).max(0));
            }
        }
        let skills = per_skill
            .into_iter()
            .map(|(skill, (finished, waits, runs))| {
                let times = SkillTimes {
                    finished,
                    wait_ms: Percentiles::of(waits),
                    run_ms: Percentiles::of(runs),
                };
                (skill, times)
            })
            .collect();
        Ok(TaskMetrics {
            states,
            queue_depth,
            window_ms,
            skills,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=100).collect()).unwrap();
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        let one = Percentiles::of(vec![7]).unwrap();
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert!(Percentiles::of(Vec::new()).is_none());
    }
}
