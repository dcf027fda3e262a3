//! `http-get`: fetches a URL with outbound HTTP and reports the status and body.
//! `{"url": "https://example.com/"}` → `{"status": 200, "body": "...", "truncated": false}`.
//! The host lets the request out only if the URL's host is in the manifest's `[permissions]
//! http` allow-list; otherwise the request fails with `HTTP-request-denied`, which this skill
//! reports as a `denied` error.

wit_bindgen::generate!({ path: "../../../wit", world: "omniforge:skill/skill", generate_all });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Largest body this skill returns; the rest is cut off and `truncated` is set.
const MAX_BODY: usize = 64 * 1024;

#[derive(serde::Deserialize)]
struct Input {
    url: String,
}

#[derive(serde::Serialize)]
struct Output {
    status: u16,
    body: String,
    truncated: bool,
}

struct HttpGet;

impl Guest for HttpGet {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: Input = serde_json::from_str(&input)
            .map_err(|e| SkillError::InvalidInput(format!("expected {{\"url\": string}}: {e}")))?;
        let output = get(&input.url)?;
        serde_json::to_string(&output).map_err(|e| SkillError::Failed(e.to_string()))
    }
}

fn get(url: &str) -> Result<Output, SkillError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| SkillError::InvalidInput(format!("not an absolute URL: {url}")))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(SkillError::InvalidInput(format!(
                "unsupported scheme {other}"
            )));
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };

    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| failed("bad method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| failed("bad scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| SkillError::InvalidInput(format!("bad host: {authority}")))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| SkillError::InvalidInput(format!("bad path: {path}")))?;

    let pending = outgoing_handler::handle(request, None).map_err(http_error)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| failed("response not ready after waiting"))?
        .map_err(|()| failed("response already taken"))?
        .map_err(http_error)?;

    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| failed("body already taken"))?;
    let stream = body
        .stream()
        .map_err(|()| failed("body stream already taken"))?;
    let mut bytes = Vec::new();
    let mut truncated = false;
    loop {
        match stream.blocking_read(16 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > MAX_BODY {
                    bytes.extend_from_slice(&chunk[..MAX_BODY - bytes.len()]);
                    truncated = true;
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(SkillError::Unavailable(format!(
                    "reading the body failed: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    Ok(Output {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        truncated,
    })
}

fn failed(message: &str) -> SkillError {
    SkillError::Failed(message.to_string())
}

fn http_error(code: ErrorCode) -> SkillError {
    match code {
        ErrorCode::HttpRequestDenied => {
            SkillError::Denied("the host refused this request (not in the allow-list)".into())
        }
        ErrorCode::DestinationIpProhibited => {
            SkillError::Denied("the destination address is not allowed".into())
        }
        other => SkillError::Unavailable(format!("HTTP request failed: {other:?}")),
    }
}

export!(HttpGet);
