//! The OpenAPI document's fixed parts, and the one place where every operation's security
//! and the answers it shares with others are declared.
//!
//! Handlers declare what only they answer (their 200, a 404 for their resource, a 409).
//! Everything an operation answers because of what sits in front of it — the access guard
//! (401, 403, 429, 503), the JSON body extractor (400, 413, 415, 422), the query extractor
//! (400), the path (404) — is added here from the route's [`Access`] and the operation's
//! own shape, so the document is exact without every handler repeating it. Every error
//! answer is an RFC 9457 problem document (`application/problem+json`).

use utoipa::OpenApi;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::auth::rbac::Access;

/// The OpenAPI document's fixed parts; paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OmniForge API",
        description = "Multi-tenant runtime and marketplace for AI-agent skills packaged as \
                       WebAssembly components. Errors are RFC 9457 problem documents.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerScheme),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "operations", description = "Health and readiness"),
        (name = "identity", description = "The caller"),
        (name = "tenants", description = "Tenants (platform admins) and their exports"),
        (name = "users", description = "Users and their roles"),
        (name = "api-keys", description = "API keys"),
        (name = "audit", description = "The audit log"),
        (name = "skills", description = "Publish, discover, change and invoke skills"),
        (name = "installations", description = "Other tenants' public skills in use"),
        (name = "usage", description = "Usage against the tenant's quotas"),
        (name = "secrets", description = "Tenant secrets that skills read (values are never \
                                          answered)"),
        (name = "agents", description = "Agents: workflows of skills, versioned, with lockfiles"),
        (name = "tasks", description = "Durable tasks: asynchronous invocations"),
        (name = "mcp", description = "Discovery for MCP clients (the `/mcp` endpoint itself \
                                      speaks JSON-RPC and is described in docs/mcp.md)"),
    )
)]
pub(crate) struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("ofk_ API key or JWT")
                        .description(Some(
                            "An API key (`ofk_…`) or a JWT. Scopes name the permission the \
                         operation requires.",
                        ))
                        .build(),
                ),
            );
    }
}

/// Every operation of a path item.
pub(crate) fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// Writes `access` into `operation` as its security requirement and adds the answers that
/// come with it and with the operation's shape.
pub(crate) fn document(operation: &mut Operation, access: Access) {
    operation.security = Some(match access {
        Access::Public => Vec::new(),
        Access::Authenticated => vec![SecurityRequirement::new("bearer", Vec::<String>::new())],
        Access::Requires(permission) => {
            vec![SecurityRequirement::new("bearer", [permission.as_str()])]
        }
    });
    let media: Vec<&str> = operation
        .request_body
        .as_ref()
        .map(|body| body.content.keys().map(String::as_str).collect())
        .unwrap_or_default();
    // A document body: JSON, or YAML where an operation also takes it (agent definitions).
    let document = |m: &&str| m.starts_with("application/json") || *m == "application/yaml";
    let json_body = media.iter().any(document);
    let upload = media.iter().any(|m| !document(m));
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let query = parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let path = parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));

    let mut answers: Vec<(&str, &str)> = Vec::new();
    if access != Access::Public {
        answers.extend([
            (
                "401",
                "`unauthorized`: no credentials, or malformed, unknown, wrong, revoked or expired \
                 ones (`WWW-Authenticate: Bearer`)",
            ),
            (
                "403",
                "`forbidden`: the credential lacks the permission in this operation's security \
                 scope (`permission` names it); `tenant-suspended`: the tenant is suspended",
            ),
            (
                "429",
                "`too-many-requests`: a rate limit of the credential or tenant, or too many failed \
                 authentications from this address (`limit` names which; see `Retry-After`)",
            ),
            (
                "503",
                "`request-timeout`: slower than the server's request timeout; `busy`: too many \
                 API keys being verified at once (see `Retry-After`)",
            ),
        ]);
    }
    if json_body {
        answers.extend([
            (
                "400",
                "`malformed-json`: the body is not JSON (`malformed-yaml`: not YAML, where YAML is \
                 accepted)",
            ),
            (
                "413",
                "`body-too-large`: larger than the server's JSON body limit",
            ),
            (
                "415",
                "`unsupported-media-type`: not sent as `Content-Type: application/json` (or \
                 `application/yaml` where the operation takes it)",
            ),
            (
                "422",
                "`invalid-body`: JSON of the wrong shape, or unknown fields; `invalid-request`: a \
                 value outside its rules (`field` names it)",
            ),
        ]);
    }
    if upload {
        answers.extend([
            (
                "400",
                "`bad-request`: a malformed or interrupted upload or form",
            ),
            ("413", "`package-too-large`: larger than the server accepts"),
            (
                "415",
                "`unsupported-media-type`: neither `application/zip` nor `multipart/form-data`",
            ),
        ]);
    }
    if query {
        answers.push((
            "400",
            "`invalid-query`, `bad-request`: unknown or malformed query parameters, a bad cursor",
        ));
    }
    if path {
        answers.push((
            "404",
            "`not-found`: no such resource visible to the caller (another tenant's is never \
             told apart from a missing one)",
        ));
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in answers {
        match responses.get_mut(status) {
            None => {
                responses.insert(status.to_owned(), RefOr::T(problem(description)));
            }
            Some(RefOr::T(response)) if !response.description.contains(description) => {
                response.description = format!("{}; or {description}", response.description);
            }
            Some(_) => {}
        }
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && status.parse::<u16>().is_ok_and(|code| code >= 400)
        {
            as_problem(status, response);
        }
    }
}

/// An error answer: a problem document.
fn problem(description: &str) -> Response {
    ResponseBuilder::new().description(description).build()
}

/// Makes an error answer's body a problem document, with the headers its status carries.
fn as_problem(status: &str, response: &mut Response) {
    response.content.clear();
    response.content.insert(
        "application/problem+json".to_owned(),
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    let integer = || ObjectBuilder::new().schema_type(Type::Integer).build();
    let text = || ObjectBuilder::new().schema_type(Type::String).build();
    match status {
        "401" => {
            response.headers.insert(
                "WWW-Authenticate".to_owned(),
                HeaderBuilder::new()
                    .schema(text())
                    .description(Some("`Bearer realm=\"omniforge\"`"))
                    .build(),
            );
        }
        "429" | "503" => {
            response.headers.insert(
                "Retry-After".to_owned(),
                HeaderBuilder::new()
                    .schema(integer())
                    .description(Some("Seconds to wait before trying again"))
                    .build(),
            );
        }
        _ => {}
    }
}
