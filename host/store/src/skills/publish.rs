//! Changes to skills: publishing versions, yanking, editing, deleting, counting downloads.
//! Every change writes its audit event in its own transaction.

use semver::Version;
use serde_json::json;

use super::{NewVersion, Skill, SkillUpdate, SkillVersion, VISIBLE, Visibility, latest};
use crate::audit::record_audit;
use crate::database::with_pool;
use crate::error::{StoreError, conflict_on_unique};
use crate::records::{AuditContext, new_id, now_ms};
use crate::tenant::TenantStore;

impl TenantStore<'_> {
    /// Whether this tenant may publish `namespace/name` `version` now: the namespace is free
    /// or its own ([`StoreError::Forbidden`] otherwise) and the version is new
    /// ([`StoreError::Conflict`]). Checked before anything is stored; [`Self::publish`]
    /// checks again in its transaction.
    pub async fn check_publishable(
        &self,
        namespace: &str,
        name: &str,
        version: &Version,
    ) -> Result<(), StoreError> {
        let t = self.tenant_id().as_str();
        let (owner, exists) = with_pool!(self.db(), |pool| {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT tenant_id FROM namespaces WHERE namespace = $1")
                    .bind(namespace)
                    .fetch_optional(pool)
                    .await?;
            let exists: Option<String> = sqlx::query_scalar(
                "SELECT v.version FROM skill_versions v JOIN skills s ON s.id = v.skill_id \
                 WHERE s.namespace = $1 AND s.name = $2 AND s.tenant_id = $3 AND v.version = $4",
            )
            .bind(namespace)
            .bind(name)
            .bind(t)
            .bind(version.to_string())
            .fetch_optional(pool)
            .await?;
            (owner, exists)
        });
        if owner.is_some_and(|owner| owner != t) {
            return Err(StoreError::Forbidden(format!(
                "the namespace {namespace:?} belongs to another tenant"
            )));
        }
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "{namespace}/{name} {version} is already published; versions are immutable"
            )));
        }
        Ok(())
    }

    /// Publishes a version: claims the namespace for this tenant if it is free, creates the
    /// skill on its first version (private), adds the version and mirrors its metadata onto
    /// the skill, all in one transaction. A namespace of another tenant is
    /// [`StoreError::Forbidden`]; an existing version is [`StoreError::Conflict`].
    pub async fn publish(
        &self,
        audit: &AuditContext,
        new: NewVersion,
    ) -> Result<(Skill, SkillVersion), StoreError> {
        let now = now_ms();
        let t = self.tenant_id().as_str();
        let skill_id = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO namespaces (namespace, tenant_id, created_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace) DO NOTHING",
            )
            .bind(&new.namespace)
            .bind(t)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let owner: String =
                sqlx::query_scalar("SELECT tenant_id FROM namespaces WHERE namespace = $1")
                    .bind(&new.namespace)
                    .fetch_one(&mut *tx)
                    .await?;
            if owner != t {
                return Err(StoreError::Forbidden(format!(
                    "the namespace {:?} belongs to another tenant",
                    new.namespace
                )));
            }
            // Two first publishes of a skill at once: one inserts, the other finds it.
            sqlx::query(
                "INSERT INTO skills (id, tenant_id, namespace, name, created_at_ms, \
                 updated_at_ms) VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (namespace, name) DO NOTHING",
            )
            .bind(new_id("skl"))
            .bind(t)
            .bind(&new.namespace)
            .bind(&new.name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let skill_id: String = sqlx::query_scalar(
                "SELECT id FROM skills WHERE namespace = $1 AND name = $2 AND tenant_id = $3",
            )
            .bind(&new.namespace)
            .bind(&new.name)
            .bind(t)
            .fetch_one(&mut *tx)
            .await?;
            let v = &new.version;
            sqlx::query(
                "INSERT INTO skill_versions (skill_id, version, major, minor, patch, pre, \
                 package_sha256, component_sha256, manifest, input_schema, output_schema, \
                 size_bytes, yanked, published_by, signature_key_id, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, FALSE, $13, $14, $15)",
            )
            .bind(&skill_id)
            .bind(v.to_string())
            .bind(v.major as i64)
            .bind(v.minor as i64)
            .bind(v.patch as i64)
            .bind(v.pre.as_str())
            .bind(new.package_sha256.hex())
            .bind(new.component_sha256.hex())
            .bind(&new.manifest)
            .bind(&new.input_schema)
            .bind(&new.output_schema)
            .bind(new.size_bytes)
            .bind(&new.published_by)
            .bind(&new.signature_key_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                conflict_on_unique(
                    e,
                    format!(
                        "{}/{} {} is already published; versions are immutable",
                        new.namespace, new.name, v
                    ),
                )
            })?;
            let versions: Vec<(String, bool)> =
                sqlx::query_as("SELECT version, yanked FROM skill_versions WHERE skill_id = $1")
                    .bind(&skill_id)
                    .fetch_all(&mut *tx)
                    .await?;
            let latest = latest(&versions);
            // Metadata follows the newest version; an older version published later (a
            // backport) leaves it alone.
            if latest.as_deref() == Some(v.to_string().as_str()) {
                sqlx::query(
                    "UPDATE skills SET description = $2, keywords = $3, categories = $4, \
                     permissions = $5, readme = $6, latest_version = $7, updated_at_ms = $8, \
                     deleted_at_ms = NULL WHERE id = $1",
                )
                .bind(&skill_id)
                .bind(&new.description)
                .bind(json!(new.keywords).to_string())
                .bind(json!(new.categories).to_string())
                .bind(json!(new.permissions).to_string())
                .bind(&new.readme)
                .bind(&latest)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "UPDATE skills SET latest_version = $2, updated_at_ms = $3, \
                     deleted_at_ms = NULL WHERE id = $1",
                )
                .bind(&skill_id)
                .bind(&latest)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            let details = json!({
                "skill": format!("{}/{}", new.namespace, new.name),
                "version": v.to_string(),
                "package_sha256": new.package_sha256,
            });
            record_audit!(
                &mut *tx,
                t,
                audit,
                "skill.publish",
                "skill",
                &skill_id,
                details
            )?;
            tx.commit().await?;
            skill_id
        });
        let skill = self
            .skill_by_id(&skill_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a published skill vanished".into()))?;
        let version = self
            .version(&skill_id, &new.version.to_string())
            .await?
            .ok_or_else(|| StoreError::Corrupt("a published version vanished".into()))?;
        Ok((skill, version))
    }

    /// Yanks or unyanks a version of this tenant's own skill; `None` if there is no such
    /// version. The skill's latest version follows.
    pub async fn set_yanked(
        &self,
        audit: &AuditContext,
        skill_id: &str,
        version: &str,
        yanked: bool,
    ) -> Result<Option<SkillVersion>, StoreError> {
        let t = self.tenant_id().as_str();
        let changed = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE skill_versions SET yanked = $4 WHERE skill_id = $2 AND version = $3 \
                 AND EXISTS (SELECT 1 FROM skills s WHERE s.id = $2 AND s.tenant_id = $1 \
                 AND s.deleted_at_ms IS NULL)",
            )
            .bind(t)
            .bind(skill_id)
            .bind(version)
            .bind(yanked)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                false
            } else {
                let versions: Vec<(String, bool)> = sqlx::query_as(
                    "SELECT version, yanked FROM skill_versions WHERE skill_id = $1",
                )
                .bind(skill_id)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query("UPDATE skills SET latest_version = $2 WHERE id = $1")
                    .bind(skill_id)
                    .bind(latest(&versions))
                    .execute(&mut *tx)
                    .await?;
                let action = if yanked { "skill.yank" } else { "skill.unyank" };
                let details = json!({ "version": version });
                record_audit!(&mut *tx, t, audit, action, "skill", skill_id, details)?;
                tx.commit().await?;
                true
            }
        });
        if !changed {
            return Ok(None);
        }
        self.version(skill_id, version).await
    }

    /// Changes this tenant's own skill; `None` if it has no such skill.
    pub async fn update_skill(
        &self,
        audit: &AuditContext,
        skill_id: &str,
        update: &SkillUpdate,
    ) -> Result<Option<Skill>, StoreError> {
        let t = self.tenant_id().as_str();
        let categories = update.categories.as_ref().map(|c| json!(c).to_string());
        let changed = with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE skills SET description = COALESCE($3, description), \
                 visibility = COALESCE($4, visibility), categories = COALESCE($5, categories), \
                 updated_at_ms = $6 \
                 WHERE id = $2 AND tenant_id = $1 AND deleted_at_ms IS NULL",
            )
            .bind(t)
            .bind(skill_id)
            .bind(&update.description)
            .bind(update.visibility.map(Visibility::as_str))
            .bind(&categories)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated > 0 {
                let details = json!({
                    "description": update.description,
                    "visibility": update.visibility.map(Visibility::as_str),
                    "categories": update.categories,
                });
                record_audit!(
                    &mut *tx,
                    t,
                    audit,
                    "skill.update",
                    "skill",
                    skill_id,
                    details
                )?;
                tx.commit().await?;
            }
            updated > 0
        });
        if !changed {
            return Ok(None);
        }
        self.skill_by_id(skill_id).await
    }

    /// Soft-deletes this tenant's own skill: nobody sees it any more, its versions and blobs
    /// stay (installations elsewhere stop resolving). Publishing into it again restores it.
    pub async fn delete_skill(
        &self,
        audit: &AuditContext,
        skill_id: &str,
    ) -> Result<bool, StoreError> {
        let t = self.tenant_id().as_str();
        Ok(with_pool!(self.db(), |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE skills SET deleted_at_ms = $3 WHERE id = $2 AND tenant_id = $1 \
                 AND deleted_at_ms IS NULL",
            )
            .bind(t)
            .bind(skill_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated > 0 {
                record_audit!(
                    &mut *tx,
                    t,
                    audit,
                    "skill.delete",
                    "skill",
                    skill_id,
                    json!({})
                )?;
                tx.commit().await?;
            }
            updated > 0
        }))
    }

    /// Counts a package download of a skill this tenant can see.
    pub async fn count_download(&self, skill_id: &str) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE skills SET downloads = downloads + 1 WHERE id = $2 AND EXISTS \
             (SELECT 1 FROM skills s WHERE s.id = $2 AND {VISIBLE})"
        );
        with_pool!(self.db(), |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(skill_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
