//! The OpenAPI document: checked in at docs/api/openapi.json and current, served at
//! /openapi.json, with Swagger UI and ReDoc served without any CDN.

use reqwest::Method;

use crate::common::{TestApp, all};

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.json");

fn generated() -> String {
    format!(
        "{}\n",
        omniforge_server::openapi().to_pretty_json().unwrap()
    )
}

#[test]
fn the_checked_in_document_is_current() {
    let generated = generated();
    if std::env::var("OMNIFORGE_UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/api/openapi.json is stale: run `OMNIFORGE_UPDATE_OPENAPI=1 cargo test -p omniforge-server --test api openapi` (or `omniforge openapi > docs/api/openapi.json`)"
    );
    let document: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
}

#[tokio::test]
async fn the_document_and_both_viewers_are_served_offline() {
    let db = all().await.into_iter().next().unwrap();
    let app = TestApp::start(db).await;
    let served = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(served.status, 200);
    assert_eq!(
        served.body,
        serde_json::to_value(omniforge_server::openapi()).unwrap()
    );
    for (page, script) in [
        ("/docs/", "swagger-ui-bundle.js"),
        ("/redoc", "redoc.standalone.js"),
    ] {
        let html = app
            .client
            .get(format!("{}{page}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(html.status(), 200, "{page}");
        let html = html.text().await.unwrap();
        assert!(html.contains(script), "{page}: {html}");
        assert!(
            !html.contains("https://"),
            "{page} loads something from the internet"
        );
    }
    for asset in ["/docs/swagger-ui-bundle.js", "/redoc/redoc.standalone.js"] {
        let response = app
            .client
            .get(format!("{}{asset}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            response.bytes().await.unwrap().len() > 100_000,
            "{asset} is not the bundle"
        );
    }
}
