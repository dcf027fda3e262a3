//! Agents: named, versioned definitions (a workflow or one skill, schemas, what the A2A card
//! advertises) with a lockfile per version.
//!
//! The store keeps a definition as JSON without interpreting it (the workflow format is
//! `omniforge-workflow`'s, checked by the invocation service before a save). What it does
//! own: one version per save (`version` counts saves; a write names the version it read and
//! loses to a newer one), every version's definition and pins kept for the runs that started
//! on it, soft deletion that frees the name, and the warnings of pins whose version was
//! yanked or whose skill was deleted since.

mod read;
mod write;

pub use read::{AgentFilter, AgentSort, AgentStatus, ExportedAgent, ExportedAgentVersion};
pub use write::Saved;

use omniforge_types::{AgentId, Sha256Digest, SkillName};
use semver::Version;
use serde::Serialize;

use crate::error::StoreError;

/// An agent as saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Its name, unique among the tenant's agents that are not deleted.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Whether its A2A card is visible without credentials.
    pub public: bool,
    /// Saves so far: 1 when created, one more for every update or relock.
    pub version: i64,
    /// The definition of this version (JSON, as the invocation service wrote it).
    pub definition: serde_json::Value,
    /// This version's lockfile.
    pub pins: Vec<Pin>,
    /// When it was created, unix ms.
    pub created_at_ms: i64,
    /// When it was last saved, unix ms.
    pub updated_at_ms: i64,
}

impl Agent {
    /// Whether a pin's version was yanked or its skill deleted since the save.
    pub fn has_warnings(&self) -> bool {
        self.pins.iter().any(|p| p.yanked || p.skill_deleted)
    }
}

/// What a save writes (the version is the store's).
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Whether its card is public.
    pub public: bool,
    /// The definition (JSON).
    pub definition: serde_json::Value,
    /// The lockfile.
    pub pins: Vec<NewPin>,
}

/// One entry of a lockfile to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPin {
    /// The skill.
    pub skill: SkillName,
    /// The requirement the definition states for it (`""`: any).
    pub requirement: String,
    /// The skill's row id.
    pub skill_id: String,
    /// The version it resolved to.
    pub version: Version,
    /// That version's component digest.
    pub digest: Sha256Digest,
}

/// One entry of a version's lockfile, with what became of it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    /// The skill.
    pub skill: SkillName,
    /// The requirement the definition states for it (`""`: any).
    pub requirement: String,
    /// The pinned version.
    pub version: Version,
    /// Its component digest.
    pub digest: Sha256Digest,
    /// The pinned version has been yanked since.
    pub yanked: bool,
    /// The skill has been deleted since.
    pub skill_deleted: bool,
}

/// An agent's row joined with its current version's definition.
#[derive(sqlx::FromRow)]
struct AgentRow {
    id: String,
    name: String,
    description: String,
    public: bool,
    version: i64,
    definition: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

const AGENT_COLUMNS: &str = "a.id, a.name, a.description, a.public, a.version, v.definition, \
     a.created_at_ms, a.updated_at_ms";

/// The agents of a tenant with their current version (`$1` is the tenant).
const AGENTS_WITH_VERSION: &str = "agents a JOIN agent_versions v ON v.tenant_id = a.tenant_id \
     AND v.agent_id = a.id AND v.version = a.version";

#[derive(sqlx::FromRow)]
struct PinRow {
    agent_id: String,
    version: i64,
    skill: String,
    requirement: String,
    pinned_version: String,
    digest: String,
    yanked: Option<bool>,
    skill_deleted: bool,
}

impl TryFrom<PinRow> for Pin {
    type Error = StoreError;

    fn try_from(row: PinRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("agent pin {what}: {e}"))
        };
        Ok(Pin {
            skill: row.skill.parse().map_err(|e| corrupt("skill", &e))?,
            requirement: row.requirement,
            version: row
                .pinned_version
                .parse()
                .map_err(|e| corrupt("version", &e))?,
            digest: row.digest.parse().map_err(|e| corrupt("digest", &e))?,
            // A version row that is gone counts as yanked: it cannot run.
            yanked: row.yanked.unwrap_or(true),
            skill_deleted: row.skill_deleted,
        })
    }
}

fn agent_of(row: AgentRow, pins: Vec<Pin>) -> Result<Agent, StoreError> {
    Ok(Agent {
        id: AgentId::new(row.id),
        name: row.name,
        description: row.description,
        public: row.public,
        version: row.version,
        definition: serde_json::from_str(&row.definition)
            .map_err(|e| StoreError::Corrupt(format!("agent definition: {e}")))?,
        pins,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
    })
}
