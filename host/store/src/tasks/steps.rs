//! An agent run's journal: one row per step (and `map` item), each write made in the
//! transaction that appends the step's event, and only while the writer holds the run's
//! lease, so a worker that lost its run cannot write into the attempt that replaced it.
//!
//! The rows' meaning is the workflow engine's (`omniforge_workflow::engine`); the store
//! keeps them as text and numbers so it does not depend on the engine.

use omniforge_types::TaskId;

use crate::database::{BeginWrite, Database, with_pool};
use crate::error::StoreError;
use crate::platform::Platform;
use crate::tasks::NewEvent;

/// One journal row, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JournalRow {
    /// The step's id.
    pub step: String,
    /// The item path inside `map` steps (`""` outside).
    pub item: String,
    /// The step's kind (`skill`, `sequence`, …).
    pub kind: String,
    /// `running`, `waiting`, `succeeded` or `failed`.
    pub state: String,
    /// The current (or last) attempt.
    pub attempt: i64,
    /// The output (JSON text), once succeeded.
    pub output: Option<String>,
    /// The error (JSON text), once failed or while waiting for a retry.
    pub error: Option<String>,
    /// When the next attempt may start, while waiting.
    pub not_before_ms: Option<i64>,
    /// The child run of an `agent` step's current attempt.
    pub child_id: Option<String>,
    /// When the current attempt started.
    pub started_at_ms: i64,
    /// When it finished.
    pub finished_at_ms: Option<i64>,
}

/// A change to one journal row.
#[derive(Debug, Clone)]
pub enum StepWrite {
    /// An attempt started (the row is created, or reset to `running`).
    Started {
        /// The step's id.
        step: String,
        /// The item path.
        item: String,
        /// The step's kind.
        kind: &'static str,
        /// The attempt.
        attempt: i64,
        /// When, unix ms.
        at_ms: i64,
    },
    /// An `agent` step's attempt started its child run.
    ChildStarted {
        /// The step's id.
        step: String,
        /// The item path.
        item: String,
        /// The child run.
        child: TaskId,
    },
    /// The next attempt waits for a timer.
    RetryScheduled {
        /// The step's id.
        step: String,
        /// The item path.
        item: String,
        /// The next attempt.
        attempt: i64,
        /// When it may start, unix ms.
        not_before_ms: i64,
        /// Why the last one failed, JSON text.
        error: String,
    },
    /// The step finished: with `output` or with `error` (JSON text).
    Finished {
        /// The step's id.
        step: String,
        /// The item path.
        item: String,
        /// The output, when it succeeded.
        output: Option<String>,
        /// The error, when it failed.
        error: Option<String>,
        /// When, unix ms.
        at_ms: i64,
    },
}

impl StepWrite {
    /// The row it writes: the step's id and item path.
    pub(crate) fn row(&self) -> (&str, &str) {
        match self {
            Self::Started { step, item, .. }
            | Self::ChildStarted { step, item, .. }
            | Self::RetryScheduled { step, item, .. }
            | Self::Finished { step, item, .. } => (step, item),
        }
    }
}

/// One journal write with the event that tells the run's watchers about it.
#[derive(Debug, Clone)]
pub struct StepChange {
    /// The change to the step's row.
    pub write: StepWrite,
    /// Its event, when it has one.
    pub event: Option<NewEvent>,
}

/// What a new attempt does to a step's existing row: running again, with nothing left of
/// the attempt before (one rule for both engines' writes).
pub(crate) const RESTART: &str = "ON CONFLICT (task_id, step, item) DO UPDATE SET \
     state = 'running', attempt = excluded.attempt, started_at_ms = excluded.started_at_ms, \
     output = NULL, error = NULL, not_before_ms = NULL, child_id = NULL, finished_at_ms = NULL";

/// The state a finished step's row takes: `succeeded` with an output, else `failed`.
pub(crate) fn finished_state(output: Option<&str>) -> &'static str {
    if output.is_some() {
        "succeeded"
    } else {
        "failed"
    }
}

impl Platform<'_> {
    /// The journal of run `task`.
    pub async fn journal(&self, task: &TaskId) -> Result<Vec<JournalRow>, StoreError> {
        Ok(with_pool!(self.db(), |pool| {
            sqlx::query_as(
                "SELECT step, item, kind, state, attempt, output, error, not_before_ms, \
                 child_id, started_at_ms, finished_at_ms FROM task_steps WHERE task_id = $1",
            )
            .bind(task.as_str())
            .fetch_all(pool)
            .await?
        }))
    }

    /// Writes `changes` into run `task`'s journal, each with its event, all in one
    /// transaction, while `owner` holds the run. `false`: it no longer does, and nothing
    /// was written.
    pub async fn write_steps(
        &self,
        task: &TaskId,
        owner: &str,
        changes: &[StepChange],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let id = task.as_str();
        let events = changes.iter().filter(|c| c.event.is_some()).count();
        let events = i64::try_from(events).unwrap_or(i64::MAX);
        if let Database::Postgres(pool) = self.db()
            && let Some(written) =
                super::steps_pg::write_at_once(pool, id, owner, changes, now_ms).await?
        {
            return Ok(written);
        }
        Ok(with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            // Taking the events' numbers checks the lease and locks the run's row.
            let last: Option<i64> = sqlx::query_scalar(
                "UPDATE tasks SET last_seq = last_seq + $3 \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'working' RETURNING last_seq",
            )
            .bind(id)
            .bind(owner)
            .bind(events)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(last) = last else {
                return Ok(false);
            };
            let mut seq = last - events;
            for StepChange { write, event } in changes {
                match write {
                    StepWrite::Started {
                        step,
                        item,
                        kind,
                        attempt,
                        at_ms,
                    } => {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "INSERT INTO task_steps (task_id, step, item, kind, state, attempt, \
                         started_at_ms) VALUES ($1, $2, $3, $4, 'running', $5, $6) {RESTART}"
                        )))
                        .bind(id)
                        .bind(step)
                        .bind(item)
                        .bind(*kind)
                        .bind(*attempt)
                        .bind(*at_ms)
                        .execute(&mut *tx)
                        .await?;
                    }
                    StepWrite::ChildStarted { step, item, child } => {
                        sqlx::query(
                            "UPDATE task_steps SET child_id = $4 \
                         WHERE task_id = $1 AND step = $2 AND item = $3",
                        )
                        .bind(id)
                        .bind(step)
                        .bind(item)
                        .bind(child.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    StepWrite::RetryScheduled {
                        step,
                        item,
                        attempt,
                        not_before_ms,
                        error,
                    } => {
                        sqlx::query(
                            "UPDATE task_steps SET state = 'waiting', attempt = $4, \
                         not_before_ms = $5, error = $6, child_id = NULL \
                         WHERE task_id = $1 AND step = $2 AND item = $3",
                        )
                        .bind(id)
                        .bind(step)
                        .bind(item)
                        .bind(*attempt)
                        .bind(*not_before_ms)
                        .bind(error)
                        .execute(&mut *tx)
                        .await?;
                    }
                    StepWrite::Finished {
                        step,
                        item,
                        output,
                        error,
                        at_ms,
                    } => {
                        let state = finished_state(output.as_deref());
                        sqlx::query(
                            "UPDATE task_steps SET state = $4, output = $5, error = $6, \
                         finished_at_ms = $7, not_before_ms = NULL \
                         WHERE task_id = $1 AND step = $2 AND item = $3",
                        )
                        .bind(id)
                        .bind(step)
                        .bind(item)
                        .bind(state)
                        .bind(output)
                        .bind(error)
                        .bind(*at_ms)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                if let Some(event) = event {
                    seq += 1;
                    sqlx::query(
                        "INSERT INTO task_events (task_id, seq, kind, data, at_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id)
                    .bind(seq)
                    .bind(event.kind.as_str())
                    .bind(event.data.to_string())
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            true
        }))
    }

    /// Appends `event` to run `task` while `owner` holds it, without a journal change (a
    /// breaker that met a step). `false`: it no longer holds it.
    pub async fn append_run_event(
        &self,
        task: &TaskId,
        owner: &str,
        event: &NewEvent,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.append_task_events(task, owner, std::slice::from_ref(event), now_ms)
            .await
    }

    /// The child runs of `parent` that have not ended.
    pub async fn open_children(&self, parent: &TaskId) -> Result<Vec<TaskId>, StoreError> {
        let ids: Vec<String> = with_pool!(self.db(), |pool| {
            sqlx::query_scalar(
                "SELECT id FROM tasks WHERE parent_id = $1 AND finished_at_ms IS NULL",
            )
            .bind(parent.as_str())
            .fetch_all(pool)
            .await?
        });
        Ok(ids.into_iter().map(TaskId::from).collect())
    }
}

/// Wakes the runs in `$parents` (ids, `&[String]`), each the parent of a child run that
/// ended in this transaction (`$conn`): a parent waiting for its child (queued with a far
/// `not_before_ms`) becomes ready now. On PostgreSQL the parent's row is locked first, so a
/// parent being released at this moment either sees the child ended or is woken after its
/// release commits (see [`Platform::release_task`]).
macro_rules! wake_parents {
    ($conn:expr, $postgres:expr, $parents:expr, $now:expr) => {{
        let parents: &[String] = $parents;
        let now: i64 = $now;
        for parent in parents {
            if $postgres {
                sqlx::query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE")
                    .bind(parent)
                    .execute(&mut *$conn)
                    .await?;
            }
            let woken = sqlx::query(
                "UPDATE tasks SET not_before_ms = $2 \
                 WHERE id = $1 AND state = 'submitted' AND not_before_ms > $2",
            )
            .bind(parent)
            .bind(now)
            .execute(&mut *$conn)
            .await?
            .rows_affected();
            if woken > 0 {
                sqlx::query(
                    "UPDATE task_tenants SET waiting = TRUE WHERE waiting = FALSE AND tenant_id = \
                     (SELECT tenant_id FROM tasks WHERE id = $1)",
                )
                .bind(parent)
                .execute(&mut *$conn)
                .await?;
            }
        }
    }};
}

pub(crate) use wake_parents;

/// Whether `db` is PostgreSQL (row locks matter there; SQLite has one writer).
pub(crate) fn locks_rows(db: &Database) -> bool {
    matches!(db, Database::Postgres(_))
}
