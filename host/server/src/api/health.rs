//! `/healthz` (the process answers) and `/readyz` (it can reach its database).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::{ApiError, ApiJson};

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> ApiJson<Health> {
    ApiJson(Health { status: "ok" })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database is unreachable", body = crate::error::Problem),
    ))]
pub async fn readyz(State(app): State<AppState>) -> Result<ApiJson<Health>, ApiError> {
    match app.db.ping().await {
        Ok(()) => Ok(ApiJson(Health { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "the database is unreachable",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_follows_the_database() {
        let test = omniforge_store::testing::sqlite().await;
        let config = crate::Config::load_with_env(None, |_| None).unwrap();
        let app = crate::App::new(config, test.db.clone(), crate::Workers::default()).unwrap();
        assert!(readyz(State(app.clone())).await.is_ok());
        test.db.close().await;
        let error = readyz(State(app)).await.expect_err("not ready");
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
