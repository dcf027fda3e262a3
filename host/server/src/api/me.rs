//! `GET /api/v1/me`: who the caller is and what it may do.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::views::{TenantView, UserView};
use crate::app::AppState;
use crate::auth::{Credential, Principal};
use crate::error::{ApiError, ApiJson};

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user.
    pub user: UserView,
    /// The user's tenant.
    pub tenant: TenantView,
    /// Permissions in effect for this credential.
    pub permissions: Vec<String>,
    /// `api_key` or `token`.
    pub credential: &'static str,
    /// The API key's id, when authenticated by one.
    pub api_key_id: Option<String>,
}

/// Who am I?
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, description = "The caller", body = Me)))]
pub async fn get(
    State(app): State<AppState>,
    principal: Principal,
) -> Result<ApiJson<Me>, ApiError> {
    let scoped = app.db.tenant(&principal.tenant);
    let user = scoped
        .get_user(&principal.user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let tenant = scoped
        .get()
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let (credential, api_key_id) = match &principal.credential {
        Credential::ApiKey { id, .. } => ("api_key", Some(id.to_string())),
        Credential::Token => ("token", None),
    };
    Ok(ApiJson(Me {
        user: user.into(),
        tenant: tenant.into(),
        permissions: principal
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        credential,
        api_key_id,
    }))
}
