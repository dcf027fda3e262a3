//! Submitting tasks: the queue bound, idempotency keys, the first event, and batches of
//! submissions that share one commit.

use omniforge_types::{TaskId, TenantId};
use serde_json::json;
use serde_json::value::RawValue;

use crate::database::{BeginExclusive, BeginWrite, with_pool};
use crate::error::StoreError;
use crate::platform::Platform;
use crate::records::{new_id, now_ms};
use crate::tasks::{EventKind, TASK_COLUMNS, Task, TaskRow, TaskState, TaskTarget};
use crate::tenant::TenantStore;

/// Tasks per insert statement: 18 parameters a row stays far below both engines' limits.
const QUEUE_CHUNK: usize = 500;

/// One row [`queue_new!`] inserts.
pub(crate) struct Queued<'a> {
    pub(crate) tenant: &'a TenantId,
    pub(crate) id: &'a str,
    pub(crate) task: &'a NewTask,
}

/// Inserts `$new` (a slice of [`Queued`]) as submitted tasks with their first event through
/// `$conn` (a transaction), and marks their tenants as waiting. Tenants' rows are written in
/// one order, so two batches naming the same tenants cannot deadlock; a row is written only
/// when its tenant was not waiting already, so that submissions do not all queue behind one
/// row lock.
macro_rules! queue_new {
    ($conn:expr, $new:expr, $now:expr) => {{
        let new: &[Queued<'_>] = $new;
        let now: i64 = $now;
        let mut tasks = sqlx::QueryBuilder::new(
            "INSERT INTO tasks (id, tenant_id, skill, requirement, version, agent_id, \
             agent_version, parent_id, context_id, input, state, priority, not_before_ms, retry_of, \
             created_by, request_id, created_at_ms, last_seq) ",
        );
        tasks.push_values(new, |mut row, q| {
            let (skill, requirement, version, agent, agent_version) = match &q.task.target {
                TaskTarget::Skill {
                    skill,
                    requirement,
                    version,
                } => (
                    Some(skill.as_str()),
                    requirement.as_deref(),
                    Some(version.to_string()),
                    None,
                    None,
                ),
                TaskTarget::Agent {
                    agent_id,
                    agent_version,
                } => (None, None, None, Some(agent_id.as_str()), Some(*agent_version)),
            };
            row.push_bind(q.id)
                .push_bind(q.tenant.as_str())
                .push_bind(skill)
                .push_bind(requirement)
                .push_bind(version)
                .push_bind(agent)
                .push_bind(agent_version)
                .push_bind(q.task.parent_id.as_ref().map(TaskId::as_str))
                .push_bind(q.task.context_id.as_deref())
                .push_bind(&q.task.input)
                .push_bind("submitted")
                .push_bind(q.task.priority)
                .push_bind(q.task.not_before_ms.unwrap_or(now))
                .push_bind(q.task.retry_of.as_ref().map(TaskId::as_str))
                .push_bind(&q.task.created_by)
                .push_bind(&q.task.request_id)
                .push_bind(now)
                .push_bind(1_i64);
        });
        tasks.build().execute(&mut *$conn).await?;
        let mut events =
            sqlx::QueryBuilder::new("INSERT INTO task_events (task_id, seq, kind, data, at_ms) ");
        events.push_values(new, |mut row, q| {
            let data = match &q.task.retry_of {
                Some(retry_of) => json!({ "state": "submitted", "retry_of": retry_of }),
                None => json!({ "state": "submitted" }),
            };
            row.push_bind(q.id)
                .push_bind(1_i64)
                .push_bind(EventKind::State.as_str())
                .push_bind(data.to_string())
                .push_bind(now);
        });
        events.build().execute(&mut *$conn).await?;
        let tenants: std::collections::BTreeSet<&str> =
            new.iter().map(|q| q.tenant.as_str()).collect();
        for tenant in tenants {
            sqlx::query(
                "INSERT INTO task_tenants (tenant_id, waiting) VALUES ($1, TRUE) \
                 ON CONFLICT (tenant_id) DO NOTHING",
            )
            .bind(tenant)
            .execute(&mut *$conn)
            .await?;
            sqlx::query(
                "UPDATE task_tenants SET waiting = TRUE WHERE tenant_id = $1 AND waiting = FALSE",
            )
            .bind(tenant)
            .execute(&mut *$conn)
            .await?;
        }
    }};
}

/// A task to submit.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// What it runs.
    pub target: TaskTarget,
    /// The run it is a child run of.
    pub parent_id: Option<TaskId>,
    /// The A2A context it belongs to.
    pub context_id: Option<String>,
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
        // Counted before the write begins, so the count does not hold SQLite's one writer.
        let room = self.queued_tasks(max_queued).await? < max_queued;
        if !room && idempotency.is_none() {
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
            if !room {
                return Ok(Submission::QueueFull { max_queued });
            }
            let new = [Queued {
                tenant: self.tenant_id(),
                id: &id,
                task: &task,
            }];
            queue_new!(&mut *tx, &new, now);
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
        Ok(Submission::Created(stored(
            self.tenant_id(),
            id,
            task,
            now,
        )?))
    }

    /// How many tasks the tenant has queued, counted up to `cap` (a count reads as many
    /// index entries as it counts, so it stops where the answer stops mattering).
    pub async fn queued_tasks(&self, cap: u64) -> Result<u64, StoreError> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let queued: i64 = with_pool!(self.db(), |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM tasks \
                 WHERE tenant_id = $1 AND state = 'submitted' LIMIT $2) AS queued",
            )
            .bind(self.tenant_id().as_str())
            .bind(cap)
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(queued).unwrap_or(0))
    }
}

/// A task to queue, of one tenant, in a batch of several tenants' ([`Platform::queue_tasks`]).
#[derive(Debug, Clone)]
pub struct QueuedTask {
    /// The tenant it runs for.
    pub tenant: TenantId,
    /// The task.
    pub task: NewTask,
}

impl Platform<'_> {
    /// Queues `batch` in one transaction (group commit: submissions that arrive together
    /// share one commit), in order; no queue bound or idempotency key is looked at here
    /// (the caller checks the bound before it joins the batch, see
    /// [`TenantStore::queued_tasks`]). All or nothing.
    pub async fn queue_tasks(&self, batch: &[QueuedTask]) -> Result<Vec<Task>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let ids: Vec<String> = batch.iter().map(|_| new_id("tsk")).collect();
        let new: Vec<Queued<'_>> = batch
            .iter()
            .zip(&ids)
            .map(|(queued, id)| Queued {
                tenant: &queued.tenant,
                id,
                task: &queued.task,
            })
            .collect();
        with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            for chunk in new.chunks(QUEUE_CHUNK) {
                queue_new!(&mut *tx, chunk, now);
            }
            tx.commit().await?;
        });
        batch
            .iter()
            .zip(ids)
            .map(|(queued, id)| stored(&queued.tenant, id, queued.task.clone(), now))
            .collect()
    }
}

/// A task as [`queue_new!`] stored it, without reading it back.
fn stored(tenant: &TenantId, id: String, task: NewTask, now: i64) -> Result<Task, StoreError> {
    Ok(Task {
        id: TaskId::from(id),
        tenant_id: tenant.clone(),
        not_before_ms: task.not_before_ms.unwrap_or(now),
        target: task.target,
        parent_id: task.parent_id,
        context_id: task.context_id,
        input: RawValue::from_string(task.input)
            .map_err(|e| StoreError::Invalid(format!("task input: {e}")))?,
        state: TaskState::Submitted,
        priority: task.priority,
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
    })
}
