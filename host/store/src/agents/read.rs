//! Reading a tenant's agents: one by id or name, one version for a run, a filtered page.

use std::collections::HashMap;

use omniforge_types::{AgentId, SkillName};
use serde::Serialize;

use crate::agents::{AGENT_COLUMNS, AGENTS_WITH_VERSION, Agent, AgentRow, Pin, PinRow, agent_of};
use crate::audit::page_size;
use crate::database::with_pool;
use crate::error::StoreError;
use crate::records::text_enum;
use crate::tenant::TenantStore;

text_enum!(
    /// The order of an agent listing.
    AgentSort {
        /// By name.
        Name = "name",
        /// By creation time (then id).
        Created = "created",
    }
);

text_enum!(
    /// Whether an agent's lockfile still holds.
    AgentStatus {
        /// Every pinned version can run.
        Ready = "ready",
        /// A pinned version was yanked or its skill deleted: relock it.
        Warning = "warning",
    }
);

/// Which agents a listing returns, in which order, after which cursor.
#[derive(Debug, Clone)]
pub struct AgentFilter {
    /// Only agents whose current version uses this skill.
    pub skill: Option<SkillName>,
    /// Only agents in this status.
    pub status: Option<AgentStatus>,
    /// The order.
    pub sort: AgentSort,
    /// Descending instead of ascending.
    pub descending: bool,
    /// The previous page's cursor ([`AgentFilter::cursor_after`]).
    pub after: Option<String>,
    /// Page size (clamped to 1..=200).
    pub limit: u32,
}

impl AgentFilter {
    /// The cursor that continues after `agent` in this filter's order.
    pub fn cursor_after(&self, agent: &Agent) -> String {
        match self.sort {
            AgentSort::Name => format!("{}:{}", agent.name, agent.id),
            AgentSort::Created => format!("{}:{}", agent.created_at_ms, agent.id),
        }
    }
}

/// Pins with what became of them (`$1` tenant; the caller adds which agents and versions).
const PINS: &str = "SELECT p.agent_id, p.version, p.skill, p.requirement, p.pinned_version, p.digest, \
     sv.yanked, (s.deleted_at_ms IS NOT NULL) AS skill_deleted FROM agent_pins p \
     JOIN skills s ON s.id = p.skill_id \
     LEFT JOIN skill_versions sv ON sv.skill_id = p.skill_id AND sv.version = p.pinned_version";

/// Whether agent `a`'s current version has a pin that no longer holds.
const HAS_WARNING: &str = "EXISTS (SELECT 1 FROM agent_pins p JOIN skills s ON s.id = p.skill_id \
     LEFT JOIN skill_versions sv ON sv.skill_id = p.skill_id AND sv.version = p.pinned_version \
     WHERE p.tenant_id = a.tenant_id AND p.agent_id = a.id AND p.version = a.version \
     AND (sv.skill_id IS NULL OR sv.yanked OR s.deleted_at_ms IS NOT NULL))";

/// An agent as a tenant export holds it: deleted or not, with every version.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedAgent {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Whether its card is public.
    pub public: bool,
    /// Its current version.
    pub version: i64,
    /// When it was created, unix ms.
    pub created_at_ms: i64,
    /// When it was last saved, unix ms.
    pub updated_at_ms: i64,
    /// When it was deleted, unix ms.
    pub deleted_at_ms: Option<i64>,
    /// Every saved version, oldest first.
    pub versions: Vec<ExportedAgentVersion>,
}

/// One saved version of an exported agent.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedAgentVersion {
    /// The version.
    pub version: i64,
    /// Its definition.
    pub definition: serde_json::Value,
    /// Its lockfile.
    pub pins: Vec<Pin>,
    /// When it was saved, unix ms.
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    id: String,
    name: String,
    description: String,
    public: bool,
    version: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
    deleted_at_ms: Option<i64>,
}

impl TenantStore<'_> {
    /// Every agent of the tenant, deleted ones included, with every version, read in one
    /// transaction (for exports).
    pub(crate) async fn export_agents(&self) -> Result<Vec<ExportedAgent>, StoreError> {
        let pins_sql =
            format!("{PINS} WHERE p.tenant_id = $1 ORDER BY p.agent_id, p.version, p.skill");
        let (agents, versions, pins) = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            let agents: Vec<ExportRow> = sqlx::query_as(
                "SELECT id, name, description, public, version, created_at_ms, updated_at_ms, \
                 deleted_at_ms FROM agents WHERE tenant_id = $1 ORDER BY created_at_ms, id",
            )
            .bind(self.tenant_id().as_str())
            .fetch_all(&mut *tx)
            .await?;
            let versions: Vec<(String, i64, String, i64)> = sqlx::query_as(
                "SELECT agent_id, version, definition, created_at_ms FROM agent_versions \
                 WHERE tenant_id = $1 ORDER BY agent_id, version",
            )
            .bind(self.tenant_id().as_str())
            .fetch_all(&mut *tx)
            .await?;
            let pins: Vec<PinRow> = sqlx::query_as(sqlx::AssertSqlSafe(pins_sql))
                .bind(self.tenant_id().as_str())
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            (agents, versions, pins)
        });
        let mut pins_of: HashMap<(String, i64), Vec<Pin>> = HashMap::new();
        for row in pins {
            let key = (row.agent_id.clone(), row.version);
            pins_of.entry(key).or_default().push(row.try_into()?);
        }
        let mut versions_of: HashMap<String, Vec<ExportedAgentVersion>> = HashMap::new();
        for (agent, version, definition, created_at_ms) in versions {
            let definition = serde_json::from_str(&definition)
                .map_err(|e| StoreError::Corrupt(format!("agent definition: {e}")))?;
            let pins = pins_of
                .remove(&(agent.clone(), version))
                .unwrap_or_default();
            versions_of
                .entry(agent)
                .or_default()
                .push(ExportedAgentVersion {
                    version,
                    definition,
                    pins,
                    created_at_ms,
                });
        }
        Ok(agents
            .into_iter()
            .map(|row| ExportedAgent {
                versions: versions_of.remove(&row.id).unwrap_or_default(),
                id: AgentId::new(row.id),
                name: row.name,
                description: row.description,
                public: row.public,
                version: row.version,
                created_at_ms: row.created_at_ms,
                updated_at_ms: row.updated_at_ms,
                deleted_at_ms: row.deleted_at_ms,
            })
            .collect())
    }

    /// The tenant's agent `id` at its current version (`None`: absent or deleted).
    pub async fn agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        self.one_agent("a.id = $2", id.as_str()).await
    }

    /// The tenant's agent named `name` (`None`: absent or deleted).
    pub async fn agent_named(&self, name: &str) -> Result<Option<Agent>, StoreError> {
        self.one_agent("a.name = $2", name).await
    }

    async fn one_agent(&self, condition: &str, key: &str) -> Result<Option<Agent>, StoreError> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM {AGENTS_WITH_VERSION} \
             WHERE a.tenant_id = $1 AND {condition} AND a.deleted_at_ms IS NULL"
        );
        let row: Option<AgentRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        let mut pins = self.pins_of(&[(row.id.as_str(), row.version)]).await?;
        let pins = pins.remove(&row.id).unwrap_or_default();
        agent_of(row, pins).map(Some)
    }

    /// Agent `id` as it was at `version`, deleted or not: what a run that started on that
    /// version runs.
    pub async fn agent_version(
        &self,
        id: &AgentId,
        version: i64,
    ) -> Result<Option<Agent>, StoreError> {
        let sql = "SELECT a.id, a.name, a.description, a.public, v.version, v.definition, \
             a.created_at_ms, v.created_at_ms AS updated_at_ms \
             FROM agents a JOIN agent_versions v ON v.tenant_id = a.tenant_id \
             AND v.agent_id = a.id WHERE a.tenant_id = $1 AND a.id = $2 AND v.version = $3";
        let row: Option<AgentRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sql)
                .bind(self.tenant_id().as_str())
                .bind(id.as_str())
                .bind(version)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        let mut pins = self.pins_of(&[(row.id.as_str(), version)]).await?;
        let pins = pins.remove(&row.id).unwrap_or_default();
        agent_of(row, pins).map(Some)
    }

    /// The pins of the given (agent, version) pairs, by agent id.
    async fn pins_of(
        &self,
        which: &[(&str, i64)],
    ) -> Result<HashMap<String, Vec<Pin>>, StoreError> {
        if which.is_empty() {
            return Ok(HashMap::new());
        }
        let pairs: Vec<String> = (0..which.len())
            .map(|i| {
                format!(
                    "(p.agent_id = ${} AND p.version = ${})",
                    2 * i + 2,
                    2 * i + 3
                )
            })
            .collect();
        let sql = format!(
            "{PINS} WHERE p.tenant_id = $1 AND ({}) ORDER BY p.agent_id, p.skill, p.requirement",
            pairs.join(" OR ")
        );
        let rows: Vec<PinRow> = with_pool!(self.db(), |pool| {
            let mut query =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(self.tenant_id().as_str());
            for (agent, version) in which {
                query = query.bind(*agent).bind(*version);
            }
            query.fetch_all(pool).await?
        });
        let mut by_agent: HashMap<String, Vec<Pin>> = HashMap::new();
        for row in rows {
            let agent = row.agent_id.clone();
            by_agent.entry(agent).or_default().push(row.try_into()?);
        }
        Ok(by_agent)
    }

    /// One page of the tenant's agents (deleted ones left out).
    pub async fn list_agents(&self, filter: &AgentFilter) -> Result<Vec<Agent>, StoreError> {
        let (direction, beyond) = if filter.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let column = match filter.sort {
            AgentSort::Name => "a.name",
            AgentSort::Created => "a.created_at_ms",
        };
        let status = match filter.status {
            None => String::new(),
            Some(super::AgentStatus::Ready) => format!("AND NOT {HAS_WARNING}"),
            Some(super::AgentStatus::Warning) => format!("AND {HAS_WARNING}"),
        };
        let cursor = match &filter.after {
            None => None,
            // A cursor this listing did not give ends it.
            Some(after) => match after.split_once(':') {
                Some((key, id)) => Some((key.to_owned(), id.to_owned())),
                None => return Ok(Vec::new()),
            },
        };
        let (name_key, created_key) = match (&cursor, filter.sort) {
            (None, _) => (None, None),
            (Some((key, _)), AgentSort::Name) => (Some(key.clone()), None),
            (Some((key, _)), AgentSort::Created) => match key.parse::<i64>() {
                Ok(ms) => (None, Some(ms)),
                Err(_) => return Ok(Vec::new()),
            },
        };
        let cursor_id = cursor.map(|(_, id)| id);
        let key = match filter.sort {
            AgentSort::Name => "$3",
            AgentSort::Created => "$4",
        };
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM {AGENTS_WITH_VERSION} \
             WHERE a.tenant_id = $1 AND a.deleted_at_ms IS NULL \
             AND ($2 IS NULL OR EXISTS (SELECT 1 FROM agent_pins p WHERE p.tenant_id = a.tenant_id \
                  AND p.agent_id = a.id AND p.version = a.version AND p.skill = $2)) \
             AND ($5 IS NULL OR {column} {beyond} {key} OR ({column} = {key} AND a.id {beyond} $5)) \
             {status} ORDER BY {column} {direction}, a.id {direction} LIMIT $6"
        );
        let rows: Vec<AgentRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(filter.skill.as_ref().map(SkillName::as_str))
                .bind(name_key)
                .bind(created_key)
                .bind(cursor_id)
                .bind(page_size(filter.limit))
                .fetch_all(pool)
                .await?
        });
        let which: Vec<(&str, i64)> = rows.iter().map(|r| (r.id.as_str(), r.version)).collect();
        let mut pins = self.pins_of(&which).await?;
        rows.into_iter()
            .map(|row| {
                let pins = pins.remove(&row.id).unwrap_or_default();
                agent_of(row, pins)
            })
            .collect()
    }

    /// Every agent of the tenant that is not deleted, with its current definition: what a
    /// save checks for cycles among agent steps.
    pub async fn agent_definitions(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let sql = format!(
            "SELECT a.name, v.definition FROM {AGENTS_WITH_VERSION} \
             WHERE a.tenant_id = $1 AND a.deleted_at_ms IS NULL"
        );
        let rows: Vec<(String, String)> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(name, definition)| {
                let definition = serde_json::from_str(&definition)
                    .map_err(|e| StoreError::Corrupt(format!("agent definition: {e}")))?;
                Ok((name, definition))
            })
            .collect()
    }
}
