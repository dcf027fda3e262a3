//! Durability: a server killed with `kill -9` while tasks run and wait loses none of them,
//! runs none twice at once and counts the attempts; two servers on one PostgreSQL database
//! share the queue.

use std::time::Duration;

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use super::{Api, Backend, check_history, start};
use crate::server::serve_in;

#[test]
fn a_killed_server_loses_no_task_on_sqlite() {
    crash_and_recover(&Backend::Sqlite);
}

#[test]
fn a_killed_server_loses_no_task_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        crash_and_recover(&backend);
    }
}

fn crash_and_recover(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let workers = [("OMNIFORGE_TASK_WORKERS", "4")];
    let (mut server, cli) = start(dir.path(), backend, &workers);
    cli.publish_wasm(&cli.key, "acme/sleeper", programs::SLEEPER, "", "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    let ids: Vec<String> = runtime.block_on(async {
        let mut ids = Vec::new();
        for _ in 0..12 {
            let task = api
                .submit(json!({"skill": "acme/sleeper", "input": {"ms": 1500}}))
                .await;
            ids.push(task["id"].as_str().unwrap().to_owned());
        }
        api.wait_for(&ids[0], Duration::from_secs(30), |t| {
            t["state"] == "working"
        })
        .await;
        ids
    });
    let working_at_kill: Vec<String> = runtime.block_on(async {
        let mut working = Vec::new();
        for id in &ids {
            if api.task(id).await["state"] == "working" {
                working.push(id.clone());
            }
        }
        working
    });
    assert!(!working_at_kill.is_empty());
    server.kill_hard();

    // The same data directory and database, another port.
    let mut envs = vec![
        ("OMNIFORGE_TASK_LEASE_MS", "1500"),
        ("OMNIFORGE_TASK_SWEEP_MS", "200"),
        ("OMNIFORGE_TASK_WORKERS", "4"),
    ];
    envs.extend(backend.envs());
    let restarted = serve_in(dir.path(), &envs);
    let api = Api::new(&format!("http://127.0.0.1:{}", restarted.port), &cli.key);
    runtime.block_on(async {
        for id in &ids {
            let task = api.ended(id, Duration::from_secs(60)).await;
            assert_eq!(task["state"], "completed", "{task}");
            assert_eq!(task["output"], json!({"slept_ms": 1500}));
            let attempts = check_history(&task, &api.events(id).await);
            if working_at_kill.contains(id) {
                assert!(
                    attempts >= 2,
                    "a task running at the kill runs again: {task}"
                );
            }
        }
    });
    drop(restarted);
}

#[test]
fn two_servers_on_one_postgres_database_share_the_queue() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let workers = [("OMNIFORGE_TASK_WORKERS", "3")];
    let (first, cli) = start(dir.path(), &backend, &workers);
    cli.publish_wasm(&cli.key, "acme/sleeper", programs::SLEEPER, "", "");
    cli.publish_wasm(&cli.key, "acme/spin", programs::SPIN_LOOP, "", "");
    // A second process on the same database. It shares the data directory too: blobs live
    // on local disk until object storage (step 12), and artifacts are safe to share.
    let mut envs = vec![
        ("OMNIFORGE_TASK_LEASE_MS", "1500"),
        ("OMNIFORGE_TASK_WORKERS", "3"),
        ("OMNIFORGE_LOG_FORMAT", "json"),
    ];
    envs.extend(backend.envs());
    let second = serve_in(dir.path(), &envs);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    runtime.block_on(async {
        let mut ids = Vec::new();
        for _ in 0..40 {
            let task = api
                .submit(json!({"skill": "acme/sleeper", "input": {"ms": 100}}))
                .await;
            ids.push(task["id"].as_str().unwrap().to_owned());
        }
        for id in &ids {
            let task: Value = api.ended(id, Duration::from_secs(60)).await;
            assert_eq!(task["state"], "completed", "{task}");
            assert_eq!(
                check_history(&task, &api.events(id).await),
                1,
                "ran once: {task}"
            );
        }
    });
    let ran = |logs: String| {
        logs.lines()
            .filter(|l| l.contains("invocation finished") && l.contains("\"entry\":\"task\""))
            .count()
    };
    let (by_first, by_second) = (ran(first.logs()), ran(second.logs()));
    assert_eq!(by_first + by_second, 40, "each task ran once");
    assert!(
        by_first > 0 && by_second > 0,
        "both servers worked: {by_first} and {by_second}"
    );
}

#[test]
fn sigterm_lets_running_tasks_finish_within_the_drain_and_puts_the_rest_back() {
    let dir = tempfile::tempdir().unwrap();
    let drain = [("OMNIFORGE_TASK_DRAIN_MS", "2000")];
    let (mut server, cli) = start(dir.path(), &Backend::Sqlite, &drain);
    cli.publish_wasm(&cli.key, "acme/sleeper", programs::SLEEPER, "", "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    let (short, long) = runtime.block_on(async {
        let short = api
            .submit(json!({"skill": "acme/sleeper", "input": {"ms": 800}}))
            .await;
        let long = api
            .submit(json!({"skill": "acme/sleeper", "input": {"ms": 60000}}))
            .await;
        let (short, long) = (
            short["id"].as_str().unwrap().to_owned(),
            long["id"].as_str().unwrap().to_owned(),
        );
        for id in [&short, &long] {
            api.wait_for(id, Duration::from_secs(30), |t| t["state"] == "working")
                .await;
        }
        (short, long)
    });
    let stopping = std::time::Instant::now();
    assert!(server.terminate().success());
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the drain is bounded: {took:?}"
    );

    let mut envs = vec![
        ("OMNIFORGE_TASK_LEASE_MS", "1500"),
        ("OMNIFORGE_TASK_SWEEP_MS", "200"),
    ];
    envs.extend(Backend::Sqlite.envs());
    let restarted = serve_in(dir.path(), &envs);
    let api = Api::new(&format!("http://127.0.0.1:{}", restarted.port), &cli.key);
    runtime.block_on(async {
        // The short one finished before the server stopped.
        let finished = api.task(&short).await;
        assert_eq!(finished["state"], "completed", "{finished}");
        assert_eq!(finished["attempts"], 1);
        // The long one was put back when the drain ran out, and runs again here.
        let again = api
            .wait_for(&long, Duration::from_secs(30), |t| t["attempts"] == 2)
            .await;
        assert_eq!(again["state"], "working", "{again}");
        let events = api.events(&long).await;
        let released = events
            .iter()
            .find(|e| e["data"]["state"] == "submitted" && e["data"]["reason"].is_string())
            .unwrap_or_else(|| panic!("put back with a reason: {events:?}"));
        assert!(
            released["data"]["reason"]
                .as_str()
                .unwrap()
                .contains("stopped"),
            "{released}"
        );
        api.expect("POST", &format!("/api/v1/tasks/{long}/cancel"), None, 202)
            .await;
        let canceled = api.ended(&long, Duration::from_secs(10)).await;
        check_history(&canceled, &api.events(&long).await);
    });
    drop(restarted);
}
