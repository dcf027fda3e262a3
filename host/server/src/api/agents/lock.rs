//! An agent's lockfile, moving its pins forward, and the workflow format's schema.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AgentAnswer, AgentView, PinView, agent_id, if_match};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::RequestId;

/// An agent's lockfile at its current version.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockView {
    /// The agent's version the pins belong to.
    pub version: i64,
    /// The pins.
    pub pins: Vec<PinView>,
    /// What no longer holds.
    pub warnings: Vec<String>,
}

/// The exact version and digest each skill of the agent runs.
#[utoipa::path(get, path = "/api/v1/agents/{id}/lock", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, description = "The lockfile", body = LockView),
              (status = 404, description = "No such agent in the caller's tenant", body = crate::error::Problem)))]
pub async fn lock(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<LockView>, ApiError> {
    let id = agent_id(&id)?;
    let agent = app
        .db
        .tenant(&principal.tenant)
        .agent(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let view = AgentView::try_from(agent)?;
    Ok(ApiJson(LockView {
        version: view.version,
        pins: view.lock,
        warnings: view.warnings,
    }))
}

/// Resolves the agent's skills again within their requirements and saves the new pins as
/// its next version (a yanked pin moves to the newest version that is not). With `If-Match`,
/// only if that is its version now.
#[utoipa::path(post, path = "/api/v1/agents/{id}/relock", tag = "agents",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Relock only if this `ETag` is the agent's version now")),
    responses((status = 200, description = "Saved as the next version with new pins", body = AgentView),
              (status = 404, description = "No such agent in the caller's tenant", body = crate::error::Problem),
              (status = 412, description = "`precondition-failed`: the agent was saved since", body = crate::error::Problem),
              (status = 422, description = "A skill no longer resolves (`problems` says which)", body = crate::error::Problem)))]
pub async fn relock(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<AgentAnswer, ApiError> {
    let id = agent_id(&id)?;
    let expected = if_match(&headers);
    let agent = app
        .agents
        .relock(
            &principal.tenant,
            &principal.audit(&request_id),
            &id,
            expected,
        )
        .await?;
    AgentAnswer::new(StatusCode::OK, agent)
}

/// The JSON Schema of workflow documents (docs/workflows.md explains the format and the
/// rules a schema cannot state).
#[utoipa::path(get, path = "/api/v1/schemas/workflow.json", tag = "agents",
    responses((status = 200, description = "A JSON Schema (draft 2020-12)", body = Object)))]
pub async fn workflow_schema() -> ApiJson<serde_json::Value> {
    ApiJson(omniforge_workflow::schema::json_schema())
}
