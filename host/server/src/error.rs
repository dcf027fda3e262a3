//! The one HTTP error type, rendered as RFC 9457 `application/problem+json`.
//!
//! Error policy: handlers return [`ApiError`] built with the helper constructors. Client
//! errors carry a detail meant for the caller; server errors are logged in full (with the
//! request id) and answered with a generic detail, never the internal cause. Responses are
//! finished by [`crate::middleware::finish_problems`], which adds the request id and the
//! path, and turns any bare error status (axum's own 404/405/413, a panic) into a problem too.

use std::fmt;
use std::marker::PhantomData;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Base of every problem `type` URI; the slug names the problem (docs/api/errors.md).
pub const PROBLEM_BASE: &str = "https://omniforge.dev/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: [`PROBLEM_BASE`] + slug.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id (also in the `x-request-id` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Problem-specific members.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
}

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    www_authenticate: bool,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// A problem with this status, slug and detail.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            extensions: Map::new(),
            www_authenticate: false,
            retry_after_secs: None,
        }
    }

    /// Adds a problem-specific member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 401: no usable credentials. The detail says which check failed, never the secret.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        error.www_authenticate = true;
        error
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404: no such resource, or it belongs to another tenant (the two are not told apart).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no such {what}"),
        )
    }

    /// 409: the change conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 422: well-formed but invalid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request", detail)
    }

    /// 429: a rate limit, quota or concurrency limit; `limit` names which, and the
    /// `Retry-After` header says when to try again (whole seconds, at least 1).
    pub fn too_many_requests(
        detail: impl Into<String>,
        limit: &str,
        retry_after: std::time::Duration,
    ) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", detail)
            .with("limit", limit)
            .with_retry_after(retry_after)
    }

    /// 503: the counters the replicas share (Redis) cannot be reached and the operator chose
    /// to refuse meanwhile; worth trying again in a second.
    pub fn limits_unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "limits-unavailable",
            detail,
        )
        .with_retry_after(std::time::Duration::from_secs(1))
    }

    /// Adds a `Retry-After` header (whole seconds, at least 1).
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// 500: logged here with its cause; the client sees a generic detail.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; the request id identifies it in the logs",
        )
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What a client that is not HTTP (an MCP tool result) is told: the problem's slug and
    /// detail, and when to retry.
    pub fn message(&self) -> String {
        let mut message = format!("{}: {}", self.slug, self.detail);
        if let Some(secs) = self.retry_after_secs {
            message.push_str(&format!(" (retry after {secs} s)"));
        }
        message
    }

    /// The problem document, without request id and path (added when the response leaves).
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("{PROBLEM_BASE}{}", self.slug),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            instance: None,
            request_id: None,
            extensions: self.extensions.clone(),
        }
    }
}

impl From<omniforge_store::StoreError> for ApiError {
    fn from(error: omniforge_store::StoreError) -> Self {
        match error {
            omniforge_store::StoreError::Conflict(detail) => Self::conflict(detail),
            omniforge_store::StoreError::Forbidden(detail) => Self::forbidden(detail),
            omniforge_store::StoreError::Invalid(detail) => Self::bad_request(detail),
            omniforge_store::StoreError::Unavailable(detail) => Self::limits_unavailable(detail),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut response = self.status.into_response();
        if self.www_authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"omniforge\""),
            );
        }
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // The body is written by `finish_problems`, which knows the request id and path.
        response.extensions_mut().insert(problem);
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(_) => {
                Self::new(StatusCode::BAD_REQUEST, "malformed-json", detail)
            }
            JsonRejection::JsonDataError(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", detail)
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "the request body is larger than this server accepts",
            ),
            other => Self::new(other.status(), "bad-request", detail),
        }
    }
}

/// `Json` whose rejections are problems. Request types use `deny_unknown_fields`, so a
/// misspelt field is a 422 rather than silently ignored, and a body must be a JSON object
/// (serde would also read a struct from an array of its fields in order, which no client
/// means and the OpenAPI document does not allow).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(JsonObject(value)) =
            axum::Json::<JsonObject<T>>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// A `T` read only from a JSON object.
struct JsonObject<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectOnly(PhantomData))
            .map(Self)
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` whose rejections are problems (400).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid-query",
        rejection.body_text(),
    )
}

/// A problem for a bare error status that no handler described (axum's own 404, 405, 413…).
pub fn problem_for_status(status: StatusCode) -> Problem {
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "no route matches this path"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "this path does not accept this method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body-too-large",
            "the request body is larger than this server accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            "the request's content type is not accepted here",
        ),
        s if s.is_server_error() => ("internal", "the server failed to handle the request"),
        _ => ("bad-request", "the request was not accepted"),
    };
    ApiError::new(status, slug, detail).problem()
}
