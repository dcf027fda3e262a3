//! Reading skills and versions under the visibility rule, search and listing, and the
//! export of a tenant's skill data.

use super::{
    Param, SKILL_COLUMNS, Skill, SkillQuery, SkillRow, SkillSort, SkillVersion, VERSION_COLUMNS,
    VISIBLE, VersionRow, search_words, split_cursor,
};
use crate::audit::page_size;
use crate::database::{Backend, with_pool};
use crate::error::StoreError;
use crate::installations::{INSTALLATION_COLUMNS, Installation, InstallationRow};
use crate::tenant::TenantStore;

impl TenantStore<'_> {
    pub(super) async fn skill_by_id(&self, id: &str) -> Result<Option<Skill>, StoreError> {
        let sql = format!("SELECT {SKILL_COLUMNS} FROM skills s WHERE {VISIBLE} AND s.id = $2");
        let row: Option<SkillRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(Skill::try_from).transpose()
    }

    /// The skill `namespace/name` if this tenant can see it (its own, or public).
    pub async fn skill(&self, namespace: &str, name: &str) -> Result<Option<Skill>, StoreError> {
        let sql = format!(
            "SELECT {SKILL_COLUMNS} FROM skills s WHERE {VISIBLE} AND s.namespace = $2 \
             AND s.name = $3"
        );
        let row: Option<SkillRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(namespace)
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        row.map(Skill::try_from).transpose()
    }

    /// One page of the skills this tenant can see, filtered and ordered by `query`.
    pub async fn list_skills(&self, query: &SkillQuery) -> Result<Vec<Skill>, StoreError> {
        let mut params = vec![Param::Text(self.tenant_id().as_str().to_owned())];
        let mut sql = format!("SELECT {SKILL_COLUMNS} FROM skills s WHERE {VISIBLE}");
        let push = |params: &mut Vec<Param>, param: Param| {
            params.push(param);
            format!("${}", params.len())
        };
        if let Some(text) = &query.text {
            let words = search_words(text);
            if !words.is_empty() {
                let (clause, expr) = match self.db().backend() {
                    Backend::Sqlite => (
                        "s.id IN (SELECT skill_id FROM skills_fts WHERE skills_fts MATCH {})",
                        words
                            .iter()
                            .map(|w| format!("\"{w}\"*"))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    Backend::Postgres => (
                        "s.search @@ to_tsquery('simple', {})",
                        words
                            .iter()
                            .map(|w| format!("{w}:*"))
                            .collect::<Vec<_>>()
                            .join(" & "),
                    ),
                };
                let p = push(&mut params, Param::Text(expr));
                sql += &format!(" AND {}", clause.replace("{}", &p));
            }
        }
        // Categories and permission kinds are JSON lists of plain words (checked by the
        // caller), so a quoted substring match is exact.
        if let Some(category) = &query.category {
            let p = push(&mut params, Param::Text(format!("%\"{category}\"%")));
            sql += &format!(" AND s.categories LIKE {p}");
        }
        if let Some(permission) = &query.permission {
            let p = push(&mut params, Param::Text(format!("%\"{permission}\"%")));
            sql += &format!(" AND s.permissions LIKE {p}");
        }
        if let Some(visibility) = query.visibility {
            let p = push(&mut params, Param::Text(visibility.as_str().to_owned()));
            sql += &format!(" AND s.visibility = {p}");
        }
        if query.own_only {
            sql += " AND s.tenant_id = $1";
        }
        if query.usable_only {
            sql += " AND (s.tenant_id = $1 OR s.id IN \
                    (SELECT i.skill_id FROM installations i WHERE i.tenant_id = $1))";
        }
        // Byte order on both engines (PostgreSQL's default collation ignores punctuation).
        let full_name = match self.db().backend() {
            Backend::Sqlite => "(s.namespace || '/' || s.name)",
            Backend::Postgres => "(s.namespace || '/' || s.name) COLLATE \"C\"",
        };
        let order = match query.sort {
            SkillSort::Name => {
                if let Some(after) = &query.after {
                    let p = push(&mut params, Param::Text(after.clone()));
                    sql += &format!(" AND {full_name} > {p}");
                }
                full_name
            }
            SkillSort::Updated | SkillSort::Downloads => {
                let column = if query.sort == SkillSort::Updated {
                    "s.updated_at_ms"
                } else {
                    "s.downloads"
                };
                if let Some(after) = &query.after {
                    // A cursor of another order (or none this listing gave) ends it.
                    let Some((n, id)) = split_cursor(after) else {
                        return Ok(Vec::new());
                    };
                    let a = push(&mut params, Param::Int(n));
                    let b = push(&mut params, Param::Text(id));
                    sql += &format!(" AND ({column} < {a} OR ({column} = {a} AND s.id < {b}))");
                }
                if query.sort == SkillSort::Updated {
                    "s.updated_at_ms DESC, s.id DESC"
                } else {
                    "s.downloads DESC, s.id DESC"
                }
            }
        };
        let p = push(&mut params, Param::Int(page_size(query.limit)));
        sql += &format!(" ORDER BY {order} LIMIT {p}");
        let rows: Vec<SkillRow> = with_pool!(self.db(), |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for param in params {
                q = match param {
                    Param::Text(text) => q.bind(text),
                    Param::Int(n) => q.bind(n),
                };
            }
            q.fetch_all(pool).await?
        });
        rows.into_iter().map(Skill::try_from).collect()
    }

    /// Every version of a skill this tenant can see, newest first (semver order).
    pub async fn versions(&self, skill_id: &str) -> Result<Vec<SkillVersion>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM skill_versions WHERE skill_id = $2 AND EXISTS \
             (SELECT 1 FROM skills s WHERE s.id = $2 AND {VISIBLE})"
        );
        let rows: Vec<VersionRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(skill_id)
                .fetch_all(pool)
                .await?
        });
        let mut versions = rows
            .into_iter()
            .map(SkillVersion::try_from)
            .collect::<Result<Vec<_>, StoreError>>()?;
        versions.sort_by(|a, b| b.version.cmp(&a.version));
        Ok(versions)
    }

    /// One version of a skill this tenant can see.
    pub async fn version(
        &self,
        skill_id: &str,
        version: &str,
    ) -> Result<Option<SkillVersion>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM skill_versions WHERE skill_id = $2 AND version = $3 \
             AND EXISTS (SELECT 1 FROM skills s WHERE s.id = $2 AND {VISIBLE})"
        );
        let row: Option<VersionRow> = with_pool!(self.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(skill_id)
                .bind(version)
                .fetch_optional(pool)
                .await?
        });
        row.map(SkillVersion::try_from).transpose()
    }

    /// Everything of the tenant's skill data, for the export: its skills (deleted ones
    /// included), their versions, its installations.
    pub(crate) async fn export_skills(
        &self,
    ) -> Result<(Vec<Skill>, Vec<SkillVersion>, Vec<Installation>), StoreError> {
        let skills_sql =
            format!("SELECT {SKILL_COLUMNS} FROM skills s WHERE s.tenant_id = $1 ORDER BY s.id");
        let versions_sql = format!(
            "SELECT {VERSION_COLUMNS} FROM skill_versions WHERE skill_id IN \
             (SELECT id FROM skills WHERE tenant_id = $1) ORDER BY skill_id, created_at_ms"
        );
        let installations_sql = format!(
            "SELECT {INSTALLATION_COLUMNS} FROM installations i JOIN skills s ON s.id = i.skill_id \
             WHERE i.tenant_id = $1 ORDER BY i.id"
        );
        let t = self.tenant_id().as_str();
        let (skills, versions, installations) = with_pool!(self.db(), |pool| {
            let skills: Vec<SkillRow> = sqlx::query_as(sqlx::AssertSqlSafe(skills_sql))
                .bind(t)
                .fetch_all(pool)
                .await?;
            let versions: Vec<VersionRow> = sqlx::query_as(sqlx::AssertSqlSafe(versions_sql))
                .bind(t)
                .fetch_all(pool)
                .await?;
            let installations: Vec<InstallationRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(installations_sql))
                    .bind(t)
                    .fetch_all(pool)
                    .await?;
            (skills, versions, installations)
        });
        Ok((
            skills
                .into_iter()
                .map(Skill::try_from)
                .collect::<Result<_, _>>()?,
            versions
                .into_iter()
                .map(SkillVersion::try_from)
                .collect::<Result<_, _>>()?,
            installations
                .into_iter()
                .map(Installation::try_from)
                .collect::<Result<_, _>>()?,
        ))
    }
}
