//! The operator's routes outside the API: `/metrics` in the Prometheus text format, on the
//! main listener or — with `admin_listen` set — only on a listener of its own beside
//! `/healthz` and `/readyz`, so a scraper need not reach the public address and the public
//! cannot read the metrics.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use omniforge_store::now_ms;

use crate::api::health;
use crate::app::AppState;

/// How long the platform's counts are reused: scrapers come every 15 s or so, and anyone
/// who may read `/metrics` could otherwise make the database count all its tasks at will.
const CENSUS_TTL: Duration = Duration::from_secs(5);

/// The text format's media type (version 0.0.4, which every Prometheus reads).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: every family. When the database cannot be counted the families that come
/// from it keep their last values and the rest is served (a scrape shows what it can).
pub async fn metrics(State(app): State<AppState>) -> Response {
    let census = {
        let mut cached = app.census.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < CENSUS_TTL);
        if !fresh {
            match app.db.platform().census(now_ms()).await {
                Ok(census) => *cached = Some((Instant::now(), census)),
                Err(e) => tracing::warn!("cannot count the platform for /metrics: {e}"),
            }
        }
        cached.as_ref().map(|(_, census)| census.clone())
    };
    let text = app
        .metrics
        .render(census.as_ref(), app.runtime.cache_stats());
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response()
}

/// The admin listener's routes.
pub fn router(app: AppState) -> Router {
    let router = if app.config.telemetry.metrics {
        Router::new().route("/metrics", get(metrics))
    } else {
        Router::new()
    };
    router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(app)
}
