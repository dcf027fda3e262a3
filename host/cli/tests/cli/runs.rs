//! Agent runs against the real binary, on SQLite and PostgreSQL: a workflow with every step
//! kind, joins and failure policies, a map over 100 items, retries on durable timers, the
//! circuit breaker, a parent whose child runs while the tenant may run one task at a time,
//! and a run that survives `kill -9` between its steps without running a finished one again.

use std::time::Duration;

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use crate::examples::ServerCli;
use crate::server::serve_in;
use crate::tasks::{Api, Backend, start};

/// The manifest lines of a guest that counts in the key-value store.
const KV: &str = "[permissions]\nkv = true";

fn publish_guests(cli: &ServerCli) {
    cli.publish_wasm(&cli.key, "acme/hello", programs::HELLO, "", "");
    cli.publish_wasm(&cli.key, "acme/sleeper", programs::SLEEPER, "", "");
    cli.publish_wasm(&cli.key, "acme/flaky", programs::FLAKY, "", KV);
    // The same guest under another name: a breaker of its own.
    cli.publish_wasm(&cli.key, "acme/fragile", programs::FLAKY, "", KV);
}

fn skill(id: &str, name: &str, input: Value) -> Value {
    json!({"id": id, "kind": "skill", "skill": name, "input": input})
}

fn hello(id: &str, name: Value) -> Value {
    skill(id, "acme/hello", json!({ "name": name }))
}

impl Api {
    /// Saves an agent (201); its id.
    async fn agent(&self, name: &str, workflow: Value) -> String {
        let body = json!({"name": name, "workflow": workflow});
        let agent = self.expect("POST", "/api/v1/agents", Some(body), 201).await;
        agent["id"].as_str().unwrap().to_owned()
    }

    /// Starts a run of agent `id` (202); its id.
    async fn run(&self, id: &str, input: Value) -> String {
        let reply = self
            .call(
                "POST",
                &format!("/api/v1/agents/{id}/runs"),
                Some(json!({ "input": input })),
                &[],
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Runs agent `id` on `input` to its end; the run.
    async fn run_to_end(&self, id: &str, input: Value) -> Value {
        let run = self.run(id, input).await;
        self.ended(&run, Duration::from_secs(90)).await
    }

    /// How many attempts of `step` started in run `run` (its `step-started` events).
    async fn starts(&self, run: &str, step: &str) -> usize {
        self.events(run)
            .await
            .iter()
            .filter(|e| e["type"] == "step-started" && e["data"]["step"] == step)
            .count()
    }
}

#[test]
fn a_workflow_of_every_step_kind_runs_on_sqlite() {
    every_step_kind(&Backend::Sqlite);
}

#[test]
fn a_workflow_of_every_step_kind_runs_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        every_step_kind(&backend);
    }
}

fn every_step_kind(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (_server, cli) = start(dir.path(), backend, &[]);
    publish_guests(&cli);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    runtime.block_on(async {
        // The tenant runs one task at a time: a parent waiting for its child holds no slot.
        let me = api.expect("GET", "/api/v1/me", None, 200).await;
        let policy_path = format!(
            "/api/v1/tenants/{}/policy",
            me["tenant"]["id"].as_str().unwrap()
        );
        let mut policy = api.expect("GET", &policy_path, None, 200).await;
        policy["max_running_tasks"] = json!(1);
        api.expect("PUT", &policy_path, Some(policy), 200).await;

        api.agent(
            "helper",
            json!({"steps": [hello("greet", json!("${input.who}"))]}),
        )
        .await;
        let everything = api
            .agent(
                "everything",
                json!({"steps": [
                    hello("first", json!("${input.who}")),
                    {"id": "fan", "kind": "parallel", "branches": [
                        hello("a", json!("${steps.first.output.greeting}")),
                        {"id": "b", "kind": "sequence", "steps": [
                            hello("b1", json!("b1")),
                            hello("b2", json!("${steps.b1.output.greeting}")),
                        ]},
                    ]},
                    {"id": "each", "kind": "map", "over": "input.names", "concurrency": 2,
                     "step": hello("one", json!("${string(index) + ':' + item}"))},
                    {"id": "pick", "kind": "switch", "cases": [
                        {"when": "steps.first.output.greeting.contains('Ada')",
                         "step": hello("yes", json!("case"))},
                    ], "default": hello("no", json!("default"))},
                    {"id": "child", "kind": "agent", "agent": "helper",
                     "input": {"who": "${'child of ' + input.who}"}},
                ], "output": {
                    "first": "${steps.first.output.greeting}",
                    "a": "${steps.fan.output.a.greeting}",
                    "b": "${steps.fan.output.b.greeting}",
                    "each": "${steps.each.output.map(x, x.greeting)}",
                    "pick": "${steps.pick.output.greeting}",
                    "child": "${steps.child.output.greeting}",
                }}),
            )
            .await;
        let run = api
            .run(&everything, json!({"who": "Ada", "names": ["x", "y", "z"]}))
            .await;
        let ended = api.ended(&run, Duration::from_secs(90)).await;
        assert_eq!(ended["state"], "completed", "{ended}");
        assert_eq!(ended["agent_id"], everything.as_str());
        assert_eq!(
            ended["output"],
            json!({
                "first": "Hello, Ada!",
                "a": "Hello, Hello, Ada!!",
                "b": "Hello, Hello, b1!!",
                "each": ["Hello, 0:x!", "Hello, 1:y!", "Hello, 2:z!"],
                "pick": "Hello, case!",
                "child": "Hello, child of Ada!",
            })
        );
        // Every step started and finished once, in the run's event stream.
        let events = api.events(&run).await;
        for step in [
            "first", "fan", "a", "b", "b1", "b2", "each", "pick", "yes", "child",
        ] {
            for kind in ["step-started", "step-finished"] {
                let n = events
                    .iter()
                    .filter(|e| e["type"] == kind && e["data"]["step"] == step)
                    .count();
                assert_eq!(n, 1, "{kind} of {step}: {events:#?}");
            }
        }
        let items: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "step-finished" && e["data"]["step"] == "one")
            .map(|e| e["data"]["item"].as_str().unwrap())
            .collect();
        assert_eq!(items.len(), 3, "{items:?}");
        // The child is a run of its own, linked to its parent, listed under its agent.
        let runs = api.expect("GET", "/api/v1/tasks?limit=10", None, 200).await;
        let child = runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["parent_id"] == run.as_str())
            .unwrap_or_else(|| panic!("no child run: {runs}"));
        assert_eq!(child["state"], "completed");
        let listed = api
            .expect(
                "GET",
                &format!("/api/v1/agents/{everything}/runs"),
                None,
                200,
            )
            .await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed["items"][0]["id"], run.as_str());

        joins_and_policies(&api).await;
        a_map_of_100_items(&api).await;
    });
}

/// `parallel` with each join and failure policy, on real guests.
async fn joins_and_policies(api: &Api) {
    let slow = |id: &str| skill(id, "acme/sleeper", json!({"ms": 20_000}));
    let bad = |id: &str| skill(id, "acme/flaky", json!({"invalid": true}));
    let parallel = |join: Value, on_failure: &str, branches: Vec<Value>| {
        json!({"steps": [{"id": "p", "kind": "parallel", "join": join,
                          "on_failure": on_failure, "branches": branches}]})
    };
    let cases = [
        // any: the quick branch wins; the sleeper is canceled, not waited for.
        (
            "any",
            parallel(
                json!("any"),
                "fail-fast",
                vec![slow("s"), hello("h", json!("any"))],
            ),
            Some(json!({"h": {"greeting": "Hello, any!"}})),
        ),
        (
            "quorum",
            parallel(
                json!({"quorum": 2}),
                "fail-fast",
                vec![hello("q1", json!("1")), slow("s"), hello("q2", json!("2"))],
            ),
            Some(json!({"q1": {"greeting": "Hello, 1!"}, "q2": {"greeting": "Hello, 2!"}})),
        ),
        (
            "fail-fast",
            parallel(json!("all"), "fail-fast", vec![slow("s"), bad("x")]),
            None,
        ),
        (
            "continue",
            parallel(
                json!("all"),
                "continue",
                vec![hello("c", json!("c")), bad("x")],
            ),
            Some(json!({"c": {"greeting": "Hello, c!"}, "x": null})),
        ),
        (
            "drop",
            parallel(json!("all"), "drop", vec![hello("d", json!("d")), bad("x")]),
            Some(json!({"d": {"greeting": "Hello, d!"}})),
        ),
    ];
    for (name, workflow, expected) in cases {
        let agent = api.agent(&format!("join-{name}"), workflow).await;
        let started = std::time::Instant::now();
        let ended = api.run_to_end(&agent, json!({})).await;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{name} waited for its slow branch"
        );
        match expected {
            Some(output) => {
                assert_eq!(ended["state"], "completed", "{name}: {ended}");
                assert_eq!(ended["output"], output, "{name}");
            }
            None => {
                assert_eq!(ended["state"], "failed", "{name}: {ended}");
                assert_eq!(ended["error"]["step"], "x", "{name}: {ended}");
                assert_eq!(ended["error"]["code"], "invalid-input", "{name}: {ended}");
            }
        }
    }
}

/// A `map` over 100 items, 8 at once: every item's output in input order.
async fn a_map_of_100_items(api: &Api) {
    let agent = api
        .agent(
            "hundred",
            json!({"steps": [{"id": "m", "kind": "map", "over": "input.items", "concurrency": 8,
                   "step": hello("h", json!("${string(item)}"))}],
                   "output": "${steps.m.output.map(x, x.greeting)}"}),
        )
        .await;
    let items: Vec<u32> = (0..100).collect();
    let ended = api.run_to_end(&agent, json!({ "items": items })).await;
    assert_eq!(ended["state"], "completed", "{ended}");
    let expected: Vec<String> = items.iter().map(|i| format!("Hello, {i}!")).collect();
    assert_eq!(ended["output"], json!(expected));
}

#[test]
fn retries_wait_on_durable_timers_and_breakers_open_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let breaker = [
        ("OMNIFORGE_BREAKER_MIN_CALLS", "3"),
        ("OMNIFORGE_BREAKER_FAILURE_RATE", "1"),
        ("OMNIFORGE_BREAKER_OPEN_MS", "1500"),
    ];
    let (_server, cli) = start(dir.path(), &Backend::Sqlite, &breaker);
    publish_guests(&cli);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    runtime.block_on(async {
        // Fails twice, then succeeds on attempt 3; each wait within the policy's bound.
        let retried = api
            .agent(
                "retried",
                json!({"steps": [{"id": "f", "kind": "skill", "skill": "acme/flaky",
                    "input": {"key": "retried", "fails": 2},
                    "retry": {"max_attempts": 3, "initial_delay_ms": 300, "multiplier": 2}}]}),
            )
            .await;
        let run = api.run(&retried, json!({})).await;
        let ended = api.ended(&run, Duration::from_secs(60)).await;
        assert_eq!(ended["state"], "completed", "{ended}");
        assert_eq!(ended["output"], json!({"key": "retried", "call": 3}));
        let events = api.events(&run).await;
        let retries: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "retry-scheduled")
            .collect();
        assert_eq!(retries.len(), 2, "{events:#?}");
        for (retry, bound) in retries.iter().zip([300, 600]) {
            let delay = retry["data"]["delay_ms"].as_u64().unwrap();
            assert!(delay <= bound, "a wait of {delay} ms is beyond {bound}");
            assert_eq!(retry["data"]["error"]["code"], "unavailable");
        }
        let last_start = events
            .iter()
            .rfind(|e| e["type"] == "step-started")
            .unwrap();
        assert_eq!(last_start["data"]["attempt"], 3);
        // The retry started no earlier than its timer.
        let timer = retries[1]["data"]["not_before_ms"].as_i64().unwrap();
        assert!(last_start["at_ms"].as_i64().unwrap() >= timer);
        assert_eq!(api.starts(&run, "f").await, 3);

        // invalid-input is never retried, whatever the policy says.
        let refused = api
            .agent(
                "refused",
                json!({"steps": [{"id": "f", "kind": "skill", "skill": "acme/flaky",
                    "input": {"invalid": true},
                    "retry": {"max_attempts": 5, "initial_delay_ms": 10,
                              "retry_on": ["timeout", "trap", "unavailable", "failed"]}}]}),
            )
            .await;
        let run = api.run(&refused, json!({})).await;
        let ended = api.ended(&run, Duration::from_secs(30)).await;
        assert_eq!(ended["state"], "failed", "{ended}");
        assert_eq!(ended["error"]["code"], "invalid-input");
        assert_eq!(api.starts(&run, "f").await, 1);

        // acme/flaky's breaker saw two failures and a success: it stays closed.
        // The breaker of acme/fragile: three failures in a row open it (3 calls at a rate
        // of 1); then steps fail fast without calling the skill; after its open time one
        // probe goes through, succeeds, and closes it.
        let breaking = api
            .agent(
                "breaking",
                json!({"steps": [{"id": "f", "kind": "skill", "skill": "acme/fragile",
                    "input": {"key": "breaking", "fails": 3}}]}),
            )
            .await;
        for _ in 0..3 {
            let ended = api.run_to_end(&breaking, json!({})).await;
            assert_eq!(ended["error"]["code"], "unavailable", "{ended}");
        }
        let breakers = api.expect("GET", "/api/v1/breakers", None, 200).await;
        assert_eq!(breakers["items"][0]["skill"], "acme/flaky", "{breakers}");
        assert_eq!(breakers["items"][0]["state"], "closed", "{breakers}");
        assert_eq!(breakers["items"][1]["skill"], "acme/fragile", "{breakers}");
        assert_eq!(breakers["items"][1]["state"], "open", "{breakers}");
        let run = api.run(&breaking, json!({})).await;
        let fast = api.ended(&run, Duration::from_secs(30)).await;
        assert_eq!(fast["error"]["code"], "breaker-open", "{fast}");
        let events = api.events(&run).await;
        assert!(
            events.iter().any(|e| e["type"] == "breaker-open"),
            "{events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let probe = api.run_to_end(&breaking, json!({})).await;
        // Calls 1 to 3 failed; the fast failure never called it: the probe is call 4.
        assert_eq!(probe["state"], "completed", "{probe}");
        assert_eq!(probe["output"], json!({"key": "breaking", "call": 4}));
        let breakers = api.expect("GET", "/api/v1/breakers", None, 200).await;
        assert_eq!(breakers["items"][1]["state"], "closed", "{breakers}");
    });
}

#[test]
fn a_run_killed_between_steps_resumes_on_sqlite() {
    killed_between_steps(&Backend::Sqlite);
}

#[test]
fn a_run_killed_between_steps_resumes_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        killed_between_steps(&backend);
    }
}

/// `kill -9` while step 4 of 5 runs (steps 1–3 journaled): after a restart the run
/// completes, and steps 1–3 ran once each (the flaky guest counts its calls per key).
fn killed_between_steps(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, cli) = start(dir.path(), backend, &[]);
    publish_guests(&cli);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    let count = |id: &str| skill(id, "acme/flaky", json!({"key": id}));
    let run = runtime.block_on(async {
        let agent = api
            .agent(
                "five",
                json!({"steps": [count("s1"), count("s2"), count("s3"),
                    skill("s4", "acme/sleeper", json!({"ms": 3000})), count("s5")],
                    "output": [
                        "${steps.s1.output.call}", "${steps.s2.output.call}",
                        "${steps.s3.output.call}", "${steps.s5.output.call}"]}),
            )
            .await;
        let run = api.run(&agent, json!({})).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let events = api.events(&run).await;
            if events
                .iter()
                .any(|e| e["type"] == "step-started" && e["data"]["step"] == "s4")
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "s4 never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        run
    });
    server.kill_hard();
    let mut envs = vec![
        ("OMNIFORGE_TASK_LEASE_MS", "1500"),
        ("OMNIFORGE_TASK_SWEEP_MS", "200"),
    ];
    envs.extend(backend.envs());
    let restarted = serve_in(dir.path(), &envs);
    let api = Api::new(&format!("http://127.0.0.1:{}", restarted.port), &cli.key);
    runtime.block_on(async {
        let ended = api.ended(&run, Duration::from_secs(90)).await;
        assert_eq!(ended["state"], "completed", "{ended}");
        // Each counted step saw call 1 of its key: none of s1–s3 ran again.
        assert_eq!(ended["output"], json!([1, 1, 1, 1]));
        for step in ["s1", "s2", "s3"] {
            assert_eq!(api.starts(&run, step).await, 1, "{step}");
        }
        // The step in flight at the kill ran again.
        assert_eq!(api.starts(&run, "s4").await, 2);
    });
}
