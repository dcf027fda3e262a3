//! `/api/v1/agents`: agents and their lockfiles. Saves are optimistic: every answer carries
//! `ETag: "<version>"`, `PUT` requires `If-Match` with it (428 without, 412 when the agent
//! was saved since), `DELETE` and `relock` honour it when sent.

pub mod body;
pub mod crud;
pub mod lock;
pub mod runs;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use omniforge_control::agents::{AgentSpec, SaveError, spec_of};
use omniforge_store::{Agent, AgentId, Pin};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiJson};

/// An agent as the API shows it: its definition, its version and its lockfile.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    /// Its id (`agt_…`).
    pub id: String,
    /// The definition, as saved.
    #[serde(flatten)]
    pub spec: AgentSpec,
    /// Saves so far (also the `ETag`).
    pub version: i64,
    /// `ready`, or `warning` when a pinned version was yanked or its skill deleted since
    /// the save (`warnings` says which; `POST …/relock` moves the pins).
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
    /// What no longer holds in the lockfile.
    pub warnings: Vec<String>,
    /// The lockfile: the exact version each skill step runs.
    pub lock: Vec<PinView>,
    /// When it was created, unix ms.
    pub created_at_ms: i64,
    /// When it was last saved, unix ms.
    pub updated_at_ms: i64,
}

/// One entry of an agent's lockfile.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinView {
    /// `namespace/name`.
    pub skill: String,
    /// The requirement the definition states (`""`: any version).
    pub requirement: String,
    /// The version it resolved to when saved.
    pub version: String,
    /// SHA-256 of that version's component (hex), as publishing answered it.
    pub component_sha256: String,
    /// The version was yanked since.
    pub yanked: bool,
    /// The skill was deleted since.
    pub skill_deleted: bool,
}

impl From<&Pin> for PinView {
    fn from(pin: &Pin) -> Self {
        Self {
            skill: pin.skill.to_string(),
            requirement: pin.requirement.clone(),
            version: pin.version.to_string(),
            component_sha256: pin.digest.hex(),
            yanked: pin.yanked,
            skill_deleted: pin.skill_deleted,
        }
    }
}

fn warnings_of(agent: &Agent) -> Vec<String> {
    agent
        .pins
        .iter()
        .filter_map(|pin| {
            if pin.skill_deleted {
                Some(format!("{} was deleted", pin.skill))
            } else if pin.yanked {
                Some(format!(
                    "{} {} is yanked: relock to move the pin",
                    pin.skill, pin.version
                ))
            } else {
                None
            }
        })
        .collect()
}

impl TryFrom<Agent> for AgentView {
    type Error = ApiError;

    fn try_from(agent: Agent) -> Result<Self, ApiError> {
        let spec = spec_of(&agent).map_err(ApiError::internal)?;
        let warnings = warnings_of(&agent);
        Ok(Self {
            id: agent.id.to_string(),
            spec,
            version: agent.version,
            status: if warnings.is_empty() {
                "ready"
            } else {
                "warning"
            },
            warnings,
            lock: agent.pins.iter().map(PinView::from).collect(),
            created_at_ms: agent.created_at_ms,
            updated_at_ms: agent.updated_at_ms,
        })
    }
}

/// An agent with its `ETag` (and, when created, its `Location`).
pub struct AgentAnswer {
    status: StatusCode,
    agent: AgentView,
}

impl AgentAnswer {
    /// `status` with `agent`.
    pub fn new(status: StatusCode, agent: Agent) -> Result<Self, ApiError> {
        Ok(Self {
            status,
            agent: agent.try_into()?,
        })
    }
}

impl IntoResponse for AgentAnswer {
    fn into_response(self) -> Response {
        let etag = etag(self.agent.version);
        let created = self.status == StatusCode::CREATED;
        let location = format!("/api/v1/agents/{}", self.agent.id);
        let mut response = (self.status, ApiJson(self.agent)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, value);
        }
        if created && let Ok(value) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, value);
        }
        response
    }
}

/// The entity tag of a version.
fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The version an `If-Match` header names (`None` without the header). A tag that names no
/// version of ours (`*`, a weak or malformed one) is stale by definition: it matches nothing.
pub fn if_match(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get(header::IF_MATCH)?;
    let version = value
        .to_str()
        .ok()
        .map(str::trim)
        .and_then(|t| t.strip_prefix('"'))
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(-1);
    Some(version)
}

/// The agent id of a path, or 404 when it cannot be one.
pub fn agent_id(id: &str) -> Result<AgentId, ApiError> {
    let valid =
        id.len() <= 64 && id.starts_with("agt_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(AgentId::new(id))
    } else {
        Err(ApiError::not_found("agent"))
    }
}

impl From<SaveError> for ApiError {
    fn from(error: SaveError) -> Self {
        match error {
            SaveError::Invalid(problems) => {
                let detail = problems
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "the agent definition is invalid".into());
                let field = problems.first().map(|p| p.field.clone());
                let mut error = ApiError::invalid(detail).with(
                    "problems",
                    serde_json::to_value(&problems).unwrap_or_default(),
                );
                if let Some(field) = field {
                    error = error.with("field", field);
                }
                error
            }
            SaveError::Conflict(message) => ApiError::conflict(message),
            SaveError::NotFound => ApiError::not_found("agent"),
            SaveError::Stale(version) => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                format!(
                    "the agent was saved since: it is at version {version} (ETag \"{version}\"); \
                     read it again and retry"
                ),
            )
            .with("version", version),
            SaveError::VersionRequired => ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition-required",
                "send If-Match with the ETag of the version you read",
            ),
            SaveError::Internal(cause) => ApiError::internal(cause),
        }
    }
}
