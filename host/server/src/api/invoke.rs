//! `POST /api/v1/skills/{namespace}/{name}/invoke`: run a skill once, synchronously, within
//! the tenant's limits and quotas, and answer its output and usage.
//!
//! Outcomes map to statuses by one table ([`outcome_error`], docs/api/errors.md), which every
//! entry point that runs skills uses.

use axum::extract::{Path, State};
use omniforge_runtime::capabilities::HttpPolicy;
use omniforge_runtime::{Grants, InvocationContext, InvocationRequest, Outcome, Usage};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::{RequestId, RequestStart};
use crate::skills::catalog::{PendingUpdate, ResolveError};
use crate::skills::input::{self, InputError};
use crate::skills::meter::Spent;
use axum::http::StatusCode;

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
}

impl From<&Usage> for UsageView {
    fn from(u: &Usage) -> Self {
        Self {
            fuel: u.fuel_consumed,
            wall_ms: u.wall_time_us as f64 / 1000.0,
            peak_memory_bytes: u.peak_memory_bytes,
            log_messages: u.log_messages,
            http_requests: u.http_requests,
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
    };
    Some(error.with(
        "usage",
        serde_json::to_value(UsageView::from(usage)).unwrap_or_default(),
    ))
}

/// What `Retry-After` says while a skill compiles: a large component takes seconds to tens
/// of seconds.
const COMPILING_RETRY_SECS: u64 = 5;

fn resolve_error(error: ResolveError, full_name: &str) -> ApiError {
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
                pending.new_permissions.join(", ")
            ),
        )
        .with("version", pending.version)
        .with("new_permissions", pending.new_permissions),
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

/// The first place where `input` breaks the skill's input schema, if any. Valid input (the
/// common case) is checked without building errors.
fn schema_error(
    validator: &jsonschema::Validator,
    input: &serde_json::Value,
) -> Option<jsonschema::ValidationError<'static>> {
    if validator.is_valid(input) {
        return None;
    }
    validator.iter_errors(input).next().map(|e| e.to_owned())
}

/// Where an output breaks the skill's output schema, if it does (the first place).
fn output_violation(validator: &jsonschema::Validator, output: &str) -> Option<InputError> {
    let value: serde_json::Value = match serde_json::from_str(output) {
        Ok(value) => value,
        Err(e) => {
            return Some(InputError {
                message: format!("the output cannot be read as a tree: {e}"),
                pointer: String::new(),
            });
        }
    };
    schema_error(validator, &value).map(|error| InputError {
        pointer: error.instance_path().to_string(),
        message: error.to_string(),
    })
}

fn input_error(error: InputError) -> ApiError {
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
    responses((status = 200, description = "The skill's output", body = InvokeResponse),
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
    ApiJson(body): ApiJson<InvokeRequest>,
) -> Result<ApiJson<InvokeResponse>, ApiError> {
    let full_name = format!("{ns}/{name}");
    input::check_depth(&body.input).map_err(input_error)?;
    if let Some(version) = &body.version {
        crate::api::rules::REQUIREMENT.check(version)?;
    }
    let resolved = app
        .catalog
        .resolve(&principal.tenant, &ns, &name, body.version.as_deref())
        .await
        .map_err(|e| resolve_error(e, &full_name))?;
    let prepared = &resolved.prepared;
    if let Some(validator) = &prepared.validator
        && let Some(error) =
            schema_error(validator, &input::parse(&body.input).map_err(input_error)?)
    {
        let pointer = error.instance_path().to_string();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
            format!(
                "the input does not match the skill's schema at {:?}: {error}",
                if pointer.is_empty() { "/" } else { &pointer }
            ),
        )
        .with("pointer", pointer));
    }
    let policy = app.policies.get(&principal.tenant).await?;
    let version = resolved.version.to_string();
    let manifest = &prepared.manifest;
    let mut limits = policy.limits(&manifest.limits, &app.config.skills.platform_max);
    let asked_fuel = limits.fuel.unwrap_or(app.config.skills.platform_max.fuel);
    let (reservation, fuel) = match app
        .meter
        .reserve(&principal.tenant, &policy, asked_fuel)
        .await?
    {
        Ok(admitted) => admitted,
        Err(quota) => {
            return Err(ApiError::too_many_requests(
                format!(
                    "the tenant's {} quota ({}) for this period is used up",
                    quota.quota, quota.limit
                ),
                quota.quota,
                Duration::from_secs(quota.retry_after_secs),
            )
            .with("quota", quota.quota));
        }
    };
    limits.fuel = Some(fuel);
    // The answer must come before the server's request timeout turns it into a 503: the
    // invocation gets what is left of the request's time (resolving may have waited for a
    // compile), less a margin for answering.
    let request_timeout = Duration::from_millis(app.config.http.request_timeout_ms);
    limits.timeout = limits.timeout.min(
        request_timeout
            .saturating_sub(started.elapsed())
            .saturating_sub(Duration::from_millis(500))
            .max(Duration::from_millis(100)),
    );
    let request = InvocationRequest {
        context: InvocationContext {
            tenant: principal.tenant.clone(),
            skill: full_name.clone(),
            version: version.clone(),
            request_id,
        },
        // The caller's text as sent (already checked to be JSON), not a re-serialization.
        input: String::from(body.input.get()),
        limits,
        grants: Grants {
            kv: manifest.permissions.kv,
            http: HttpPolicy {
                allowed: manifest.permissions.http.clone(),
                tenant_allowed: policy.http_allow.clone(),
                ..HttpPolicy::default()
            },
        },
    };
    // Runs in its own task: if the caller goes away the invocation still finishes (bounded by
    // its limits) and is charged what it really used. Under load this is also faster than
    // running it in the request's task (28k against 20k requests/s, docs/performance.md):
    // the idle worker steals invocations while the other serves connections. Boxed, so the
    // task holds a pointer, not the invocation's whole future, which tokio would copy in,
    // out as the output, and again when it is read.
    let runtime = Arc::clone(&app.runtime);
    let prepared = Arc::clone(prepared);
    let (report, broken) = tokio::spawn(Box::pin(async move {
        let report = runtime.invoke(&prepared.loaded, request).await;
        // The output schema is the skill's promise (wit/handler.wit): an output that breaks
        // it is the skill's failure, answered and charged as one.
        let broken = match (&report.outcome, &prepared.output_validator) {
            (Outcome::Ok { output }, Some(validator)) => output_violation(validator, output),
            _ => None,
        };
        if report.outcome.refused_before_running() {
            reservation.release();
        } else {
            reservation.settle(Spent {
                fuel: report.usage.fuel_consumed,
                wall_us: report.usage.wall_time_us,
                failed: broken.is_some() || !matches!(report.outcome, Outcome::Ok { .. }),
            });
        }
        (report, broken)
    }))
    .await
    .map_err(|e| ApiError::internal(format!("the invocation task failed: {e}")))?;
    if let Some(error) = outcome_error(&report.outcome, &report.usage) {
        return Err(error);
    }
    if let Some(violation) = broken {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "invalid-output",
            format!(
                "the skill's output does not match its output schema at {:?}: {}",
                if violation.pointer.is_empty() {
                    "/"
                } else {
                    &violation.pointer
                },
                violation.message
            ),
        )
        .with("pointer", violation.pointer)
        .with(
            "usage",
            serde_json::to_value(UsageView::from(&report.usage)).unwrap_or_default(),
        ));
    }
    let Outcome::Ok { output } = report.outcome else {
        unreachable!("every other outcome is an error");
    };
    let output = RawValue::from_string(output)
        .map_err(|e| ApiError::internal(format!("the runtime passed on non-JSON output: {e}")))?;
    Ok(ApiJson(InvokeResponse {
        skill: full_name,
        version,
        output,
        usage: UsageView::from(&report.usage),
        pending_update: resolved.pending,
    }))
}
