//! `/api/v1/tenants`: platform admins create, list, change, suspend and resume tenants; any
//! member reads (and an owner exports) their own tenant.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use omniforge_control::Change;
use omniforge_store::{NewApiKey, Tenant, TenantExport, TenantId, TenantStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::views::{CreatedApiKey, TenantPage, TenantView, UserView};
use crate::api::{PageQuery, next_cursor};
use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::api_key;
use crate::auth::rbac::Permission;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::middleware::RequestId;

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Unique short name: 2–63 lowercase letters, digits and `-`, starting and ending with a
    /// letter or digit.
    #[schema(
        pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        min_length = 2,
        max_length = 63
    )]
    pub slug: String,
    /// Display name, 1-200 characters (default: the slug).
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Creates an owner with this email and answers their first API key.
    #[schema(
        pattern = "^[^@ \t\r\n]+@[^@ \t\r\n]+$",
        min_length = 3,
        max_length = 254
    )]
    pub owner_email: Option<String>,
}

/// A created tenant, with its owner and the owner's key when one was asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: TenantView,
    /// Its owner.
    pub owner: Option<UserView>,
    /// The owner's first API key, shown only now.
    pub owner_api_key: Option<CreatedApiKey>,
}

/// Changes to a tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// New display name (1-200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// Checks a tenant slug.
pub fn check_slug(slug: &str) -> Result<(), ApiError> {
    crate::api::rules::SLUG.check(slug)
}

/// Checks a display name.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    crate::api::rules::TENANT_NAME.check(name)
}

/// Creates a tenant (and, optionally, its owner with a first API key).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, description = "Created", body = CreatedTenant),
              (status = 409, description = "The slug is taken", body = crate::error::Problem)))]
pub async fn create(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, ApiJson<CreatedTenant>), ApiError> {
    check_slug(&body.slug)?;
    let name = body.name.clone().unwrap_or_else(|| body.slug.clone());
    check_name(&name)?;
    let audit = principal.audit(&request_id);
    let platform = app.db.platform();
    let Some(email) = body.owner_email else {
        let tenant = platform.create_tenant(&audit, &body.slug, &name).await?;
        let created = CreatedTenant {
            tenant: tenant.into(),
            owner: None,
            owner_api_key: None,
        };
        return Ok((StatusCode::CREATED, ApiJson(created)));
    };
    crate::api::users::check_email(&email)?;
    let minted = api_key::mint().map_err(ApiError::internal)?;
    let (prefix, secret_hash) = (minted.prefix.clone(), minted.secret_hash.clone());
    let created = platform
        .create_tenant_with_owner(&audit, &body.slug, &name, &email, false, |owner| {
            NewApiKey {
                user_id: owner.clone(),
                name: "first key".into(),
                prefix,
                secret_hash,
                scopes: vec!["*".into()],
                expires_at_ms: None,
                created_by: None,
            }
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedTenant {
            tenant: created.tenant.into(),
            owner: Some(created.owner.into()),
            owner_api_key: Some(CreatedApiKey {
                key: minted.full,
                api_key: created.api_key.into(),
            }),
        }),
    ))
}

/// Lists tenants, oldest first.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageQuery),
    responses((status = 200, description = "A page of tenants", body = TenantPage)))]
pub async fn list(
    State(app): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<ApiJson<TenantPage>, ApiError> {
    let limit = page.limit()?;
    let tenants = app
        .db
        .platform()
        .list_tenants(page.cursor.as_deref(), limit)
        .await?;
    let next_cursor = next_cursor(&tenants, limit, |t| t.id.to_string());
    Ok(ApiJson(TenantPage {
        items: tenants.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// The tenant `id` if the principal may see it: its own, or any for platform admins.
pub(crate) async fn visible(
    app: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<Tenant, ApiError> {
    let id = TenantId::new(id);
    if id != principal.tenant && !principal.can(Permission::TenantManage) {
        return Err(ApiError::not_found("tenant"));
    }
    app.db
        .platform()
        .get_tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

/// Reads a tenant: one's own, or any for platform admins.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The tenant", body = TenantView),
              (status = 404, description = "No such tenant", body = crate::error::Problem)))]
pub async fn get(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<TenantView>, ApiError> {
    Ok(ApiJson(visible(&app, &principal, &id).await?.into()))
}

/// Renames a tenant.
#[utoipa::path(patch, path = "/api/v1/tenants/{id}", tag = "tenants", request_body = UpdateTenant,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The changed tenant", body = TenantView),
              (status = 404, description = "No such tenant", body = crate::error::Problem)))]
pub async fn update(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<ApiJson<TenantView>, ApiError> {
    check_name(&body.name)?;
    let tenant = app
        .db
        .platform()
        .rename_tenant(
            &principal.audit(&request_id),
            &TenantId::new(id),
            &body.name,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(ApiJson(tenant.into()))
}

async fn set_status(
    app: &AppState,
    principal: &Principal,
    request_id: &str,
    id: String,
    status: TenantStatus,
) -> Result<ApiJson<TenantView>, ApiError> {
    let id = TenantId::new(id);
    if id == principal.tenant && status == TenantStatus::Suspended {
        return Err(ApiError::conflict(
            "a platform admin cannot suspend their own tenant",
        ));
    }
    let tenant = app
        .db
        .platform()
        .set_tenant_status(&principal.audit(request_id), &id, status)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    // Remembered credentials carry their tenant's status.
    app.invocations.changed(Change::Tenant(id));
    Ok(ApiJson(tenant.into()))
}

/// Suspends a tenant: its principals are refused (403) until it is resumed.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/suspend", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The suspended tenant", body = TenantView),
              (status = 409, description = "A platform admin's own tenant cannot be suspended", body = crate::error::Problem),
              (status = 404, description = "No such tenant", body = crate::error::Problem)))]
pub async fn suspend(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<ApiJson<TenantView>, ApiError> {
    set_status(&app, &principal, &request_id, id, TenantStatus::Suspended).await
}

/// Resumes a suspended tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/resume", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The active tenant", body = TenantView),
              (status = 404, description = "No such tenant", body = crate::error::Problem)))]
pub async fn resume(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<ApiJson<TenantView>, ApiError> {
    set_status(&app, &principal, &request_id, id, TenantStatus::Active).await
}

/// Exports all of a tenant's data as JSON (no secrets): its own for owners, any for
/// platform admins who are owners of theirs.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/export", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "Everything the tenant owns", body = Object),
              (status = 404, description = "No such tenant", body = crate::error::Problem)))]
pub async fn export(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<TenantExport>, ApiError> {
    let tenant = visible(&app, &principal, &id).await?;
    let export = app
        .db
        .tenant(&tenant.id)
        .export()
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(ApiJson(export))
}
