//! `/api/v1/agents/{id}/runs`: starting a run of an agent (a durable task whose events are
//! the steps' journal) and listing its runs. A run is read, watched, canceled and retried
//! through `/api/v1/tasks/{id}` like any task.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use omniforge_control::tasks::SubmitRun;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::agent_id;
use crate::api::tasks::create::{canonical, idempotency_key};
use crate::api::tasks::list::{ListTasks, TaskPage, page};
use crate::api::tasks::{TaskAnswer, submission_answer};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::RequestId;

/// A run to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// The run's input (checked against the agent's `input_schema`).
    #[schema(value_type = Object)]
    pub input: Box<RawValue>,
    /// Higher runs first among the tenant's queued tasks (default 0).
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i32>,
}

/// Starts a run of the agent's current version: a task that runs its workflow step by
/// step, each step journaled before the run moves on. With `Idempotency-Key`, the same key
/// and body answer the same run (200).
#[utoipa::path(post, path = "/api/v1/agents/{id}/runs", tag = "agents", request_body = CreateRun,
    params(("id" = String, Path, description = "The agent's id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes the submission safe to retry: remembered per tenant for at least 24 hours")),
    responses((status = 202, description = "Queued; `Location` names the run's task", body = crate::api::tasks::TaskView),
              (status = 200, description = "The run this Idempotency-Key started before", body = crate::api::tasks::TaskView),
              (status = 404, description = "No such agent", body = crate::error::Problem),
              (status = 422, description = "`invalid-input`, or `idempotency-key-reused`", body = crate::error::Problem),
              (status = 429, description = "The tenant's queue is full (`max_queued_tasks`), or a rate limit; see `Retry-After`", body = crate::error::Problem)))]
pub async fn start(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateRun>,
) -> Result<TaskAnswer, ApiError> {
    let agent = agent_id(&id)?;
    let priority = body.priority.unwrap_or(0);
    if !(-1000..=1000).contains(&priority) {
        return Err(
            ApiError::invalid("priority: must be between -1000 and 1000").with("field", "priority"),
        );
    }
    let fingerprint = canonical(&serde_json::json!({
        "agent": agent.as_str(),
        "input": serde_json::from_str::<serde_json::Value>(body.input.get()).unwrap_or_default(),
        "priority": priority,
    }));
    let idempotency = idempotency_key(&headers)?.map(|key| {
        let digest = hex::encode(Sha256::digest(fingerprint.as_bytes()));
        (key, digest)
    });
    let submission = app
        .tasks
        .submit_run(
            &principal.tenant,
            SubmitRun {
                agent: agent.clone(),
                input: body.input,
                priority,
                created_by: principal.actor(),
                request_id,
                idempotency,
                parent: None,
                context: None,
            },
        )
        .await;
    submission_answer(submission, agent.as_str())
}

/// Lists the agent's runs (its tasks), newest first unless asked otherwise.
#[utoipa::path(get, path = "/api/v1/agents/{id}/runs", tag = "agents",
    params(("id" = String, Path, description = "The agent's id"), ListTasks),
    responses((status = 200, description = "A page of the agent's runs", body = TaskPage),
              (status = 404, description = "No such agent", body = crate::error::Problem)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(query): Query<ListTasks>,
) -> Result<ApiJson<TaskPage>, ApiError> {
    let agent = agent_id(&id)?;
    if app
        .db
        .tenant(&principal.tenant)
        .agent(&agent)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("agent"));
    }
    page(&app, &principal, query, Some(agent))
        .await
        .map(ApiJson)
}
