//! The queue as workers see it: claiming with a lease, extending leases, finishing, putting
//! tasks back, and the sweep that recovers tasks whose worker died.
//!
//! A claim locks the tenant's `task_tenants` row (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
//! a replica already claiming for that tenant is passed over rather than waited for; SQLite:
//! its one writer), counts the tenant's running tasks against its limit, and takes the
//! tenant's best queued tasks (`FOR UPDATE SKIP LOCKED` on PostgreSQL). Every write of a
//! running task names its lease owner and attempt, so a worker that lost its lease cannot
//! overwrite the attempt that replaced it.

use omniforge_types::{TaskId, TenantId};
use serde_json::json;

use crate::database::{BeginWrite, Database, with_pool};
use crate::error::StoreError;
use crate::platform::Platform;
use crate::rows::convert;
use crate::tasks::events::append_events;
use crate::tasks::steps::wake_parents;
use crate::tasks::{NewEvent, TASK_COLUMNS, Task, TaskRow, TaskState};

/// Marks the tenant of task `$task` as waiting, through `$conn` (a transaction).
macro_rules! mark_waiting {
    ($conn:expr, $task:expr) => {
        sqlx::query(
            "UPDATE task_tenants SET waiting = TRUE WHERE waiting = FALSE AND tenant_id = \
             (SELECT tenant_id FROM tasks WHERE id = $1)",
        )
        .bind($task)
        .execute(&mut *$conn)
        .await?
    };
}

/// What one claim asks for.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// The tenant to claim from.
    pub tenant: &'a TenantId,
    /// How many of its tasks may run at once, on all replicas.
    pub max_running: u32,
    /// The most tasks to take.
    pub limit: u32,
    /// The claiming worker (one id per process start).
    pub owner: &'a str,
    /// How long the lease lasts unless extended, ms.
    pub lease_ms: i64,
    /// The current time, unix ms.
    pub now_ms: i64,
}

/// Why a running task goes back to the queue.
#[derive(Debug, Clone)]
pub struct Release {
    /// Not before this time, unix ms.
    pub not_before_ms: i64,
    /// Whether the attempt counts (it ran, at least partly) or not (refused before it ran).
    pub counts: bool,
    /// Why, for the state event.
    pub reason: String,
    /// Child runs the run waits for: if one of them has already ended, the run is ready
    /// at once rather than at `not_before_ms`.
    pub children: Vec<TaskId>,
}

impl Platform<'_> {
    /// Tenants with queued tasks, the least recently served first.
    pub async fn waiting_tenants(&self, limit: u32) -> Result<Vec<TenantId>, StoreError> {
        let rows: Vec<String> = with_pool!(self.db(), |pool| {
            sqlx::query_scalar(
                "SELECT tenant_id FROM task_tenants WHERE waiting = TRUE \
                 ORDER BY last_claim_ms LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(TenantId::from).collect())
    }

    /// Takes up to `claim.limit` of the tenant's ready tasks, as many as its running limit
    /// leaves room for, and starts their next attempt under a lease. Empty when another
    /// replica is claiming for the tenant at this moment.
    pub async fn claim_tasks(&self, claim: &Claim<'_>) -> Result<Vec<Task>, StoreError> {
        let tenant = claim.tenant.as_str();
        let postgres = matches!(self.db(), Database::Postgres(_));
        let (lock_tenant, skip_locked) = if postgres {
            (" FOR UPDATE SKIP LOCKED", " FOR UPDATE SKIP LOCKED")
        } else {
            ("", "")
        };
        let rows: Vec<TaskRow> = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            let sql =
                format!("SELECT tenant_id FROM task_tenants WHERE tenant_id = $1{lock_tenant}");
            let locked: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await?;
            if locked.is_none() {
                return Ok(Vec::new());
            }
            let running: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tasks WHERE tenant_id = $1 AND state = 'working'",
            )
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
            let room = (i64::from(claim.max_running) - running).min(i64::from(claim.limit));
            let mut rows: Vec<TaskRow> = Vec::new();
            if room > 0 {
                let sql = format!(
                    "UPDATE tasks SET state = 'working', attempts = attempts + 1, \
                     lease_owner = $2, lease_expires_ms = $3, last_seq = last_seq + 1, \
                     started_at_ms = COALESCE(started_at_ms, $4) \
                     WHERE id IN (SELECT id FROM tasks WHERE tenant_id = $1 \
                     AND state = 'submitted' AND not_before_ms <= $4 \
                     ORDER BY priority DESC, created_at_ms, id LIMIT $5{skip_locked}) \
                     RETURNING {TASK_COLUMNS}"
                );
                rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant)
                    .bind(claim.owner)
                    .bind(claim.now_ms + claim.lease_ms)
                    .bind(claim.now_ms)
                    .bind(room)
                    .fetch_all(&mut *tx)
                    .await?;
                if !rows.is_empty() {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO task_events (task_id, seq, kind, data, at_ms) ",
                    );
                    insert.push_values(&rows, |mut row, task| {
                        let data = json!({ "state": "working", "attempt": task.attempts });
                        row.push_bind(task.id.clone())
                            .push_bind(task.last_seq)
                            .push_bind("state")
                            .push_bind(data.to_string())
                            .push_bind(claim.now_ms);
                    });
                    insert.build().execute(&mut *tx).await?;
                }
            }
            // A tenant whose queue held nothing ready stops being offered until a submission
            // or the sweep says otherwise; either way it goes to the back of the line.
            let drained = room > 0 && i64::try_from(rows.len()).unwrap_or(0) < room;
            sqlx::query(
                "UPDATE task_tenants SET last_claim_ms = $2, \
                 waiting = CASE WHEN $3 THEN FALSE ELSE waiting END WHERE tenant_id = $1",
            )
            .bind(tenant)
            .bind(claim.now_ms)
            .bind(drained)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            rows
        });
        convert(rows)
    }

    /// Extends the leases of every task `owner` runs; returns the ids it still holds (a task
    /// missing from them lost its lease and must stop).
    pub async fn extend_leases(
        &self,
        owner: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<TaskId>, StoreError> {
        let ids: Vec<String> = with_pool!(self.db(), |pool| {
            sqlx::query_scalar(
                "UPDATE tasks SET lease_expires_ms = $2 \
                 WHERE lease_owner = $1 AND state = 'working' RETURNING id",
            )
            .bind(owner)
            .bind(now_ms + lease_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(ids.into_iter().map(TaskId::from).collect())
    }

    /// The tasks `owner` runs that were asked to cancel.
    pub async fn cancels_for(&self, owner: &str) -> Result<Vec<TaskId>, StoreError> {
        let ids: Vec<String> = with_pool!(self.db(), |pool| {
            sqlx::query_scalar(
                "SELECT id FROM tasks WHERE lease_owner = $1 AND cancel_requested = TRUE \
                 AND state = 'working'",
            )
            .bind(owner)
            .fetch_all(pool)
            .await?
        });
        Ok(ids.into_iter().map(TaskId::from).collect())
    }

    /// Appends events (log lines) to a task `owner` still runs; `false` when it does not.
    pub async fn append_task_events(
        &self,
        task: &TaskId,
        owner: &str,
        events: &[NewEvent],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            let held: Option<String> = sqlx::query_scalar(
                "SELECT id FROM tasks WHERE id = $1 AND lease_owner = $2 AND state = 'working'",
            )
            .bind(task.as_str())
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            if held.is_none() {
                return Ok(false);
            }
            append_events!(&mut *tx, task.as_str(), events, now_ms)?;
            tx.commit().await?;
            true
        }))
    }

    /// Puts a task `owner` runs back in the queue; `false` when it no longer holds it.
    pub async fn release_task(
        &self,
        task: &TaskId,
        owner: &str,
        release: &Release,
        logs: &[NewEvent],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut events = logs.to_vec();
        events.push(NewEvent::state(
            TaskState::Submitted,
            json!({ "reason": release.reason }),
        ));
        Ok(with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE tasks SET state = 'submitted', lease_owner = NULL, \
                 lease_expires_ms = NULL, not_before_ms = $3, \
                 attempts = CASE WHEN $4 THEN attempts ELSE attempts - 1 END \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'working'",
            )
            .bind(task.as_str())
            .bind(owner)
            .bind(release.not_before_ms)
            .bind(release.counts)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            // The row is locked by the update: a child ending from now on wakes the run
            // after this commits (`wake_parents!`); one that ended before is seen here.
            if !release.children.is_empty() {
                let mut ended = sqlx::QueryBuilder::new(
                    "SELECT COUNT(*) FROM tasks WHERE finished_at_ms IS NOT NULL AND id IN (",
                );
                let mut ids = ended.separated(", ");
                for child in &release.children {
                    ids.push_bind(child.as_str());
                }
                ids.push_unseparated(")");
                let ended: i64 = ended.build_query_scalar().fetch_one(&mut *tx).await?;
                if ended > 0 {
                    sqlx::query("UPDATE tasks SET not_before_ms = $2 WHERE id = $1")
                        .bind(task.as_str())
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            append_events!(&mut *tx, task.as_str(), &events, now_ms)?;
            mark_waiting!(&mut *tx, task.as_str());
            tx.commit().await?;
            true
        }))
    }

    /// Offers the tenant of queued task `task` to claimers again: its timer is due, and a
    /// claim that found nothing ready before may have stopped offering it.
    pub async fn offer_task(&self, task: &TaskId) -> Result<(), StoreError> {
        with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            mark_waiting!(&mut *tx, task.as_str());
            tx.commit().await?;
        });
        Ok(())
    }

    /// Recovers tasks whose lease expired (their worker died or stalled): back to the queue
    /// as a new attempt, or failed with `gave_up` once `max_attempts` attempts were made.
    /// Also marks every tenant with queued tasks as waiting, which repairs a flag a claim
    /// cleared while a submission raced it. Returns how many tasks it recovered.
    pub async fn sweep_tasks(
        &self,
        max_attempts: u32,
        gave_up: &serde_json::Value,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let expired: Vec<(String, i32)> = with_pool!(self.db(), |pool| {
            sqlx::query_as(
                "SELECT id, attempts FROM tasks WHERE state = 'working' \
                 AND lease_expires_ms < $1 ORDER BY lease_expires_ms LIMIT 500",
            )
            .bind(now_ms)
            .fetch_all(pool)
            .await?
        });
        let mut recovered = 0;
        let postgres = crate::tasks::steps::locks_rows(self.db());
        for (id, attempts) in &expired {
            let give_up = u32::try_from(*attempts).unwrap_or(u32::MAX) >= max_attempts;
            let state = if give_up { "failed" } else { "submitted" };
            let event = if give_up {
                NewEvent::state(
                    TaskState::Failed,
                    json!({ "attempt": attempts, "reason": "its worker stopped, and it had no attempts left" }),
                )
            } else {
                NewEvent::state(
                    TaskState::Submitted,
                    json!({ "reason": "its worker stopped (the lease expired); it runs again" }),
                )
            };
            let error = give_up.then(|| gave_up.to_string());
            let done = with_pool!(self.db(), |pool| {
                let mut tx = pool.begin_write().await?;
                let updated: Option<Option<String>> = sqlx::query_scalar(
                    "UPDATE tasks SET state = $3, lease_owner = NULL, lease_expires_ms = NULL, \
                     error = $4, finished_at_ms = CASE WHEN $5 THEN $2 ELSE NULL END \
                     WHERE id = $1 AND state = 'working' AND lease_expires_ms < $2 \
                     RETURNING parent_id",
                )
                .bind(id)
                .bind(now_ms)
                .bind(state)
                .bind(&error)
                .bind(give_up)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(parent) = &updated {
                    append_events!(&mut *tx, id, std::slice::from_ref(&event), now_ms)?;
                    if give_up {
                        let parents: Vec<String> = parent.iter().cloned().collect();
                        wake_parents!(&mut *tx, postgres, &parents, now_ms);
                    } else {
                        mark_waiting!(&mut *tx, id);
                    }
                }
                let updated = u64::from(updated.is_some());
                tx.commit().await?;
                updated > 0
            });
            recovered += usize::from(done);
        }
        with_pool!(self.db(), |pool| {
            sqlx::query(
                "UPDATE task_tenants SET waiting = TRUE WHERE waiting = FALSE AND tenant_id IN \
                 (SELECT DISTINCT tenant_id FROM tasks WHERE state = 'submitted')",
            )
            .execute(pool)
            .await?;
        });
        Ok(recovered)
    }

    /// Deletes up to `limit` tasks that ended before `before_ms` (their events with them),
    /// and idempotency keys older than `keys_before_ms`; returns how many tasks.
    pub async fn purge_tasks(
        &self,
        before_ms: i64,
        keys_before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        Ok(with_pool!(self.db(), |pool| {
            let purged = sqlx::query(
                "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks \
                 WHERE finished_at_ms < $1 ORDER BY finished_at_ms LIMIT $2)",
            )
            .bind(before_ms)
            .bind(i64::from(limit))
            .execute(pool)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM task_idempotency WHERE created_at_ms < $1")
                .bind(keys_before_ms)
                .execute(pool)
                .await?;
            purged
        }))
    }
}
