//! An agent's A2A card at `/a2a/{tenant-slug}/{agent-name}/.well-known/agent-card.json`:
//! visible to anyone for a `public` agent, otherwise to callers of the agent's tenant with
//! `agent:read`.

use std::collections::HashMap;
use std::net::SocketAddr;

use a2a::{
    AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill,
    HttpAuthSecurityScheme, SecurityScheme, TRANSPORT_PROTOCOL_JSONRPC,
};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::{Endpoint, INPUT_MODES, OUTPUT_MODES, find, refuse_unauthenticated};
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::error::{ApiError, ApiJson};
use crate::router::{check_rate, principal_of};

/// The name of the card's one security scheme.
const SCHEME: &str = "bearer";

/// The agent's card, for whoever may see it.
pub(crate) async fn card(
    State(app): State<AppState>,
    Path((slug, name)): Path<(String, String)>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let found = match find(&app, &slug, &name).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let base = app.base_url(&headers);
    if let Some(endpoint) = found.as_ref().filter(|e| e.agent.public) {
        return ApiJson(card_of(endpoint, &base)).into_response();
    }
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let principal = match principal_of(&app, &headers, peer).await {
        Ok(principal) => principal,
        Err(error) => return refuse_unauthenticated(error),
    };
    if let Err(limited) = check_rate(&app, &principal).await {
        return limited.into_response();
    }
    // Another tenant's private agent is as absent as one that does not exist.
    let Some(endpoint) = found.filter(|e| e.tenant.id == principal.tenant) else {
        return ApiError::not_found("agent").into_response();
    };
    if !principal.can(Permission::AgentRead) {
        return ApiError::forbidden("this needs the agent:read permission")
            .with("permission", Permission::AgentRead.as_str())
            .into_response();
    }
    ApiJson(card_of(&endpoint, &base)).into_response()
}

/// The card of `endpoint`, served from `base`.
pub(crate) fn card_of(endpoint: &Endpoint, base: &str) -> AgentCard {
    let spec = &endpoint.spec;
    let url = format!("{base}/a2a/{}/{}", endpoint.tenant.slug, spec.name);
    let skills = if spec.card.skills.is_empty() {
        vec![AgentSkill {
            id: spec.name.clone(),
            name: spec.name.clone(),
            description: description(&spec.description),
            tags: vec!["omniforge".to_owned()],
            examples: None,
            input_modes: None,
            output_modes: None,
            security_requirements: None,
        }]
    } else {
        spec.card
            .skills
            .iter()
            .map(|skill| AgentSkill {
                id: skill.id.clone(),
                name: skill.name.clone(),
                description: description(&skill.description),
                tags: skill.tags.clone(),
                examples: (!skill.examples.is_empty()).then(|| skill.examples.clone()),
                input_modes: None,
                output_modes: None,
                security_requirements: None,
            })
            .collect()
    };
    let scheme = SecurityScheme::HttpAuth(HttpAuthSecurityScheme {
        scheme: "Bearer".to_owned(),
        description: Some(
            "An OmniForge API key of the agent's tenant (ofk_…), or a token of one of its \
             users, as Authorization: Bearer …"
                .to_owned(),
        ),
        bearer_format: Some("OmniForge API key or JWT".to_owned()),
    });
    AgentCard {
        name: spec.name.clone(),
        description: description(&spec.description),
        version: endpoint.agent.version.to_string(),
        supported_interfaces: vec![AgentInterface::new(url, TRANSPORT_PROTOCOL_JSONRPC)],
        capabilities: AgentCapabilities {
            streaming: Some(spec.card.streaming),
            push_notifications: Some(false),
            extensions: None,
            extended_agent_card: Some(false),
        },
        default_input_modes: INPUT_MODES.iter().map(|m| m.to_string()).collect(),
        default_output_modes: OUTPUT_MODES.iter().map(|m| m.to_string()).collect(),
        skills,
        provider: Some(AgentProvider {
            organization: endpoint.tenant.name.clone(),
            url: base.to_owned(),
        }),
        documentation_url: None,
        icon_url: None,
        security_schemes: Some(HashMap::from([(SCHEME.to_owned(), scheme)])),
        security_requirements: Some(vec![HashMap::from([(SCHEME.to_owned(), Vec::new())])]),
        signatures: None,
    }
}

/// A card's description may not be empty.
fn description(text: &str) -> String {
    if text.trim().is_empty() {
        "An OmniForge agent".to_owned()
    } else {
        text.to_owned()
    }
}
