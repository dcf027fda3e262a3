//! A tenant's installations of other tenants' public skills: the version requirement it
//! follows and the permissions it accepted.

use omniforge_types::{SkillName, TenantId};
use serde::Serialize;
use serde_json::json;

use crate::audit::{page_size, record_audit};
use crate::database::with_pool;
use crate::error::StoreError;
use crate::records::{AuditContext, new_id, now_ms};
use crate::tenant::TenantStore;

/// A tenant's installation of another tenant's public skill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Installation {
    /// `ins_…`.
    pub id: String,
    /// The installing tenant.
    pub tenant_id: TenantId,
    /// The installed skill.
    pub skill_id: String,
    /// The skill's name.
    pub skill: SkillName,
    /// The version requirement invocations follow.
    pub version_req: String,
    /// The permissions accepted (JSON of a manifest's `[permissions]`).
    pub accepted_permissions: String,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms.
    pub updated_at_ms: i64,
}

pub(crate) const INSTALLATION_COLUMNS: &str = "i.id, i.tenant_id, i.skill_id, \
     s.namespace || '/' || s.name AS skill, i.version_req, i.accepted_permissions, \
     i.created_at_ms, i.updated_at_ms";

#[derive(sqlx::FromRow)]
pub(crate) struct InstallationRow {
    id: String,
    tenant_id: String,
    skill_id: String,
    skill: String,
    version_req: String,
    accepted_permissions: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl TryFrom<InstallationRow> for Installation {
    type Error = StoreError;

    fn try_from(row: InstallationRow) -> Result<Self, StoreError> {
        Ok(Installation {
            skill: row.skill.parse().map_err(|e| {
                StoreError::Corrupt(format!("installation {}: skill name: {e}", row.id))
            })?,
            id: row.id,
            tenant_id: TenantId::from(row.tenant_id),
            skill_id: row.skill_id,
            version_req: row.version_req,
            accepted_permissions: row.accepted_permissions,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        })
    }
}

impl TenantStore<'_> {
    /// Installs (or updates the installation of) a public skill of another tenant, recording
    /// the requirement and the permissions accepted.
    pub async fn install(
        &self,
        audit: &AuditContext,
        skill_id: &str,
        version_req: &str,
        accepted_permissions: &str,
    ) -> Result<Installation, StoreError> {
        let t = self.tenant_id().as_str();
        let now = now_ms();
        with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO installations (id, tenant_id, skill_id, version_req, \
                 accepted_permissions, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (tenant_id, skill_id) DO UPDATE \
                 SET version_req = excluded.version_req, \
                 accepted_permissions = excluded.accepted_permissions, \
                 updated_at_ms = excluded.updated_at_ms",
            )
            .bind(new_id("ins"))
            .bind(t)
            .bind(skill_id)
            .bind(version_req)
            .bind(accepted_permissions)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let details = json!({ "skill_id": skill_id, "version_req": version_req });
            record_audit!(
                &mut *tx,
                t,
                audit,
                "installation.upsert",
                "skill",
                skill_id,
                details
            )?;
            tx.commit().await?;
        });
        self.installation(skill_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("an installation vanished".into()))
    }

    /// This tenant's installation of a skill.
    pub async fn installation(&self, skill_id: &str) -> Result<Option<Installation>, StoreError> {
        let sql = format!(
            "SELECT {INSTALLATION_COLUMNS} FROM installations i JOIN skills s ON s.id = i.skill_id \
             WHERE i.tenant_id = $1 AND i.skill_id = $2"
        );
        let row: Option<InstallationRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(skill_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(Installation::try_from).transpose()
    }

    /// One page of this tenant's installations, by id.
    pub async fn list_installations(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Installation>, StoreError> {
        let sql = format!(
            "SELECT {INSTALLATION_COLUMNS} FROM installations i JOIN skills s ON s.id = i.skill_id \
             WHERE i.tenant_id = $1 AND ($2 IS NULL OR i.id > $2) ORDER BY i.id LIMIT $3"
        );
        let rows: Vec<InstallationRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(after)
                .bind(page_size(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Installation::try_from).collect()
    }

    /// Removes this tenant's installation of a skill; false if there was none.
    pub async fn uninstall(
        &self,
        audit: &AuditContext,
        skill_id: &str,
    ) -> Result<bool, StoreError> {
        let t = self.tenant_id().as_str();
        Ok(with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            let deleted =
                sqlx::query("DELETE FROM installations WHERE tenant_id = $1 AND skill_id = $2")
                    .bind(t)
                    .bind(skill_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if deleted > 0 {
                record_audit!(
                    &mut *tx,
                    t,
                    audit,
                    "installation.delete",
                    "skill",
                    skill_id,
                    json!({})
                )?;
                tx.commit().await?;
            }
            deleted > 0
        }))
    }

    /// Removes this tenant's installation of `namespace/name`, whether or not the skill is
    /// still visible (it may have gone private or been deleted); false if there was none.
    pub async fn uninstall_by_name(
        &self,
        audit: &AuditContext,
        namespace: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let t = self.tenant_id().as_str();
        let skill_id: Option<String> = with_pool!(self.db(), |pool| {
            sqlx::query_scalar(
                "SELECT i.skill_id FROM installations i JOIN skills s ON s.id = i.skill_id \
                 WHERE i.tenant_id = $1 AND s.namespace = $2 AND s.name = $3",
            )
            .bind(t)
            .bind(namespace)
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        match skill_id {
            Some(id) => self.uninstall(audit, &id).await,
            None => Ok(false),
        }
    }
}
