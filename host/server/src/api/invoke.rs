//! `POST /api/v1/skills/{namespace}/{name}/invoke`: run a skill once, synchronously, within
//! the tenant's limits and quotas, and answer its output and usage.
//!
//! Outcomes map to statuses by one table ([`outcome_error`], docs/api/errors.md), which every
//! entry point that runs skills uses.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use omniforge_control::catalog::{PendingUpdate, ResolveError};
use omniforge_control::input::InputError;
use omniforge_control::{Call, EntryPoint, InvokeError};
use omniforge_runtime::{Outcome, Usage};
use omniforge_types::SkillName;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::api::tasks::create::{Submitted, submit};
use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::rbac::Permission;
use crate::error::{ApiError, ApiJson};
use crate::middleware::{RequestId, RequestStart};

/// An invocation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    /// The skill's input.
    #[schema(value_type = Object)]
    pub input: Box<RawValue>,
    /// A version requirement (`^1`, `=1.2.3`, `>=1.2, <2`); default: the newest version
    /// not yanked.
    #[schema(
        pattern = "^(\\*|latest|(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8}))?)?(, ?(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8}))?)?)*)$",
        min_length = 1,
        max_length = 200
    )]
    pub version: Option<String>,
}

/// What an invocation used.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Fuel consumed.
    pub fuel: u64,
    /// Wall time, milliseconds (fractional).
    pub wall_ms: f64,
    /// Peak linear memory, bytes.
    pub peak_memory_bytes: u64,
    /// Log lines written.
    pub log_messages: u32,
    /// Outbound HTTP requests made.
    pub http_requests: u32,
    /// Skills it called (`omniforge:skill/skills`), with every call beneath them; its fuel
    /// and time include theirs.
    pub skill_calls: u32,
}

impl From<&Usage> for UsageView {
    fn from(u: &Usage) -> Self {
        Self {
            fuel: u.fuel_consumed,
            wall_ms: u.wall_time_us as f64 / 1000.0,
            peak_memory_bytes: u.peak_memory_bytes,
            log_messages: u.log_messages,
            http_requests: u.http_requests,
            skill_calls: u.skill_calls,
        }
    }
}

impl From<&omniforge_store::TaskUsage> for UsageView {
    fn from(u: &omniforge_store::TaskUsage) -> Self {
        Self {
            fuel: u.fuel,
            wall_ms: u.wall_us as f64 / 1000.0,
            peak_memory_bytes: u.peak_memory_bytes,
            log_messages: u.log_messages,
            http_requests: u.http_requests,
            skill_calls: u.skill_calls,
        }
    }
}

/// A successful invocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvokeResponse {
    /// `namespace/name`.
    pub skill: String,
    /// The version that ran.
    pub version: String,
    /// The skill's output.
    #[schema(value_type = Object)]
    pub output: Box<RawValue>,
    /// What it used.
    pub usage: UsageView,
    /// A newer version the installation does not use yet, because it asks for permissions
    /// not accepted (update the installation to use it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_update: Option<PendingUpdate>,
}

/// The error of an outcome other than `ok` (the table in docs/api/errors.md).
pub fn outcome_error(outcome: &Outcome, usage: &Usage) -> Option<ApiError> {
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let error = match outcome {
        Outcome::Ok { .. } => return None,
        Outcome::InvalidInput { message } => {
            ApiError::new(unprocessable, "invalid-input", message.clone()).with("pointer", "")
        }
        Outcome::GuestError { kind, message } => {
            ApiError::new(unprocessable, "skill-error", message.clone())
                .with("kind", kind.to_string())
        }
        Outcome::FuelExhausted { limit } => {
            ApiError::new(unprocessable, "limit-exceeded", outcome.to_string())
                .with("limit", "fuel")
                .with("limit_value", *limit)
        }
        Outcome::MemoryLimit { limit_bytes } => {
            ApiError::new(unprocessable, "limit-exceeded", outcome.to_string())
                .with("limit", "memory")
                .with("limit_value", *limit_bytes)
        }
        Outcome::OutputLimit { limit_bytes, .. } => {
            ApiError::new(unprocessable, "limit-exceeded", outcome.to_string())
                .with("limit", "output")
                .with("limit_value", *limit_bytes)
        }
        Outcome::Timeout { limit_ms } => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", outcome.to_string())
                .with("limit_value", *limit_ms)
        }
        Outcome::ConcurrencyLimit { message } => ApiError::too_many_requests(
            format!("too many invocations at once: {message}"),
            "concurrency",
            Duration::from_secs(1),
        ),
        Outcome::MemoryBudget { .. } => ApiError::too_many_requests(
            format!("the server is at its memory budget for running skills: {outcome}"),
            "memory_budget",
            Duration::from_secs(1),
        ),
        Outcome::Trap { message } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "skill-trapped", message.clone())
        }
        Outcome::Canceled => ApiError::new(StatusCode::CONFLICT, "canceled", outcome.to_string()),
    };
    Some(error.with("usage", usage_value(usage)))
}

/// What `Retry-After` says while a skill compiles: a large component takes seconds to tens
/// of seconds.
const COMPILING_RETRY_SECS: u64 = 5;

pub(crate) fn resolve_error(error: ResolveError, full_name: &str) -> ApiError {
    match error {
        ResolveError::NotFound => ApiError::not_found("skill"),
        ResolveError::BadRequirement(detail) => {
            ApiError::invalid(format!("version: {detail}")).with("field", "version")
        }
        ResolveError::NoMatch(detail) => ApiError::new(
            StatusCode::NOT_FOUND,
            "no-matching-version",
            format!("{full_name}: {detail}"),
        ),
        ResolveError::NotInstalled => ApiError::new(
            StatusCode::FORBIDDEN,
            "not-installed",
            format!(
                "{full_name} is another tenant's public skill; install it first \
                 (POST /api/v1/installations)"
            ),
        ),
        ResolveError::PermissionsNotAccepted(pending) => ApiError::new(
            StatusCode::FORBIDDEN,
            "permissions-not-accepted",
            format!(
                "{full_name} {} asks for permissions the installation has not accepted: {}; \
                 update the installation to accept them",
                pending.version,
                omniforge_registry::describe_permissions(&pending.new_permissions)
            ),
        )
        .with("version", pending.version)
        .with(
            "new_permissions",
            pending
                .new_permissions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        ),
        ResolveError::Compiling { version } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "skill-compiling",
            format!(
                "{full_name} {version} is still being compiled on this server; try again after \
                 Retry-After seconds"
            ),
        )
        .with("version", version.to_string())
        .with_retry_after(Duration::from_secs(COMPILING_RETRY_SECS)),
        ResolveError::Internal(cause) => ApiError::internal(cause),
    }
}

/// Time kept at the end of a request's timeout for answering after the skill stops.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// The problem answering an invocation that did not succeed (the table in
/// docs/api/errors.md).
pub fn invoke_error(error: InvokeError, skill: &SkillName) -> ApiError {
    match error {
        InvokeError::InvalidInput(error) => input_error(error),
        InvokeError::Resolve(error) => resolve_error(error, skill.as_str()),
        InvokeError::Quota(quota) => ApiError::too_many_requests(
            quota.to_string(),
            quota.quota,
            Duration::from_secs(quota.retry_after_secs),
        )
        .with("quota", quota.quota),
        InvokeError::Ended { outcome, usage } => outcome_error(&outcome, &usage)
            .unwrap_or_else(|| ApiError::internal("an ok outcome reported as a failure")),
        InvokeError::InvalidOutput { violation, usage } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "invalid-output", violation.message)
                .with("pointer", violation.pointer)
                .with("usage", usage_value(&usage))
        }
        InvokeError::Unavailable(cause) => ApiError::limits_unavailable(cause),
        InvokeError::Internal(cause) => ApiError::internal(cause),
    }
}

fn usage_value(usage: &Usage) -> serde_json::Value {
    serde_json::to_value(UsageView::from(usage)).unwrap_or_default()
}

pub(crate) fn input_error(error: InputError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        error.message,
    )
    .with("pointer", error.pointer)
}

/// Invokes a skill: resolves the version, checks the input against its schema, reserves the
/// tenant's quota, runs it in a fresh sandbox and answers the output with the usage.
#[utoipa::path(post, path = "/api/v1/skills/{namespace}/{name}/invoke", tag = "skills",
    params(("namespace" = String, Path), ("name" = String, Path)), request_body = InvokeRequest,
    params(("Prefer" = Option<String>, Header, description = "`respond-async`: queue the invocation as a task and answer 202 with it (needs `task:write`; `Idempotency-Key` as for `POST /api/v1/tasks`)"),
           ("Idempotency-Key" = Option<String>, Header, description = "With `Prefer: respond-async`: makes the submission safe to retry")),
    responses((status = 200, description = "The skill's output", body = InvokeResponse),
              (status = 202, description = "With `Prefer: respond-async`: the queued task; `Location` names it", body = crate::api::tasks::TaskView),
              (status = 403, description = "Not installed, or new permissions not accepted", body = crate::error::Problem),
              (status = 404, description = "No such skill visible to the caller, or no matching version", body = crate::error::Problem),
              (status = 422, description = "`invalid-input` (with `pointer`), `skill-error`, `limit-exceeded`", body = crate::error::Problem),
              (status = 429, description = "A rate limit, quota or concurrency limit (`limit` names it); see `Retry-After`", body = crate::error::Problem),
              (status = 502, description = "`skill-trapped`: the skill crashed; `invalid-output`: its output breaks its output schema (`pointer`)", body = crate::error::Problem),
              (status = 504, description = "`timeout`: the skill ran past its time limit", body = crate::error::Problem)))]
pub async fn invoke(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    RequestStart(started): RequestStart,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<InvokeRequest>,
) -> Result<Response, ApiError> {
    if let Some(version) = &body.version {
        crate::api::rules::REQUIREMENT.check(version)?;
    }
    // A name that cannot be a skill's names no skill the caller can see.
    let skill: SkillName = format!("{ns}/{name}")
        .parse()
        .map_err(|_| ApiError::not_found("skill"))?;
    if prefers_async(&headers) {
        if !principal.can(Permission::TaskWrite) {
            return Err(ApiError::forbidden(
                "an asynchronous invocation queues a task: this needs the task:write permission",
            )
            .with("permission", Permission::TaskWrite.as_str()));
        }
        let fingerprint = crate::api::tasks::create::canonical(&serde_json::json!({
            "skill": skill.as_str(),
            "version": body.version,
            "input": serde_json::from_str::<serde_json::Value>(body.input.get()).unwrap_or_default(),
            "priority": 0,
            "not_before_ms": null,
        }));
        let submitted = Submitted {
            skill,
            requirement: body.version,
            input: body.input,
            priority: 0,
            not_before_ms: None,
            fingerprint,
        };
        return Ok(submit(&app, &principal, request_id, &headers, submitted)
            .await?
            .into_response());
    }
    // The answer must come before the server's request timeout turns it into a 503: the
    // invocation ends what is left of the request's time (resolving may wait for a compile)
    // before it, less a margin for answering.
    let deadline =
        started + Duration::from_millis(app.config.http.request_timeout_ms) - ANSWER_MARGIN;
    let call = Call {
        tenant: principal.tenant,
        skill: skill.clone(),
        requirement: body.version,
        input: body.input,
        request_id,
        deadline: Some(deadline),
        entry: EntryPoint::Rest,
        cancel: None,
        task: None,
    };
    let invoked = app
        .invocations
        .invoke(call)
        .await
        .map_err(|e| invoke_error(e, &skill))?;
    Ok(ApiJson(InvokeResponse {
        skill: skill.to_string(),
        version: invoked.version.to_string(),
        output: invoked.output,
        usage: UsageView::from(&invoked.usage),
        pending_update: invoked.pending_update,
    })
    .into_response())
}

/// Whether the request asks for an asynchronous answer (RFC 7240 `Prefer: respond-async`).
fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|pref| pref.trim().eq_ignore_ascii_case("respond-async"))
}
