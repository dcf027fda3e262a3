//! A task's life over REST and the CLI, on each engine: submit and follow to completion,
//! idempotent submission, asynchronous invoke, cancel before and while running, retry,
//! delete, listing, metrics, log lines as events, and another tenant kept out.

use std::time::{Duration, Instant};

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use super::{Api, Backend, check_history, now_ms, start};
use crate::{bootstrap_env, ok, omniforge_env, stdout_text};

const HELLO_SCHEMA: &str = "input-schema = { type = \"object\", properties = { name = { type = \
     \"string\" } }, required = [\"name\"] }\n";

#[test]
fn a_task_lives_its_whole_life_on_sqlite() {
    lifecycle(&Backend::Sqlite);
}

#[test]
fn a_task_lives_its_whole_life_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        lifecycle(&backend);
    }
}

fn lifecycle(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (server, cli) = start(dir.path(), backend, &[]);
    let other_key = bootstrap_env(&cli.dir, "other", "bob@other.test", &backend.envs());
    cli.publish_wasm(&cli.key, "acme/hello", programs::HELLO, HELLO_SCHEMA, "");
    cli.publish_wasm(&cli.key, "acme/spin", programs::SPIN_LOOP, "", "");
    cli.publish_wasm(&cli.key, "acme/crash", programs::PANIC, "", "");
    cli.publish_wasm(&cli.key, "acme/ticker", programs::TICKER, "", "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    let other = Api::new(&cli.url, &other_key);
    let long = Duration::from_secs(30);

    let hello = runtime.block_on(async {
        // Submitted, followed to its end over SSE, read back.
        let task = api
            .submit(json!({"skill": "acme/hello", "input": {"name": "Ada"}}))
            .await;
        assert_eq!(task["state"], "submitted");
        assert_eq!(task["version"], "1.0.0");
        let id = task["id"].as_str().unwrap().to_owned();
        let streamed = api.stream(&id, None, None).await;
        let kinds: Vec<(&str, Option<&str>)> = streamed
            .iter()
            .map(|e| (e.event.as_str(), e.data["state"].as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("state", Some("submitted")),
                ("state", Some("working")),
                ("result", None),
                ("state", Some("completed")),
            ],
            "{streamed:?}"
        );
        assert_eq!(
            streamed[2].data["output"],
            json!({"greeting": "Hello, Ada!"})
        );
        let done = api.task(&id).await;
        assert_eq!(done["state"], "completed");
        assert_eq!(done["output"], json!({"greeting": "Hello, Ada!"}));
        assert!(done["usage"]["fuel"].as_u64().unwrap() > 0, "{done}");
        assert!(done["started_at_ms"].as_i64() <= done["finished_at_ms"].as_i64());
        check_history(&done, &api.events(&id).await);

        // Refused at submission: input against the schema, an unknown skill, a bad body.
        let reply = api
            .call(
                "POST",
                "/api/v1/tasks",
                Some(json!({"skill": "acme/hello", "input": {}})),
                &[],
            )
            .await;
        assert_eq!(reply.status, 422, "{}", reply.body);
        assert!(
            reply.body["type"]
                .as_str()
                .unwrap()
                .ends_with("/invalid-input")
        );
        let reply = api
            .call(
                "POST",
                "/api/v1/tasks",
                Some(json!({"skill": "acme/nope", "input": {}})),
                &[],
            )
            .await;
        assert_eq!(reply.status, 404, "{}", reply.body);
        id
    });

    runtime.block_on(async {
        // The same Idempotency-Key and body: the same task; another body: refused.
        let body = json!({"skill": "acme/hello", "input": {"name": "Bo"}, "priority": 3});
        let key = [("idempotency-key", "order-17")];
        let first = api
            .call("POST", "/api/v1/tasks", Some(body.clone()), &key)
            .await;
        assert_eq!(first.status, 202, "{}", first.body);
        let reordered = json!({"priority": 3, "input": {"name": "Bo"}, "skill": "acme/hello"});
        let again = api
            .call("POST", "/api/v1/tasks", Some(reordered), &key)
            .await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.body["id"], first.body["id"]);
        let changed = json!({"skill": "acme/hello", "input": {"name": "Cy"}, "priority": 3});
        let refused = api.call("POST", "/api/v1/tasks", Some(changed), &key).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert!(
            refused.body["type"]
                .as_str()
                .unwrap()
                .ends_with("/idempotency-key-reused")
        );
        // Keys are per tenant: another tenant's same key is its own.
        let theirs = other.call("POST", "/api/v1/tasks", Some(body), &key).await;
        assert_eq!(
            theirs.status, 404,
            "another tenant cannot see acme/hello: {}",
            theirs.body
        );

        // An asynchronous invoke is a task.
        let reply = api
            .call(
                "POST",
                "/api/v1/skills/acme/hello/invoke",
                Some(json!({"input": {"name": "Di"}})),
                &[("prefer", "respond-async")],
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        let done = api.ended(reply.body["id"].as_str().unwrap(), long).await;
        assert_eq!(done["output"], json!({"greeting": "Hello, Di!"}));

        // Canceled while queued: it never starts.
        let later = now_ms() + 600_000;
        let queued = api
            .submit(json!({"skill": "acme/hello", "input": {"name": "Ed"}, "not_before_ms": later}))
            .await;
        let qid = queued["id"].as_str().unwrap();
        let canceled = api
            .expect("POST", &format!("/api/v1/tasks/{qid}/cancel"), None, 202)
            .await;
        assert_eq!(canceled["state"], "canceled");
        assert!(canceled.get("started_at_ms").is_none(), "{canceled}");
        assert!(
            canceled["error"]["type"]
                .as_str()
                .unwrap()
                .ends_with("/canceled")
        );
        let events = api.events(qid).await;
        assert_eq!(events.len(), 2, "{events:?}");
        check_history(&canceled, &events);
        api.expect("POST", &format!("/api/v1/tasks/{qid}/cancel"), None, 409)
            .await;

        // Canceled while running: an endless loop stops at the cancel, not at its limit,
        // and is charged what it burned.
        let spin = api.submit(json!({"skill": "acme/spin", "input": {}})).await;
        let sid = spin["id"].as_str().unwrap();
        api.wait_for(sid, long, |t| t["state"] == "working").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = Instant::now();
        let reply = api
            .expect("POST", &format!("/api/v1/tasks/{sid}/cancel"), None, 202)
            .await;
        assert!(
            reply["cancel_requested"] == true || reply["state"] == "canceled",
            "{reply}"
        );
        let stopped = api.ended(sid, long).await;
        let took = asked.elapsed();
        assert_eq!(stopped["state"], "canceled", "{stopped}");
        assert!(took < Duration::from_secs(3), "the cancel took {took:?}");
        assert!(
            stopped["error"]["type"]
                .as_str()
                .unwrap()
                .ends_with("/canceled")
        );
        assert!(
            stopped["usage"]["fuel"].as_u64().unwrap() > 1_000_000,
            "{stopped}"
        );
        assert!(
            stopped["usage"]["wall_ms"].as_f64().unwrap() < 10_000.0,
            "{stopped}"
        );
        check_history(&stopped, &api.events(sid).await);

        // A failed task is retried as a new task that names it.
        let crash = api
            .submit(json!({"skill": "acme/crash", "input": {}}))
            .await;
        let cid = crash["id"].as_str().unwrap();
        let failed = api.ended(cid, long).await;
        assert_eq!(failed["state"], "failed");
        assert!(
            failed["error"]["type"]
                .as_str()
                .unwrap()
                .ends_with("/skill-trapped"),
            "{failed}"
        );
        let retried = api
            .call("POST", &format!("/api/v1/tasks/{cid}/retry"), None, &[])
            .await;
        assert_eq!(retried.status, 202, "{}", retried.body);
        assert_eq!(retried.body["retry_of"], cid);
        assert_ne!(retried.body["id"], cid);
        let rid = retried.body["id"].as_str().unwrap();
        assert!(retried.location.unwrap().ends_with(rid));
        assert_eq!(api.ended(rid, long).await["state"], "failed");
        api.expect("POST", &format!("/api/v1/tasks/{hello}/retry"), None, 409)
            .await;

        // Log lines become events, in order, before the result.
        let ticker = api
            .submit(json!({"skill": "acme/ticker", "input": {"lines": 3, "every_ms": 20}}))
            .await;
        let tid = ticker["id"].as_str().unwrap();
        let ticked = api.ended(tid, long).await;
        let events = api.events(tid).await;
        check_history(&ticked, &events);
        let logs: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "log")
            .map(|e| e["data"]["message"].as_str().unwrap())
            .collect();
        assert_eq!(logs, ["tick 1", "tick 2", "tick 3"], "{events:?}");
        // The skill knows its task and attempt (omniforge:skill/context); a synchronous call
        // has neither.
        assert_eq!(
            ticked["output"],
            json!({"ticks": 3, "task": tid, "attempt": 1})
        );
        let direct = api
            .expect(
                "POST",
                "/api/v1/skills/acme/ticker/invoke",
                Some(json!({"input": {"lines": 0}})),
                200,
            )
            .await;
        assert_eq!(
            direct["output"],
            json!({"ticks": 0, "task": null, "attempt": 1})
        );

        // Another tenant: every route of acme's task answers 404, its list is empty.
        for (method, path) in [
            ("GET", format!("/api/v1/tasks/{hello}")),
            ("GET", format!("/api/v1/tasks/{hello}/events")),
            ("POST", format!("/api/v1/tasks/{hello}/cancel")),
            ("POST", format!("/api/v1/tasks/{hello}/retry")),
            ("DELETE", format!("/api/v1/tasks/{hello}")),
        ] {
            let reply = other.call(method, &path, None, &[]).await;
            assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
        }
        let theirs = other.expect("GET", "/api/v1/tasks", None, 200).await;
        assert_eq!(theirs["items"], json!([]));
        api.expect("GET", &format!("/api/v1/tasks/{hello}"), None, 200)
            .await;

        // Listing: filters, orders, pages.
        let completed = api
            .expect(
                "GET",
                "/api/v1/tasks?state=completed&skill=acme/hello",
                None,
                200,
            )
            .await;
        let items = completed["items"].as_array().unwrap();
        assert!(items.len() >= 3, "{completed}");
        assert!(
            items
                .iter()
                .all(|t| t["state"] == "completed" && t["skill"] == "acme/hello")
        );
        let newest_first: Vec<i64> = items
            .iter()
            .map(|t| t["created_at_ms"].as_i64().unwrap())
            .collect();
        assert!(
            newest_first.windows(2).all(|w| w[0] >= w[1]),
            "{newest_first:?}"
        );
        let mut seen = Vec::new();
        let mut path = "/api/v1/tasks?limit=2&sort=priority&order=desc".to_owned();
        loop {
            let page = api.expect("GET", &path, None, 200).await;
            for task in page["items"].as_array().unwrap() {
                seen.push((
                    task["priority"].as_i64().unwrap(),
                    task["id"].as_str().unwrap().to_owned(),
                ));
            }
            let Some(cursor) = page["next_cursor"].as_str() else {
                break;
            };
            path = format!("/api/v1/tasks?limit=2&sort=priority&order=desc&cursor={cursor}");
        }
        let all = api
            .expect("GET", "/api/v1/tasks?limit=200", None, 200)
            .await;
        assert_eq!(seen.len(), all["items"].as_array().unwrap().len());
        assert_eq!(seen[0].0, 3, "the priority 3 task comes first: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "{seen:?}");
        let bad = api
            .call("GET", "/api/v1/tasks?state=sleeping", None, &[])
            .await;
        assert_eq!(bad.status, 400);

        // Metrics.
        let metrics = api.expect("GET", "/api/v1/tasks/metrics", None, 200).await;
        assert!(
            metrics["states"]["completed"].as_i64().unwrap() >= 4,
            "{metrics}"
        );
        assert!(
            metrics["states"]["canceled"].as_i64().unwrap() >= 2,
            "{metrics}"
        );
        assert_eq!(metrics["states"]["submitted"], 0, "{metrics}");
        let hello_times = &metrics["skills"]["acme/hello"];
        assert!(hello_times["finished"].as_u64().unwrap() >= 3, "{metrics}");
        assert!(hello_times["run_ms"]["p50"].as_f64().is_some(), "{metrics}");

        // Deleting: only what has ended.
        let waiting = api
            .submit(json!({"skill": "acme/hello", "input": {"name": "Fa"}, "not_before_ms": later}))
            .await;
        let wid = waiting["id"].as_str().unwrap();
        api.expect("DELETE", &format!("/api/v1/tasks/{wid}"), None, 409)
            .await;
        api.expect("DELETE", &format!("/api/v1/tasks/{hello}"), None, 204)
            .await;
        api.expect("GET", &format!("/api/v1/tasks/{hello}"), None, 404)
            .await;
        api.expect("GET", &format!("/api/v1/tasks/{hello}/events"), None, 404)
            .await;
    });

    // The CLI: submit and follow to the end.
    let submitted = cli.run(&[
        "task",
        "submit",
        "acme/hello",
        "--input",
        r#"{"name":"Gus"}"#,
        "--watch",
    ]);
    let lines = ok(&submitted, "task submit --watch");
    let events: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.last().unwrap()["data"]["state"],
        "completed",
        "{lines}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["data"]["output"] == json!({"greeting": "Hello, Gus!"}))
    );
    let failing = cli.run(&["task", "submit", "acme/crash", "--watch"]);
    assert_eq!(
        failing.status.code(),
        Some(4),
        "a trapped task exits 4: {}",
        stdout_text(&failing)
    );
    let listed = omniforge_env(
        &cli.dir,
        &["task", "list", "--state", "failed", "--server", &cli.url],
        &[("OMNIFORGE_API_KEY", cli.key.as_str())],
    );
    let listed: Value = serde_json::from_str(&ok(&listed, "task list")).unwrap();
    assert!(listed["items"].as_array().unwrap().len() >= 3, "{listed}");
    drop(server);
}
