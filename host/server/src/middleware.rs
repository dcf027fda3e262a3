//! Layers every request passes through: request ids, the request's log span, the request
//! timeout, panics, and rendering of problem documents.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{ApiError, Problem, problem_for_status};
use omniforge_control::metrics::Metrics;

/// The header carrying the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// The request id of the current request (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// When the current request arrived (a request extension): what is left of its time is what
/// its handler may still spend.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

/// Accepts the caller's `x-request-id` when it is short and plain (so it is safe to log and
/// echo), otherwise makes one; sets it on the response; and opens the request's log span,
/// where authentication later records the tenant.
pub async fn request_id_and_span(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    request.extensions_mut().insert(RequestStart(started));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        tenant_id = tracing::field::Empty,
        principal = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    join_trace(&span, request.headers());
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, elapsed_ms, "request finished");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Makes `span` a child of the caller's trace when its `traceparent` names one (W3C trace
/// context, through the propagator the binary installs with its exporter), and records the
/// trace id for the logs. Without an exporter there is no propagator and no trace.
fn join_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    if parent.span().span_context().is_valid() {
        // Fails only when no exporter's layer is installed: then there is no trace to join.
        let _ = span.set_parent(parent);
    }
    let context = span.context();
    let trace = context.span().span_context().clone();
    if trace.is_valid() {
        span.record("trace_id", tracing::field::display(trace.trace_id()));
    }
}

/// Writes problem bodies: those handlers described (an [`ApiError`]) and, for any other
/// error status without a JSON body, a generic one, so every error a client sees is
/// `application/problem+json` with the request id and path.
pub async fn finish_problems(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let mut response = next.run(request).await;
    let status = response.status();
    let problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        None if status.is_client_error() || status.is_server_error() => {
            // A problem already, or a body of another protocol's own (MCP's JSON-RPC errors
            // travel with 4xx statuses) that a client must receive as it is.
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| {
                    let v = v.as_bytes();
                    v.starts_with(b"application/problem+json")
                        || v.starts_with(b"application/json")
                        || v.starts_with(b"text/event-stream")
                });
            if is_json {
                return response;
            }
            problem_for_status(status)
        }
        None => return response,
    };
    let problem = Problem {
        instance: Some(path),
        request_id,
        ..problem
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Answers 503 when a request takes longer than the configured timeout.
pub async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request-timeout",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

/// The answer to a panic in a handler: logged, and a generic 500 problem.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(format!("handler panicked: {message}")).into_response()
}

/// The answer for paths no route matches.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no route matches this path",
    )
}

/// The answer for a known path with an unsupported method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this path does not accept this method",
    )
}

/// Extractors of what `request_id_and_span` put in the request's extensions, with a stand-in
/// for requests that did not pass through it (handlers called directly in tests).
macro_rules! extension_extractor {
    ($type:ty, $missing:expr) => {
        impl<S: Send + Sync> axum::extract::FromRequestParts<S> for $type {
            type Rejection = std::convert::Infallible;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                _: &S,
            ) -> Result<Self, Self::Rejection> {
                Ok(parts
                    .extensions
                    .get::<$type>()
                    .cloned()
                    .unwrap_or_else(|| $missing))
            }
        }
    };
}

extension_extractor!(RequestStart, RequestStart(Instant::now()));
extension_extractor!(RequestId, RequestId(String::from("-")));

/// Counts every request under its route template (`unmatched` when no route took it) and
/// the standard method names (`other` for the rest), so neither paths nor made-up methods
/// become series.
pub async fn count(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.http_request(route, method, response.status().as_u16(), started.elapsed());
    response
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::to_bytes;
    use axum::routing::get;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    use super::*;

    async fn explode() -> &'static str {
        panic!("secret internal detail")
    }

    /// The layers as `router()` stacks them, around handlers that panic or dawdle.
    fn app() -> Router {
        Router::new()
            .route("/panic", get(explode))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(50),
                timeout,
            ))
            .layer(axum::middleware::from_fn(finish_problems))
            .layer(axum::middleware::from_fn(request_id_and_span))
    }

    async fn problem(path: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(response.headers().contains_key(REQUEST_ID));
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_problem_without_its_message() {
        let (status, body) = problem("/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body["type"].as_str().unwrap().ends_with("/internal"));
        assert!(!body.to_string().contains("secret internal detail"));
        assert!(body["request_id"].is_string());
    }

    #[tokio::test]
    async fn a_slow_request_answers_a_503_problem() {
        let (status, body) = problem("/slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["type"].as_str().unwrap().ends_with("/request-timeout"));
    }
}
