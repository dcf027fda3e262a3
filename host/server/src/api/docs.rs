//! ReDoc at `/redoc`, served from a bundle vendored in the binary (no CDN). Swagger UI at
//! `/docs` comes from utoipa-swagger-ui's vendored assets.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// ReDoc 2.5.4's standalone bundle, from the npm package `redoc` (MIT; see
/// assets/redoc/LICENSE). `scripts/vendor-redoc.sh` refreshes it and checks its digest.
const REDOC_JS: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

const REDOC_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OmniForge API</title>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/redoc/redoc.standalone.js"></script>
</body>
</html>
"#;

/// The ReDoc page.
pub async fn redoc_page() -> Html<&'static str> {
    Html(REDOC_PAGE)
}

/// The ReDoc bundle.
pub async fn redoc_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_JS,
    )
}
