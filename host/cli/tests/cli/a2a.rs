//! A2A v1.0 against the real binary, on SQLite and PostgreSQL, with the official Python SDK
//! (`a2a_client.py`): cards (public and private), `SendMessage` blocking and returning at
//! once, data and text input, text-only output, `SendStreamingMessage` from submitted to the output artifact,
//! `GetTask`, `SubscribeToTask` with a cancel while it streams, `CancelTask` of an ended
//! task, a message sent twice, invalid input; and, over plain HTTP, JSON-RPC envelope
//! errors, the protocol version header, another tenant's and a narrow key's refusals.

use std::io::Write;
use std::process::{Command, Stdio};

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use crate::bootstrap_env;
use crate::examples::python_package;
use crate::tasks::{Api, Backend, start};

pub(crate) const INSTALL: &str = "pip install a2a-sdk==1.3.0";

/// Runs `steps` through the Python SDK as `key`; one result per step.
pub(crate) fn client(key: &str, steps: &Value) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cli/a2a_client.py");
    let mut child = Command::new("python3")
        .args([script, key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(steps.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the A2A client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("the client prints JSON");
    assert_eq!(results.len(), steps.as_array().unwrap().len());
    results
}

/// The kind of each stream response: `task`, `statusUpdate`, `artifactUpdate`.
fn kinds(events: &Value) -> Vec<String> {
    events["events"]
        .as_array()
        .unwrap_or_else(|| panic!("events: {events}"))
        .iter()
        .map(|e| e.as_object().unwrap().keys().next().unwrap().clone())
        .collect()
}

/// The states the status updates of `events` went through.
fn states(events: &Value) -> Vec<String> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["statusUpdate"]["status"]["state"].as_str())
        .map(str::to_owned)
        .collect()
}

/// The one task a non-streaming send answered.
fn sent_task(result: &Value) -> &Value {
    let task = &result["events"][0]["task"];
    assert!(task.is_object(), "a task: {result}");
    task
}

#[test]
fn agents_answer_the_official_a2a_client_on_sqlite() {
    if python_package("a2a.client", INSTALL) {
        agents_answer(&Backend::Sqlite);
    }
}

#[test]
fn agents_answer_the_official_a2a_client_on_postgres() {
    if python_package("a2a.client", INSTALL)
        && let Some(backend) = Backend::postgres()
    {
        agents_answer(&backend);
    }
}

fn agents_answer(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (_server, cli) = start(dir.path(), backend, &[]);
    cli.publish_wasm(&cli.key, "acme/hello", programs::HELLO, "", "");
    cli.publish_wasm(&cli.key, "acme/sleeper", programs::SLEEPER, "", "");
    let other_key = bootstrap_env(dir.path(), "globex", "gus@globex.test", &backend.envs());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    let greeter = format!("{}/a2a/acme/greeter", cli.url);
    let open = format!("{}/a2a/acme/open-greeter", cli.url);
    let slow = format!("{}/a2a/acme/slow", cli.url);
    runtime.block_on(async {
        let hello = json!({"steps": [{"id": "greet", "kind": "skill", "skill": "acme/hello",
                                      "input": {"name": "${input.name}"}}],
                           "output": "${steps.greet.output}"});
        let schema = json!({"type": "object", "properties": {"name": {"type": "string"}},
                            "required": ["name"]});
        api.expect(
            "POST",
            "/api/v1/agents",
            Some(json!({"name": "greeter", "description": "Greets by name",
                        "workflow": hello, "input_schema": schema,
                        "card": {"skills": [{"id": "greet", "name": "Greet",
                                             "description": "Says hello", "tags": ["demo"],
                                             "examples": ["{\"name\": \"Ada\"}"]}]}})),
            201,
        )
        .await;
        api.expect(
            "POST",
            "/api/v1/agents",
            Some(json!({"name": "open-greeter", "workflow": hello, "public": true})),
            201,
        )
        .await;
        api.expect(
            "POST",
            "/api/v1/agents",
            Some(json!({"name": "slow", "skill": {"name": "acme/sleeper"}})),
            201,
        )
        .await;
    });

    // Cards: the private one to the tenant's key only, the public one to anyone.
    let cards = client(
        &cli.key,
        &json!([
            {"op": "card", "url": greeter},
            {"op": "card", "url": greeter, "anonymous": true},
            {"op": "card", "url": open, "anonymous": true},
        ]),
    );
    let card = &cards[0];
    assert_eq!(card["name"], "greeter", "{card}");
    assert_eq!(card["description"], "Greets by name");
    assert_eq!(card["version"], "1");
    assert_eq!(card["supportedInterfaces"][0]["url"], greeter.as_str());
    assert_eq!(card["supportedInterfaces"][0]["protocolBinding"], "JSONRPC");
    assert_eq!(card["supportedInterfaces"][0]["protocolVersion"], "1.0");
    assert_eq!(card["capabilities"]["streaming"], true);
    assert_eq!(
        card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"],
        "Bearer"
    );
    assert!(
        card["securityRequirements"][0]["schemes"]["bearer"].is_object(),
        "{card}"
    );
    assert_eq!(card["skills"][0]["id"], "greet");
    assert_eq!(card["skills"][0]["tags"], json!(["demo"]));
    assert_eq!(
        cards[1]["error"], "AgentCardResolutionError",
        "{}",
        cards[1]
    );
    assert!(
        cards[1]["message"].as_str().unwrap().contains("401"),
        "{}",
        cards[1]
    );
    assert_eq!(cards[2]["name"], "open-greeter", "{}", cards[2]);
    assert_eq!(cards[2]["skills"][0]["id"], "open-greeter");

    // Messages: blocking with a data part; text holding JSON with text-only output; a
    // stream from submitted to the artifact; the same message id twice; invalid input.
    let sent = client(
        &cli.key,
        &json!([
            {"op": "send", "url": greeter, "data": {"name": "Ada"}},
            {"op": "send", "url": greeter, "text": "{\"name\": \"Bob\"}", "accept": ["text/plain"]},
            {"op": "send", "url": greeter, "data": {"name": "Cy"}, "streaming": true,
             "context_id": "ctx-1"},
            {"op": "send", "url": greeter, "data": {"name": "Di"}, "message_id": "m-twice"},
            {"op": "send", "url": greeter, "data": {"name": "Di"}, "message_id": "m-twice"},
            {"op": "send", "url": greeter, "data": {"name": "Di"}, "message_id": "m-twice",
             "context_id": "elsewhere"},
            {"op": "send", "url": greeter, "data": {"name": 5}},
            {"op": "send", "url": greeter, "text": "not json"},
        ]),
    );
    let ada = sent_task(&sent[0]);
    assert_eq!(ada["status"]["state"], "TASK_STATE_COMPLETED", "{ada}");
    assert_eq!(
        ada["artifacts"][0]["parts"][0]["data"],
        json!({"greeting": "Hello, Ada!"})
    );
    assert!(ada["id"].as_str().unwrap().starts_with("tsk_"));
    assert!(!ada["contextId"].as_str().unwrap().is_empty());
    let bob = sent_task(&sent[1]);
    assert_eq!(bob["status"]["state"], "TASK_STATE_COMPLETED", "{bob}");
    let text = bob["artifacts"][0]["parts"][0]["text"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        json!({"greeting": "Hello, Bob!"})
    );

    let streamed = &sent[2];
    let streamed_kinds = kinds(streamed);
    assert_eq!(streamed_kinds[0], "task", "{streamed}");
    assert!(
        streamed_kinds.contains(&"artifactUpdate".to_owned()),
        "{streamed}"
    );
    let first = &streamed["events"][0]["task"];
    assert_eq!(
        first["status"]["state"], "TASK_STATE_SUBMITTED",
        "{streamed}"
    );
    assert_eq!(first["contextId"], "ctx-1");
    let streamed_states = states(streamed);
    assert!(
        streamed_states.contains(&"TASK_STATE_WORKING".to_owned()),
        "{streamed_states:?}"
    );
    assert_eq!(
        streamed_states.last().unwrap(),
        "TASK_STATE_COMPLETED",
        "{streamed_states:?}"
    );
    // The step's progress rides on working updates.
    let progress: Vec<&Value> = streamed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["statusUpdate"]["status"]["message"]["parts"][0]["data"].as_object())
        .filter_map(|d| d.get("event"))
        .collect();
    assert!(progress.contains(&&json!("step-started")), "{streamed}");
    assert!(progress.contains(&&json!("step-finished")), "{streamed}");
    let artifact = streamed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.get("artifactUpdate"))
        .unwrap();
    assert_eq!(
        artifact["artifact"]["parts"][0]["data"],
        json!({"greeting": "Hello, Cy!"})
    );
    let streamed_id = first["id"].as_str().unwrap().to_owned();

    // A message delivered twice starts one run; reused with other content, it is refused.
    assert_eq!(sent_task(&sent[3])["id"], sent_task(&sent[4])["id"]);
    assert_eq!(sent[5]["error"], "InvalidParamsError", "{}", sent[5]);
    assert_eq!(sent[6]["error"], "InvalidParamsError", "{}", sent[6]);
    assert!(
        sent[6]["message"].as_str().unwrap().contains("input"),
        "{}",
        sent[6]
    );
    // Text that is not JSON is a string input, which the schema refuses.
    assert_eq!(sent[7]["error"], "InvalidParamsError", "{}", sent[7]);

    // Read, subscribe and cancel: a slow run returned at once, canceled while streaming.
    let started = client(
        &cli.key,
        &json!([
            {"op": "get", "url": greeter, "task": streamed_id},
            {"op": "send", "url": slow, "data": {"ms": 30000}, "return_immediately": true},
        ]),
    );
    assert_eq!(started[0]["status"]["state"], "TASK_STATE_COMPLETED");
    assert_eq!(started[0]["contextId"], "ctx-1");
    assert_eq!(
        started[0]["artifacts"][0]["parts"][0]["data"],
        json!({"greeting": "Hello, Cy!"})
    );
    let slow_task = sent_task(&started[1]);
    let state = slow_task["status"]["state"].as_str().unwrap();
    assert!(
        state == "TASK_STATE_SUBMITTED" || state == "TASK_STATE_WORKING",
        "{slow_task}"
    );
    let slow_id = slow_task["id"].as_str().unwrap().to_owned();
    let later = client(
        &cli.key,
        &json!([
            {"op": "subscribe", "url": slow, "task": slow_id, "cancel": true},
            {"op": "cancel", "url": slow, "task": slow_id},
            {"op": "subscribe", "url": slow, "task": slow_id},
            {"op": "get", "url": slow, "task": "tsk_0000"},
            {"op": "get", "url": slow, "task": streamed_id},
        ]),
    );
    let watched = &later[0];
    assert_eq!(kinds(watched)[0], "task", "{watched}");
    assert_eq!(
        states(watched).last().unwrap(),
        "TASK_STATE_CANCELED",
        "{watched}"
    );
    assert_eq!(later[1]["error"], "TaskNotCancelableError", "{}", later[1]);
    assert_eq!(
        later[2]["error"], "UnsupportedOperationError",
        "{}",
        later[2]
    );
    assert_eq!(later[3]["error"], "TaskNotFoundError", "{}", later[3]);
    // Another agent's run is not found through this one.
    assert_eq!(later[4]["error"], "TaskNotFoundError", "{}", later[4]);

    // Over plain HTTP: the envelope, the version header, other tenants, narrow keys.
    runtime.block_on(async {
        let rpc = |method: &str, params: Value| {
            json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
        };
        let path = "/a2a/acme/greeter";
        let reply = api.call("POST", path, Some(json!([1, 2])), &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["error"]["code"], -32600, "{}", reply.body);
        let reply = api
            .call("POST", path, Some(rpc("Unknown", json!({}))), &[])
            .await;
        assert_eq!(reply.body["error"]["code"], -32601, "{}", reply.body);
        assert_eq!(reply.body["id"], 7);
        let get = rpc("GetTask", json!({ "id": streamed_id }));
        let reply = api
            .call("POST", path, Some(get.clone()), &[("A2A-Version", "0.3")])
            .await;
        assert_eq!(reply.body["error"]["code"], -32009, "{}", reply.body);
        // Without the header (curl): taken as this version.
        let reply = api.call("POST", path, Some(get.clone()), &[]).await;
        assert_eq!(
            reply.body["result"]["status"]["state"], "TASK_STATE_COMPLETED",
            "{}",
            reply.body
        );
        let reply = api
            .call("POST", path, Some(rpc("GetTask", json!({"id": 5}))), &[])
            .await;
        assert_eq!(reply.body["error"]["code"], -32602, "{}", reply.body);
        for (method, code) in [
            ("CreateTaskPushNotificationConfig", -32003),
            ("GetExtendedAgentCard", -32007),
            ("ListTasks", -32004),
        ] {
            let reply = api.call("POST", path, Some(rpc(method, json!({}))), &[]).await;
            assert_eq!(reply.body["error"]["code"], code, "{method}: {}", reply.body);
        }
        // A message id that is not plain text is refused before anything is stored.
        let odd = rpc(
            "SendMessage",
            json!({"message": {"messageId": "two words", "role": "ROLE_USER",
                               "parts": [{"data": {"name": "Eve"}}]}}),
        );
        let reply = api.call("POST", path, Some(odd), &[]).await;
        assert_eq!(reply.body["error"]["code"], -32602, "{}", reply.body);
        // Without credentials, JSON-RPC is refused even for a public agent.
        let raw = reqwest::Client::new();
        for agent in ["greeter", "open-greeter"] {
            let url = format!("{}/a2a/acme/{agent}", cli.url);
            let unauthenticated = raw.post(&url).json(&get).send().await.unwrap();
            assert_eq!(unauthenticated.status(), 401, "{agent}");
            assert!(unauthenticated.headers().contains_key("www-authenticate"));
        }

        // Another tenant: the agent is not there, card or JSON-RPC; nor is a missing one.
        let other = Api::new(&cli.url, &other_key);
        let reply = other.call("POST", path, Some(get.clone()), &[]).await;
        assert_eq!(reply.status, 404, "{}", reply.body);
        let card = format!("{path}/.well-known/agent-card.json");
        assert_eq!(other.call("GET", &card, None, &[]).await.status, 404);
        let reply = api
            .call("POST", "/a2a/acme/nobody", Some(get.clone()), &[])
            .await;
        assert_eq!(reply.status, 404);
        let reply = api
            .call("POST", "/a2a/globex/greeter", Some(get.clone()), &[])
            .await;
        assert_eq!(reply.status, 404);

        // A key that may read tasks but not write them: GetTask yes, SendMessage 403.
        let created = api
            .expect(
                "POST",
                "/api/v1/api-keys",
                Some(json!({"name": "reader", "scopes": ["task:read", "agent:read"]})),
                201,
            )
            .await;
        let reader = Api::new(&cli.url, created["key"].as_str().unwrap());
        let reply = reader.call("POST", path, Some(get), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let send = rpc(
            "SendMessage",
            json!({"message": {"messageId": "m-r", "role": "ROLE_USER",
                               "parts": [{"data": {"name": "Eve"}}]}}),
        );
        let reply = reader.call("POST", path, Some(send), &[]).await;
        assert_eq!(reply.status, 403, "{}", reply.body);
        assert_eq!(reply.body["permission"], "task:write");
        assert_eq!(reader.call("GET", &card, None, &[]).await.status, 200);

        // A deleted agent is gone over A2A too: card and JSON-RPC.
        let open_path = "/a2a/acme/open-greeter";
        let listed = api.expect("GET", "/api/v1/agents?limit=10", None, 200).await;
        let open_id = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "open-greeter")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        api.expect("DELETE", &format!("/api/v1/agents/{open_id}"), None, 204)
            .await;
        let reply = api
            .call("POST", open_path, Some(rpc("GetTask", json!({"id": "tsk_0"}))), &[])
            .await;
        assert_eq!(reply.status, 404, "{}", reply.body);
        let open_card = format!("{}{open_path}/.well-known/agent-card.json", cli.url);
        assert_eq!(raw.get(&open_card).send().await.unwrap().status(), 401);
    });
}
