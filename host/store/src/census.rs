//! What the whole platform holds right now, counted for the metrics endpoint: tasks by
//! state and the queue, tenants, skills and agents. Counted when a scraper asks (every 15 s
//! or so), so nothing keeps these numbers on the write paths.

use crate::database::with_pool;
use crate::error::StoreError;
use crate::platform::Platform;
use crate::tasks::{StateCount, TaskState};

/// The platform's counts at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Census {
    /// Tasks (skill tasks and agent runs) in each state; states without tasks left out.
    pub tasks: Vec<StateCount>,
    /// Queued tasks that could start now (not waiting for a timer or a child run).
    pub ready: i64,
    /// Tenants that are active (not suspended).
    pub tenants: i64,
    /// Skills not deleted.
    pub skills: i64,
    /// Agents not deleted.
    pub agents: i64,
}

impl Platform<'_> {
    /// Counts what the platform holds at `now_ms`.
    pub async fn census(&self, now_ms: i64) -> Result<Census, StoreError> {
        let (rows, ready, tenants, skills, agents): (Vec<(String, i64)>, i64, i64, i64, i64) =
            with_pool!(self.db(), |pool| {
                let rows = sqlx::query_as("SELECT state, COUNT(*) FROM tasks GROUP BY state")
                    .fetch_all(pool)
                    .await?;
                let ready = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM tasks WHERE state = 'submitted' AND not_before_ms <= $1",
                )
                .bind(now_ms)
                .fetch_one(pool)
                .await?;
                let (tenants, skills, agents) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM tenants WHERE status = 'active'), \
                     (SELECT COUNT(*) FROM skills WHERE deleted_at_ms IS NULL), \
                     (SELECT COUNT(*) FROM agents WHERE deleted_at_ms IS NULL)",
                )
                .fetch_one(pool)
                .await?;
                (rows, ready, tenants, skills, agents)
            });
        let tasks = rows
            .into_iter()
            .map(|(state, count)| {
                let state: TaskState = state
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("task state: {e}")))?;
                Ok(StateCount { state, count })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Census {
            tasks,
            ready,
            tenants,
            skills,
            agents,
        })
    }
}
