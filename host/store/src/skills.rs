//! Skills, their published versions and installations: the registry's metadata. Package and
//! component bytes live in the blob store; rows here name them by digest.
//!
//! Visibility rule, applied by every read: a tenant sees its own skills and the public skills
//! of others; deleted skills are seen by nobody. Changes are allowed only on the tenant's own
//! skills (the server tells "not yours" from "not there").

use omniforge_types::TenantId;
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{page_size, record_audit};
use crate::database::{Backend, with_pool};
use crate::error::{StoreError, conflict_on_unique};
use crate::records::{AuditContext, new_id, now_ms};
use crate::tenant::TenantStore;

/// Who may see a skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Only the publishing tenant.
    Private,
    /// Every tenant of this deployment (to use it, a tenant installs it).
    Public,
}

impl Visibility {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Public => "public",
        }
    }
}

impl std::str::FromStr for Visibility {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "private" => Ok(Self::Private),
            "public" => Ok(Self::Public),
            other => Err(format!(
                "unknown visibility {other:?} (expected private or public)"
            )),
        }
    }
}

/// A skill: `namespace/name`, with the metadata of its newest version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skill {
    /// `skl_…`.
    pub id: String,
    /// The publishing tenant.
    pub tenant_id: TenantId,
    /// The namespace (owned by that tenant).
    pub namespace: String,
    /// The name within the namespace.
    pub name: String,
    /// From the newest published manifest, or as edited since.
    pub description: String,
    /// Private or public.
    pub visibility: Visibility,
    /// Marketplace categories.
    pub categories: Vec<String>,
    /// Search keywords.
    pub keywords: Vec<String>,
    /// Kinds of permission the newest version asks for (`http`, `kv`, `secrets`, `llm`,
    /// `skills`).
    pub permissions: Vec<String>,
    /// The newest version's README.
    pub readme: String,
    /// The highest version that is not yanked.
    pub latest_version: Option<String>,
    /// Package downloads.
    pub downloads: i64,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms of the last publish or edit.
    pub updated_at_ms: i64,
}

impl Skill {
    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One published version. Immutable except for `yanked`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkillVersion {
    /// The skill.
    pub skill_id: String,
    /// The semver version.
    pub version: String,
    /// SHA-256 of the package ZIP (hex).
    pub package_sha256: String,
    /// SHA-256 of the runnable component (hex).
    pub component_sha256: String,
    /// The manifest, as JSON.
    pub manifest: String,
    /// The input JSON Schema, as JSON.
    pub input_schema: Option<String>,
    /// Package size in bytes.
    pub size_bytes: i64,
    /// Yanked versions are skipped by requirements but stay fetchable by exact version.
    pub yanked: bool,
    /// Who published it (the principal).
    pub published_by: String,
    /// The key id of the signature the package carried, if any.
    pub signature_key_id: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// A version to publish, already validated by the registry.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The namespace.
    pub namespace: String,
    /// The name within it.
    pub name: String,
    /// The version.
    pub version: Version,
    /// From the manifest.
    pub description: String,
    /// From the manifest.
    pub keywords: Vec<String>,
    /// From the manifest.
    pub categories: Vec<String>,
    /// Kinds of permission the manifest asks for.
    pub permissions: Vec<String>,
    /// The README, or empty.
    pub readme: String,
    /// SHA-256 of the package (hex).
    pub package_sha256: String,
    /// SHA-256 of the runnable component (hex).
    pub component_sha256: String,
    /// The manifest as JSON.
    pub manifest: String,
    /// The input schema as JSON.
    pub input_schema: Option<String>,
    /// Package size.
    pub size_bytes: i64,
    /// The signature's key id.
    pub signature_key_id: Option<String>,
    /// The publishing principal.
    pub published_by: String,
}

/// How to order a skill listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillSort {
    /// `namespace/name`, ascending.
    #[default]
    Name,
    /// Most recently published or edited first.
    Updated,
    /// Most downloaded first.
    Downloads,
}

/// A skill listing: filters, order and page.
#[derive(Debug, Clone, Default)]
pub struct SkillQuery {
    /// Full-text search over name, description and keywords (every word must match, as a
    /// prefix).
    pub text: Option<String>,
    /// Only skills in this category.
    pub category: Option<String>,
    /// Only skills whose newest version asks for this kind of permission.
    pub permission: Option<String>,
    /// Only private or only public skills.
    pub visibility: Option<Visibility>,
    /// Only this tenant's own skills.
    pub own_only: bool,
    /// The order.
    pub sort: SkillSort,
    /// The previous page's cursor.
    pub after: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// What an owner may change about a skill.
#[derive(Debug, Clone, Default)]
pub struct SkillUpdate {
    /// New description.
    pub description: Option<String>,
    /// New visibility.
    pub visibility: Option<Visibility>,
    /// New categories.
    pub categories: Option<Vec<String>>,
}

/// A tenant's installation of another tenant's public skill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Installation {
    /// `ins_…`.
    pub id: String,
    /// The installing tenant.
    pub tenant_id: TenantId,
    /// The installed skill.
    pub skill_id: String,
    /// `namespace/name` of the skill.
    pub skill: String,
    /// The version requirement invocations follow.
    pub version_req: String,
    /// The permissions accepted (JSON of a manifest's `[permissions]`).
    pub accepted_permissions: String,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms.
    pub updated_at_ms: i64,
}

const SKILL_COLUMNS: &str = "s.id, s.tenant_id, s.namespace, s.name, s.description, \
     s.visibility, s.categories, s.keywords, s.permissions, s.readme, s.latest_version, \
     s.downloads, s.created_at_ms, s.updated_at_ms";
const VERSION_COLUMNS: &str = "skill_id, version, package_sha256, component_sha256, manifest, \
     input_schema, size_bytes, yanked, published_by, signature_key_id, created_at_ms";
const INSTALLATION_COLUMNS: &str = "i.id, i.tenant_id, i.skill_id, \
     s.namespace || '/' || s.name AS skill, i.version_req, i.accepted_permissions, \
     i.created_at_ms, i.updated_at_ms";

/// Rows this tenant can see: its own and public ones, never deleted ones.
const VISIBLE: &str = "s.deleted_at_ms IS NULL AND (s.tenant_id = $1 OR s.visibility = 'public')";

#[derive(sqlx::FromRow)]
struct SkillRow {
    id: String,
    tenant_id: String,
    namespace: String,
    name: String,
    description: String,
    visibility: String,
    categories: String,
    keywords: String,
    permissions: String,
    readme: String,
    latest_version: Option<String>,
    downloads: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
}

fn json_list(what: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("skill {what}: {e}")))
}

impl TryFrom<SkillRow> for Skill {
    type Error = StoreError;

    fn try_from(row: SkillRow) -> Result<Self, StoreError> {
        Ok(Skill {
            visibility: row.visibility.parse().map_err(StoreError::Corrupt)?,
            categories: json_list("categories", &row.categories)?,
            keywords: json_list("keywords", &row.keywords)?,
            permissions: json_list("permissions", &row.permissions)?,
            id: row.id,
            tenant_id: TenantId::from(row.tenant_id),
            namespace: row.namespace,
            name: row.name,
            description: row.description,
            readme: row.readme,
            latest_version: row.latest_version,
            downloads: row.downloads,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    skill_id: String,
    version: String,
    package_sha256: String,
    component_sha256: String,
    manifest: String,
    input_schema: Option<String>,
    size_bytes: i64,
    yanked: bool,
    published_by: String,
    signature_key_id: Option<String>,
    created_at_ms: i64,
}

impl From<VersionRow> for SkillVersion {
    fn from(row: VersionRow) -> Self {
        SkillVersion {
            skill_id: row.skill_id,
            version: row.version,
            package_sha256: row.package_sha256,
            component_sha256: row.component_sha256,
            manifest: row.manifest,
            input_schema: row.input_schema,
            size_bytes: row.size_bytes,
            yanked: row.yanked,
            published_by: row.published_by,
            signature_key_id: row.signature_key_id,
            created_at_ms: row.created_at_ms,
        }
    }
}

#[derive(sqlx::FromRow)]
struct InstallationRow {
    id: String,
    tenant_id: String,
    skill_id: String,
    skill: String,
    version_req: String,
    accepted_permissions: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<InstallationRow> for Installation {
    fn from(row: InstallationRow) -> Self {
        Installation {
            id: row.id,
            tenant_id: TenantId::from(row.tenant_id),
            skill_id: row.skill_id,
            skill: row.skill,
            version_req: row.version_req,
            accepted_permissions: row.accepted_permissions,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }
}

/// A bound parameter of a query assembled at run time.
enum Param {
    Text(String),
    Int(i64),
}

/// Full-text words of a search: letters and digits only, so user text never reaches the
/// search syntax of either engine.
fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(str::to_lowercase)
        .collect()
}

/// The highest non-yanked version among `versions` (semver order).
fn latest(versions: &[(String, bool)]) -> Option<String> {
    versions
        .iter()
        .filter(|(_, yanked)| !yanked)
        .filter_map(|(v, _)| Version::parse(v).ok())
        .max()
        .map(|v| v.to_string())
}

/// A listing cursor of the `Updated` and `Downloads` orders: `<number>:<id>`.
fn split_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    cursor
        .split_once(':')
        .and_then(|(n, id)| Some((n.parse().ok()?, id.to_owned())))
        .ok_or_else(|| StoreError::Invalid(format!("malformed cursor {cursor:?}")))
}

impl SkillQuery {
    /// The cursor that continues after `skill` in this query's order.
    pub fn cursor_after(&self, skill: &Skill) -> String {
        match self.sort {
            SkillSort::Name => skill.full_name(),
            SkillSort::Updated => format!("{}:{}", skill.updated_at_ms, skill.id),
            SkillSort::Downloads => format!("{}:{}", skill.downloads, skill.id),
        }
    }
}

impl TenantStore<'_> {
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
            versions.into_iter().map(SkillVersion::from).collect(),
            installations.into_iter().map(Installation::from).collect(),
        ))
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
                 package_sha256, component_sha256, manifest, input_schema, size_bytes, \
                 yanked, published_by, signature_key_id, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, FALSE, $12, $13, $14)",
            )
            .bind(&skill_id)
            .bind(v.to_string())
            .bind(v.major as i64)
            .bind(v.minor as i64)
            .bind(v.patch as i64)
            .bind(v.pre.as_str())
            .bind(&new.package_sha256)
            .bind(&new.component_sha256)
            .bind(&new.manifest)
            .bind(&new.input_schema)
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

    async fn skill_by_id(&self, id: &str) -> Result<Option<Skill>, StoreError> {
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
                    let (n, id) = split_cursor(after)?;
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
        let mut versions: Vec<(Version, SkillVersion)> = rows
            .into_iter()
            .map(|row| {
                let parsed = Version::parse(&row.version)
                    .map_err(|e| StoreError::Corrupt(format!("version {:?}: {e}", row.version)))?;
                Ok((parsed, SkillVersion::from(row)))
            })
            .collect::<Result<_, StoreError>>()?;
        versions.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(versions.into_iter().map(|(_, v)| v).collect())
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
        Ok(row.map(SkillVersion::from))
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
        Ok(row.map(Installation::from))
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
        Ok(rows.into_iter().map(Installation::from).collect())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_keep_only_letters_and_digits() {
        assert_eq!(
            search_words("Hello-World \"; DROP TABLE*"),
            ["hello", "world", "drop", "table"]
        );
        assert!(search_words("*:&|!()").is_empty());
    }

    #[test]
    fn latest_is_the_highest_unyanked_semver() {
        let v = |s: &str, y| (s.to_owned(), y);
        assert_eq!(
            latest(&[v("1.2.0", false), v("1.10.0", false), v("2.0.0", true)]).as_deref(),
            Some("1.10.0")
        );
        assert_eq!(latest(&[v("1.0.0", true)]), None);
    }
}
