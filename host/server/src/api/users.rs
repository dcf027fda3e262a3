//! `/api/v1/users`: the users of the caller's tenant and their roles.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use omniforge_control::Change;
use omniforge_store::{NewUser, Role, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::api::views::{UserPage, UserView};
use crate::api::{PageQuery, next_cursor};
use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::rbac::Permission;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::middleware::RequestId;

/// A user to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Email, unique in the tenant.
    #[schema(
        pattern = "^[^@ \t\r\n]+@[^@ \t\r\n]+$",
        min_length = 3,
        max_length = 254
    )]
    pub email: String,
    /// Name to show (at most 200 characters).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub display_name: String,
    /// Roles to grant: owner, admin, developer, operator, viewer.
    #[schema(value_type = Vec<crate::api::schemas::RoleName>)]
    pub roles: Vec<Role>,
}

/// A user's new set of roles.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoles {
    /// The roles the user holds from now on.
    #[schema(value_type = Vec<crate::api::schemas::RoleName>)]
    pub roles: Vec<Role>,
}

/// Checks an email address's shape (delivery is not our concern).
pub fn check_email(email: &str) -> Result<(), ApiError> {
    crate::api::rules::EMAIL.check(email)
}

/// Only a principal holding `owner:manage` (an owner's unscoped credential, or a key scoped
/// to it) grants or takes away ownership, whatever the user behind a key is.
fn check_owner_change(
    principal: &Principal,
    before: &[Role],
    after: &[Role],
) -> Result<(), ApiError> {
    let changes_owner = before.contains(&Role::Owner) != after.contains(&Role::Owner);
    if changes_owner && !principal.can(Permission::OwnerManage) {
        return Err(ApiError::forbidden(
            "only an owner grants or removes the owner role (this needs owner:manage)",
        )
        .with("permission", Permission::OwnerManage.as_str()));
    }
    Ok(())
}

/// Creates a user in the caller's tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, description = "Created", body = UserView),
              (status = 409, description = "The email is taken", body = crate::error::Problem)))]
pub async fn create(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, ApiJson<UserView>), ApiError> {
    check_email(&body.email)?;
    crate::api::rules::DISPLAY_NAME.check(&body.display_name)?;
    check_owner_change(&principal, &[], &body.roles)?;
    let user = app
        .db
        .tenant(&principal.tenant)
        .create_user(
            &principal.audit(&request_id),
            NewUser {
                email: body.email,
                display_name: body.display_name,
                roles: body.roles,
                is_platform_admin: false,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, ApiJson(user.into())))
}

/// Lists the tenant's users, oldest first.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery),
    responses((status = 200, description = "A page of users", body = UserPage)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<ApiJson<UserPage>, ApiError> {
    let limit = page.limit()?;
    let users = app
        .db
        .tenant(&principal.tenant)
        .list_users(page.cursor.as_deref(), limit)
        .await?;
    let next_cursor = next_cursor(&users, limit, |u| u.id.to_string());
    Ok(ApiJson(UserPage {
        items: users.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Reads a user of the tenant.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "The user", body = UserView),
              (status = 404, description = "No such user", body = crate::error::Problem)))]
pub async fn get(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<UserView>, ApiError> {
    let user = app
        .db
        .tenant(&principal.tenant)
        .get_user(&UserId::new(id))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(ApiJson(user.into()))
}

/// Replaces a user's roles. A tenant keeps at least one active owner (409).
#[utoipa::path(put, path = "/api/v1/users/{id}/roles", tag = "users", request_body = SetRoles,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "The user with the new roles", body = UserView),
              (status = 404, description = "No such user", body = crate::error::Problem),
              (status = 409, description = "It would leave no owner", body = crate::error::Problem)))]
pub async fn set_roles(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetRoles>,
) -> Result<ApiJson<UserView>, ApiError> {
    let scoped = app.db.tenant(&principal.tenant);
    let id = UserId::new(id);
    let before = scoped
        .get_user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    check_owner_change(&principal, &before.roles, &body.roles)?;
    let user = scoped
        .set_roles(&principal.audit(&request_id), &id, &body.roles)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    // Remembered credentials carry their user's roles.
    app.invocations.changed(Change::User {
        tenant: principal.tenant.clone(),
        user: id,
    });
    Ok(ApiJson(user.into()))
}

/// Disables a user and revokes their API keys.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "The disabled user", body = UserView),
              (status = 404, description = "No such user", body = crate::error::Problem),
              (status = 409, description = "It is the last owner", body = crate::error::Problem)))]
pub async fn disable(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<ApiJson<UserView>, ApiError> {
    let scoped = app.db.tenant(&principal.tenant);
    let id = UserId::new(id);
    let before = scoped
        .get_user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    check_owner_change(&principal, &before.roles, &[])?;
    let user = scoped
        .disable_user(&principal.audit(&request_id), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    app.invocations.changed(Change::User {
        tenant: principal.tenant.clone(),
        user: id,
    });
    Ok(ApiJson(user.into()))
}
