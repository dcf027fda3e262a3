//! Every route, with the access it requires, in one place.
//!
//! A route is added only through `guard`, which takes its [`Access`]: the access is both
//! enforced (a layer on the route) and written into the OpenAPI document as the operation's
//! `security` (`[]` for public routes, the permission as the bearer scope otherwise). Tests
//! walk the OpenAPI document, so they walk exactly the routes served.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{
    agents, api_keys, audit, breakers, docs, health, installations, invoke, me, publish, secrets,
    skills, tasks, tenants, usage, users, versions,
};
use crate::app::AppState;
use crate::auth::rbac::{Access, Permission};
use crate::auth::{Credential, Principal};
use crate::contract::{ApiDoc, document, operations};
use crate::error::ApiError;
use crate::mcp;
use crate::middleware as mw;
use crate::ratelimit::{CredentialKey, Refused};
use omniforge_control::metrics::Refusal;

/// Declares a route's access: enforced by a layer on the route, and documented as the
/// operation's security requirement with the answers the guard can give
/// ([`crate::contract::document`]).
fn guard(
    access: Access,
    (schemas, mut paths, method_router): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    for item in paths.paths.values_mut() {
        for operation in operations(item) {
            document(operation, access);
        }
    }
    let method_router = match access {
        Access::Public => method_router,
        // `route_layer`, so a wrong method still answers 405, not 401.
        access => method_router.route_layer(middleware::from_fn(move |request, next| {
            authorize(access, request, next)
        })),
    };
    (schemas, paths, method_router)
}

/// Lifts the JSON body limit from a route that streams its body under its own limit.
fn unlimited_body(
    (schemas, paths, method_router): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    (
        schemas,
        paths,
        method_router.layer(DefaultBodyLimit::disable()),
    )
}

/// Authenticates the caller, checks the route's permission, and hands the principal on.
async fn authorize(access: Access, mut request: Request, next: Next) -> Response {
    let principal = match authenticate!(&request) {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let app = request.extensions().get::<AppState>().cloned();
    if let Some(app) = app
        && let Err(limited) = check_rate(&app, &principal).await
    {
        return limited.into_response();
    }
    if let Access::Requires(permission) = access
        && !principal.can(permission)
    {
        return ApiError::forbidden(format!("this needs the {permission} permission"))
            .with("permission", permission.as_str())
            .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The principal of the request's credentials, recorded on the request's span. A macro
/// rather than a function taking `&Request`: a future holding a request's reference is not
/// `Send` (its body is not `Sync`), so only the headers may be borrowed across the wait.
macro_rules! authenticate {
    ($request:expr) => {{
        let request: &axum::extract::Request = $request;
        match request.extensions().get::<$crate::app::AppState>().cloned() {
            None => Err($crate::error::ApiError::internal(
                "the application state is missing",
            )),
            Some(app) => {
                let peer = request
                    .extensions()
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map(|info| info.0.ip());
                $crate::router::principal_of(&app, request.headers(), peer).await
            }
        }
    }};
}
pub(crate) use authenticate;

/// The principal of `headers`, sent from `peer`, recorded on the request's span.
pub(crate) async fn principal_of(
    app: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    let client = app.client_addresses.resolve(peer, headers);
    let principal = app.auth.authenticate(headers, client).await?;
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(&principal.tenant));
    span.record("principal", tracing::field::display(principal.actor()));
    Ok(principal)
}

/// The request rates of the principal's credential and tenant.
pub(crate) async fn check_rate(app: &AppState, principal: &Principal) -> Result<(), ApiError> {
    let credential = match &principal.credential {
        Credential::ApiKey { id, .. } => CredentialKey::ApiKey(id.clone()),
        Credential::Token => CredentialKey::User(principal.user.clone()),
    };
    app.rate_limits
        .check(&principal.tenant, &credential)
        .await
        .map_err(|refused| {
            let limited = match refused {
                Refused::Limited(limited) => limited,
                Refused::Unavailable(why) => return ApiError::limits_unavailable(why),
            };
            let (detail, refusal) = match limited.limit {
                "tenant" => (
                    "this tenant sends requests faster than it may",
                    Refusal::RateLimitTenant,
                ),
                _ => (
                    "this credential sends requests faster than it may",
                    Refusal::RateLimitCredential,
                ),
            };
            app.metrics.refused(refusal);
            ApiError::too_many_requests(detail, limited.limit, limited.retry_after)
        })
}

/// The API routes and their OpenAPI document.
pub fn api() -> OpenApiRouter<AppState> {
    use Access::{Authenticated, Public, Requires};
    use Permission::*;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(guard(Public, routes!(health::healthz)))
        .routes(guard(Public, routes!(health::readyz)))
        .routes(guard(Authenticated, routes!(me::get)))
        .routes(guard(Requires(TenantManage), routes!(tenants::create)))
        .routes(guard(Requires(TenantManage), routes!(tenants::list)))
        .routes(guard(Requires(TenantRead), routes!(tenants::get)))
        .routes(guard(Requires(TenantManage), routes!(tenants::update)))
        .routes(guard(Requires(TenantManage), routes!(tenants::suspend)))
        .routes(guard(Requires(TenantManage), routes!(tenants::resume)))
        .routes(guard(Requires(TenantExport), routes!(tenants::export)))
        .routes(guard(Requires(UserManage), routes!(users::create)))
        .routes(guard(Requires(UserRead), routes!(users::list)))
        .routes(guard(Requires(UserRead), routes!(users::get)))
        .routes(guard(Requires(UserManage), routes!(users::set_roles)))
        .routes(guard(Requires(UserManage), routes!(users::disable)))
        .routes(guard(Requires(ApiKeyManage), routes!(api_keys::create)))
        .routes(guard(Requires(ApiKeyManage), routes!(api_keys::list)))
        .routes(guard(Requires(ApiKeyManage), routes!(api_keys::revoke)))
        .routes(guard(Requires(AuditRead), routes!(audit::list)))
        .routes(guard(
            Requires(SecretManage),
            routes!(secrets::put, secrets::delete),
        ))
        .routes(guard(Requires(SecretManage), routes!(secrets::list)))
        .routes(guard(Requires(TenantRead), routes!(usage::get_policy)))
        .routes(guard(Requires(TenantManage), routes!(usage::set_policy)))
        .routes(guard(Requires(TenantRead), routes!(usage::get)))
        .routes(unlimited_body(guard(
            Requires(SkillPublish),
            routes!(publish::publish),
        )))
        .routes(guard(Requires(SkillRead), routes!(skills::list)))
        .routes(guard(Requires(SkillRead), routes!(skills::get)))
        .routes(guard(Requires(SkillPublish), routes!(skills::update)))
        .routes(guard(Requires(SkillPublish), routes!(skills::delete)))
        .routes(guard(Requires(SkillRead), routes!(versions::versions)))
        .routes(guard(Requires(SkillRead), routes!(versions::version)))
        .routes(guard(Requires(SkillRead), routes!(versions::download)))
        .routes(guard(Requires(SkillPublish), routes!(versions::yank)))
        .routes(guard(Requires(SkillPublish), routes!(versions::unyank)))
        .routes(guard(Requires(SkillInvoke), routes!(invoke::invoke)))
        .routes(guard(
            Requires(SkillPublish),
            routes!(installations::install),
        ))
        .routes(guard(Requires(SkillRead), routes!(installations::list)))
        .routes(guard(
            Requires(SkillPublish),
            routes!(installations::uninstall),
        ))
        .routes(guard(Requires(TaskWrite), routes!(tasks::create::create)))
        .routes(guard(Requires(TaskRead), routes!(tasks::list::list)))
        .routes(guard(Requires(TaskRead), routes!(tasks::metrics::metrics)))
        .routes(guard(Requires(TaskRead), routes!(tasks::actions::get)))
        .routes(guard(Requires(TaskWrite), routes!(tasks::actions::cancel)))
        .routes(guard(Requires(TaskWrite), routes!(tasks::actions::retry)))
        .routes(guard(Requires(TaskWrite), routes!(tasks::actions::delete)))
        .routes(guard(Requires(TaskRead), routes!(tasks::events::events)))
        .routes(guard(Requires(AgentWrite), routes!(agents::crud::create)))
        .routes(guard(Requires(AgentRead), routes!(agents::crud::list)))
        .routes(guard(Requires(AgentRead), routes!(agents::crud::get)))
        .routes(guard(Requires(AgentWrite), routes!(agents::crud::update)))
        .routes(guard(Requires(AgentWrite), routes!(agents::crud::delete)))
        .routes(guard(Requires(AgentRead), routes!(agents::lock::lock)))
        .routes(guard(Requires(AgentWrite), routes!(agents::lock::relock)))
        .routes(guard(Requires(TaskWrite), routes!(agents::runs::start)))
        .routes(guard(Requires(TaskRead), routes!(agents::runs::list)))
        .routes(guard(Requires(AgentRead), routes!(breakers::list)))
        .routes(guard(Public, routes!(agents::lock::workflow_schema)))
        .routes(guard(Public, routes!(mcp::metadata::document)))
        .routes(guard(Public, routes!(mcp::metadata::document_for_mcp)))
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut api = api().into_openapi();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api
}

/// The whole HTTP application: API, documentation, and the layers around them.
pub fn router(app: AppState) -> Router {
    let (api_router, _) = api().split_for_parts();
    let body_limit = usize::try_from(app.config.http.body_limit_bytes).unwrap_or(usize::MAX);
    let timeout = Duration::from_millis(app.config.http.request_timeout_ms);
    // JSON-RPC, which the OpenAPI document cannot describe: docs/mcp.md does, and the MCP
    // client tests walk it.
    let mcp = Router::new()
        .route_service("/mcp", mcp::service(Arc::clone(&app)))
        .route_layer(middleware::from_fn(mcp::require_credentials));
    // Prometheus scrapes it: on its own listener when there is one (`crate::admin`).
    let metrics = match app.config.admin_listen {
        None if app.config.telemetry.metrics => {
            Router::new().route("/metrics", get(crate::admin::metrics))
        }
        _ => Router::new(),
    };
    let counted = Arc::clone(&app.metrics);
    // A2A's JSON-RPC binding and agent cards: docs/a2a.md describes them, and the A2A
    // client tests walk them.
    let router = api_router
        .merge(mcp)
        .merge(metrics)
        .merge(crate::a2a::routes())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .route("/redoc", get(docs::redoc_page))
        .route("/redoc/redoc.standalone.js", get(docs::redoc_js))
        .fallback(mw::not_found)
        .method_not_allowed_fallback(mw::method_not_allowed)
        .with_state(Arc::clone(&app))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(mw::panic_response))
        .layer(middleware::from_fn_with_state(timeout, mw::timeout))
        .layer(middleware::from_fn(mw::finish_problems))
        .layer(axum::Extension(app))
        .layer(middleware::from_fn(mw::request_id_and_span));
    if counted.enabled() {
        router.layer(middleware::from_fn_with_state(counted, mw::count))
    } else {
        router
    }
}
