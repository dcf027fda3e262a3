//! `/api/v1/skills`: discover, read, change and delete skills (versions are in
//! `versions.rs`, publishing in `publish.rs`).
//!
//! Visibility: a tenant sees its own skills and the public skills of others; anything else
//! is 404. Changing another tenant's public skill is 403 (it is visible, not theirs).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use omniforge_control::Change;
use omniforge_registry::PermissionKind;
use omniforge_store::{Skill, SkillQuery, SkillSort, SkillUpdate, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::versions::VersionView;
use crate::api::{next_cursor, page_limit, rules};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::middleware::RequestId;

/// A skill in listings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkillView {
    /// `namespace/name`.
    pub full_name: String,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// `private` or `public`.
    #[schema(value_type = String, example = "private")]
    pub visibility: Visibility,
    /// Marketplace categories.
    pub categories: Vec<String>,
    /// Search keywords.
    pub keywords: Vec<String>,
    /// Kinds of permission the newest version asks for.
    #[schema(value_type = Vec<String>)]
    pub permissions: Vec<PermissionKind>,
    /// The newest version that is not yanked.
    pub latest_version: Option<String>,
    /// Package downloads.
    pub downloads: i64,
    /// Whether the caller's tenant published it.
    pub owned: bool,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms of the last publish or change.
    pub updated_at_ms: i64,
}

impl SkillView {
    fn new(skill: Skill, principal: &Principal) -> Self {
        Self {
            full_name: skill.full_name.to_string(),
            owned: skill.tenant_id == principal.tenant,
            namespace: skill.namespace,
            name: skill.name,
            description: skill.description,
            visibility: skill.visibility,
            categories: skill.categories,
            keywords: skill.keywords,
            permissions: skill.permissions,
            latest_version: skill.latest_version,
            downloads: skill.downloads,
            created_at_ms: skill.created_at_ms,
            updated_at_ms: skill.updated_at_ms,
        }
    }
}

/// A page of skills.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkillPage {
    /// The skills.
    pub items: Vec<SkillView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A skill with its README and versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkillDetail {
    /// The skill.
    #[serde(flatten)]
    pub skill: SkillView,
    /// The newest version's README (Markdown).
    pub readme: String,
    /// Every version, newest first.
    pub versions: Vec<VersionView>,
}

/// Which skills to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSkills {
    /// Full-text search over name, description and keywords (each word as a prefix).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Only this category.
    #[param(pattern = "^[a-z0-9-]+$", min_length = 1, max_length = 64)]
    pub category: Option<String>,
    /// Only skills asking for this kind of permission.
    #[param(inline, value_type = Option<PermissionKindSchema>)]
    pub permission: Option<String>,
    /// Only private or public skills.
    #[param(inline, value_type = Option<VisibilityName>)]
    pub visibility: Option<String>,
    /// `mine`: only the caller's tenant's skills.
    #[param(inline, value_type = Option<OwnerFilter>)]
    pub owner: Option<String>,
    /// The order (default `name`).
    #[param(inline, value_type = Option<SkillSortName>)]
    pub sort: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Changes to a skill.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSkill {
    /// New description (1-2000 characters).
    #[schema(min_length = 1, max_length = 2000)]
    pub description: Option<String>,
    /// `private` or `public`.
    #[schema(value_type = Option<VisibilityName>)]
    pub visibility: Option<String>,
    /// New categories (up to 5 lowercase words).
    #[schema(value_type = Option<Vec<crate::api::schemas::CategoryName>>, max_items = 5)]
    pub categories: Option<Vec<String>>,
}

/// Which skills a listing shows: `private` or `public` ones.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum VisibilityName {
    /// Only the publishing tenant sees it.
    Private,
    /// Every tenant of the deployment sees it.
    Public,
}

/// A kind of permission a skill may ask for.
// The document's form of `omniforge_registry::PermissionKind`, which handlers use.
#[derive(Debug, ToSchema)]
#[schema(as = PermissionKind, rename_all = "lowercase")]
pub enum PermissionKindSchema {
    /// Outbound HTTP.
    Http,
    /// The key-value store.
    Kv,
    /// Tenant secrets.
    Secrets,
    /// The LLM gateway.
    Llm,
    /// Calling other skills.
    Skills,
}

/// Whose skills a listing shows.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum OwnerFilter {
    /// The caller's tenant's.
    Mine,
}

/// A listing's order.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SkillSortName {
    /// By `namespace/name`.
    Name,
    /// Most recently changed first.
    Updated,
    /// Most downloaded first.
    Downloads,
}

/// Lists the caller's skills and the public skills of others, searched, filtered and sorted.
#[utoipa::path(get, path = "/api/v1/skills", tag = "skills", params(ListSkills),
    responses((status = 200, description = "One page", body = SkillPage)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListSkills>,
) -> Result<ApiJson<SkillPage>, ApiError> {
    if let Some(category) = &query.category {
        rules::CATEGORY_FILTER.check_query(category)?;
    }
    if let Some(q) = &query.q {
        rules::SEARCH.check_query(q)?;
    }
    let permission = query
        .permission
        .as_deref()
        .map(str::parse::<PermissionKind>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("permission: {e}")))?;
    let visibility = query
        .visibility
        .as_deref()
        .map(str::parse::<Visibility>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let sort = match query.sort.as_deref() {
        None | Some("name") => SkillSort::Name,
        Some("updated") => SkillSort::Updated,
        Some("downloads") => SkillSort::Downloads,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sort: {other:?} is not one of name, updated, downloads"
            )));
        }
    };
    let own_only = match query.owner.as_deref() {
        None => false,
        Some("mine") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "owner: {other:?} (only \"mine\" is supported)"
            )));
        }
    };
    let skill_query = SkillQuery {
        text: query.q.filter(|q| !q.trim().is_empty()),
        category: query.category,
        permission,
        visibility,
        own_only,
        usable_only: false,
        sort,
        after: query.cursor,
        limit: page_limit(query.limit)?,
    };
    let skills = app
        .db
        .tenant(&principal.tenant)
        .list_skills(&skill_query)
        .await?;
    let next_cursor = next_cursor(&skills, skill_query.limit, |s| skill_query.cursor_after(s));
    Ok(ApiJson(SkillPage {
        items: skills
            .into_iter()
            .map(|s| SkillView::new(s, &principal))
            .collect(),
        next_cursor,
    }))
}

/// A skill the caller can see, or 404.
pub(crate) async fn visible(
    app: &AppState,
    principal: &Principal,
    ns: &str,
    name: &str,
) -> Result<Skill, ApiError> {
    app.db
        .tenant(&principal.tenant)
        .skill(ns, name)
        .await?
        .ok_or_else(|| ApiError::not_found("skill"))
}

/// A skill of the caller's own tenant: 404 if invisible, 403 if another tenant's public one.
pub(crate) async fn owned(
    app: &AppState,
    principal: &Principal,
    ns: &str,
    name: &str,
) -> Result<Skill, ApiError> {
    let skill = visible(app, principal, ns, name).await?;
    if skill.tenant_id != principal.tenant {
        return Err(ApiError::forbidden(format!(
            "{} belongs to another tenant; only its publisher can change it",
            skill.full_name
        )));
    }
    Ok(skill)
}

/// A skill with its README and versions.
#[utoipa::path(get, path = "/api/v1/skills/{namespace}/{name}", tag = "skills",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The skill", body = SkillDetail),
              (status = 404, description = "No such skill visible to the caller", body = crate::error::Problem)))]
pub async fn get(
    State(app): State<AppState>,
    principal: Principal,
    Path((ns, name)): Path<(String, String)>,
) -> Result<ApiJson<SkillDetail>, ApiError> {
    let skill = visible(&app, &principal, &ns, &name).await?;
    let versions = app.db.tenant(&principal.tenant).versions(&skill.id).await?;
    let readme = skill.readme.clone();
    let owned = skill.tenant_id == principal.tenant;
    Ok(ApiJson(SkillDetail {
        skill: SkillView::new(skill, &principal),
        readme,
        versions: versions
            .iter()
            .map(|v| VersionView::new(&app, v, owned))
            .collect(),
    }))
}

/// Changes a skill's description, visibility or categories (its publisher only).
#[utoipa::path(put, path = "/api/v1/skills/{namespace}/{name}", tag = "skills",
    params(("namespace" = String, Path), ("name" = String, Path)), request_body = UpdateSkill,
    responses((status = 200, description = "Changed", body = SkillView),
              (status = 403, description = "Another tenant's public skill", body = crate::error::Problem),
              (status = 404, description = "No such skill visible to the caller", body = crate::error::Problem)))]
pub async fn update(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateSkill>,
) -> Result<ApiJson<SkillView>, ApiError> {
    if let Some(description) = &body.description {
        rules::DESCRIPTION.check(description)?;
    }
    let visibility = body
        .visibility
        .as_deref()
        .map(str::parse::<Visibility>)
        .transpose()
        .map_err(|e| ApiError::invalid(e).with("field", "visibility"))?;
    if let Some(categories) = &body.categories {
        if categories.len() > 5 {
            return Err(ApiError::invalid("categories: at most 5").with("field", "categories"));
        }
        for category in categories {
            rules::CATEGORY.check_query(category)?;
        }
    }
    let skill = owned(&app, &principal, &ns, &name).await?;
    let update = SkillUpdate {
        description: body.description,
        visibility,
        categories: body.categories,
    };
    let updated = app
        .db
        .tenant(&principal.tenant)
        .update_skill(&principal.audit(&request_id), &skill.id, &update)
        .await?
        .ok_or_else(|| ApiError::not_found("skill"))?;
    app.invocations.changed(Change::Skill {
        skill: updated.full_name.clone(),
        owner: updated.tenant_id.clone(),
    });
    Ok(ApiJson(SkillView::new(updated, &principal)))
}

/// Deletes a skill (its publisher only): nobody sees or resolves it any more; publishing
/// into it again brings it back.
#[utoipa::path(delete, path = "/api/v1/skills/{namespace}/{name}", tag = "skills",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "Deleted"),
              (status = 403, description = "Another tenant's public skill", body = crate::error::Problem),
              (status = 404, description = "No such skill visible to the caller", body = crate::error::Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path((ns, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let skill = owned(&app, &principal, &ns, &name).await?;
    app.db
        .tenant(&principal.tenant)
        .delete_skill(&principal.audit(&request_id), &skill.id)
        .await?;
    app.invocations.changed(Change::Skill {
        skill: skill.full_name.clone(),
        owner: skill.tenant_id.clone(),
    });
    Ok(StatusCode::NO_CONTENT)
}
