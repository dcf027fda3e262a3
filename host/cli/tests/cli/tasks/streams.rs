//! Following tasks: an event stream resumed with `Last-Event-ID` misses nothing and repeats
//! nothing; `omniforge task watch` survives a server restart; one tenant's backlog does not
//! hold back another's task, and a full queue answers 429.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use super::{Api, Backend, start};
use crate::bootstrap_env;
use crate::server::serve_in;

#[test]
fn a_resumed_event_stream_gets_every_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, cli) = start(dir.path(), &Backend::Sqlite, &[]);
    cli.publish_wasm(&cli.key, "acme/ticker", programs::TICKER, "", "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    runtime.block_on(async {
        let task = api
            .submit(json!({"skill": "acme/ticker", "input": {"lines": 30, "every_ms": 40}}))
            .await;
        let id = task["id"].as_str().unwrap();
        // Leave mid-run, wait while more happens, come back with the last id seen.
        let first = api.stream(id, None, Some(8)).await;
        assert_eq!(first.len(), 8);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Still running: what follows arrives partly stored, partly live.
        assert_eq!(api.task(id).await["state"], "working");
        let rest = api.stream(id, Some(first[7].id), None).await;
        let all: Vec<_> = first.iter().chain(&rest).collect();
        let numbers: Vec<i64> = all.iter().map(|e| e.id).collect();
        let expected: Vec<i64> = (1..=numbers.len() as i64).collect();
        assert_eq!(numbers, expected, "every event once, in order");
        let ticks: Vec<&str> = all
            .iter()
            .filter(|e| e.event == "log")
            .map(|e| e.data["message"].as_str().unwrap())
            .collect();
        let wanted: Vec<String> = (1..=30).map(|i| format!("tick {i}")).collect();
        assert_eq!(ticks, wanted);
        assert_eq!(all.last().unwrap().data["state"], "completed");
        // A stream of a finished task replays it and ends; one after its end is empty.
        let replay = api.stream(id, None, None).await;
        assert_eq!(replay.len(), all.len());
        let last = all.last().unwrap().id;
        assert!(api.stream(id, Some(last), Some(1)).await.is_empty());
    });
}

#[test]
fn an_open_event_stream_ends_when_its_key_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let recheck = [("OMNIFORGE_TASK_STREAM_RECHECK_MS", "300")];
    let (_server, cli) = start(dir.path(), &Backend::Sqlite, &recheck);
    cli.publish_wasm(&cli.key, "acme/ticker", programs::TICKER, "", "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    runtime.block_on(async {
        let created = api
            .expect(
                "POST",
                "/api/v1/api-keys",
                Some(json!({"name": "watcher"})),
                201,
            )
            .await;
        let watcher = Api::new(&cli.url, created["key"].as_str().unwrap());
        let key_path = format!(
            "/api/v1/api-keys/{}",
            created["api_key"]["id"].as_str().unwrap()
        );
        // Ten seconds of ticks: the stream would stay open that long.
        let task = api
            .submit(json!({"skill": "acme/ticker", "input": {"lines": 200, "every_ms": 50}}))
            .await;
        let id = task["id"].as_str().unwrap().to_owned();
        let stream = {
            let (watcher, id) = (watcher.clone(), id.clone());
            tokio::spawn(async move { watcher.stream(&id, None, None).await })
        };
        api.wait_for(&id, Duration::from_secs(10), |t| t["state"] == "working")
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        api.expect("DELETE", &key_path, None, 200).await;
        let revoked = Instant::now();
        let seen = tokio::time::timeout(Duration::from_secs(5), stream)
            .await
            .expect("the stream ends soon after the key is revoked")
            .unwrap();
        eprintln!(
            "the stream ended {:?} after the revocation",
            revoked.elapsed()
        );
        assert!(!seen.is_empty(), "it streamed while the key held");
        assert_ne!(
            seen.last().unwrap().data["state"],
            "completed",
            "it ended before the task did"
        );
        assert_eq!(api.task(&id).await["state"], "working");
        let again = watcher
            .call(
                "GET",
                &format!("/api/v1/tasks/{id}/events"),
                None,
                &[("accept", "text/event-stream")],
            )
            .await;
        assert_eq!(again.status, 401, "{}", again.body);
        api.expect("POST", &format!("/api/v1/tasks/{id}/cancel"), None, 202)
            .await;
    });
}

/// A port free now, for a server that must come back on the same one.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn task_watch_follows_a_task_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let envs = [("OMNIFORGE_LISTEN", listen.as_str())];
    let (mut server, cli) = start(dir.path(), &Backend::Sqlite, &envs);
    cli.publish_wasm(&cli.key, "acme/ticker", programs::TICKER, "", "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    let id = runtime.block_on(async {
        let task = api
            .submit(json!({"skill": "acme/ticker", "input": {"lines": 15, "every_ms": 100}}))
            .await;
        task["id"].as_str().unwrap().to_owned()
    });
    let watcher = Command::new(env!("CARGO_BIN_EXE_omniforge"))
        .args(["task", "watch", &id, "--server", &cli.url])
        .env("OMNIFORGE_API_KEY", &cli.key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    server.kill_hard();
    std::thread::sleep(Duration::from_millis(500));
    let restart = [
        ("OMNIFORGE_LISTEN", listen.as_str()),
        ("OMNIFORGE_TASK_LEASE_MS", "1500"),
        ("OMNIFORGE_TASK_SWEEP_MS", "200"),
    ];
    let _restarted = serve_in(dir.path(), &restart);
    let out = watcher.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("reconnecting"),
        "the stream was lost: {stderr}"
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let numbers: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (1..=numbers.len() as i64).collect();
    assert_eq!(numbers, expected, "every event once, in order: {events:?}");
    let attempts: Vec<&Value> = events
        .iter()
        .filter(|e| e["data"]["state"] == "working")
        .map(|e| &e["data"]["attempt"])
        .collect();
    assert_eq!(attempts, [&json!(1), &json!(2)], "{events:?}");
    assert_eq!(events.last().unwrap()["data"]["state"], "completed");
    let result = events.iter().find(|e| e["type"] == "result").unwrap();
    assert_eq!(
        result["data"]["output"],
        json!({"ticks": 15, "task": id, "attempt": 2}),
        "the second run knows it is the second"
    );
}

#[test]
fn one_tenants_backlog_does_not_hold_back_another_tenants_task() {
    let dir = tempfile::tempdir().unwrap();
    // The backlog is queued as fast as the server takes it: far above the default rates,
    // which are not what this test is about.
    let rates = [
        ("OMNIFORGE_RATE_PER_KEY_PER_SECOND", "1000000"),
        ("OMNIFORGE_RATE_PER_KEY_BURST", "1000000"),
        ("OMNIFORGE_RATE_PER_TENANT_PER_SECOND", "1000000"),
        ("OMNIFORGE_RATE_PER_TENANT_BURST", "1000000"),
    ];
    let (_server, cli) = start(dir.path(), &Backend::Sqlite, &rates);
    let other_key = bootstrap_env(&cli.dir, "other", "bob@other.test", &[]);
    cli.publish_wasm(&cli.key, "acme/sleeper", programs::SLEEPER, "", "");
    cli.publish_wasm(&other_key, "other/hello", programs::HELLO, "", "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    let other = Api::new(&cli.url, &other_key);
    runtime.block_on(async {
        // acme (the platform admin's tenant) may run 2 tasks at once; it queues 5,000.
        let me = api.expect("GET", "/api/v1/me", None, 200).await;
        let tenant = me["tenant"]["id"].as_str().unwrap().to_owned();
        let policy_path = format!("/api/v1/tenants/{tenant}/policy");
        let mut policy = api.expect("GET", &policy_path, None, 200).await;
        policy["max_running_tasks"] = json!(2);
        api.expect("PUT", &policy_path, Some(policy), 200).await;
        let started = Instant::now();
        let mut batches = Vec::new();
        for batch in 0..16 {
            let api = api.clone();
            batches.push(tokio::spawn(async move {
                for _ in (batch..5000).step_by(16) {
                    api.submit(json!({"skill": "acme/sleeper", "input": {"ms": 60000}}))
                        .await;
                }
            }));
        }
        for batch in batches {
            batch.await.unwrap();
        }
        eprintln!("queued 5000 tasks in {:?}", started.elapsed());
        let metrics = api.expect("GET", "/api/v1/tasks/metrics", None, 200).await;
        assert_eq!(
            metrics["states"]["working"], 2,
            "acme is at its limit: {metrics}"
        );
        assert!(
            metrics["queue_depth"].as_i64().unwrap() >= 4990,
            "{metrics}"
        );

        // other's one task starts within 2 s of its submission.
        let task = other
            .submit(json!({"skill": "other/hello", "input": {"name": "Bo"}}))
            .await;
        let id = task["id"].as_str().unwrap();
        let done = other.ended(id, Duration::from_secs(30)).await;
        assert_eq!(done["state"], "completed");
        let waited =
            done["started_at_ms"].as_i64().unwrap() - done["created_at_ms"].as_i64().unwrap();
        eprintln!("other's task waited {waited} ms behind acme's 5000");
        assert!(waited < 2000, "other's task waited {waited} ms");

        // A full queue answers 429 with Retry-After.
        let other_me = other.expect("GET", "/api/v1/me", None, 200).await;
        let other_policy = format!(
            "/api/v1/tenants/{}/policy",
            other_me["tenant"]["id"].as_str().unwrap()
        );
        let mut policy = api.expect("GET", &other_policy, None, 200).await;
        policy["max_queued_tasks"] = json!(1);
        api.expect("PUT", &other_policy, Some(policy), 200).await;
        let later = super::now_ms() + 600_000;
        let body = json!({"skill": "other/hello", "input": {}, "not_before_ms": later});
        other.submit(body.clone()).await;
        let full = other.call("POST", "/api/v1/tasks", Some(body), &[]).await;
        assert_eq!(full.status, 429, "{}", full.body);
        assert_eq!(full.body["limit"], "max_queued_tasks");
    });
}
