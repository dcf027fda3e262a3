//! One task: read it, cancel it, retry it, delete it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use omniforge_store::Canceled;

use super::{TaskAnswer, TaskView, submission_answer, task_id};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::RequestId;

/// A task of the caller's tenant.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, description = "The task", body = TaskView),
              (status = 404, description = "No such task in the caller's tenant", body = crate::error::Problem)))]
pub async fn get(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<TaskView>, ApiError> {
    let id = task_id(&id)?;
    let task = app
        .db
        .tenant(&principal.tenant)
        .task(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    Ok(ApiJson(task.into()))
}

/// Cancels a task: a queued one never starts (it is `canceled` at once); a running one is
/// stopped within a second on whichever server runs it, is charged what it used, and ends
/// `canceled` (`cancel_requested` is true until then).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path)),
    responses((status = 202, description = "Canceled, or being stopped", body = TaskView),
              (status = 404, description = "No such task in the caller's tenant", body = crate::error::Problem),
              (status = 409, description = "The task has already ended", body = crate::error::Problem)))]
pub async fn cancel(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<TaskAnswer, ApiError> {
    let id = task_id(&id)?;
    let canceled = app
        .tasks
        .cancel(&principal.tenant, &principal.audit(&request_id), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    match canceled {
        Canceled::Dequeued(task) | Canceled::Requested(task) => {
            Ok(TaskAnswer::new(StatusCode::ACCEPTED, task))
        }
        Canceled::AlreadyEnded(task) => Err(ApiError::conflict(format!(
            "the task has already ended ({})",
            task.state
        ))
        .with("state", task.state.as_str())),
    }
}

/// Runs a failed or canceled task again as a new task, whose `retry_of` names this one (the
/// version requirement is resolved again).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry", tag = "tasks", params(("id" = String, Path)),
    responses((status = 202, description = "The new task; `Location` names it", body = TaskView),
              (status = 404, description = "No such task in the caller's tenant, or its skill is gone", body = crate::error::Problem),
              (status = 409, description = "The task is not failed or canceled", body = crate::error::Problem),
              (status = 429, description = "The tenant's queue is full (`max_queued_tasks`)", body = crate::error::Problem)))]
pub async fn retry(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<TaskAnswer, ApiError> {
    let id = task_id(&id)?;
    let store = app.db.tenant(&principal.tenant);
    let earlier = store
        .task(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("task"))?;
    let submission = app
        .tasks
        .retry(&principal.tenant, &id, principal.actor(), request_id)
        .await
        .transpose()
        .ok_or_else(|| ApiError::not_found("task"))?;
    let target = match &earlier.target {
        omniforge_store::TaskTarget::Skill { skill, .. } => skill.to_string(),
        omniforge_store::TaskTarget::Agent { agent_id, .. } => agent_id.to_string(),
    };
    submission_answer(submission, &target)
}

/// Deletes a task that has ended, with its events.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such task in the caller's tenant", body = crate::error::Problem),
              (status = 409, description = "The task has not ended (cancel it first)", body = crate::error::Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = task_id(&id)?;
    let deleted = app
        .db
        .tenant(&principal.tenant)
        .delete_task(&principal.audit(&request_id), &id)
        .await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("task"))
    }
}
