//! `hello` as a wasi:http handler: `POST {"input": {"name": "Ada"}}` answers
//! `{"output": {"greeting": "Hello, Ada!"}}` — the same JSON work the skill does, with the
//! HTTP request and response handled by the guest instead of by OmniForge.

use serde::{Deserialize, Serialize};
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(HttpHello);

#[derive(Deserialize)]
struct Request {
    input: Input,
}

#[derive(Deserialize)]
struct Input {
    name: String,
}

#[derive(Serialize)]
struct Response {
    output: Output,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

struct HttpHello;

impl wasip2::exports::http::incoming_handler::Guest for HttpHello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        match answer(request) {
            Ok((status, body)) => respond(response_out, status, &body),
            Err(e) => ResponseOutparam::set(response_out, Err(ErrorCode::InternalError(Some(e)))),
        }
    }
}

fn answer(request: IncomingRequest) -> Result<(u16, Vec<u8>), String> {
    let body = request.consume().map_err(|()| "the body was taken")?;
    let stream = body.stream().map_err(|()| "the body stream was taken")?;
    let mut bytes = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        bytes.extend_from_slice(&chunk);
    }
    drop(stream);
    Ok(match serde_json::from_slice::<Request>(&bytes) {
        Ok(request) => {
            let response = Response {
                output: Output {
                    greeting: format!("Hello, {}!", request.input.name),
                },
            };
            (
                200,
                serde_json::to_vec(&response).map_err(|e| e.to_string())?,
            )
        }
        Err(e) => (
            400,
            format!("expected {{\"input\": {{\"name\": string}}}}: {e}").into_bytes(),
        ),
    })
}

fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"application/json".to_vec())])
        .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(response_out, Ok(response));
    let stream = outgoing.write().expect("the stream is taken once");
    for chunk in body.chunks(4096) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}
