//! The example skills give the right output through the library.

use omniforge_runtime::{GuestErrorKind, Outcome};
use omniforge_test_programs as programs;

use crate::common::{invoke, load, ok_output, request, runtime};

#[tokio::test]
async fn hello_greets_by_name_and_reports_usage() {
    let report = invoke(programs::HELLO, r#"{"name": "Ada"}"#).await;
    assert_eq!(
        ok_output(&report),
        serde_json::json!({"greeting": "Hello, Ada!"})
    );
    assert!(report.usage.fuel_consumed > 0, "{report:?}");
    assert!(report.usage.peak_memory_bytes > 0, "{report:?}");
    assert!(report.usage.wall_time_us > 0, "{report:?}");
}

#[tokio::test]
async fn hello_reports_its_own_error_for_a_missing_name() {
    let report = invoke(programs::HELLO, r#"{"nom": "Ada"}"#).await;
    match report.outcome {
        Outcome::GuestError {
            kind: GuestErrorKind::InvalidInput,
            message,
        } => {
            assert!(message.contains("name"), "{message}")
        }
        other => panic!("expected the skill's invalid-input error, got {other:?}"),
    }
}

#[tokio::test]
async fn input_that_is_not_json_is_rejected_before_the_skill_runs() {
    let report = invoke(programs::HELLO, "{name: Ada").await;
    assert!(
        matches!(report.outcome, Outcome::InvalidInput { .. }),
        "{report:?}"
    );
    assert_eq!(report.usage.fuel_consumed, 0, "the guest never ran");
}

#[tokio::test]
async fn text_stats_counts_words_sentences_and_frequencies() {
    let input = r#"{"text": "The cat sat. The dog ran!\nThe end?", "top": 1}"#;
    let output = ok_output(&invoke(programs::TEXT_STATS, input).await);
    assert_eq!(output["words"], 8);
    assert_eq!(output["sentences"], 3);
    assert_eq!(output["lines"], 2);
    assert_eq!(
        output["top_words"],
        serde_json::json!([{"word": "the", "count": 3}])
    );
}

#[tokio::test]
async fn kv_counter_counts_per_tenant_when_granted() {
    let skill = load(runtime(), programs::KV_COUNTER).await;
    let call = |tenant: &'static str| {
        let skill = skill.clone();
        async move {
            let mut req = request(tenant, r#"{"key": "visits"}"#);
            req.grants.kv = true;
            ok_output(&runtime().invoke(&skill, req).await)["count"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(call("kv-tenant-a").await, 1);
    assert_eq!(call("kv-tenant-a").await, 2);
    assert_eq!(
        call("kv-tenant-b").await,
        1,
        "another tenant has its own counter"
    );
    assert_eq!(call("kv-tenant-a").await, 3);
}

#[tokio::test]
async fn kv_counter_is_denied_without_the_grant() {
    let report = invoke(programs::KV_COUNTER, r#"{"key": "visits"}"#).await;
    assert!(
        matches!(
            report.outcome,
            Outcome::GuestError {
                kind: GuestErrorKind::Denied,
                ..
            }
        ),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_pure_tool_imports_none_of_the_capabilities() {
    let hello = load(runtime(), programs::HELLO).await;
    assert!(
        hello
            .imports()
            .iter()
            .all(|i| !i.contains("omniforge:skill/kv")),
        "{:?}",
        hello.imports()
    );
    assert!(
        hello.imports().iter().all(|i| !i.contains("wasi:http")),
        "{:?}",
        hello.imports()
    );
    let http_get = load(runtime(), programs::HTTP_GET).await;
    assert!(
        http_get
            .imports()
            .iter()
            .any(|i| i.starts_with("wasi:http/outgoing-handler")),
        "{:?}",
        http_get.imports()
    );
}
