//! `GET /api/v1/tasks`: the tenant's tasks, filtered and sorted, a page at a time.

use axum::extract::{Query, State};
use omniforge_store::{TaskFilter, TaskSort, TaskState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::TaskView;
use crate::api::{next_cursor, page_limit};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};

/// Which tasks to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTasks {
    /// Only tasks in this state.
    #[param(pattern = "^(submitted|working|completed|failed|canceled)$")]
    pub state: Option<String>,
    /// Only tasks of this skill (`namespace/name`).
    #[param(pattern = "^[^/]+/[^/]+$", min_length = 3, max_length = 200)]
    pub skill: Option<String>,
    /// Only tasks submitted after this time, unix ms.
    pub created_after_ms: Option<i64>,
    /// Only tasks submitted before this time, unix ms.
    pub created_before_ms: Option<i64>,
    /// `created` (default) or `priority`.
    #[param(pattern = "^(created|priority)$")]
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A page of tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    /// The tasks.
    pub items: Vec<TaskView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Lists the tenant's tasks, newest first unless asked otherwise.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(ListTasks),
    responses((status = 200, description = "A page of tasks", body = TaskPage)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    Query(query): Query<ListTasks>,
) -> Result<ApiJson<TaskPage>, ApiError> {
    page(&app, &principal, query, None).await.map(ApiJson)
}

/// One page of the tenant's tasks as `query` asks, only runs of `agent` when given (the one
/// listing of `GET /tasks` and `GET /agents/{id}/runs`).
pub async fn page(
    app: &AppState,
    principal: &Principal,
    query: ListTasks,
    agent: Option<omniforge_store::AgentId>,
) -> Result<TaskPage, ApiError> {
    let bad = |field: &str, says: &str| {
        ApiError::bad_request(format!("{field}: {says}")).with("field", field)
    };
    let state = query
        .state
        .as_deref()
        .map(str::parse::<TaskState>)
        .transpose()
        .map_err(|e| bad("state", &e))?;
    let sort = query
        .sort
        .as_deref()
        .map(str::parse::<TaskSort>)
        .transpose()
        .map_err(|e| bad("sort", &e))?
        .unwrap_or(TaskSort::Created);
    let descending = match query.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(bad("order", "asc or desc")),
    };
    let limit = page_limit(query.limit)?;
    // Every parameter is checked before a skill name no skill can have answers the empty
    // page it must: a malformed `sort` is a 400 whatever else the query says.
    if let Some(skill) = &query.skill {
        crate::api::rules::SKILL_REF.check_query(skill)?;
    }
    let skill = match query.skill.as_deref().map(str::parse) {
        None => None,
        Some(Ok(skill)) => Some(skill),
        // A name no skill can have: no task has it either.
        Some(Err(_)) => {
            return Ok(TaskPage {
                items: Vec::new(),
                next_cursor: None,
            });
        }
    };
    let filter = TaskFilter {
        state,
        skill,
        agent,
        created_after_ms: query.created_after_ms,
        created_before_ms: query.created_before_ms,
        sort,
        descending,
        after: query.cursor,
        limit,
    };
    let tasks = app.db.tenant(&principal.tenant).list_tasks(&filter).await?;
    let next_cursor = next_cursor(&tasks, limit, |t| filter.cursor_after(t));
    Ok(TaskPage {
        items: tasks.into_iter().map(TaskView::from).collect(),
        next_cursor,
    })
}
