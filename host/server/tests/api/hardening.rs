//! What one tenant can no longer do to the host or to others: hold the memory of every
//! sandbox, fill the database through many skills, crowd out publishing, send input the
//! server trips over; and how a skill still compiling is answered.

use std::sync::Arc;
use std::time::Duration;

use omniforge_runtime::{Compiler, Engine, InProcessCompiler, LoadError};
use reqwest::Method;
use serde_json::json;

use crate::common::{
    TestApp, all, answer, example_package, guest_package, guest_package_named, test_config,
};

/// A package of `kv-counter` published under another name.
fn counter_named(name: &str) -> Vec<u8> {
    example_package("kv-counter", omniforge_test_programs::KV_COUNTER, |m| {
        m.replace("examples/kv-counter", &format!("examples/{name}"))
    })
}

#[tokio::test]
async fn the_kv_quota_is_one_total_over_all_of_a_tenants_skills() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let policy = format!("/api/v1/tenants/{}/policy", app.acme.id);
        // One counter entry is "k" + 8 bytes + 256: 265 bytes. Three fit in 1,000.
        app.call(
            Method::PUT,
            &policy,
            Some(&app.acme.key),
            Some(json!({"max_kv_bytes": 1000})),
        )
        .await
        .expect(200, "a small kv quota");
        let mut refused = None;
        for n in 0..8 {
            let name = format!("counter-{n}");
            app.publish(&app.acme.key, &counter_named(&name))
                .await
                .expect(201, "publish a counter");
            let answer = app
                .invoke(
                    &app.acme.key,
                    &format!("examples/{name}"),
                    json!({"key": "k"}),
                    None,
                )
                .await;
            if answer.status != 200 {
                refused = Some((n, answer));
                break;
            }
        }
        let (n, answer) = refused.expect("the tenant's kv quota was never reached");
        assert_eq!(n, 3, "three skills' entries fit, the fourth does not");
        let body = answer.expect(422, "over the tenant's kv quota");
        assert_eq!(body["type"], "https://omniforge.dev/problems/skill-error");
        assert!(body["detail"].as_str().unwrap().contains("quota"), "{body}");
        let usage = app
            .call(Method::GET, "/api/v1/usage", Some(&app.acme.key), None)
            .await
            .expect(200, "usage")
            .clone();
        assert_eq!(
            (usage["kv_bytes"].clone(), usage["kv_entries"].clone()),
            (json!(795), json!(3))
        );
        assert_eq!(usage["max_kv_bytes"], 1000);
        // Another tenant's counters are not charged to acme.
        app.publish(
            &app.globex.key,
            &example_package("kv-counter", omniforge_test_programs::KV_COUNTER, |m| {
                m.replace("examples/kv-counter", "globex/kv-counter")
            }),
        )
        .await
        .expect(201, "globex publishes");
        app.invoke(
            &app.globex.key,
            "globex/kv-counter",
            json!({"key": "k"}),
            None,
        )
        .await
        .expect(200, "globex has its own quota");
    }
}

/// Invokes `skill` as acme with `body` sent as written.
async fn invoke_text(app: &TestApp, skill: &str, body: String) -> crate::common::Answer {
    answer(
        app.client
            .post(format!("{}/api/v1/skills/{skill}/invoke", app.base))
            .bearer_auth(&app.acme.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn input_nested_too_deeply_is_refused_with_a_4xx_everywhere() {
    for db in all().await {
        let app = TestApp::start(db).await;
        app.publish(&app.acme.key, &counter_named("deep"))
            .await
            .expect(201, "a skill with an input schema");
        app.publish(
            &app.acme.key,
            &guest_package("sleeper", omniforge_test_programs::SLEEPER),
        )
        .await
        .expect(201, "a skill without one");
        for skill in ["examples/deep", "acme-tests/sleeper"] {
            // Sent as text: serde_json itself cannot build a value this deep.
            let body = format!(
                r#"{{"input": {{"key": {}{}}}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            );
            let refused = invoke_text(&app, skill, body).await;
            let problem = refused.expect(422, skill);
            assert_eq!(
                problem["type"],
                "https://omniforge.dev/problems/invalid-input"
            );
            assert!(
                problem["detail"].as_str().unwrap().contains("127"),
                "{problem}"
            );
        }
        // Within the limit it is the skill's schema that answers, not the server.
        let at_limit = format!(
            r#"{{"input": {{"key": {}"x"{}}}}}"#,
            "[".repeat(126),
            "]".repeat(126)
        );
        let answered = invoke_text(&app, "examples/deep", at_limit).await;
        let problem = answered.expect(422, "an array where the schema wants a string");
        assert_eq!(
            problem["type"],
            "https://omniforge.dev/problems/invalid-input"
        );
        assert_eq!(problem["pointer"], "/key");
    }
}

#[tokio::test]
async fn sandboxes_share_one_memory_budget_and_the_overflow_is_refused_not_run() {
    for db in all().await {
        let mut config = test_config(&db);
        // Room for one invocation at the default 256 MiB limit, not two.
        config.skills.memory_budget_mb = Some(300);
        config.skills.memory_budget_wait_ms = 200;
        let app = Arc::new(TestApp::start_with(db, config).await);
        for (key, namespace) in [
            (&app.acme.key, "acme-tests"),
            (&app.globex.key, "globex-tests"),
        ] {
            let package =
                guest_package_named(namespace, "sleeper", omniforge_test_programs::SLEEPER);
            app.publish(key, &package)
                .await
                .expect(201, "publish the sleeper");
        }
        let holder = {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let input = json!({"ms": 8000});
                app.invoke(&app.acme.key, "acme-tests/sleeper", input, None)
                    .await
            })
        };
        // Another tenant's invocation finds no room once the holder runs: refused after a
        // short wait, never run. (Until the holder has started, others may still run.)
        let mut ran_first = 0;
        let refused = loop {
            let answer = app
                .invoke(
                    &app.globex.key,
                    "globex-tests/sleeper",
                    json!({"ms": 1}),
                    None,
                )
                .await;
            if answer.status != 200 || ran_first >= 50 {
                break answer;
            }
            ran_first += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let problem = refused.expect(429, "over the host's memory budget");
        assert_eq!(problem["limit"], "memory_budget");
        holder
            .await
            .unwrap()
            .expect(200, "the invocation holding the budget");
        app.invoke(
            &app.globex.key,
            "globex-tests/sleeper",
            json!({"ms": 1}),
            None,
        )
        .await
        .expect(200, "room again once it ended");
        let usage = app
            .call(Method::GET, "/api/v1/usage", Some(&app.globex.key), None)
            .await
            .expect(200, "usage")
            .clone();
        assert_eq!(
            usage["invocations"],
            ran_first + 1,
            "the refused invocation is not charged"
        );
    }
}

#[tokio::test]
async fn publishes_beyond_the_servers_capacity_are_refused_with_retry_after() {
    for db in all().await {
        let mut config = test_config(&db);
        config.skills.concurrent_publishes = 1;
        let app = TestApp::start_with(db, config).await;
        // A publish whose upload trickles in holds the only slot.
        let package = example_package("hello", omniforge_test_programs::HELLO, |m| m);
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        let slow = tokio::spawn({
            let request = app
                .client
                .post(format!("{}/api/v1/skills", app.base))
                .bearer_auth(&app.acme.key)
                .header("content-type", "application/zip")
                .body(reqwest::Body::wrap_stream(tokio_stream_of(receiver)));
            async move { answer(request.send().await.unwrap()).await }
        });
        sender.send(Ok(package[..100].to_vec())).await.unwrap();
        // The slow publish holds its slot once its upload is being spooled.
        let uploads = app.data.path().join("uploads");
        for _ in 0..600 {
            if std::fs::read_dir(&uploads).is_ok_and(|d| d.count() > 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refused = app
            .publish(&app.acme.key, &crate::common::hello_package("0.2.0"))
            .await;
        let problem = refused.expect(429, "a second publish while the first uploads");
        assert_eq!(problem["limit"], "publishes");
        sender.send(Ok(package[100..].to_vec())).await.unwrap();
        drop(sender);
        slow.await
            .unwrap()
            .expect(201, "the slow publish completes");
        app.publish(&app.acme.key, &crate::common::hello_package("0.2.0"))
            .await
            .expect(201, "the slot is free again");
    }
}

/// A receiver as a stream of body chunks.
fn tokio_stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Compiles only once the test opens the gate: a compile that takes as long as the test
/// wants.
struct GatedCompiler {
    gate: Arc<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl Compiler for GatedCompiler {
    async fn compile(&self, engine: &Engine, wasm: Arc<[u8]>) -> Result<Vec<u8>, LoadError> {
        let _open = self.gate.acquire().await.expect("the gate stays");
        InProcessCompiler.compile(engine, wasm).await
    }
}

#[tokio::test]
async fn a_skill_still_compiling_is_answered_503_skill_compiling_never_a_timeout() {
    for db in all().await {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let artifacts = tempfile::tempdir().unwrap();
        let mut config = test_config(&db);
        config.skills.compile_wait_ms = 300;
        config.skills.artifact_cache_dir = Some(artifacts.path().to_owned());
        let workers = omniforge_server::Workers {
            compiler: Some(Arc::new(GatedCompiler {
                gate: Arc::clone(&gate),
            })),
            validator: None,
        };
        let app = TestApp::start_with_workers(db, config, workers).await;
        let published = app
            .publish(&app.acme.key, &crate::common::hello_package("0.1.0"))
            .await
            .expect(201, "publish while compiles are held")
            .clone();
        assert_eq!(published["compiled"], false);
        let version = "/api/v1/skills/examples/hello/versions/0.1.0";
        let shown = app
            .call(Method::GET, version, Some(&app.acme.key), None)
            .await
            .expect(200, "the version")
            .clone();
        assert_eq!(shown["compiled"], false);
        let waited = app
            .client
            .post(format!("{}/api/v1/skills/examples/hello/invoke", app.base))
            .bearer_auth(&app.acme.key)
            .json(&json!({"input": {"name": "Ada"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(waited.headers()["retry-after"], "5");
        let problem = answer(waited).await;
        let problem = problem.expect(503, "invoked while compiling");
        assert_eq!(
            problem["type"],
            "https://omniforge.dev/problems/skill-compiling"
        );
        assert_eq!(problem["version"], "0.1.0");
        gate.add_permits(100);
        let mut compiled = false;
        for _ in 0..600 {
            let shown = app
                .call(Method::GET, version, Some(&app.acme.key), None)
                .await;
            if shown.body["compiled"] == true {
                compiled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(compiled, "the compile never finished");
        let answered = app
            .invoke(
                &app.acme.key,
                "examples/hello",
                json!({"name": "Ada"}),
                None,
            )
            .await;
        assert_eq!(
            answered.expect(200, "compiled")["output"]["greeting"],
            "Hello, Ada!"
        );
    }
}

#[tokio::test]
async fn policy_values_above_their_documented_maxima_are_refused_not_stored() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let policy = format!("/api/v1/tenants/{}/policy", app.acme.id);
        let many_hosts: Vec<String> = (0..101).map(|n| format!("h{n}.example.com")).collect();
        for (body, field) in [
            (
                json!({"max_invocations": 9_223_372_036_854_775_807_u64}),
                "max_invocations",
            ),
            (json!({"max_fuel": 10_000_000_000_001_u64}), "max_fuel"),
            (json!({"max_memory_mb": 16_385}), "max_memory_mb"),
            (json!({"max_concurrency": 0}), "max_concurrency"),
            (
                json!({"max_kv_bytes": 1_099_511_627_777_u64}),
                "max_kv_bytes",
            ),
            (json!({"http_allow": many_hosts}), "http_allow"),
        ] {
            let refused = app
                .call(Method::PUT, &policy, Some(&app.acme.key), Some(body))
                .await;
            assert_eq!(refused.expect(422, field)["field"], field);
        }
        let unchanged = app
            .call(Method::GET, &policy, Some(&app.acme.key), None)
            .await
            .expect(200, "the policy")
            .clone();
        assert_eq!(unchanged["max_invocations"], json!(null));
        // serde reads a struct from an array of its fields too; a body is an object.
        for (method, path, body) in [
            (Method::PUT, policy.clone(), json!([])),
            (Method::PUT, policy.clone(), json!([1_000])),
            (
                Method::PATCH,
                format!("/api/v1/tenants/{}", app.acme.id),
                json!(["Renamed"]),
            ),
        ] {
            let refused = app
                .call(method, &path, Some(&app.acme.key), Some(body))
                .await;
            assert!(
                refused.expect(422, "an array body")["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("a JSON object")),
                "{path}"
            );
        }
        let tenant = app
            .call(
                Method::GET,
                &format!("/api/v1/tenants/{}", app.acme.id),
                Some(&app.acme.key),
                None,
            )
            .await;
        assert_ne!(tenant.expect(200, "the tenant")["name"], "Renamed");
        // The maxima themselves are accepted, integers written as 940.0 too.
        let at_max = json!({
            "max_invocations": 1_000_000_000_000_u64, "max_fuel": 10_000_000_000_000_u64,
            "max_memory_mb": 16_384.0, "max_concurrency": 1_024,
            "max_kv_bytes": 1_099_511_627_776_u64, "http_allow": ["https://API.example.com:443/"],
        });
        let set = app
            .call(Method::PUT, &policy, Some(&app.acme.key), Some(at_max))
            .await
            .expect(200, "the maxima")
            .clone();
        assert_eq!(set["max_memory_mb"], 16_384);
        assert_eq!(set["http_allow"], json!(["api.example.com:443"]));
    }
}
