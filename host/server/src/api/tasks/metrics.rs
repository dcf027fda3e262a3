//! `GET /api/v1/tasks/metrics`: counts per state, queue depth, and wait and run times per
//! skill over a recent window.

use axum::extract::{Query, State};
use omniforge_control::tasks::TaskMetrics;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};

/// The window.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// How far back wait and run times reach, ms (default 15 minutes, at most 7 days).
    #[param(minimum = 1000, maximum = 604_800_000)]
    pub window_ms: Option<u64>,
}

/// The default window: 15 minutes.
const DEFAULT_WINDOW_MS: u64 = 15 * 60_000;

/// The tenant's task metrics.
#[utoipa::path(get, path = "/api/v1/tasks/metrics", tag = "tasks", params(MetricsQuery),
    responses((status = 200, description = "Counts per state, queue depth, and per-skill wait and run time percentiles (ms) of the tasks that ended in the window", body = TaskMetrics)))]
pub async fn metrics(
    State(app): State<AppState>,
    principal: Principal,
    Query(query): Query<MetricsQuery>,
) -> Result<ApiJson<TaskMetrics>, ApiError> {
    let window = query.window_ms.unwrap_or(DEFAULT_WINDOW_MS);
    if !(1000..=604_800_000).contains(&window) {
        return Err(
            ApiError::bad_request("window_ms: must be between 1000 and 604800000")
                .with("field", "window_ms"),
        );
    }
    Ok(ApiJson(app.tasks.metrics(&principal.tenant, window).await?))
}
