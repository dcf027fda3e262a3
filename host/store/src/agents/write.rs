//! Saving and deleting agents: every save a new version, written with its lockfile and an
//! audit event in one transaction; a write that names an older version than the stored one
//! loses.

use omniforge_types::AgentId;
use serde_json::json;

use crate::agents::{Agent, NewAgent};
use crate::audit::record_audit;
use crate::database::{BeginWrite, with_pool};
use crate::error::{StoreError, conflict_on_unique};
use crate::records::{AuditContext, new_id, now_ms};
use crate::tenant::TenantStore;

/// Writes version `$version` of agent `$id`: its definition and its pins.
macro_rules! write_version {
    ($conn:expr, $store:expr, $id:expr, $version:expr, $new:expr, $now:expr) => {{
        let new: &NewAgent = $new;
        sqlx::query(
            "INSERT INTO agent_versions (tenant_id, agent_id, version, definition, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($store.tenant_id().as_str())
        .bind($id.as_str())
        .bind($version)
        .bind(new.definition.to_string())
        .bind($now)
        .execute(&mut *$conn)
        .await?;
        for pin in &new.pins {
            sqlx::query(
                "INSERT INTO agent_pins (tenant_id, agent_id, version, skill, requirement, \
                 skill_id, pinned_version, digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind($store.tenant_id().as_str())
            .bind($id.as_str())
            .bind($version)
            .bind(pin.skill.as_str())
            .bind(&pin.requirement)
            .bind(&pin.skill_id)
            .bind(pin.version.to_string())
            .bind(pin.digest.to_string())
            .execute(&mut *$conn)
            .await?;
        }
    }};
}

/// How a write that names the version it read ended.
#[derive(Debug)]
pub enum Saved<T> {
    /// Written.
    Done(T),
    /// No such agent (or it is deleted).
    NotFound,
    /// The agent was saved since: this is its version now.
    Stale(i64),
}

fn name_taken(e: sqlx::Error, name: &str) -> StoreError {
    conflict_on_unique(e, format!("an agent named {name:?} exists"))
}

impl TenantStore<'_> {
    /// Creates an agent at version 1.
    pub async fn create_agent(
        &self,
        audit: &AuditContext,
        new: &NewAgent,
    ) -> Result<Agent, StoreError> {
        let id = AgentId::new(new_id("agt"));
        let now = now_ms();
        with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO agents (tenant_id, id, name, description, public, version, \
                 created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
            )
            .bind(self.tenant_id().as_str())
            .bind(id.as_str())
            .bind(&new.name)
            .bind(&new.description)
            .bind(new.public)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, &new.name))?;
            write_version!(&mut *tx, self, &id, 1_i64, new, now);
            let details = json!({"name": new.name, "version": 1});
            record_audit!(
                &mut *tx,
                self.tenant_id().as_str(),
                audit,
                "agent.create",
                "agent",
                id.as_str(),
                details
            )?;
            tx.commit().await?;
        });
        self.agent(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a created agent vanished".into()))
    }

    /// Saves `new` as the next version of agent `id`, if `expected` is its version now.
    /// `action` names the change in the audit log (`agent.update`, `agent.relock`).
    pub async fn update_agent(
        &self,
        audit: &AuditContext,
        id: &AgentId,
        expected: i64,
        new: &NewAgent,
        action: &str,
    ) -> Result<Saved<Agent>, StoreError> {
        let now = now_ms();
        let outcome = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE agents SET name = $4, description = $5, public = $6, \
                 version = version + 1, updated_at_ms = $7 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $3 AND deleted_at_ms IS NULL",
            )
            .bind(self.tenant_id().as_str())
            .bind(id.as_str())
            .bind(expected)
            .bind(&new.name)
            .bind(&new.description)
            .bind(new.public)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, &new.name))?
            .rows_affected();
            if updated == 0 {
                let current: Option<i64> = sqlx::query_scalar(
                    "SELECT version FROM agents \
                     WHERE tenant_id = $1 AND id = $2 AND deleted_at_ms IS NULL",
                )
                .bind(self.tenant_id().as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                match current {
                    None => Saved::NotFound,
                    Some(version) => Saved::Stale(version),
                }
            } else {
                let version = expected + 1;
                write_version!(&mut *tx, self, id, version, new, now);
                let details = json!({"name": new.name, "version": version});
                record_audit!(
                    &mut *tx,
                    self.tenant_id().as_str(),
                    audit,
                    action,
                    "agent",
                    id.as_str(),
                    details
                )?;
                tx.commit().await?;
                Saved::Done(())
            }
        });
        Ok(match outcome {
            Saved::Done(()) => match self.agent(id).await? {
                Some(agent) => Saved::Done(agent),
                None => Saved::NotFound,
            },
            Saved::NotFound => Saved::NotFound,
            Saved::Stale(version) => Saved::Stale(version),
        })
    }

    /// Deletes agent `id` (softly: its versions stay for the runs that name them, its name
    /// is free again), if `expected` is `None` or its version now.
    pub async fn delete_agent(
        &self,
        audit: &AuditContext,
        id: &AgentId,
        expected: Option<i64>,
    ) -> Result<Saved<()>, StoreError> {
        let now = now_ms();
        Ok(with_pool!(self.db(), |pool| {
            let mut tx = pool.begin_write().await?;
            let current: Option<(i64, String)> = sqlx::query_as(
                "SELECT version, name FROM agents \
                 WHERE tenant_id = $1 AND id = $2 AND deleted_at_ms IS NULL",
            )
            .bind(self.tenant_id().as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            match current {
                None => Saved::NotFound,
                Some((version, _)) if expected.is_some_and(|e| e != version) => {
                    Saved::Stale(version)
                }
                Some((version, name)) => {
                    sqlx::query(
                        "UPDATE agents SET deleted_at_ms = $3, updated_at_ms = $3 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(self.tenant_id().as_str())
                    .bind(id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    let details = json!({"name": name, "version": version});
                    record_audit!(
                        &mut *tx,
                        self.tenant_id().as_str(),
                        audit,
                        "agent.delete",
                        "agent",
                        id.as_str(),
                        details
                    )?;
                    tx.commit().await?;
                    Saved::Done(())
                }
            }
        }))
    }
}
