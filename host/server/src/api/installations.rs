//! `/api/v1/installations`: a tenant's use of other tenants' public skills. Installing
//! records the version requirement and accepts the permissions of the newest matching
//! version; a later version asking for more is not used until the installation is updated
//! (installed again).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use omniforge_control::Change;
use omniforge_registry::{PublishedVersion, SkillName, parse_requirement, resolve};
use omniforge_store::Installation;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{PageQuery, next_cursor};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::middleware::RequestId;

/// A skill to install (or an installation to update).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Install {
    /// `namespace/name` of another tenant's public skill.
    #[schema(pattern = "^[^/]+/[^/]+$", min_length = 3, max_length = 200)]
    pub skill: String,
    /// The version requirement invocations follow (default `*`): `*`, `latest`, or
    /// comma-separated comparators such as `^1`, `~1.2`, `>=1.2.3, <2`.
    #[schema(
        pattern = "^(\\*|latest|(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8}))?)?(, ?(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8})(\\.(0|[1-9][0-9]{0,8}))?)?)*)$",
        min_length = 1,
        max_length = 200
    )]
    pub version: Option<String>,
}

/// An installation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstallationView {
    /// Its id.
    pub id: String,
    /// `namespace/name`.
    #[schema(value_type = String)]
    pub skill: SkillName,
    /// The version requirement.
    pub version_req: String,
    /// The permissions accepted (a manifest's `[permissions]`).
    #[schema(value_type = Object)]
    pub accepted_permissions: serde_json::Value,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms of the last update.
    pub updated_at_ms: i64,
}

impl TryFrom<Installation> for InstallationView {
    type Error = ApiError;

    fn try_from(i: Installation) -> Result<Self, ApiError> {
        Ok(Self {
            accepted_permissions: serde_json::from_str(&i.accepted_permissions)
                .map_err(ApiError::internal)?,
            id: i.id,
            skill: i.skill,
            version_req: i.version_req,
            created_at_ms: i.created_at_ms,
            updated_at_ms: i.updated_at_ms,
        })
    }
}

/// A page of installations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstallationPage {
    /// The installations.
    pub items: Vec<InstallationView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The installed version and the permissions accepted with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Installed {
    /// The installation.
    #[serde(flatten)]
    pub installation: InstallationView,
    /// The version invocations use now.
    pub version: String,
    /// Skills this version calls (its `[permissions] skills`) that the tenant cannot invoke
    /// yet: neither its own nor installed. Install them too, or those calls answer `denied`
    /// or `not-found`.
    #[schema(value_type = Vec<String>)]
    pub missing_dependencies: Vec<SkillName>,
}

pub(crate) fn skill_name(full: &str) -> Result<SkillName, ApiError> {
    crate::api::rules::SKILL_REF.check(full)?;
    full.parse()
        .map_err(|e| ApiError::invalid(format!("skill: {e}")).with("field", "skill"))
}

/// Installs another tenant's public skill, accepting the permissions of the newest version
/// that matches; installing again updates the requirement and the accepted permissions.
#[utoipa::path(post, path = "/api/v1/installations", tag = "installations", request_body = Install,
    responses((status = 200, description = "Installed or updated", body = Installed),
              (status = 404, description = "No such public skill, or no matching version", body = crate::error::Problem),
              (status = 409, description = "The tenant's own skill needs no installation", body = crate::error::Problem)))]
pub async fn install(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<Install>,
) -> Result<ApiJson<Installed>, ApiError> {
    let wanted = skill_name(&body.skill)?;
    if let Some(version) = &body.version {
        crate::api::rules::REQUIREMENT.check(version)?;
    }
    let requirement = body.version.unwrap_or_else(|| "*".into());
    let req = parse_requirement(&requirement)
        .map_err(|e| ApiError::invalid(format!("version: {e}")).with("field", "version"))?;
    let listing = app
        .invocations
        .catalog()
        .listing(&principal.tenant, &wanted)
        .await?
        .ok_or_else(|| ApiError::not_found("skill"))?;
    let skill = &listing.skill;
    if skill.tenant_id == principal.tenant {
        return Err(ApiError::conflict(
            "this is the tenant's own skill; it needs no installation",
        ));
    }
    // Versions come newest first: the first one that matches is the one installed.
    let (chosen, manifest) = listing
        .versions
        .iter()
        .find(|(stored, _)| {
            let candidate = PublishedVersion {
                version: stored.version.clone(),
                yanked: stored.yanked,
            };
            resolve([&candidate], &req).is_some()
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no-matching-version",
                format!(
                    "no published version of {} matches {requirement:?}",
                    body.skill
                ),
            )
        })?;
    let accepted = serde_json::to_string(&manifest.permissions).map_err(ApiError::internal)?;
    let store = app.db.tenant(&principal.tenant);
    let installation = store
        .install(
            &principal.audit(&request_id),
            &skill.id,
            &requirement,
            &accepted,
        )
        .await?;
    app.invocations.changed(Change::Installation {
        tenant: principal.tenant.clone(),
        skill: skill.full_name.clone(),
    });
    let mut missing_dependencies = Vec::new();
    for callee in manifest.permissions.skills.keys() {
        let usable = app
            .invocations
            .catalog()
            .listing(&principal.tenant, callee)
            .await?
            .is_some_and(|l| l.skill.tenant_id == principal.tenant || l.installation.is_some());
        if !usable {
            missing_dependencies.push(callee.clone());
        }
    }
    Ok(ApiJson(Installed {
        installation: installation.try_into()?,
        version: chosen.version.to_string(),
        missing_dependencies,
    }))
}

/// The tenant's installations.
#[utoipa::path(get, path = "/api/v1/installations", tag = "installations", params(PageQuery),
    responses((status = 200, description = "One page", body = InstallationPage)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<ApiJson<InstallationPage>, ApiError> {
    let limit = page.limit()?;
    let items = app
        .db
        .tenant(&principal.tenant)
        .list_installations(page.cursor.as_deref(), limit)
        .await?;
    let next_cursor = next_cursor(&items, limit, |i| i.id.clone());
    Ok(ApiJson(InstallationPage {
        items: items
            .into_iter()
            .map(InstallationView::try_from)
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// Removes the installation of a skill; invocations of it stop.
#[utoipa::path(delete, path = "/api/v1/installations/{namespace}/{name}", tag = "installations",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "Removed"),
              (status = 404, description = "Not installed", body = crate::error::Problem)))]
pub async fn uninstall(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path((ns, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let removed = app
        .db
        .tenant(&principal.tenant)
        .uninstall_by_name(&principal.audit(&request_id), &ns, &name)
        .await?;
    if !removed {
        return Err(ApiError::not_found("installation"));
    }
    // It was installed, so the name is a skill's.
    if let Ok(skill) = format!("{ns}/{name}").parse() {
        app.invocations.changed(Change::Installation {
            tenant: principal.tenant.clone(),
            skill,
        });
    }
    Ok(StatusCode::NO_CONTENT)
}
