//! Traces as a collector receives them: the real binary exports over OTLP/HTTP to a
//! receiver in this test, which decodes the protobuf the exporter sends. One REST invoke of
//! a composing skill, sent with a W3C `traceparent`, must arrive as a `request` span in the
//! caller's trace, with the top-level `invocation` under it and each nested call's
//! `invocation` under its caller's; the JSON log lines carry the trace id.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omniforge_test_programs as programs;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::examples::ServerCli;

/// What the receiver was sent: one body per export.
pub(crate) type Exports = Arc<Mutex<Vec<Vec<u8>>>>;

/// An OTLP/HTTP receiver on a port of its own: it answers every POST with 200 and keeps the
/// bodies.
pub(crate) fn receiver() -> (u16, Exports) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let exports = Exports::default();
    let kept = Arc::clone(&exports);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || serve(stream, &kept));
        }
    });
    (port, exports)
}

/// Answers the requests of one connection (the exporter keeps it alive between exports).
fn serve(stream: TcpStream, kept: &Exports) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        // The request line, then headers up to the blank line.
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        kept.lock().unwrap().push(body);
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Every span received so far.
fn spans(exports: &Exports) -> Vec<Span> {
    exports
        .lock()
        .unwrap()
        .iter()
        .flat_map(|body| {
            ExportTraceServiceRequest::decode(body.as_slice())
                .expect("an OTLP trace export")
                .resource_spans
        })
        .flat_map(|resource| resource.scope_spans)
        .flat_map(|scope| scope.spans)
        .collect()
}

/// A span's string and integer attributes, as text.
fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The manifest lines granting `callee` at `^1`.
fn grant(callee: &str) -> String {
    format!("[permissions]\nskills = {{ \"{callee}\" = \"^1\" }}\n")
}

#[test]
fn a_composing_invoke_arrives_as_one_trace_under_the_callers() {
    let (port, exports) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let (server, cli) = ServerCli::start_with(
        dir.path(),
        &[
            ("OMNIFORGE_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OMNIFORGE_LOG_FORMAT", "json"),
        ],
    );
    cli.publish_wasm(&cli.key, "acme/a", programs::RELAY, "", &grant("acme/b"));
    cli.publish_wasm(&cli.key, "acme/b", programs::RELAY, "", &grant("acme/c"));
    cli.publish_wasm(&cli.key, "acme/c", programs::RELAY, "", &grant("acme/a"));

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answer: serde_json::Value = runtime.block_on(async {
        let answer = reqwest::Client::new()
            .post(format!("{}/api/v1/skills/acme/a/invoke", cli.url))
            .bearer_auth(&cli.key)
            .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
            .json(&json!({"input": {"chain": ["acme/b", "acme/c"]}}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        answer.json().await.unwrap()
    });
    assert_eq!(
        answer["output"],
        json!({"via": "acme/a", "answer": {"via": "acme/b", "answer": {"end": "acme/c"}}})
    );

    // The exporter sends in batches: wait for the three invocations of this trace.
    let deadline = Instant::now() + Duration::from_secs(20);
    let in_trace = loop {
        let in_trace: Vec<Span> = spans(&exports)
            .into_iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .collect();
        if in_trace.iter().filter(|s| s.name == "invocation").count() >= 3 {
            break in_trace;
        }
        assert!(
            Instant::now() < deadline,
            "the spans never arrived: {:?}",
            in_trace.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let request = in_trace
        .iter()
        .find(|s| s.name == "request" && attributes(s)["path"] == "/api/v1/skills/acme/a/invoke")
        .expect("the request's span");
    assert_eq!(
        hex(&request.parent_span_id),
        caller_span,
        "the caller's span is its parent"
    );
    let invocation = |skill: &str| {
        in_trace
            .iter()
            .find(|s| s.name == "invocation" && attributes(s)["skill"] == skill)
            .unwrap_or_else(|| panic!("no invocation span of {skill}"))
    };
    let (a, b, c) = (
        invocation("acme/a"),
        invocation("acme/b"),
        invocation("acme/c"),
    );
    assert_eq!(
        a.parent_span_id, request.span_id,
        "the invocation is the request's"
    );
    assert_eq!(b.parent_span_id, a.span_id, "a nested call is its caller's");
    assert_eq!(c.parent_span_id, b.span_id);
    let top = attributes(a);
    assert_eq!(top["entry"], "rest");
    assert_eq!(top["outcome"], "ok");
    assert_eq!(top["version"], "1.0.0");
    assert!(top["fuel"].parse::<u64>().unwrap() > 0, "{top:?}");
    assert!(top.contains_key("tenant"), "{top:?}");
    assert_eq!(attributes(b)["entry"], "nested");
    assert_eq!(attributes(c)["outcome"], "ok");

    // The request's log lines carry the trace id.
    let logs = server.logs();
    let finished = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| {
            line["message"] == "request finished"
                && line["span"]["path"] == "/api/v1/skills/acme/a/invoke"
        })
        .unwrap_or_else(|| panic!("no request log line:\n{logs}"));
    assert_eq!(finished["span"]["trace_id"], trace_id, "{finished}");
}
