//! Recording how runs ended, several in one transaction: the worker of a process hands its
//! endings to one writer, which commits all those that arrived together at once (group
//! commit), so a busy process pays one commit for many tasks rather than one each.

use omniforge_types::TaskId;
use serde_json::json;

use crate::database::{BeginWrite, with_pool};
use crate::error::StoreError;
use crate::platform::Platform;
use crate::tasks::steps::{locks_rows, wake_parents};
use crate::tasks::{EventKind, NewEvent, TaskState, TaskUsage};

/// How a run ended, as the worker records it.
#[derive(Debug, Clone)]
pub struct Ending {
    /// `Completed`, `Failed` or `Canceled`.
    pub state: TaskState,
    /// The output (completed).
    pub output: Option<String>,
    /// The problem (failed, canceled).
    pub error: Option<serde_json::Value>,
    /// What the run used (`None`: it did not run).
    pub usage: Option<TaskUsage>,
}

/// The end of one attempt, to record.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The task.
    pub task: TaskId,
    /// The attempt that ended.
    pub attempt: u32,
    /// How it ended.
    pub ending: Ending,
    /// Events the run wrote and had not appended yet; they go before the result.
    pub logs: Vec<NewEvent>,
}

impl Finish {
    /// The events this ending appends: the logs, the result, the terminal state.
    fn events(&self) -> Result<Vec<NewEvent>, StoreError> {
        let mut events = self.logs.clone();
        let mut result = json!({});
        if let Some(output) = &self.ending.output {
            let output: serde_json::Value = serde_json::from_str(output)
                .map_err(|e| StoreError::Invalid(format!("task output: {e}")))?;
            result["output"] = output;
        }
        if let Some(error) = &self.ending.error {
            result["error"] = error.clone();
        }
        if let Some(usage) = &self.ending.usage {
            result["usage"] = json!(usage);
        }
        events.push(NewEvent {
            kind: EventKind::Result,
            data: result,
        });
        events.push(NewEvent::state(
            self.ending.state,
            json!({ "attempt": self.attempt }),
        ));
        Ok(events)
    }
}

/// Events per insert statement (5 parameters each).
const EVENT_CHUNK: usize = 1000;

impl Platform<'_> {
    /// Records the end of attempt `attempt` of `task`, run by `owner`, with `logs` before
    /// its result. `false`: the worker no longer holds the task (its lease expired and it
    /// was claimed again or ended), so nothing was written.
    pub async fn finish_task(
        &self,
        task: &TaskId,
        owner: &str,
        attempt: u32,
        ending: &Ending,
        logs: &[NewEvent],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let finish = Finish {
            task: task.clone(),
            attempt,
            ending: ending.clone(),
            logs: logs.to_vec(),
        };
        let written = self
            .finish_tasks(owner, std::slice::from_ref(&finish), now_ms)
            .await?;
        Ok(written.first().copied().unwrap_or(false))
    }

    /// Records several endings of runs `owner` holds in one transaction, all or nothing;
    /// answers, in order, whether each was written (`false` as for
    /// [`Platform::finish_task`]).
    pub async fn finish_tasks(
        &self,
        owner: &str,
        finishes: &[Finish],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let events = finishes
            .iter()
            .map(Finish::events)
            .collect::<Result<Vec<_>, _>>()?;
        let postgres = locks_rows(self.db());
        with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            let mut written = Vec::with_capacity(finishes.len());
            let mut rows: Vec<(&str, i64, &NewEvent)> = Vec::new();
            let mut parents: Vec<String> = Vec::new();
            for (finish, events) in finishes.iter().zip(&events) {
                let ending = &finish.ending;
                let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
                // The row moves on its event numbers in the same statement that ends it.
                let last: Option<(i64, Option<String>)> = sqlx::query_as(
                    "UPDATE tasks SET state = $4, output = $5, error = $6, usage = $7, \
                     finished_at_ms = $8, lease_owner = NULL, lease_expires_ms = NULL, \
                     last_seq = last_seq + $9 \
                     WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'working' \
                     RETURNING last_seq, parent_id",
                )
                .bind(finish.task.as_str())
                .bind(owner)
                .bind(i64::from(finish.attempt))
                .bind(ending.state.as_str())
                .bind(&ending.output)
                .bind(ending.error.as_ref().map(ToString::to_string))
                .bind(ending.usage.as_ref().map(|u| json!(u).to_string()))
                .bind(now_ms)
                .bind(count)
                .fetch_optional(&mut *tx)
                .await?;
                written.push(last.is_some());
                if let Some((last, parent)) = last {
                    parents.extend(parent);
                    let first = last - count + 1;
                    rows.extend(
                        events
                            .iter()
                            .zip(first..)
                            .map(|(event, seq)| (finish.task.as_str(), seq, event)),
                    );
                }
            }
            for chunk in rows.chunks(EVENT_CHUNK) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO task_events (task_id, seq, kind, data, at_ms) ",
                );
                insert.push_values(chunk, |mut row, (task, seq, event)| {
                    row.push_bind(*task)
                        .push_bind(*seq)
                        .push_bind(event.kind.as_str())
                        .push_bind(event.data.to_string())
                        .push_bind(now_ms);
                });
                insert.build().execute(&mut *tx).await?;
            }
            wake_parents!(&mut *tx, postgres, &parents, now_ms);
            tx.commit().await?;
            Ok(written)
        })
    }
}
