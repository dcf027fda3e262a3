//! A2A v1.0: every agent reachable over the Agent2Agent protocol at
//! `/a2a/{tenant-slug}/{agent-name}`, with its card under `/.well-known/agent-card.json`
//! there and the JSON-RPC binding at the URL itself.
//!
//! The transport is thin: a message starts an agent run through the task service exactly
//! as `POST /api/v1/agents/{id}/runs` does (same input schema, queue bound, idempotency and
//! audit), an A2A task *is* the run's task, and its stream is the run's stored events
//! followed from the database (`api::tasks::follow`), mapped once (`wire.rs`). The wire
//! types are the official SDK's (`a2a-lf`); its server crate is not used: it serves one
//! agent per router from memory, and pulls a gRPC stack this binary does not need.
//!
//! Credentials are an API key or token of the agent's tenant (`Authorization: Bearer`), as
//! everywhere. A missing or wrong one answers HTTP 401 and a missing permission 403, before
//! any JSON-RPC is read: that is how A2A clients expect transport-level refusals. Another
//! tenant's agent answers 404, exactly as one that does not exist.

mod card;
mod rpc;
mod send;
mod stream;
mod wire;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use omniforge_control::agents::AgentSpec;
use omniforge_store::{Agent, Tenant, TenantStatus};

use crate::app::AppState;
use crate::error::ApiError;
use crate::router::{authenticate, check_rate};

/// What a run takes: JSON in a data part, or text (JSON text, or a string).
const INPUT_MODES: [&str; 2] = ["application/json", "text/plain"];

/// What a run answers: its output as a data part, or as JSON text for clients that accept
/// only text.
const OUTPUT_MODES: [&str; 2] = ["application/json", "text/plain"];

/// The A2A routes: JSON-RPC behind credentials, and the card (public for public agents).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/a2a/{tenant}/{agent}",
            post(rpc::handle).route_layer(middleware::from_fn(require_credentials)),
        )
        .route(
            "/a2a/{tenant}/{agent}/.well-known/agent-card.json",
            get(card::card),
        )
}

/// The agent an A2A URL names, with its tenant and its definition.
pub(crate) struct Endpoint {
    tenant: Tenant,
    agent: Agent,
    spec: AgentSpec,
}

/// The agent `name` of the active tenant `slug`, if there is one.
async fn find(app: &AppState, slug: &str, name: &str) -> Result<Option<Endpoint>, ApiError> {
    // Names no tenant or agent can have are not worth a query.
    let plausible = |s: &str| {
        (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !plausible(slug) || !plausible(name) {
        return Ok(None);
    }
    let Some(tenant) = app.db.platform().tenant_by_slug(slug).await? else {
        return Ok(None);
    };
    if tenant.status != TenantStatus::Active {
        return Ok(None);
    }
    let Some(agent) = app.db.tenant(&tenant.id).agent_named(name).await? else {
        return Ok(None);
    };
    let spec = serde_json::from_value(agent.definition.clone())
        .map_err(|e| ApiError::internal(format!("agent {} definition: {e}", agent.id)))?;
    Ok(Some(Endpoint {
        tenant,
        agent,
        spec,
    }))
}

/// Authenticates a JSON-RPC request and checks its rates; the principal goes on to the
/// handler.
async fn require_credentials(mut request: Request, next: Next) -> Response {
    let principal = match authenticate!(&request) {
        Ok(principal) => principal,
        Err(error) => return refuse_unauthenticated(error),
    };
    let app = request.extensions().get::<AppState>().cloned();
    if let Some(app) = app
        && let Err(limited) = check_rate(&app, &principal).await
    {
        return limited.into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The answer to a request whose credentials do not hold: the problem, with the bearer
/// challenge on a 401.
fn refuse_unauthenticated(error: ApiError) -> Response {
    let unauthorized = error.status() == axum::http::StatusCode::UNAUTHORIZED;
    let mut response = error.into_response();
    if unauthorized {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"omniforge\""),
        );
    }
    response
}
