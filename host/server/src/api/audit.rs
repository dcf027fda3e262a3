//! `GET /api/v1/audit-events`: the tenant's audit log, newest first, filtered.

use axum::extract::State;
use omniforge_store::AuditFilter;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::views::AuditEventPage;
use crate::api::{next_cursor, page_limit};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiQuery};

/// Filters and paging for the audit log; every filter is optional and exact.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Action, e.g. `api_key.create`.
    pub action: Option<String>,
    /// Resource type, e.g. `user`.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Actor, as recorded.
    pub actor: Option<String>,
    /// Only events at or after this time, unix ms.
    pub since_ms: Option<i64>,
    /// Only events before this time, unix ms.
    pub until_ms: Option<i64>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Lists the tenant's audit events.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of events", body = AuditEventPage)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<ApiJson<AuditEventPage>, ApiError> {
    let limit = page_limit(query.limit)?;
    // Any text is a position in the log (ids compare as text); one this endpoint did not
    // give simply starts or ends the listing somewhere.
    let before_id = query.cursor;
    let filter = AuditFilter {
        action: query.action,
        resource_type: query.resource_type,
        resource_id: query.resource_id,
        actor: query.actor,
        since_ms: query.since_ms,
        until_ms: query.until_ms,
        before_id,
        limit,
    };
    let events = app
        .db
        .tenant(&principal.tenant)
        .list_audit_events(&filter)
        .await?;
    let next_cursor = next_cursor(&events, limit, |e| e.id.clone());
    Ok(ApiJson(AuditEventPage {
        items: events.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
