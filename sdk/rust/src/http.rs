//! Outbound HTTP over `wasi:http`, blocking and simple: build a [`Request`], [`Request::send`]
//! it, read the whole [`Response`].
//!
//! The host lets a request out only to the hosts listed under `[permissions] http` in
//! `omniforge.toml` (narrowed by the tenant's policy); anything else fails with
//! [`Error::Denied`]. Needs `world = "skill"`.
//!
//! ```no_run
//! # fn main() -> Result<(), omniforge_sdk::Error> {
//! use omniforge_sdk::http;
//!
//! let page = http::get("https://example.com/")?;
//! let rates: serde_json::Value = http::Request::post("https://api.example.com/rates")
//!     .header("accept", "application/json")
//!     .json(&serde_json::json!({"base": "EUR"}))?
//!     .send()?
//!     .json()?;
//! # Ok(()) }
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;

/// Largest response body read by default (16 MiB); see [`Request::max_body_bytes`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host refused the destination (not in the allow-list, or a private address).
    Denied(String),
    /// The URL, a header or the method cannot be sent.
    InvalidRequest(String),
    /// The response body is larger than the request's limit (the limit, in bytes).
    TooLarge(usize),
    /// The request failed on the way (DNS, connection, TLS, timeout, protocol).
    Unavailable(String),
}

impl Error {
    /// The skill error a handler returns when it passes this one on with `?`.
    pub(crate) fn into_skill_error(self) -> crate::Error {
        match self {
            Self::Denied(m) => crate::Error::Denied(m),
            Self::InvalidRequest(m) => crate::Error::Failed(format!("HTTP request: {m}")),
            Self::TooLarge(_) => crate::Error::Failed(self.to_string()),
            Self::Unavailable(m) => crate::Error::Unavailable(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(m) => write!(f, "denied: {m}"),
            Self::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            Self::TooLarge(limit) => write!(f, "the response body is over {limit} bytes"),
            Self::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::HttpRequestDenied => {
                Self::Denied("the host refused this destination (not in the allow-list)".into())
            }
            ErrorCode::DestinationIpProhibited => {
                Self::Denied("the destination address is not allowed".into())
            }
            ErrorCode::HttpRequestUriInvalid => Self::InvalidRequest("the URL is invalid".into()),
            other => Self::Unavailable(format!("{other:?}")),
        }
    }
}

/// An HTTP request to send.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    max_body_bytes: usize,
}

impl Request {
    /// A request with any method (`GET`, `PATCH`, …).
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: &str) -> Self {
        Self::new("PUT", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: &str) -> Self {
        Self::new("DELETE", url)
    }

    /// Adds a header (repeat the name to send several values).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, crate::Error> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Largest response body to read; a larger one fails with [`Error::TooLarge`].
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Sends the request and reads the whole response. Any status is a response, not an
    /// error: check [`Response::status`] (or use [`Response::error_for_status`]).
    pub fn send(self) -> Result<Response, Error> {
        let target = Target::parse(&self.url)?;
        let fields = Fields::new();
        for (name, value) in &self.headers {
            fields
                .append(name, value.as_bytes())
                .map_err(|e| Error::InvalidRequest(format!("header {name:?}: {e:?}")))?;
        }
        let request = OutgoingRequest::new(fields);
        request
            .set_method(&method(&self.method))
            .map_err(|()| Error::InvalidRequest(format!("method {:?}", self.method)))?;
        request
            .set_scheme(Some(&target.scheme))
            .map_err(|()| Error::InvalidRequest("scheme".into()))?;
        request
            .set_authority(Some(target.authority))
            .map_err(|()| Error::InvalidRequest(format!("host {:?}", target.authority)))?;
        request
            .set_path_with_query(Some(&target.path))
            .map_err(|()| Error::InvalidRequest(format!("path {:?}", target.path)))?;
        let body = request
            .body()
            .map_err(|()| Error::InvalidRequest("the body was already taken".into()))?;

        // Sent first, then the body streams: writing a large body before there is a
        // request to read it would fill the host's buffer and wait forever.
        let pending = outgoing_handler::handle(request, None)?;
        // A server may answer before reading the whole body and close the connection: then
        // the write fails but the answer is still the response, so a write error counts only
        // when there is no response.
        let sent = write_body(body, &self.body);
        pending.subscribe().block();
        let response = pending
            .get()
            .ok_or_else(|| Error::Unavailable("no response after waiting for it".into()))?
            .map_err(|()| Error::Unavailable("the response was already taken".into()))?;
        let response = match (response, sent) {
            (Ok(response), _) => response,
            (Err(code), Err(send_error)) => {
                let error = Error::from(code);
                return Err(if matches!(error, Error::Denied(_)) {
                    error
                } else {
                    send_error
                });
            }
            (Err(code), Ok(())) => return Err(code.into()),
        };

        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| Error::Unavailable("the body was already taken".into()))?;
        let body = read_body(&incoming, self.max_body_bytes)?;
        drop(incoming);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Sends a `GET` request to `url`.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

/// A whole HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers in the order received (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, crate::Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            crate::Error::unavailable(format!(
                "the response (status {}) is not the JSON expected: {e}",
                self.status
            ))
        })
    }

    /// The response itself for a 2xx status, otherwise an error naming the status: 404 as
    /// [`crate::Error::NotFound`], others as [`crate::Error::Unavailable`].
    pub fn error_for_status(self) -> Result<Self, crate::Error> {
        match self.status {
            200..=299 => Ok(self),
            404 => Err(crate::Error::not_found("the HTTP service answered 404")),
            status => Err(crate::Error::unavailable(format!(
                "the HTTP service answered {status}"
            ))),
        }
    }
}

/// The parts of an absolute URL that `wasi:http` takes separately. A full URL parser would
/// add a dependency (and its size to every skill) for what the host checks again anyway.
struct Target<'a> {
    scheme: Scheme,
    authority: &'a str,
    path: String,
}

impl<'a> Target<'a> {
    fn parse(url: &'a str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::InvalidRequest(format!("{why}: {url:?}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("not an absolute URL"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid("only http and https URLs are supported")),
        };
        // The fragment is never sent.
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid("the URL needs a host (and no user info)"));
        }
        // `http://h` and `http://h?q` ask for `/` and `/?q`.
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(Self {
            scheme,
            authority,
            path,
        })
    }
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    }
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), Error> {
    {
        let stream = body
            .write()
            .map_err(|()| Error::InvalidRequest("the body stream was already taken".into()))?;
        // `blocking-write-and-flush` takes at most 4096 bytes at a time.
        for chunk in bytes.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| {
                Error::Unavailable(format!("sending the body: {}", stream_error(e)))
            })?;
        }
    }
    OutgoingBody::finish(body, None)?;
    Ok(())
}

fn read_body(body: &IncomingBody, limit: usize) -> Result<Vec<u8>, Error> {
    let stream = body
        .stream()
        .map_err(|()| Error::Unavailable("the body stream was already taken".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > limit {
                    return Err(Error::TooLarge(limit));
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(e) => {
                return Err(Error::Unavailable(format!(
                    "reading the body: {}",
                    stream_error(e)
                )));
            }
        }
    }
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "the stream is closed".into(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}
