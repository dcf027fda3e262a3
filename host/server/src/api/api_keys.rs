//! `/api/v1/api-keys`: create (the key is answered once), list (never secrets), revoke.
//! Everyone with `apikey:manage` manages their own keys; `user:manage` extends that to every
//! key of the tenant.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use omniforge_control::Change;
use omniforge_store::{ApiKeyId, NewApiKey, User, UserId, now_ms};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::api::views::{ApiKeyPage, ApiKeyView, CreatedApiKey};
use crate::api::{next_cursor, page_limit, rules};
use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::api_key;
use crate::auth::rbac::{Permission, PermissionSet};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::middleware::RequestId;

/// An API key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A label, to recognise it in listings (1-100 characters).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Permissions to limit it to (default `["*"]`). On one's own key, `*` means whatever
    /// one's roles give, as they change, when one's own credential is unscoped; otherwise the
    /// stored scopes are spelt out, never more than the creator holds. On a key for another
    /// user they are what the creator holds and the user's roles give.
    #[schema(value_type = Option<Vec<crate::api::schemas::ScopeName>>, min_items = 1)]
    pub scopes: Option<Vec<String>>,
    /// Expiry, unix ms (must be in the future).
    #[serde(
        default,
        deserialize_with = "omniforge_control::integers::optional_integer"
    )]
    pub expires_at_ms: Option<i64>,
    /// The user it acts as (default: the caller; another user needs `user:manage`).
    pub user_id: Option<String>,
}

/// Which keys to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListApiKeys {
    /// Only this user's keys (another user's need `user:manage`).
    pub user_id: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// The scopes a new key stores: never more than its creator holds now.
///
/// A key for oneself with `*` stays `*` ("whatever my roles give", as they change) only when
/// the creator's own credential is unscoped; otherwise it is the creator's permissions,
/// spelt out. A key for another user stores the permissions requested, held by the creator
/// and given by the target's roles, so it can never lend the creator more than they hold
/// (nor the target's platform-admin `tenant:manage` to a creator who lacks it).
fn scopes_to_store(
    principal: &Principal,
    requested: PermissionSet,
    wildcard: bool,
    target: Option<&User>,
) -> Result<Vec<String>, ApiError> {
    let granted = match target {
        None if wildcard && principal.unscoped => return Ok(vec!["*".into()]),
        None => requested.intersect(principal.permissions),
        Some(user) => requested
            .intersect(principal.permissions)
            .intersect(PermissionSet::of_user(user)),
    };
    if granted.is_empty() {
        return Err(ApiError::invalid(
            "scopes: the key would carry no permission (none that you hold and its user's \
             roles give)",
        )
        .with("field", "scopes"));
    }
    Ok(granted.names())
}

/// Creates an API key and answers it in full, once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateApiKey,
    responses((status = 201, description = "Created; `key` is shown only now", body = CreatedApiKey),
              (status = 403, description = "Permissions the creator does not hold, or another user's key without `user:manage`", body = crate::error::Problem),
              (status = 404, description = "No such user in the tenant", body = crate::error::Problem),
              (status = 422, description = "Invalid scopes, name or expiry", body = crate::error::Problem)))]
pub async fn create(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, ApiJson<CreatedApiKey>), ApiError> {
    rules::KEY_NAME.check(&body.name)?;
    let scopes = body.scopes.unwrap_or_else(|| vec!["*".into()]);
    if scopes.is_empty() {
        return Err(
            ApiError::invalid("scopes: give at least one (or \"*\")").with("field", "scopes")
        );
    }
    let requested = PermissionSet::from_scopes(&scopes)
        .map_err(|e| ApiError::invalid(format!("scopes: {e}")).with("field", "scopes"))?;
    let wildcard = scopes.iter().any(|s| s == "*");
    if !wildcard && !principal.permissions.covers(requested) {
        return Err(ApiError::forbidden(
            "a key cannot be given permissions its creator does not hold",
        ));
    }
    if body.expires_at_ms.is_some_and(|at| at <= now_ms()) {
        return Err(ApiError::invalid("expires_at_ms: must be in the future")
            .with("field", "expires_at_ms"));
    }
    let scoped = app.db.tenant(&principal.tenant);
    let target = match body.user_id {
        Some(id) if id != principal.user.as_str() => {
            if !principal.can(Permission::UserManage) {
                return Err(ApiError::forbidden("keys for other users need user:manage"));
            }
            let user = scoped
                .get_user(&UserId::new(id))
                .await?
                .ok_or_else(|| ApiError::not_found("user"))?;
            Some(user)
        }
        _ => None,
    };
    let stored = scopes_to_store(&principal, requested, wildcard, target.as_ref())?;
    let user_id = target.map_or_else(|| principal.user.clone(), |u| u.id);
    let minted = api_key::mint().map_err(ApiError::internal)?;
    let key = scoped
        .create_api_key(
            &principal.audit(&request_id),
            NewApiKey {
                user_id,
                name: body.name,
                prefix: minted.prefix.clone(),
                secret_hash: minted.secret_hash.clone(),
                scopes: stored,
                expires_at_ms: body.expires_at_ms,
                created_by: Some(principal.user.clone()),
            },
        )
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedApiKey {
            key: minted.full,
            api_key: key.into(),
        }),
    ))
}

/// Lists API keys without their secrets: the caller's own, or the tenant's with
/// `user:manage`.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(ListApiKeys),
    responses((status = 200, description = "A page of keys", body = ApiKeyPage)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListApiKeys>,
) -> Result<ApiJson<ApiKeyPage>, ApiError> {
    let limit = page_limit(query.limit)?;
    let all = principal.can(Permission::UserManage);
    let user = match query.user_id {
        Some(id) if all || id == principal.user.as_str() => Some(UserId::new(id)),
        Some(_) => return Err(ApiError::forbidden("other users' keys need user:manage")),
        None if all => None,
        None => Some(principal.user.clone()),
    };
    let keys = app
        .db
        .tenant(&principal.tenant)
        .list_api_keys(user.as_ref(), query.cursor.as_deref(), limit)
        .await?;
    let next_cursor = next_cursor(&keys, limit, |k| k.id.to_string());
    Ok(ApiJson(ApiKeyPage {
        items: keys.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Revokes an API key; it stops working at once on this server.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "API key id")),
    responses((status = 200, description = "The revoked key", body = ApiKeyView),
              (status = 404, description = "No such key", body = crate::error::Problem)))]
pub async fn revoke(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<ApiJson<ApiKeyView>, ApiError> {
    let scoped = app.db.tenant(&principal.tenant);
    let id = ApiKeyId::new(id);
    let key = scoped
        .get_api_key(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    if key.user_id != principal.user {
        if !principal.can(Permission::UserManage) {
            return Err(ApiError::forbidden("other users' keys need user:manage"));
        }
        // Revoking is taking away: only of users who hold nothing the caller lacks (an
        // admin cannot lock an owner out by revoking their keys).
        let owner = scoped
            .get_user(&key.user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("API key"))?;
        if !principal.permissions.covers(PermissionSet::of_user(&owner)) {
            return Err(ApiError::forbidden(
                "this key's user holds permissions you do not; only they or someone holding \
                 as much may revoke it",
            ));
        }
    }
    let key = scoped
        .revoke_api_key(&principal.audit(&request_id), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    app.invocations.changed(Change::ApiKey(id));
    Ok(ApiJson(key.into()))
}
