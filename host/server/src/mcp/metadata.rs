//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for the MCP endpoint: the document MCP
//! clients read to learn which authorization server issues tokens for `/mcp`, and the
//! `WWW-Authenticate` challenge on 401 that points them at it.
//!
//! The resource is `<base>/mcp`: RFC 9728 §3.3 has a client that found the document through
//! a challenge check that `resource` is the URL it requested. The document is served at the
//! root well-known path the challenge names and at the path-suffixed form
//! (`/.well-known/oauth-protected-resource/mcp`) that clients derive from the resource URL.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::ApiJson;

/// The well-known path of the document.
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Protected-resource metadata (RFC 9728 §2).
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceMetadata {
    /// The protected resource: the MCP endpoint's URL.
    pub resource: String,
    /// Issuers of the tokens it accepts (the configured JWT issuer); API keys need none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// How a token is presented: the `Authorization: Bearer` header.
    pub bearer_methods_supported: Vec<String>,
    /// Scopes a token may carry: the permissions of docs/auth.md.
    pub scopes_supported: Vec<String>,
    /// A name for people.
    pub resource_name: String,
    /// Where people read how to authenticate.
    pub resource_documentation: String,
}

/// The URL clients reach this server at ([`crate::app::App::base_url`]).
pub(crate) fn base_url(request: &Request) -> String {
    match request.extensions().get::<AppState>() {
        Some(app) => app.base_url(request.headers()),
        None => String::from("http://localhost"),
    }
}

/// Adds the challenge naming the metadata document to a 401.
pub(crate) fn challenge(response: &mut Response, base: &str) {
    let value = format!("Bearer realm=\"omniforge\", resource_metadata=\"{base}{WELL_KNOWN}\"");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
}

/// The protected-resource metadata of the MCP endpoint (RFC 9728), for MCP clients
/// discovering how to authenticate.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "mcp",
    responses((status = 200, description = "The metadata", body = ResourceMetadata)))]
pub async fn document(State(app): State<AppState>, request: Request) -> ApiJson<ResourceMetadata> {
    ApiJson(metadata(&app, &base_url(&request)))
}

/// The same document at the path derived from the resource URL (`<base>/mcp`).
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/mcp", tag = "mcp",
    responses((status = 200, description = "The metadata", body = ResourceMetadata)))]
pub async fn document_for_mcp(
    State(app): State<AppState>,
    request: Request,
) -> ApiJson<ResourceMetadata> {
    ApiJson(metadata(&app, &base_url(&request)))
}

fn metadata(app: &AppState, base: &str) -> ResourceMetadata {
    ResourceMetadata {
        resource: format!("{base}/mcp"),
        authorization_servers: app
            .config
            .auth
            .jwt
            .iter()
            .map(|jwt| jwt.issuer.clone())
            .collect(),
        bearer_methods_supported: vec!["header".into()],
        scopes_supported: crate::auth::rbac::Permission::ALL
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        resource_name: "OmniForge skills (MCP)".into(),
        resource_documentation: format!("{base}/docs"),
    }
}
