//! `/api/v1/secrets`: the tenant's secrets, which its skills read through
//! `omniforge:skill/secrets`. Owners and admins (`secret:manage`) set, list and delete them;
//! nobody reads a value back through the API, and no answer, log line or audit event holds
//! one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use omniforge_control::secrets::{SecretInfo, SecretsError};
use omniforge_runtime::capabilities::SecretValue;
use omniforge_store::SecretName;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::api::{PageQuery, next_cursor};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::middleware::RequestId;

/// A secret's new value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// The value, at most 64 KiB of UTF-8. Stored sealed; never shown again.
    #[schema(value_type = String, max_length = 65536)]
    pub value: Zeroizing<String>,
}

/// A secret, without its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    /// The name skills ask for.
    pub name: String,
    /// How many times it was set (secrets kept in the database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// When it was first set, unix ms (when the provider knows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<i64>,
    /// When its value last changed, unix ms (when the provider knows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at_ms: Option<i64>,
    /// Who set the current value (secrets kept in the database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

impl From<SecretInfo> for SecretView {
    fn from(info: SecretInfo) -> Self {
        Self {
            name: info.name.to_string(),
            version: info.version,
            created_at_ms: info.created_at_ms,
            updated_at_ms: info.updated_at_ms,
            updated_by: info.updated_by,
        }
    }
}

/// A page of the tenant's secrets, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretPage {
    /// The secrets.
    pub items: Vec<SecretView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

impl From<SecretsError> for ApiError {
    fn from(error: SecretsError) -> Self {
        match error {
            SecretsError::NotConfigured => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "secrets-not-configured",
                error.to_string(),
            ),
            SecretsError::ReadOnly(provider) => {
                Self::conflict(error.to_string()).with("provider", provider.to_string())
            }
            SecretsError::TooLarge(_) => Self::invalid(error.to_string()),
            SecretsError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "secrets-unavailable",
                error.to_string(),
            ),
            SecretsError::Store(error) => error.into(),
        }
    }
}

fn parse_name(name: &str) -> Result<SecretName, ApiError> {
    name.parse::<SecretName>()
        .map_err(|e| ApiError::invalid(e.to_string()))
}

/// Sets a secret: creates it (201) or replaces its value (200). Only the tenant's skills
/// that declare the name in `[permissions] secrets` can read it.
#[utoipa::path(put, path = "/api/v1/secrets/{name}", tag = "secrets", request_body = SetSecret,
    params(("name" = String, Path, description = "1-64 ASCII letters, digits, '_', '-' and '.', starting with a letter or digit")),
    responses((status = 200, description = "Replaced", body = SecretView),
              (status = 201, description = "Created", body = SecretView),
              (status = 409, description = "The server reads secrets from a provider managed elsewhere", body = crate::error::Problem)))]
pub async fn put(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SetSecret>,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    let value = SecretValue::new(body.value.as_str().to_owned());
    let (info, created) = app
        .secrets
        .put(
            &principal.tenant,
            &principal.audit(&request_id),
            &name,
            &value,
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(SecretView::from(info))).into_response())
}

/// Deletes a secret; skills that read it get `not-found` from then on.
#[utoipa::path(delete, path = "/api/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "The secret's name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such secret", body = crate::error::Problem),
              (status = 409, description = "The server reads secrets from a provider managed elsewhere", body = crate::error::Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = parse_name(&name)?;
    let deleted = app
        .secrets
        .delete(&principal.tenant, &principal.audit(&request_id), &name)
        .await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("secret"))
    }
}

/// Lists the tenant's secrets by name: names and metadata, never values.
#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets", params(PageQuery),
    responses((status = 200, description = "A page of secrets", body = SecretPage)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<ApiJson<SecretPage>, ApiError> {
    let limit = query.limit()?;
    let after = query.cursor.as_deref().map(parse_name).transpose()?;
    let items = app
        .secrets
        .list(&principal.tenant, after.as_ref(), limit)
        .await?;
    let next_cursor = next_cursor(&items, limit, |s| s.name.to_string());
    Ok(ApiJson(SecretPage {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
