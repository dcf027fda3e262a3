//! Durable tasks: asynchronous runs of a skill, their events, and the queue workers claim
//! them from.
//!
//! A tenant reaches its tasks through [`TenantStore`](crate::TenantStore) (submit, read,
//! list, cancel, delete, events); workers reach the queue through
//! [`Platform`](crate::Platform) (claim, extend leases, finish, put back, sweep). Every state
//! change appends an event in the transaction that makes it, numbered per task from 1, so
//! the event stream is the task's history and cannot disagree with its row.

mod events;
mod finish;
mod manage;
mod queue;
mod read;
mod signals;
mod steps;
mod steps_pg;
mod submit;

use crate::records::text_enum;
use omniforge_types::{AgentId, SkillName, TaskId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::StoreError;

pub use events::{EventKind, NewEvent, TaskEvent};
pub use finish::{Ending, Finish};
pub use manage::Canceled;
pub use queue::{Claim, Release};
pub use read::{ExportedTask, StateCount, TaskFilter, TaskSort, TaskTiming};
pub use signals::TaskListener;
pub use steps::{JournalRow, StepChange, StepWrite};
pub use submit::{Idempotency, NewTask, QueuedTask, Submission};

text_enum!(
    /// Where a task is in its life, as A2A v1.0 names task states (lower-case). The
    /// reserved `input-required` and `rejected` belong to agents (step 10).
    TaskState {
        /// Queued: waiting for a worker (or for its `not_before_ms`).
        Submitted = "submitted",
        /// A worker runs it.
        Working = "working",
        /// It ended with an output.
        Completed = "completed",
        /// It ended without one; `error` says why.
        Failed = "failed",
        /// It was canceled, before it started or while it ran.
        Canceled = "canceled",
    }
);

impl TaskState {
    /// Whether the task has ended (no event follows the one that made it so).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

/// What a task's run used, as the worker recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUsage {
    /// Fuel consumed.
    pub fuel: u64,
    /// Wall time, microseconds.
    pub wall_us: u64,
    /// Peak linear memory, bytes.
    pub peak_memory_bytes: u64,
    /// Log lines written.
    pub log_messages: u32,
    /// Outbound HTTP requests.
    pub http_requests: u32,
    /// Skills it called.
    pub skill_calls: u32,
}

/// What a task runs: one skill's version, or one agent's version (a run of the agent).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TaskTarget {
    /// A skill.
    Skill {
        /// The skill.
        skill: SkillName,
        /// The version requirement as asked (`None`: the newest).
        requirement: Option<String>,
        /// The version resolved at submission, which every attempt runs.
        version: semver::Version,
    },
    /// An agent's run.
    Agent {
        /// The agent.
        agent_id: AgentId,
        /// The agent's version the run executes (its definition and pins), whatever is
        /// saved after it started.
        agent_version: i64,
    },
}

impl TaskTarget {
    /// The skill, for a skill's task.
    pub fn skill(&self) -> Option<&SkillName> {
        match self {
            Self::Skill { skill, .. } => Some(skill),
            Self::Agent { .. } => None,
        }
    }

    /// The agent, for an agent's run.
    pub fn agent(&self) -> Option<(&AgentId, i64)> {
        match self {
            Self::Agent {
                agent_id,
                agent_version,
            } => Some((agent_id, *agent_version)),
            Self::Skill { .. } => None,
        }
    }
}

/// A task as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    /// Its id (`tsk_…`).
    pub id: TaskId,
    /// The tenant it runs for.
    pub tenant_id: TenantId,
    /// What it runs.
    #[serde(flatten)]
    pub target: TaskTarget,
    /// The run this one is a child run of (an `agent` step's).
    pub parent_id: Option<TaskId>,
    /// The A2A context it belongs to (runs started over A2A).
    pub context_id: Option<String>,
    /// The input, JSON.
    pub input: Box<RawValue>,
    /// Its state.
    pub state: TaskState,
    /// Higher runs first among the tenant's queued tasks.
    pub priority: i32,
    /// It is not started before this time, unix ms.
    pub not_before_ms: i64,
    /// Runs started, the current one included.
    pub attempts: u32,
    /// The task this one retries.
    pub retry_of: Option<TaskId>,
    /// A cancel was asked for while it ran; its worker stops it.
    pub cancel_requested: bool,
    /// The output, once completed.
    pub output: Option<Box<RawValue>>,
    /// Why it failed or was canceled: a problem document.
    pub error: Option<serde_json::Value>,
    /// What its last run used.
    pub usage: Option<TaskUsage>,
    /// The last event's sequence number.
    pub last_seq: i64,
    /// Who submitted it.
    pub created_by: String,
    /// The request that submitted it.
    pub request_id: String,
    /// Submission time, unix ms.
    pub created_at_ms: i64,
    /// When its first run started.
    pub started_at_ms: Option<i64>,
    /// When it ended.
    pub finished_at_ms: Option<i64>,
}

pub(crate) const TASK_COLUMNS: &str = "id, tenant_id, skill, requirement, version, agent_id, \
     agent_version, parent_id, context_id, input, state, \
     priority, not_before_ms, attempts, retry_of, cancel_requested, output, error, usage, \
     last_seq, created_by, request_id, created_at_ms, started_at_ms, finished_at_ms";

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    id: String,
    tenant_id: String,
    skill: Option<String>,
    requirement: Option<String>,
    version: Option<String>,
    agent_id: Option<String>,
    agent_version: Option<i64>,
    parent_id: Option<String>,
    context_id: Option<String>,
    input: String,
    state: String,
    priority: i32,
    not_before_ms: i64,
    attempts: i32,
    retry_of: Option<String>,
    cancel_requested: bool,
    output: Option<String>,
    error: Option<String>,
    usage: Option<String>,
    last_seq: i64,
    created_by: String,
    request_id: String,
    created_at_ms: i64,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("task {what}: {detail}"))
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;

    fn try_from(row: TaskRow) -> Result<Self, StoreError> {
        let json =
            |what: &str, text: String| RawValue::from_string(text).map_err(|e| corrupt(what, e));
        let target = match (row.skill, row.version, row.agent_id, row.agent_version) {
            (Some(skill), Some(version), None, None) => TaskTarget::Skill {
                skill: skill.parse().map_err(|e| corrupt("skill", e))?,
                requirement: row.requirement,
                version: version.parse().map_err(|e| corrupt("version", e))?,
            },
            (None, None, Some(agent), Some(agent_version)) => TaskTarget::Agent {
                agent_id: AgentId::from(agent),
                agent_version,
            },
            _ => return Err(corrupt("target", "neither one skill nor one agent")),
        };
        Ok(Task {
            target,
            parent_id: row.parent_id.map(TaskId::from),
            context_id: row.context_id,
            input: json("input", row.input)?,
            state: row.state.parse().map_err(|e| corrupt("state", e))?,
            output: row.output.map(|o| json("output", o)).transpose()?,
            error: row
                .error
                .map(|e| serde_json::from_str(&e).map_err(|e| corrupt("error", e)))
                .transpose()?,
            usage: row
                .usage
                .map(|u| serde_json::from_str(&u).map_err(|e| corrupt("usage", e)))
                .transpose()?,
            id: TaskId::from(row.id),
            tenant_id: TenantId::from(row.tenant_id),
            priority: row.priority,
            not_before_ms: row.not_before_ms,
            attempts: u32::try_from(row.attempts).map_err(|e| corrupt("attempts", e))?,
            retry_of: row.retry_of.map(TaskId::from),
            cancel_requested: row.cancel_requested,
            last_seq: row.last_seq,
            created_by: row.created_by,
            request_id: row.request_id,
            created_at_ms: row.created_at_ms,
            started_at_ms: row.started_at_ms,
            finished_at_ms: row.finished_at_ms,
        })
    }
}
