//! A task's events: its history, numbered from 1, appended in the transaction of the change
//! they record.

use crate::records::text_enum;
use omniforge_types::TaskId;
use serde_json::value::RawValue;

use crate::database::with_pool;
use crate::error::StoreError;
use crate::tenant::TenantStore;

text_enum!(
    /// What an event records.
    EventKind {
        /// The task changed state (`data.state`).
        State = "state",
        /// The skill wrote a log line (`data.level`, `data.message`).
        Log = "log",
        /// The run's result: `data.output` or `data.error`, with `data.usage`.
        Result = "result",
        /// An agent run's step (an attempt of it) started: `data.step`, `data.item` (inside
        /// a `map`), `data.kind`, `data.attempt`.
        StepStarted = "step-started",
        /// An agent run's step finished: `data.step`, `data.item`, `data.attempt`, and
        /// `data.output` or `data.error`.
        StepFinished = "step-finished",
        /// A step's attempt failed and the next waits: `data.step`, `data.item`,
        /// `data.attempt` (the next), `data.not_before_ms`, `data.delay_ms`, `data.error`.
        RetryScheduled = "retry-scheduled",
        /// A step met an open circuit breaker: `data.step`, `data.skill`,
        /// `data.retry_after_ms`.
        BreakerOpen = "breaker-open",
    }
);

/// One event of a task.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskEvent {
    /// Its number: 1 for the first event of the task, then one more for each.
    pub seq: i64,
    /// What it records.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Its data, a JSON object.
    pub data: Box<RawValue>,
    /// When it was appended, unix ms.
    pub at_ms: i64,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What it records.
    pub kind: EventKind,
    /// Its data, a JSON object.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// A state change to `state`, with more fields of `extra` (an object) beside it.
    pub fn state(state: super::TaskState, extra: serde_json::Value) -> Self {
        let mut data = serde_json::json!({ "state": state.as_str() });
        if let (Some(map), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
            map.extend(extra);
        }
        Self {
            kind: EventKind::State,
            data,
        }
    }
}

/// Appends events to task `$task` through `$conn` (a transaction), numbering them after the
/// task's `last_seq`, which it moves on: the task's row is locked by the update, so two
/// writers of one task's events take turns. Evaluates to `Result<i64, sqlx::Error>`: the
/// last number taken (the task's `last_seq` when `$events` is empty).
macro_rules! append_events {
    ($conn:expr, $task:expr, $events:expr, $at:expr $(,)?) => {
        async {
            let task: &str = $task;
            let events: &[$crate::tasks::NewEvent] = $events;
            let at: i64 = $at;
            let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
            let last: i64 = sqlx::query_scalar(
                "UPDATE tasks SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq",
            )
            .bind(task)
            .bind(count)
            .fetch_one(&mut *$conn)
            .await?;
            if !events.is_empty() {
                let first = last - count + 1;
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO task_events (task_id, seq, kind, data, at_ms) ",
                );
                insert.push_values(events.iter().zip(first..), |mut row, (event, seq)| {
                    row.push_bind(task)
                        .push_bind(seq)
                        .push_bind(event.kind.as_str())
                        .push_bind(event.data.to_string())
                        .push_bind(at);
                });
                insert.build().execute(&mut *$conn).await?;
            }
            Ok::<i64, sqlx::Error>(last)
        }
        .await
    };
}
pub(crate) use append_events;

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    kind: String,
    data: String,
    at_ms: i64,
}

impl TryFrom<EventRow> for TaskEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(format!("task event {}: {e}", row.seq));
        Ok(TaskEvent {
            kind: row.kind.parse().map_err(corrupt)?,
            data: RawValue::from_string(row.data).map_err(|e| corrupt(e.to_string()))?,
            seq: row.seq,
            at_ms: row.at_ms,
        })
    }
}

impl TenantStore<'_> {
    /// Up to `limit` events of the tenant's task `task` numbered after `after`, in order;
    /// `None` when the tenant has no such task.
    pub async fn task_events(
        &self,
        task: &TaskId,
        after: i64,
        limit: u32,
    ) -> Result<Option<Vec<TaskEvent>>, StoreError> {
        let limit = i64::from(limit.clamp(1, 1000));
        let rows: Option<Vec<EventRow>> = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            let exists: Option<String> =
                sqlx::query_scalar("SELECT id FROM tasks WHERE tenant_id = $1 AND id = $2")
                    .bind(self.tenant_id().as_str())
                    .bind(task.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            match exists {
                None => None,
                Some(_) => Some(
                    sqlx::query_as(
                        "SELECT seq, kind, data, at_ms FROM task_events \
                         WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .bind(task.as_str())
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?,
                ),
            }
        });
        rows.map(crate::rows::convert).transpose()
    }
}
