//! Outbound HTTP through the allow-list, with a real loopback server; and calls of other
//! skills through the `skills` capability, with the platform played by the test.

use std::sync::Arc;
use std::time::Instant;

use omniforge_runtime::capabilities::{
    CallAnswer, CallError, HostPattern, HttpLimits, HttpPolicy, SkillCall, SkillCaller,
};
use omniforge_runtime::{GuestErrorKind, LoadedSkill, Outcome, Runtime, RuntimeConfig};
use omniforge_test_programs as programs;

use crate::common::{TestServer, load, ok_output, request, runtime};

fn pattern(s: &str) -> HostPattern {
    s.parse().unwrap()
}

async fn get(
    runtime: &Runtime,
    url: &str,
    policy: HttpPolicy,
) -> omniforge_runtime::InvocationReport {
    let skill = load(runtime, programs::HTTP_GET).await;
    let mut req = request("http", &serde_json::json!({ "url": url }).to_string());
    req.grants.http = policy;
    runtime.invoke(&skill, req).await
}

fn assert_denied(report: &omniforge_runtime::InvocationReport) {
    assert!(
        matches!(
            report.outcome,
            Outcome::GuestError {
                kind: GuestErrorKind::Denied,
                ..
            }
        ),
        "expected the request to be denied: {report:?}"
    );
}

#[tokio::test]
async fn an_allow_listed_loopback_address_is_reachable() {
    let server = TestServer::start("hello from the test server").await;
    let url = format!("http://{}/path?q=1", server.addr);
    let allowed = HttpPolicy::operator([pattern(&format!("http://{}", server.addr))]);
    let report = get(runtime(), &url, allowed).await;
    let output = ok_output(&report);
    assert_eq!(output["status"], 200);
    assert_eq!(output["body"], "hello from the test server");
    assert_eq!(report.usage.http_requests, 1);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn outbound_requests_carry_the_invocations_trace_parent() {
    let server = TestServer::start("traced").await;
    let url = format!("http://{}/", server.addr);
    let skill = load(runtime(), programs::HTTP_GET).await;
    let mut req = request("http", &serde_json::json!({ "url": url }).to_string());
    req.grants.http = HttpPolicy::operator([pattern(&format!("http://{}", server.addr))]);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    req.context.trace_parent = Some(parent.into());
    let report = runtime().invoke(&skill, req).await;
    assert_eq!(ok_output(&report)["status"], 200);
    let heads = server.heads();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0]
            .to_lowercase()
            .contains(&format!("traceparent: {parent}")),
        "{}",
        heads[0]
    );

    // Without a trace, nothing is added.
    let mut req = request("http", &serde_json::json!({ "url": url }).to_string());
    req.grants.http = HttpPolicy::operator([pattern(&format!("http://{}", server.addr))]);
    runtime().invoke(&skill, req).await;
    assert!(!server.heads()[1].to_lowercase().contains("traceparent"));
}

#[tokio::test]
async fn a_host_outside_the_allow_list_is_denied_before_any_connection() {
    let server = TestServer::start("secret").await;
    let url = format!("http://{}/", server.addr);
    assert_denied(&get(runtime(), &url, HttpPolicy::default()).await);
    let other_port = HttpPolicy::operator([pattern("http://127.0.0.1:1")]);
    assert_denied(&get(runtime(), &url, other_port).await);
    let wrong_scheme = HttpPolicy::operator([pattern(&format!("https://{}", server.addr))]);
    assert_denied(&get(runtime(), &url, wrong_scheme).await);
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_unless_allowed_explicitly() {
    let server = TestServer::start("internal").await;
    let url = format!("http://localhost:{}/", server.addr.port());
    // A wildcard allows any host, but not the operator's loopback or private network.
    let any_host = HttpPolicy::operator([pattern("*://*:*")]);
    assert_denied(&get(runtime(), &url, any_host.clone()).await);
    assert_eq!(server.hits(), 0);

    // Naming localhost explicitly, or allowing private networks, lets it through.
    let named =
        HttpPolicy::operator([pattern(&format!("http://localhost:{}", server.addr.port()))]);
    assert_eq!(
        ok_output(&get(runtime(), &url, named).await)["body"],
        "internal"
    );
    let private_ok = HttpPolicy {
        allow_private_networks: true,
        ..any_host
    };
    assert_eq!(
        ok_output(&get(runtime(), &url, private_ok).await)["body"],
        "internal"
    );
}

#[tokio::test]
async fn a_response_over_the_size_cap_fails_the_read() {
    let runtime = Runtime::new(RuntimeConfig {
        http: HttpLimits {
            max_response_bytes: 100,
            ..HttpLimits::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let body: &'static str = Box::leak("x".repeat(5000).into_boxed_str());
    let server = TestServer::start(body).await;
    let allowed = HttpPolicy::operator([pattern(&format!("http://{}", server.addr))]);
    let report = get(&runtime, &format!("http://{}/", server.addr), allowed).await;
    match &report.outcome {
        Outcome::GuestError {
            kind: GuestErrorKind::Unavailable,
            message,
        } => {
            assert!(message.contains("body"), "{message}")
        }
        other => panic!("expected the body read to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_per_invocation_are_capped() {
    let runtime = Runtime::new(RuntimeConfig {
        http: HttpLimits {
            max_requests: 0,
            ..HttpLimits::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let server = TestServer::start("x").await;
    let allowed = HttpPolicy::operator([pattern(&format!("http://{}", server.addr))]);
    let report = get(&runtime, &format!("http://{}/", server.addr), allowed).await;
    assert!(
        matches!(report.outcome, Outcome::GuestError { .. }),
        "{report:?}"
    );
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn a_skill_cannot_reach_a_private_address_by_naming_it() {
    let server = TestServer::start("metadata").await;
    let url = format!("http://{}/latest/meta-data", server.addr);
    // The skill's own manifest names the address literally: still refused.
    let declared = HttpPolicy::allow([pattern(&format!("http://{}", server.addr))]);
    assert_denied(&get(runtime(), &url, declared.clone()).await);
    assert_eq!(server.hits(), 0);
    // Any operator pattern naming it literally allows it, even after a broader one.
    let operator = HttpPolicy {
        operator_allowed: vec![
            pattern("*://*:*"),
            pattern(&format!("http://{}", server.addr)),
        ],
        ..declared
    };
    assert_eq!(
        ok_output(&get(runtime(), &url, operator).await)["body"],
        "metadata"
    );
}

/// The platform of a test: runs every call with the spin-loop guest on the same runtime,
/// with the budget the runtime handed over, and records the calls.
struct SpinPlatform {
    runtime: Arc<Runtime>,
    spin: Arc<LoadedSkill>,
    calls: std::sync::Mutex<Vec<SkillCall>>,
}

#[async_trait::async_trait]
impl SkillCaller for SpinPlatform {
    async fn call(&self, call: SkillCall) -> CallAnswer {
        self.calls.lock().unwrap().push(call.clone());
        let mut request = request("acme", &call.input);
        request.limits.fuel = call.fuel;
        request.limits.timeout = call.deadline.saturating_duration_since(Instant::now());
        request.callers = call.callers.clone();
        let report = self.runtime.invoke(&self.spin, request).await;
        CallAnswer {
            result: match report.outcome {
                Outcome::Ok { output } => Ok(output),
                other => Err(CallError::Failed(other.code().into())),
            },
            fuel_consumed: report.usage.fuel_consumed,
            invocations: 1,
        }
    }
}

#[tokio::test]
async fn a_called_skill_burns_the_callers_fuel_and_leaves_it_a_reserve() {
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).unwrap());
    let platform = Arc::new(SpinPlatform {
        spin: load(&runtime, programs::SPIN_LOOP).await,
        runtime: Arc::clone(&runtime),
        calls: Default::default(),
    });
    let runtime = Arc::new(
        Runtime::builder(RuntimeConfig::default())
            .skill_caller(platform.clone())
            .build()
            .unwrap(),
    );
    let relay = load(&runtime, programs::RELAY).await;
    let call = |input: &str, granted: bool| {
        let mut request = request("acme", input);
        request.context.skill = "t/relay".parse().unwrap();
        request.limits.fuel = Some(50_000_000);
        if granted {
            request
                .grants
                .skills
                .insert("t/spin".parse().unwrap(), "^1".parse().unwrap());
        }
        request
    };

    // Not granted: denied, and nothing reaches the platform.
    let denied = runtime
        .invoke(
            &relay,
            call(r#"{"chain": ["t/spin"], "catch": true}"#, false),
        )
        .await;
    let output = ok_output(&denied);
    assert_eq!(output["error"]["kind"], "denied", "{output}");
    assert!(platform.calls.lock().unwrap().is_empty());

    // A bounded callee: its fuel is counted in the caller's usage.
    let bounded = runtime
        .invoke(
            &relay,
            call(
                r#"{"chain": ["t/spin"], "tail": {"iterations": 100000}}"#,
                true,
            ),
        )
        .await;
    let output = ok_output(&bounded);
    assert_eq!(output["answer"]["iterations"], 100000, "{output}");
    assert_eq!(bounded.usage.skill_calls, 1);
    {
        let calls = platform.calls.lock().unwrap();
        assert_eq!(calls[0].callers, ["t/relay".parse().unwrap()]);
        assert_eq!(calls[0].granted.to_string(), "^1");
        assert!(calls[0].fuel.unwrap() < 50_000_000);
    }
    assert!(bounded.usage.fuel_consumed > 100_000, "{:?}", bounded.usage);

    // A callee that never stops burns what it may; the caller keeps its reserve and answers.
    let endless = runtime
        .invoke(
            &relay,
            call(r#"{"chain": ["t/spin"], "tail": {}, "catch": true}"#, true),
        )
        .await;
    let output = ok_output(&endless);
    assert_eq!(output["error"]["kind"], "failed", "{output}");
    assert_eq!(output["error"]["message"], "fuel_exhausted");
    let given = platform.calls.lock().unwrap()[1].fuel.unwrap();
    assert!(endless.usage.fuel_consumed > given, "{:?}", endless.usage);
    assert!(endless.usage.fuel_consumed <= 50_000_000);
}
