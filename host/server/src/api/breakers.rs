//! `GET /api/v1/breakers`: the circuit breakers of the tenant's workflow steps on this
//! server (docs/workflows.md). Each replica keeps its own.

use axum::extract::State;
use omniforge_store::now_ms;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiJson;

/// One breaker.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerView {
    /// The skill it guards, `namespace/name`.
    pub skill: String,
    /// `closed`, `open` (steps fail fast until `until_ms`) or `half-open` (one probe goes
    /// through; its outcome closes or reopens it).
    #[schema(value_type = String, pattern = "^(closed|open|half-open)$")]
    pub state: String,
    /// While open: when a probe may go through, unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Calls in the current window.
    pub calls: u32,
    /// Failed calls in the current window.
    pub failures: u32,
}

/// The tenant's breakers.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerList {
    /// By skill.
    pub items: Vec<BreakerView>,
}

/// Lists the circuit breakers of the tenant's skills that workflow steps have called on this
/// server (a skill whose calls never failed has none).
#[utoipa::path(get, path = "/api/v1/breakers", tag = "agents",
    responses((status = 200, description = "The tenant's breakers", body = BreakerList)))]
pub async fn list(State(app): State<AppState>, principal: Principal) -> ApiJson<BreakerList> {
    let now = u64::try_from(now_ms()).unwrap_or(0);
    let items = app
        .tasks
        .breakers()
        .of_tenant(&principal.tenant, now)
        .into_iter()
        .map(|b| {
            use omniforge_workflow::reliability::BreakerState;
            let (state, until_ms) = match b.state {
                BreakerState::Closed => ("closed", None),
                BreakerState::Open { until_ms } => ("open", Some(until_ms)),
                BreakerState::HalfOpen => ("half-open", None),
            };
            BreakerView {
                skill: b.skill.to_string(),
                state: state.to_owned(),
                until_ms,
                calls: b.calls,
                failures: b.failures,
            }
        })
        .collect();
    ApiJson(BreakerList { items })
}
