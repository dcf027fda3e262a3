//! `/api/v1/tasks`: durable, asynchronous invocations (docs/tasks.md). Handlers are
//! transport only: the task service (`omniforge_control::tasks`) submits, cancels, retries
//! and runs them.

pub mod actions;
pub mod create;
pub mod events;
pub(crate) mod follow;
pub mod list;
pub mod metrics;

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use omniforge_control::InvokeError;
use omniforge_control::TaskProblems;
use omniforge_control::tasks::SubmitError;
use omniforge_store::{Submission, Task, TaskId, TaskTarget};
use omniforge_types::SkillName;
use omniforge_workflow::engine::StepError;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::api::invoke::{UsageView, input_error, invoke_error, resolve_error};
use crate::error::{ApiError, ApiJson};

/// The problem documents stored as task errors: the REST problem table's, so a task's
/// `error` is what the same call would have answered synchronously.
pub struct HttpTaskProblems;

fn document(error: ApiError) -> serde_json::Value {
    serde_json::to_value(error.problem()).unwrap_or_default()
}

impl TaskProblems for HttpTaskProblems {
    fn failed(&self, error: InvokeError, skill: &SkillName) -> serde_json::Value {
        document(invoke_error(error, skill))
    }

    fn canceled(&self) -> serde_json::Value {
        document(ApiError::new(
            StatusCode::CONFLICT,
            "canceled",
            "the task was canceled before it started",
        ))
    }

    fn gave_up(&self, attempts: u32) -> serde_json::Value {
        document(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "worker-lost",
            format!(
                "the process running the task stopped during each of its {attempts} attempts; \
                 retry it if its skill can finish"
            ),
        ))
    }

    fn run_failed(&self, error: &StepError) -> serde_json::Value {
        let (status, kind) = match error.code.as_str() {
            "canceled" => (StatusCode::CONFLICT, "canceled"),
            "invalid-agent" => (StatusCode::INTERNAL_SERVER_ERROR, "invalid-agent"),
            _ => (StatusCode::BAD_GATEWAY, "step-failed"),
        };
        let mut problem = document(ApiError::new(status, kind, error.to_string()));
        if let Some(fields) = problem.as_object_mut() {
            if let Some(step) = &error.step {
                fields.insert("step".into(), step.clone().into());
            }
            fields.insert("code".into(), error.code.clone().into());
            if let Some(cause) = &error.problem {
                fields.insert("cause".into(), cause.clone());
            }
        }
        problem
    }
}

/// A task: one asynchronous run of a skill, or a run of an agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    /// Its id.
    pub id: String,
    /// `submitted`, `working`, `completed`, `failed` or `canceled`.
    #[schema(value_type = String, pattern = "^(submitted|working|completed|failed|canceled)$")]
    pub state: String,
    /// `namespace/name` of the skill (a skill's task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// The skill's version it runs, resolved at submission (a skill's task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version requirement it was submitted with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    /// The agent (an agent's run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The agent's version the run executes (an agent's run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<i64>,
    /// The run this one is a child run of (an `agent` step's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// The A2A context it belongs to (runs started over A2A).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Its input.
    #[schema(value_type = Object)]
    pub input: Box<RawValue>,
    /// Its output, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Box<RawValue>>,
    /// Why it failed or was canceled: a problem document (docs/api/errors.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
    /// What its last run used, once it ended after running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageView>,
    /// Higher runs first among the tenant's queued tasks.
    pub priority: i32,
    /// Not started before this time, unix ms.
    pub not_before_ms: i64,
    /// Runs started (a run lost with its process is run again as a new attempt).
    pub attempts: u32,
    /// The task this one retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    /// A cancel was asked for while it runs; it ends `canceled` shortly.
    pub cancel_requested: bool,
    /// Submission time, unix ms.
    pub created_at_ms: i64,
    /// When its first run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
}

impl From<Task> for TaskView {
    fn from(task: Task) -> Self {
        let (skill, version, requirement, agent_id, agent_version) = match task.target {
            TaskTarget::Skill {
                skill,
                requirement,
                version,
            } => (
                Some(skill.to_string()),
                Some(version.to_string()),
                requirement,
                None,
                None,
            ),
            TaskTarget::Agent {
                agent_id,
                agent_version,
            } => (
                None,
                None,
                None,
                Some(agent_id.to_string()),
                Some(agent_version),
            ),
        };
        Self {
            id: task.id.to_string(),
            state: task.state.as_str().to_owned(),
            skill,
            version,
            requirement,
            agent_id,
            agent_version,
            parent_id: task.parent_id.map(|id| id.to_string()),
            context_id: task.context_id,
            input: task.input,
            output: task.output,
            error: task.error,
            usage: task.usage.as_ref().map(UsageView::from),
            priority: task.priority,
            not_before_ms: task.not_before_ms,
            attempts: task.attempts,
            retry_of: task.retry_of.map(|id| id.to_string()),
            cancel_requested: task.cancel_requested,
            created_at_ms: task.created_at_ms,
            started_at_ms: task.started_at_ms,
            finished_at_ms: task.finished_at_ms,
        }
    }
}

/// A task answered with a status and, for a new one, its `Location`.
pub struct TaskAnswer {
    status: StatusCode,
    task: TaskView,
}

impl TaskAnswer {
    /// `status` with `task`.
    pub fn new(status: StatusCode, task: Task) -> Self {
        Self {
            status,
            task: task.into(),
        }
    }
}

impl IntoResponse for TaskAnswer {
    fn into_response(self) -> Response {
        let location = format!("/api/v1/tasks/{}", self.task.id);
        let mut response = (self.status, ApiJson(self.task)).into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        response
    }
}

/// The answer to a submission: 202 with a new task, 200 with the task an idempotency key
/// named before, or the problem.
pub fn submission_answer(
    submission: Result<Submission, SubmitError>,
    target: &str,
) -> Result<TaskAnswer, ApiError> {
    match submission {
        Ok(Submission::Created(task)) => Ok(TaskAnswer::new(StatusCode::ACCEPTED, task)),
        Ok(Submission::Replayed(task)) => Ok(TaskAnswer::new(StatusCode::OK, task)),
        Ok(Submission::KeyReused) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "this Idempotency-Key was used with another request body; use a new key",
        )),
        Ok(Submission::QueueFull { max_queued }) => Err(ApiError::too_many_requests(
            format!("the tenant already has {max_queued} tasks queued (max_queued_tasks)"),
            "max_queued_tasks",
            Duration::from_secs(5),
        )),
        Err(SubmitError::Resolve(error)) => Err(resolve_error(error, target)),
        Err(SubmitError::InvalidInput(error)) => Err(input_error(error)),
        Err(SubmitError::NoAgent) => Err(ApiError::not_found("agent")),
        Err(SubmitError::Store(error)) => Err(error.into()),
    }
}

/// The task id of a path: one that cannot be a task's names none the caller can see.
pub fn task_id(id: &str) -> Result<TaskId, ApiError> {
    let valid =
        id.len() <= 64 && id.starts_with("tsk_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(TaskId::new(id))
    } else {
        Err(ApiError::not_found("task"))
    }
}
