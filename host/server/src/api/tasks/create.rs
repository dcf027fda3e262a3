//! `POST /api/v1/tasks` (and `Prefer: respond-async` on invoke): queue a task, safely
//! retried with an `Idempotency-Key`.

use axum::extract::State;
use axum::http::HeaderMap;
use omniforge_control::tasks::Submit;
use omniforge_types::SkillName;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{TaskAnswer, submission_answer};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::RequestId;

/// A task to queue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// `namespace/name` of the skill.
    #[schema(pattern = "^[^/]+/[^/]+$", min_length = 3, max_length = 200)]
    pub skill: String,
    /// A version requirement (`^1`, `=1.2.3`); default: the newest version not yanked.
    /// Resolved now: every attempt runs the version resolved.
    #[schema(
        pattern = "^(\\*|latest|(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8}))?)?(, ?(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8}))?)?)*)$",
        min_length = 1,
        max_length = 200
    )]
    pub version: Option<String>,
    /// The skill's input.
    #[schema(value_type = Object)]
    pub input: Box<RawValue>,
    /// Higher runs first among the tenant's queued tasks (default 0).
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i32>,
    /// Do not start before this time, unix ms.
    #[schema(minimum = 0, maximum = 253_402_300_799_999_i64)]
    pub not_before_ms: Option<i64>,
}

/// The most a priority may be above or below 0.
const PRIORITY_RANGE: i32 = 1000;

/// The latest `not_before_ms` (the end of year 9999).
const LATEST_MS: i64 = 253_402_300_799_999;

/// The longest idempotency key.
const KEY_MAX: usize = 255;

/// Queues a task: the skill's version is resolved and the input checked now; a worker runs
/// it later. With `Idempotency-Key`, the same key and body answer the same task (200), the
/// same key with another body is refused (422).
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = CreateTask,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the submission safe to retry: remembered per tenant for at least 24 hours")),
    responses((status = 202, description = "Queued; `Location` names the task", body = super::TaskView),
              (status = 200, description = "The task this Idempotency-Key created before", body = super::TaskView),
              (status = 403, description = "Not installed, or new permissions not accepted", body = crate::error::Problem),
              (status = 404, description = "No such skill visible to the caller, or no matching version", body = crate::error::Problem),
              (status = 422, description = "`invalid-input`, or `idempotency-key-reused`", body = crate::error::Problem),
              (status = 429, description = "The tenant's queue is full (`max_queued_tasks`), or a rate limit; see `Retry-After`", body = crate::error::Problem)))]
pub async fn create(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateTask>,
) -> Result<TaskAnswer, ApiError> {
    let skill = crate::api::installations::skill_name(&body.skill)?;
    let priority = body.priority.unwrap_or(0);
    if !(-PRIORITY_RANGE..=PRIORITY_RANGE).contains(&priority) {
        return Err(ApiError::invalid(format!(
            "priority: must be between -{PRIORITY_RANGE} and {PRIORITY_RANGE}"
        ))
        .with("field", "priority"));
    }
    if let Some(at) = body.not_before_ms
        && !(0..=LATEST_MS).contains(&at)
    {
        return Err(
            ApiError::invalid(format!("not_before_ms: must be between 0 and {LATEST_MS}"))
                .with("field", "not_before_ms"),
        );
    }
    let fingerprint = canonical(&serde_json::json!({
        "skill": skill.as_str(),
        "version": body.version,
        "input": serde_json::from_str::<serde_json::Value>(body.input.get()).unwrap_or_default(),
        "priority": priority,
        "not_before_ms": body.not_before_ms,
    }));
    submit(
        &app,
        &principal,
        request_id,
        &headers,
        Submitted {
            skill,
            requirement: body.version,
            input: body.input,
            priority,
            not_before_ms: body.not_before_ms,
            fingerprint,
        },
    )
    .await
}

/// A submission as a transport received it.
pub struct Submitted {
    /// The skill.
    pub skill: SkillName,
    /// The version requirement.
    pub requirement: Option<String>,
    /// The input.
    pub input: Box<RawValue>,
    /// Its priority.
    pub priority: i32,
    /// Not started before this time.
    pub not_before_ms: Option<i64>,
    /// The request in a canonical form: what an idempotency key must be sent with again.
    pub fingerprint: String,
}

/// Queues a task for `principal` (the one path of `POST /tasks` and an asynchronous
/// invoke).
pub async fn submit(
    app: &AppState,
    principal: &Principal,
    request_id: String,
    headers: &HeaderMap,
    submitted: Submitted,
) -> Result<TaskAnswer, ApiError> {
    if let Some(version) = &submitted.requirement {
        crate::api::rules::REQUIREMENT.check(version)?;
    }
    let idempotency = idempotency_key(headers)?.map(|key| {
        let digest = hex::encode(Sha256::digest(submitted.fingerprint.as_bytes()));
        (key, digest)
    });
    let skill = submitted.skill.clone();
    let submission = app
        .tasks
        .submit(
            &principal.tenant,
            Submit {
                skill: submitted.skill,
                requirement: submitted.requirement,
                input: submitted.input,
                priority: submitted.priority,
                not_before_ms: submitted.not_before_ms,
                created_by: principal.actor(),
                request_id,
                idempotency,
            },
        )
        .await;
    submission_answer(submission, skill.as_str())
}

/// The request's `Idempotency-Key`, checked: 1 to 255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= KEY_MAX && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {KEY_MAX} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// `value` as JSON text with every object's keys sorted, so equal requests compare equal
/// whatever order their members came in.
pub fn canonical(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = serde_json::Map::new();
                for (k, v) in entries {
                    out.insert(k.clone(), sorted(v));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}
