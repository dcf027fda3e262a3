//! `http-get`: fetches a URL with outbound HTTP and reports the status and body.
//! `{"url": "https://example.com/"}` → `{"status": 200, "body": "...", "truncated": false}`.
//! The host lets the request out only if the URL's host is in the manifest's `[permissions]
//! http` allow-list; otherwise the request fails with `HTTP-request-denied`, which this skill
//! reports as a `denied` error.

use omniforge_sdk::{Context, Error, http};

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

fn get(_ctx: Context, input: Input) -> Result<Output, Error> {
    let response = http::get(&input.url)?;
    let truncated = response.body.len() > MAX_BODY;
    let body = &response.body[..response.body.len().min(MAX_BODY)];
    Ok(Output {
        status: response.status,
        body: String::from_utf8_lossy(body).into_owned(),
        truncated,
    })
}

omniforge_sdk::skill!(get);
