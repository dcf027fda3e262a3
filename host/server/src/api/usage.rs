//! `/api/v1/usage` (the caller's tenant's usage against its quotas) and the tenant policy
//! endpoints (`/api/v1/tenants/{id}/policy`: read by the tenant, set by platform admins).

use axum::extract::{Path, State};
use omniforge_control::Change;
use omniforge_store::UsageCounters;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::api::tenants::visible;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson};
use crate::middleware::RequestId;
use omniforge_control::meter::period_of;
use omniforge_control::policy::TenantPolicy;

/// Usage of the current quota period against the tenant's quotas.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// The period, `2026-11` or `2026-11-24`.
    pub period: String,
    /// Seconds until the period ends.
    pub period_ends_in_secs: u64,
    /// Invocations so far (every outcome).
    pub invocations: i64,
    /// Fuel consumed so far.
    pub fuel: i64,
    /// Wall time of invocations so far, ms.
    pub wall_ms: i64,
    /// Invocations whose outcome was not `ok`.
    pub failures: i64,
    /// The invocation quota, if any.
    pub max_invocations: Option<u64>,
    /// The fuel quota, if any.
    pub max_total_fuel: Option<u64>,
    /// Bytes the tenant's skills keep in `kv` (every entry: key, value and 256 bytes).
    pub kv_bytes: i64,
    /// Entries the tenant's skills keep in `kv`.
    pub kv_entries: i64,
    /// The tenant's `kv` storage quota.
    pub max_kv_bytes: u64,
}

/// The caller's tenant's usage in the current quota period.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage",
    responses((status = 200, description = "Usage and quotas", body = UsageReport)))]
pub async fn get(
    State(app): State<AppState>,
    principal: Principal,
) -> Result<ApiJson<UsageReport>, ApiError> {
    let policy = app.invocations.policies().get(&principal.tenant).await?;
    let (period, left) = period_of(policy.quota_period, OffsetDateTime::now_utc());
    let UsageCounters {
        invocations,
        fuel,
        wall_ms,
        failures,
    } = app
        .invocations
        .ledger()
        .usage(&principal.tenant, &period)
        .await?;
    let (kv_bytes, kv_entries) = app.db.tenant(&principal.tenant).kv_tenant_usage().await?;
    Ok(ApiJson(UsageReport {
        period,
        period_ends_in_secs: left,
        invocations,
        fuel,
        wall_ms,
        failures,
        max_invocations: policy.max_invocations,
        max_total_fuel: policy.max_total_fuel,
        kv_bytes,
        kv_entries,
        max_kv_bytes: policy.max_kv_bytes,
    }))
}

/// A tenant's policy: limits per invocation and quotas per period.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/policy", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The policy in force", body = TenantPolicy),
              (status = 404, description = "No such tenant visible to the caller", body = crate::error::Problem)))]
pub async fn get_policy(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<TenantPolicy>, ApiError> {
    let tenant = visible(&app, &principal, &id).await?.id;
    let policy = app.invocations.policies().get(&tenant).await?;
    Ok(ApiJson(TenantPolicy::clone(&policy)))
}

/// Sets a tenant's policy (platform admins). It applies to the next invocation.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/policy", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")), request_body = TenantPolicy,
    responses((status = 200, description = "The new policy", body = TenantPolicy),
              (status = 404, description = "No such tenant", body = crate::error::Problem),
              (status = 422, description = "An unusable value", body = crate::error::Problem)))]
pub async fn set_policy(
    State(app): State<AppState>,
    principal: Principal,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<TenantPolicy>,
) -> Result<ApiJson<TenantPolicy>, ApiError> {
    policy
        .check()
        .map_err(|e| ApiError::invalid(e.message).with("field", e.field))?;
    let tenant = visible(&app, &principal, &id).await?.id;
    let text = serde_json::to_string(&policy).map_err(ApiError::internal)?;
    app.db
        .tenant(&tenant)
        .set_policy(&principal.audit(&request_id), &text)
        .await?;
    app.invocations.changed(Change::Policy(tenant.clone()));
    Ok(ApiJson(policy))
}
