//! `/mcp`: every skill a tenant can invoke, as a tool of the Model Context Protocol, over
//! Streamable HTTP (the stateless revision 2026-07-28 and the handshake-era 2025-11-25), with
//! the official SDK (`rmcp`).
//!
//! The transport is thin: `tools/list` reads the tenant's own and installed skills through
//! the catalog, `tools/call` runs one through the invocation service exactly as REST does
//! (same limits, quotas, rate limits and usage), and answers map once (`answers.rs`). The
//! route authenticates like every other (`router::authenticate`); a missing or wrong
//! credential answers 401 pointing at the OAuth protected-resource metadata (`metadata.rs`).
//! Rate limits are checked per MCP request inside the handler, so a refused `tools/call` is
//! a tool result a model can read rather than an HTTP error. A 2026-07-28 client that opens
//! `subscriptions/listen` is told when its tool list changes (`listen.rs`).

pub(crate) mod answers;
pub(crate) mod listen;
pub(crate) mod metadata;
pub(crate) mod tools;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omniforge_control::catalog::choose;
use omniforge_control::{Call, EntryPoint};
use omniforge_store::{SkillQuery, SkillSort};
use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    SubscriptionFilter,
};
use rmcp::service::{RequestContext, RoleServer, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::value::RawValue;

use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::rbac::Permission;
use crate::middleware::{RequestId, RequestStart};
use crate::router::{authenticate, check_rate};
use crate::slots::StreamSlots;

/// Tools per `tools/list` page.
const PAGE: u32 = 100;

/// Time kept at the end of a request's timeout for answering after the skill stops.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// The MCP server of one application: a handler per request (stateless), over the app.
#[derive(Clone)]
pub(crate) struct SkillTools {
    app: AppState,
    /// The change streams open on this server.
    listeners: Arc<StreamSlots>,
}

/// The MCP endpoint as a service to mount at `/mcp`, behind [`require_credentials`].
pub(crate) fn service(app: AppState) -> StreamableHttpService<SkillTools, NeverSessionManager> {
    let body_limit = usize::try_from(app.config.http.body_limit_bytes).unwrap_or(usize::MAX);
    // Stateless: no session outlives a request, so any replica answers any request and the
    // request timeout bounds every exchange but `subscriptions/listen` streams, which
    // `listen.rs` bounds instead. Host checks guard unauthenticated local servers
    // against DNS rebinding; every request here carries credentials, and operators serve
    // under names this process cannot know.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(body_limit)
        .disable_allowed_hosts();
    let tools = SkillTools {
        listeners: StreamSlots::new(app.config.mcp.listeners_per_tenant),
        app,
    };
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        NeverSessionManager::default().into(),
        config,
    )
}

/// Authenticates an MCP request; a missing or wrong credential answers 401 with the
/// `resource_metadata` that MCP clients discover authorization from (RFC 9728).
pub(crate) async fn require_credentials(mut request: Request, next: Next) -> Response {
    match authenticate!(&request) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => {
            let unauthorized = error.status() == axum::http::StatusCode::UNAUTHORIZED;
            let base = metadata::base_url(&request);
            let mut response = error.into_response();
            if unauthorized {
                metadata::challenge(&mut response, &base);
            }
            response
        }
    }
}

/// Who asks, from the HTTP request the MCP message came in.
struct Caller {
    principal: Principal,
    request_id: String,
    /// When the HTTP request arrived: its timeout bounds the invocation.
    started: Instant,
}

impl Caller {
    fn of(context: &RequestContext<RoleServer>) -> Result<Self, ErrorData> {
        let parts = context
            .extensions
            .get::<axum::http::request::Parts>()
            .ok_or_else(|| ErrorData::internal_error("the HTTP request is missing", None))?;
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("the caller is not authenticated", None))?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        let started = parts
            .extensions
            .get::<RequestStart>()
            .map_or_else(Instant::now, |start| start.0);
        Ok(Self {
            principal,
            request_id,
            started,
        })
    }

    /// A protocol error unless the caller holds `permission`.
    fn require(&self, permission: Permission) -> Result<(), ErrorData> {
        if self.principal.can(permission) {
            Ok(())
        } else {
            Err(ErrorData::invalid_request(
                format!("this needs the {permission} permission"),
                None,
            ))
        }
    }
}

impl ServerHandler for SkillTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            // Told on `subscriptions/listen` streams (2026-07-28); `initialize` takes it back
            // for handshake-era clients, which a stateless server has no stream to tell on.
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("omniforge", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Each tool is an OmniForge skill this tenant can invoke: its own skills and those \
             it installed. A skill `namespace/name` is the tool `namespace.name`. Errors of a \
             skill, its limits and quota refusals come back as tool results with isError set; \
             a refusal says when to retry.",
        )
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        if let Some(tools) = result.capabilities.tools.as_mut() {
            tools.list_changed = None;
        }
        Ok(result)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.tools_list_changed = requested.tools_list_changed;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        listen::listen(&self.app, &self.listeners, context).await
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = Caller::of(&context)?;
        check_rate(&self.app, &caller.principal)
            .await
            .map_err(|e| ErrorData::invalid_request(e.message(), None))?;
        caller.require(Permission::SkillRead)?;
        let after = match request.and_then(|p| p.cursor) {
            None => None,
            Some(cursor) => Some(
                tools::skill_name(&cursor)
                    .ok_or_else(|| {
                        ErrorData::invalid_params("the cursor is not one of ours", None)
                    })?
                    .to_string(),
            ),
        };
        let tenant = &caller.principal.tenant;
        let query = SkillQuery {
            usable_only: true,
            sort: SkillSort::Name,
            after,
            limit: PAGE,
            ..SkillQuery::default()
        };
        let skills = self
            .app
            .db
            .tenant(tenant)
            .list_skills(&query)
            .await
            .map_err(|e| internal(&e))?;
        let next_cursor = (skills.len() == PAGE as usize)
            .then(|| skills.last().map(|s| tools::tool_name(&s.full_name)))
            .flatten();
        let catalog = self.app.invocations.catalog();
        let mut listed = Vec::with_capacity(skills.len());
        for skill in skills {
            let Some(listing) = catalog
                .listing(tenant, &skill.full_name)
                .await
                .map_err(|e| internal(&e))?
            else {
                continue;
            };
            // A skill with no version this tenant can run (all yanked, new permissions not
            // accepted) is not a tool until it has one.
            let Ok((version, _)) = choose(&listing, tenant, None) else {
                continue;
            };
            if let Some((stored, manifest)) = listing.version(&version) {
                let tool = tools::tool(
                    &skill.full_name,
                    manifest,
                    stored.input_schema.as_deref(),
                    stored.output_schema.as_deref(),
                );
                listed.push(tool);
            }
        }
        let mut result = ListToolsResult::with_all_items(listed);
        result.next_cursor = next_cursor;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = Caller::of(&context)?;
        if let Err(limited) = check_rate(&self.app, &caller.principal).await {
            return Ok(answers::refused(&limited).into());
        }
        caller.require(Permission::SkillInvoke)?;
        let unknown =
            || ErrorData::invalid_params(format!("no tool named {:?}", request.name), None);
        let skill = tools::skill_name(&request.name).ok_or_else(unknown)?;
        let tenant = &caller.principal.tenant;
        let listing = self
            .app
            .invocations
            .catalog()
            .listing(tenant, &skill)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(unknown)?;
        let (version, _) = match choose(&listing, tenant, None) {
            Ok(chosen) => chosen,
            Err(error) => return answers::failed(error.into(), &skill),
        };
        let Some((stored, _)) = listing.version(&version) else {
            return Err(unknown());
        };
        let shapes = tools::shapes(
            stored.input_schema.as_deref(),
            stored.output_schema.as_deref(),
        );
        let input = match tools::input(request.arguments, shapes.input) {
            Ok(input) => input,
            Err(message) => return Ok(answers::invalid_arguments(&message).into()),
        };
        let input = RawValue::from_string(input.to_string()).map_err(|e| internal(&e))?;
        let timeout = Duration::from_millis(self.app.config.http.request_timeout_ms);
        let call = Call {
            tenant: tenant.clone(),
            skill: skill.clone(),
            // The version whose schemas shaped the arguments.
            requirement: Some(format!("={version}")),
            input,
            request_id: caller.request_id.clone(),
            deadline: Some(caller.started + timeout.saturating_sub(ANSWER_MARGIN)),
            entry: EntryPoint::Mcp,
            cancel: None,
            task: None,
        };
        match self.app.invocations.invoke(call).await {
            Ok(invoked) => Ok(answers::output(&invoked, shapes.output).into()),
            Err(error) => answers::failed(error, &skill),
        }
    }
}

fn internal(error: &dyn std::fmt::Display) -> ErrorData {
    tracing::error!(error = %error, "MCP request failed");
    ErrorData::internal_error(
        "the server failed to handle the request; the request id identifies it in the logs",
        None,
    )
}
