//! Submitting a task: the queue bound, idempotency keys, and the first event.

use omniforge_types::{SkillName, TaskId};
use serde_json::json;
use serde_json::value::RawValue;

use crate::database::{BeginExclusive, BeginWrite, with_pool};
use crate::error::StoreError;
use crate::records::{new_id, now_ms};
use crate::tasks::events::append_events;
use crate::tasks::{NewEvent, TASK_COLUMNS, Task, TaskRow, TaskState};
use crate::tenant::TenantStore;

/// A task to submit.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The skill.
    pub skill: SkillName,
    /// The version requirement as asked.
    pub requirement: Option<String>,
    /// The version it resolved to, which it runs.
    pub version: semver::Version,
    /// The input, JSON text.
    pub input: String,
    /// Higher runs first among the tenant's queued tasks.
    pub priority: i32,
    /// Not started before this time, unix ms (`None`: at once).
    pub not_before_ms: Option<i64>,
    /// The task this one retries.
    pub retry_of: Option<TaskId>,
    /// Who submits it.
    pub created_by: String,
    /// The submitting request.
    pub request_id: String,
}

/// An idempotency key and what it must be sent with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The key, as the client sent it.
    pub key: String,
    /// A digest of the request body it was first sent with.
    pub body_sha256: String,
    /// How long keys are remembered, ms.
    pub ttl_ms: i64,
}

/// How a submission went.
#[derive(Debug)]
pub enum Submission {
    /// A new task was queued.
    Created(Task),
    /// The idempotency key was used before with the same body: its task.
    Replayed(Task),
    /// The idempotency key was used before with another body.
    KeyReused,
    /// The tenant has as many tasks queued as it may.
    QueueFull {
        /// The bound.
        max_queued: u64,
    },
}

impl TenantStore<'_> {
    /// Queues `task` unless the tenant already has `max_queued` queued tasks. With an
    /// idempotency key, a key seen within its time answers its task (same body) or is
    /// refused (another body) instead.
    ///
    /// The queue bound is checked against the queued tasks counted when the submission
    /// starts, so submissions racing each other may pass it by at most their number; it
    /// bounds the queue, it is not a quota.
    pub async fn submit_task(
        &self,
        task: NewTask,
        max_queued: u64,
        idempotency: Option<Idempotency>,
    ) -> Result<Submission, StoreError> {
        let tenant = self.tenant_id().as_str();
        let id = new_id("tsk");
        let now = now_ms();
        let not_before = task.not_before_ms.unwrap_or(now);
        // Counted before the write begins, so the count does not hold SQLite's one writer.
        let bound = i64::try_from(max_queued).unwrap_or(i64::MAX);
        let queued: i64 = with_pool!(self.db(), |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM tasks \
                 WHERE tenant_id = $1 AND state = 'submitted' LIMIT $2) AS queued",
            )
            .bind(tenant)
            .bind(bound)
            .fetch_one(pool)
            .await?
        });
        if queued >= bound && idempotency.is_none() {
            return Ok(Submission::QueueFull { max_queued });
        }
        let submitted = with_pool!(self.db(), |pool| {
            // Only submissions carrying a key take the tenant's lock, so that two of them
            // with the same key cannot both create a task; the others only insert.
            let mut tx = match &idempotency {
                Some(_) => pool.begin_exclusive(&format!("task-keys:{tenant}")).await?,
                None => pool.begin_write().await?,
            };
            if let Some(key) = &idempotency {
                let seen: Option<(String, String, i64)> = sqlx::query_as(
                    "SELECT body_sha256, task_id, created_at_ms FROM task_idempotency \
                     WHERE tenant_id = $1 AND key = $2",
                )
                .bind(tenant)
                .bind(&key.key)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((body, earlier, created)) = seen {
                    let alive = created > now - key.ttl_ms;
                    let sql = format!(
                        "SELECT {TASK_COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2"
                    );
                    let existing: Option<TaskRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(tenant)
                        .bind(&earlier)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match existing {
                        Some(_) | None if alive && body != key.body_sha256 => {
                            return Ok(Submission::KeyReused);
                        }
                        Some(row) if alive => return Ok(Submission::Replayed(row.try_into()?)),
                        // Expired, or its task was deleted: the key starts afresh.
                        _ => {
                            sqlx::query(
                                "DELETE FROM task_idempotency WHERE tenant_id = $1 AND key = $2",
                            )
                            .bind(tenant)
                            .bind(&key.key)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
            }
            // A key seen before answers its task even with the queue full; a new one does not.
            if queued >= bound {
                return Ok(Submission::QueueFull { max_queued });
            }
            sqlx::query(
                "INSERT INTO tasks (id, tenant_id, skill, requirement, version, input, state, \
                 priority, not_before_ms, retry_of, created_by, request_id, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'submitted', $7, $8, $9, $10, $11, $12)",
            )
            .bind(&id)
            .bind(tenant)
            .bind(task.skill.as_str())
            .bind(&task.requirement)
            .bind(task.version.to_string())
            .bind(&task.input)
            .bind(task.priority)
            .bind(not_before)
            .bind(task.retry_of.as_ref().map(TaskId::as_str))
            .bind(&task.created_by)
            .bind(&task.request_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let mut first = json!({});
            if let Some(retry_of) = &task.retry_of {
                first = json!({ "retry_of": retry_of });
            }
            append_events!(
                &mut *tx,
                &id,
                &[NewEvent::state(TaskState::Submitted, first)],
                now
            )?;
            // A tenant's row is written only when it was not waiting already, so that
            // submissions do not all queue behind one row lock.
            sqlx::query(
                "INSERT INTO task_tenants (tenant_id, waiting) VALUES ($1, TRUE) \
                 ON CONFLICT (tenant_id) DO NOTHING",
            )
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE task_tenants SET waiting = TRUE WHERE tenant_id = $1 AND waiting = FALSE",
            )
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
            if let Some(key) = &idempotency {
                sqlx::query(
                    "INSERT INTO task_idempotency (tenant_id, key, body_sha256, task_id, \
                     created_at_ms) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(tenant)
                .bind(&key.key)
                .bind(&key.body_sha256)
                .bind(&id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
        });
        submitted?;
        // As stored: what the insert wrote, without reading it back.
        Ok(Submission::Created(Task {
            id: TaskId::from(id),
            tenant_id: self.tenant_id().clone(),
            skill: task.skill,
            requirement: task.requirement,
            version: task.version,
            input: RawValue::from_string(task.input)
                .map_err(|e| StoreError::Invalid(format!("task input: {e}")))?,
            state: TaskState::Submitted,
            priority: task.priority,
            not_before_ms: not_before,
            attempts: 0,
            retry_of: task.retry_of,
            cancel_requested: false,
            output: None,
            error: None,
            usage: None,
            last_seq: 1,
            created_by: task.created_by,
            request_id: task.request_id,
            created_at_ms: now,
            started_at_ms: None,
            finished_at_ms: None,
        }))
    }
}
