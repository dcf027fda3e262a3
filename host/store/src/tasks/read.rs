//! Reading a tenant's tasks: one, a filtered page, and what the metrics are computed from.

use std::collections::HashMap;

use crate::records::text_enum;
use omniforge_types::{AgentId, SkillName, TaskId};
use serde::Serialize;

use crate::audit::page_size;
use crate::database::with_pool;
use crate::error::StoreError;
use crate::rows::convert;
use crate::tasks::events::EventRow;
use crate::tasks::{TASK_COLUMNS, Task, TaskEvent, TaskRow, TaskState};
use crate::tenant::TenantStore;

text_enum!(
    /// The order of a task listing.
    TaskSort {
        /// By submission time (then id).
        Created = "created",
        /// By priority (then id).
        Priority = "priority",
    }
);

/// Which tasks a listing returns, in which order, after which cursor.
#[derive(Debug, Clone)]
pub struct TaskFilter {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks of this skill.
    pub skill: Option<SkillName>,
    /// Only runs of this agent.
    pub agent: Option<AgentId>,
    /// Only tasks submitted after this time, unix ms.
    pub created_after_ms: Option<i64>,
    /// Only tasks submitted before this time, unix ms.
    pub created_before_ms: Option<i64>,
    /// The order.
    pub sort: TaskSort,
    /// Descending instead of ascending.
    pub descending: bool,
    /// The previous page's cursor ([`TaskFilter::cursor_after`]).
    pub after: Option<String>,
    /// Page size (clamped to 1..=200).
    pub limit: u32,
}

impl TaskFilter {
    /// The cursor that continues after `task` in this filter's order.
    pub fn cursor_after(&self, task: &Task) -> String {
        let key = match self.sort {
            TaskSort::Created => task.created_at_ms,
            TaskSort::Priority => i64::from(task.priority),
        };
        format!("{key}:{}", task.id)
    }
}

/// How many of a tenant's tasks are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    /// The state.
    pub state: TaskState,
    /// How many.
    pub count: i64,
}

/// When one finished task of a skill was submitted, started and ended: what wait and run
/// times are computed from (agent runs are not in them).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskTiming {
    /// The skill.
    pub skill: String,
    /// When it could first have started (submission or `not_before_ms`, the later).
    pub ready_at_ms: i64,
    /// When its first run started (`None`: canceled before it started).
    pub started_at_ms: Option<i64>,
    /// When it ended.
    pub finished_at_ms: i64,
}

/// A task with its events, as a tenant export holds it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedTask {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// Its events, in order.
    pub events: Vec<TaskEvent>,
}

/// An event with the task it belongs to, as an export reads them.
#[derive(sqlx::FromRow)]
struct ExportEventRow {
    task_id: String,
    #[sqlx(flatten)]
    event: EventRow,
}

impl TenantStore<'_> {
    /// Every task of the tenant with its events, oldest first, read in one transaction so
    /// that tasks and events agree (for exports).
    pub(crate) async fn export_tasks(&self) -> Result<Vec<ExportedTask>, StoreError> {
        let tasks_sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE tenant_id = $1 ORDER BY created_at_ms, id"
        );
        let (tasks, events): (Vec<TaskRow>, Vec<ExportEventRow>) = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            let tasks = sqlx::query_as(sqlx::AssertSqlSafe(tasks_sql))
                .bind(self.tenant_id().as_str())
                .fetch_all(&mut *tx)
                .await?;
            let events = sqlx::query_as(
                "SELECT e.task_id, e.seq, e.kind, e.data, e.at_ms FROM task_events e \
                     JOIN tasks t ON t.id = e.task_id WHERE t.tenant_id = $1 \
                     ORDER BY e.task_id, e.seq",
            )
            .bind(self.tenant_id().as_str())
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            (tasks, events)
        });
        let mut by_task: HashMap<String, Vec<TaskEvent>> = HashMap::new();
        for row in events {
            by_task
                .entry(row.task_id)
                .or_default()
                .push(row.event.try_into()?);
        }
        tasks
            .into_iter()
            .map(|row| {
                let task = Task::try_from(row)?;
                let events = by_task.remove(task.id.as_str()).unwrap_or_default();
                Ok(ExportedTask { task, events })
            })
            .collect()
    }

    /// The tenant's task `id`.
    pub async fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2");
        let row: Option<TaskRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(Task::try_from).transpose()
    }

    /// One page of the tenant's tasks.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        let column = match filter.sort {
            TaskSort::Created => "created_at_ms",
            TaskSort::Priority => "priority",
        };
        let (direction, beyond) = if filter.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let cursor = match &filter.after {
            None => None,
            // A cursor this listing did not give ends it.
            Some(after) => match split(after) {
                Some(cursor) => Some(cursor),
                None => return Ok(Vec::new()),
            },
        };
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE tenant_id = $1 \
             AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR skill = $3) \
             AND ($4 IS NULL OR created_at_ms > $4) AND ($5 IS NULL OR created_at_ms < $5) \
             AND ($6 IS NULL OR {column} {beyond} $6 OR ({column} = $6 AND id {beyond} $7)) \
             AND ($9 IS NULL OR agent_id = $9) \
             ORDER BY {column} {direction}, id {direction} LIMIT $8"
        );
        let (key, id) = cursor.unzip();
        let rows: Vec<TaskRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(filter.state.map(TaskState::as_str))
                .bind(filter.skill.as_ref().map(SkillName::as_str))
                .bind(filter.created_after_ms)
                .bind(filter.created_before_ms)
                .bind(key)
                .bind(id)
                .bind(page_size(filter.limit))
                .bind(filter.agent.as_ref().map(AgentId::as_str))
                .fetch_all(pool)
                .await?
        });
        convert(rows)
    }

    /// How many of the tenant's tasks are in each state (states without tasks left out),
    /// and how many queued ones could start now.
    pub async fn task_counts(&self, now_ms: i64) -> Result<(Vec<StateCount>, i64), StoreError> {
        let tenant = self.tenant_id().as_str();
        let (rows, ready): (Vec<(String, i64)>, i64) = with_pool!(self.db(), |pool| {
            let rows = sqlx::query_as(
                "SELECT state, COUNT(*) FROM tasks WHERE tenant_id = $1 GROUP BY state",
            )
            .bind(tenant)
            .fetch_all(pool)
            .await?;
            let ready = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tasks WHERE tenant_id = $1 AND state = 'submitted' \
                 AND not_before_ms <= $2",
            )
            .bind(tenant)
            .bind(now_ms)
            .fetch_one(pool)
            .await?;
            (rows, ready)
        });
        let counts = rows
            .into_iter()
            .map(|(state, count)| {
                let state = state
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("task state: {e}")))?;
                Ok(StateCount { state, count })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((counts, ready))
    }

    /// The timings of the tenant's tasks that ended after `since_ms`, at most `limit`, the
    /// most recent first.
    pub async fn task_timings(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<TaskTiming>, StoreError> {
        Ok(with_pool!(self.db(), |pool| {
            sqlx::query_as(
                "SELECT skill, CASE WHEN not_before_ms > created_at_ms THEN not_before_ms \
                 ELSE created_at_ms END AS ready_at_ms, started_at_ms, finished_at_ms \
                 FROM tasks WHERE tenant_id = $1 AND finished_at_ms >= $2 \
                 AND skill IS NOT NULL ORDER BY finished_at_ms DESC LIMIT $3",
            )
            .bind(self.tenant_id().as_str())
            .bind(since_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }
}

fn split(cursor: &str) -> Option<(i64, String)> {
    let (key, id) = cursor.split_once(':')?;
    Some((key.parse().ok()?, id.to_owned()))
}
