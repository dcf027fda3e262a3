//! Creating, listing, reading, updating and deleting agents.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use omniforge_control::agents::AgentSpec;
use omniforge_store::{AgentFilter, AgentSort, AgentStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::AgentBody;
use super::{AgentAnswer, AgentView, agent_id, if_match};
use crate::api::{next_cursor, page_limit};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::RequestId;

/// Creates an agent: its workflow is checked (problems name the step and field), every skill
/// it uses is resolved for the tenant and pinned, and agent steps that would form a cycle
/// are refused.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents",
    request_body(description = "The definition, as JSON or YAML", content(
        (AgentSpec = "application/json"), (AgentSpec = "application/yaml"))),
    responses((status = 201, description = "Created at version 1; `ETag` and `Location` name it", body = AgentView),
              (status = 409, description = "Another agent of the tenant has the name", body = crate::error::Problem),
              (status = 422, description = "`invalid-request`: `problems` lists each problem with its `field` (a JSON pointer) and `step`", body = crate::error::Problem)))]
pub async fn create(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    AgentBody(spec): AgentBody,
) -> Result<AgentAnswer, ApiError> {
    let agent = app
        .agents
        .create(&principal.tenant, &principal.audit(&request_id), &spec)
        .await?;
    AgentAnswer::new(StatusCode::CREATED, agent)
}

/// Which agents to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAgents {
    /// Only agents that use this skill (`namespace/name`).
    #[param(pattern = "^[^/]+/[^/]+$", min_length = 3, max_length = 200)]
    pub skill: Option<String>,
    /// Only agents in this status.
    #[param(pattern = "^(ready|warning)$")]
    pub status: Option<String>,
    /// `name` (default) or `created`.
    #[param(pattern = "^(name|created)$")]
    pub sort: Option<String>,
    /// `asc` (default) or `desc`.
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A page of agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentPage {
    /// The agents.
    pub items: Vec<AgentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Lists the tenant's agents (deleted ones never), by name unless asked otherwise.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(ListAgents),
    responses((status = 200, description = "A page of agents", body = AgentPage)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    Query(query): Query<ListAgents>,
) -> Result<ApiJson<AgentPage>, ApiError> {
    let bad = |field: &str, says: &str| {
        ApiError::bad_request(format!("{field}: {says}")).with("field", field)
    };
    let status = query
        .status
        .as_deref()
        .map(str::parse::<AgentStatus>)
        .transpose()
        .map_err(|e| bad("status", &e))?;
    let sort = query
        .sort
        .as_deref()
        .map(str::parse::<AgentSort>)
        .transpose()
        .map_err(|e| bad("sort", &e))?
        .unwrap_or(AgentSort::Name);
    let descending = match query.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(bad("order", "asc or desc")),
    };
    // Checked before an impossible skill name answers the empty page.
    let limit = page_limit(query.limit)?;
    if let Some(skill) = &query.skill {
        crate::api::rules::SKILL_REF.check_query(skill)?;
    }
    let skill = match query.skill.as_deref().map(str::parse) {
        None => None,
        Some(Ok(skill)) => Some(skill),
        // A name no skill can have: no agent uses it either.
        Some(Err(_)) => {
            return Ok(ApiJson(AgentPage {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
    };
    let filter = AgentFilter {
        skill,
        status,
        sort,
        descending,
        after: query.cursor,
        limit,
    };
    let agents = app
        .db
        .tenant(&principal.tenant)
        .list_agents(&filter)
        .await?;
    let next_cursor = next_cursor(&agents, filter.limit, |a| filter.cursor_after(a));
    let items = agents
        .into_iter()
        .map(AgentView::try_from)
        .collect::<Result<_, _>>()?;
    Ok(ApiJson(AgentPage { items, next_cursor }))
}

/// An agent of the caller's tenant at its current version.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, description = "The agent; `ETag` is its version", body = AgentView),
              (status = 404, description = "No such agent in the caller's tenant (or it was deleted)", body = crate::error::Problem)))]
pub async fn get(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<AgentAnswer, ApiError> {
    let id = agent_id(&id)?;
    let agent = app
        .db
        .tenant(&principal.tenant)
        .agent(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    AgentAnswer::new(StatusCode::OK, agent)
}

/// Replaces an agent's definition as its next version. Requires `If-Match` with the `ETag`
/// the caller read, so two editors cannot overwrite each other unseen.
#[utoipa::path(put, path = "/api/v1/agents/{id}", tag = "agents",
    request_body(description = "The definition, as JSON or YAML", content(
        (AgentSpec = "application/json"), (AgentSpec = "application/yaml"))),
    params(("id" = String, Path), ("If-Match" = String, Header, description = "The `ETag` of the version this change is based on")),
    responses((status = 200, description = "Saved as the next version", body = AgentView),
              (status = 404, description = "No such agent in the caller's tenant", body = crate::error::Problem),
              (status = 409, description = "Another agent of the tenant has the name", body = crate::error::Problem),
              (status = 412, description = "`precondition-failed`: the agent was saved since (`version` says its version now)", body = crate::error::Problem),
              (status = 422, description = "`invalid-request`: `problems` lists each problem with its `field` and `step`", body = crate::error::Problem),
              (status = 428, description = "`precondition-required`: no `If-Match`", body = crate::error::Problem)))]
pub async fn update(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    headers: HeaderMap,
    AgentBody(spec): AgentBody,
) -> Result<AgentAnswer, ApiError> {
    let id = agent_id(&id)?;
    let expected = if_match(&headers);
    let agent = app
        .agents
        .update(
            &principal.tenant,
            &principal.audit(&request_id),
            &id,
            expected,
            &spec,
        )
        .await?;
    AgentAnswer::new(StatusCode::OK, agent)
}

/// Deletes an agent: it is gone from reads and listings and its name is free; runs that
/// started on it keep the version they run. With `If-Match`, only if that is its version.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "Delete only if this `ETag` is the agent's version now")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such agent in the caller's tenant", body = crate::error::Problem),
              (status = 412, description = "`precondition-failed`: the agent was saved since", body = crate::error::Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = agent_id(&id)?;
    let expected = if_match(&headers);
    app.agents
        .delete(
            &principal.tenant,
            &principal.audit(&request_id),
            &id,
            expected,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
