//! What a tenant does to its tasks besides submitting them: cancel and delete.

use omniforge_types::TaskId;
use serde_json::json;

use crate::audit::record_audit;
use crate::database::{BeginWrite, with_pool};
use crate::error::StoreError;
use crate::records::{AuditContext, now_ms};
use crate::tasks::events::append_events;
use crate::tasks::steps::{locks_rows, wake_parents};
use crate::tasks::{NewEvent, Task, TaskState};
use crate::tenant::TenantStore;

/// What a cancel did.
#[derive(Debug)]
pub enum Canceled {
    /// The task was queued: it is canceled and never starts.
    Dequeued(Task),
    /// The task is running: its worker was asked to stop it (it ends `canceled` shortly).
    Requested(Task),
    /// The task had already ended.
    AlreadyEnded(Task),
}

impl TenantStore<'_> {
    /// Cancels the tenant's task `id`: a queued task at once, with `problem` as its error;
    /// a running one by asking its worker, on whichever replica, to stop it. `None`: no
    /// such task.
    pub async fn cancel_task(
        &self,
        audit: &AuditContext,
        id: &TaskId,
        problem: &serde_json::Value,
    ) -> Result<Option<Canceled>, StoreError> {
        let tenant = self.tenant_id().as_str();
        let now = now_ms();
        let postgres = locks_rows(self.db());
        let state: Option<String> = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM tasks WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            match state.as_deref() {
                Some("submitted") => {
                    let parent: Option<String> = sqlx::query_scalar(
                        "UPDATE tasks SET state = 'canceled', error = $3, finished_at_ms = $4 \
                         WHERE tenant_id = $1 AND id = $2 RETURNING parent_id",
                    )
                    .bind(tenant)
                    .bind(id.as_str())
                    .bind(problem.to_string())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let event = NewEvent::state(TaskState::Canceled, json!({}));
                    append_events!(&mut *tx, id.as_str(), std::slice::from_ref(&event), now)?;
                    let parents: Vec<String> = parent.into_iter().collect();
                    wake_parents!(&mut *tx, postgres, &parents, now);
                }
                Some("working") => {
                    sqlx::query(
                        "UPDATE tasks SET cancel_requested = TRUE WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                _ => {}
            }
            if matches!(state.as_deref(), Some("submitted" | "working")) {
                record_audit!(
                    &mut *tx,
                    tenant,
                    audit,
                    "task.cancel",
                    "task",
                    id.as_str(),
                    json!({})
                )?;
            }
            tx.commit().await?;
            state
        });
        let Some(before) = state else { return Ok(None) };
        let task = self
            .task(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a canceled task vanished".into()))?;
        Ok(Some(match before.as_str() {
            "submitted" => Canceled::Dequeued(task),
            "working" => Canceled::Requested(task),
            _ => Canceled::AlreadyEnded(task),
        }))
    }

    /// Deletes the tenant's ended task `id` with its events. `Ok(false)`: no such task; a
    /// task that has not ended is a conflict.
    pub async fn delete_task(&self, audit: &AuditContext, id: &TaskId) -> Result<bool, StoreError> {
        let tenant = self.tenant_id().as_str();
        with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM tasks WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(state) = state else { return Ok(false) };
            let state: TaskState = state
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("task state: {e}")))?;
            if !state.is_terminal() {
                return Err(StoreError::Conflict(format!(
                    "the task is {state}; only a task that has ended can be deleted (cancel it first)"
                )));
            }
            sqlx::query("DELETE FROM tasks WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            record_audit!(
                &mut *tx,
                tenant,
                audit,
                "task.delete",
                "task",
                id.as_str(),
                json!({})
            )?;
            tx.commit().await?;
        });
        Ok(true)
    }
}
