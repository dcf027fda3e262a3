//! Skills and their published versions: the registry's metadata. Package and
//! component bytes live in the blob store; rows here name them by digest.
//!
//! Visibility rule, applied by every read: a tenant sees its own skills and the public skills
//! of others; deleted skills are seen by nobody. Changes are allowed only on the tenant's own
//! skills (the server tells "not yours" from "not there").
//!
//! `publish` holds the changes (publish, yank, edit, delete, downloads), `read` the queries;
//! installations of other tenants' skills are in `installations.rs`.

mod publish;
mod read;

use omniforge_types::{PermissionKind, Sha256Digest, SkillName, TenantId};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

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
    /// `namespace/name`, checked when read (exports keep the two parts).
    #[serde(skip)]
    pub full_name: SkillName,
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
    /// Kinds of permission the newest version asks for.
    pub permissions: Vec<PermissionKind>,
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

/// One published version. Immutable except for `yanked`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkillVersion {
    /// The skill.
    pub skill_id: String,
    /// The version.
    pub version: Version,
    /// SHA-256 of the package ZIP (hex in exports).
    #[serde(serialize_with = "hex_digest")]
    pub package_sha256: Sha256Digest,
    /// SHA-256 of the runnable component (hex in exports).
    #[serde(serialize_with = "hex_digest")]
    pub component_sha256: Sha256Digest,
    /// The manifest, as JSON.
    pub manifest: String,
    /// The input JSON Schema, as JSON.
    pub input_schema: Option<String>,
    /// The output JSON Schema, as JSON.
    pub output_schema: Option<String>,
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
    pub permissions: Vec<PermissionKind>,
    /// The README, or empty.
    pub readme: String,
    /// SHA-256 of the package.
    pub package_sha256: Sha256Digest,
    /// SHA-256 of the runnable component.
    pub component_sha256: Sha256Digest,
    /// The manifest as JSON.
    pub manifest: String,
    /// The input schema as JSON.
    pub input_schema: Option<String>,
    /// The output schema as JSON.
    pub output_schema: Option<String>,
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
    pub permission: Option<PermissionKind>,
    /// Only private or only public skills.
    pub visibility: Option<Visibility>,
    /// Only this tenant's own skills.
    pub own_only: bool,
    /// Only the skills this tenant can invoke: its own and those it installed.
    pub usable_only: bool,
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

pub(crate) const SKILL_COLUMNS: &str = "s.id, s.tenant_id, s.namespace, s.name, s.description, \
     s.visibility, s.categories, s.keywords, s.permissions, s.readme, s.latest_version, \
     s.downloads, s.created_at_ms, s.updated_at_ms";
pub(crate) const VERSION_COLUMNS: &str = "skill_id, version, package_sha256, component_sha256, manifest, \
     input_schema, output_schema, size_bytes, yanked, published_by, signature_key_id, \
     created_at_ms";

/// Rows this tenant can see: its own and public ones, never deleted ones.
pub(crate) const VISIBLE: &str =
    "s.deleted_at_ms IS NULL AND (s.tenant_id = $1 OR s.visibility = 'public')";

#[derive(sqlx::FromRow)]
pub(crate) struct SkillRow {
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

fn json_list<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<Vec<T>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("skill {what}: {e}")))
}

impl TryFrom<SkillRow> for Skill {
    type Error = StoreError;

    fn try_from(row: SkillRow) -> Result<Self, StoreError> {
        Ok(Skill {
            full_name: format!("{}/{}", row.namespace, row.name)
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("skill {}: {e}", row.id)))?,
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
pub(crate) struct VersionRow {
    skill_id: String,
    version: String,
    package_sha256: String,
    component_sha256: String,
    manifest: String,
    input_schema: Option<String>,
    output_schema: Option<String>,
    size_bytes: i64,
    yanked: bool,
    published_by: String,
    signature_key_id: Option<String>,
    created_at_ms: i64,
}

/// Digests are stored and exported as bare hex, as before they were typed.
fn hex_digest<S: serde::Serializer>(digest: &Sha256Digest, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&digest.hex())
}

impl TryFrom<VersionRow> for SkillVersion {
    type Error = StoreError;

    fn try_from(row: VersionRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("{} {}: {what}: {e}", row.skill_id, row.version))
        };
        let digest =
            |what: &str, text: &str| text.parse::<Sha256Digest>().map_err(|e| corrupt(what, &e));
        Ok(SkillVersion {
            version: Version::parse(&row.version).map_err(|e| corrupt("version", &e))?,
            package_sha256: digest("package digest", &row.package_sha256)?,
            component_sha256: digest("component digest", &row.component_sha256)?,
            skill_id: row.skill_id,
            manifest: row.manifest,
            input_schema: row.input_schema,
            output_schema: row.output_schema,
            size_bytes: row.size_bytes,
            yanked: row.yanked,
            published_by: row.published_by,
            signature_key_id: row.signature_key_id,
            created_at_ms: row.created_at_ms,
        })
    }
}

/// A bound parameter of a query assembled at run time.
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// Full-text words of a search: letters and digits only, so user text never reaches the
/// search syntax of either engine.
pub(crate) fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(str::to_lowercase)
        .collect()
}

/// The highest non-yanked version among `versions` (semver order).
pub(crate) fn latest(versions: &[(String, bool)]) -> Option<String> {
    versions
        .iter()
        .filter(|(_, yanked)| !yanked)
        .filter_map(|(v, _)| Version::parse(v).ok())
        .max()
        .map(|v| v.to_string())
}

/// A listing cursor of the `Updated` and `Downloads` orders: `<number>:<id>`.
pub(crate) fn split_cursor(cursor: &str) -> Option<(i64, String)> {
    cursor
        .split_once(':')
        .and_then(|(n, id)| Some((n.parse().ok()?, id.to_owned())))
}

impl SkillQuery {
    /// The cursor that continues after `skill` in this query's order.
    pub fn cursor_after(&self, skill: &Skill) -> String {
        match self.sort {
            SkillSort::Name => skill.full_name.to_string(),
            SkillSort::Updated => format!("{}:{}", skill.updated_at_ms, skill.id),
            SkillSort::Downloads => format!("{}:{}", skill.downloads, skill.id),
        }
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
