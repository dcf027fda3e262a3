//! `/mcp` against the real binary with the official MCP Python SDK (`mcp_client.py`), in the
//! stateless revision 2026-07-28 and the handshake-era protocol: tools listed per tenant,
//! calls answering outputs, skill errors, invalid input, limits and quota refusals as tool
//! results, another tenant's private skill out of reach, an installed skill appearing, and a
//! request without credentials pointed at the protected-resource metadata.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use crate::bootstrap_tenant;
use crate::examples::{ServerCli, python_package};
use crate::server::http;

const MODES: [&str; 2] = ["2026-07-28", "legacy"];

const HELLO_SCHEMAS: &str = "input-schema = { type = \"object\", properties = { name = { type = \
     \"string\" } }, required = [\"name\"] }\noutput-schema = { type = \"object\", properties = \
     { greeting = { type = \"string\" } }, required = [\"greeting\"] }\n";

/// Publishes `hello` as `name` (see `publish`) and makes it public, for other tenants to
/// install.
fn publish_public(cli: &ServerCli, port: u16, key: &str, name: &str, skill_extra: &str) {
    cli.publish_wasm(key, name, programs::HELLO, skill_extra, "");
    let path = format!("/api/v1/skills/{name}");
    rest(
        port,
        "PUT",
        &path,
        key,
        Some(json!({"visibility": "public"})),
    );
}

/// Runs `steps` through the Python client as `key`; one result per step, then the protocol
/// version the client ended up speaking.
pub(crate) fn client(url: &str, key: &str, mode: &str, steps: &Value) -> Vec<Value> {
    finish(start_client(url, key, mode, steps), mode)
}

/// The Python client running `steps` (see `client`).
fn start_client(url: &str, key: &str, mode: &str, steps: &Value) -> Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cli/mcp_client.py");
    let mut child = Command::new("python3")
        .args([script, &format!("{url}/mcp"), key, mode])
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
    child
}

/// What the client started by `start_client` printed, once it ends.
fn finish(child: Child, mode: &str) -> Vec<Value> {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the MCP client failed ({mode}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

fn tool_names(listed: &Value) -> Vec<String> {
    listed["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("a tool list: {listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The text of a tool result marked `isError`, which must start with the problem type `slug`.
fn tool_error<'a>(result: &'a Value, slug: &str, mode: &str) -> &'a str {
    assert_eq!(result["is_error"], true, "{mode}: {result}");
    let text = result["text"].as_str().unwrap_or_default();
    assert!(text.starts_with(slug), "{mode}: {result}");
    text
}

fn rest(port: u16, method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
    let (status, answer) = http(
        port,
        method,
        path,
        Some(key),
        body.map(|b| b.to_string()).as_deref(),
    );
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    serde_json::from_str(&answer).unwrap_or(Value::Null)
}

#[test]
fn skills_are_tools_for_mcp_clients_per_tenant_in_both_protocol_modes() {
    if !python_package("mcp", "pip install mcp==2.3.0") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, cli) = ServerCli::start_with(dir.path(), &[("OMNIFORGE_LOG_FORMAT", "json")]);
    let port = server.port;
    let other_key = bootstrap_tenant(&cli.dir, "other", "bob@other.test");
    let key = cli.key.clone();

    cli.publish_wasm(&key, "acme/hello", programs::HELLO, HELLO_SCHEMAS, "");
    cli.publish_wasm(&key, "acme/loose", programs::HELLO, "", "");
    cli.publish_wasm(
        &key,
        "acme/spin",
        programs::SPIN_LOOP,
        "",
        "[limits]\nfuel = 1000000\n",
    );
    cli.publish_wasm(&other_key, "other/secret", programs::HELLO, "", "");
    publish_public(&cli, port, &other_key, "other/shared", HELLO_SCHEMAS);

    // Without credentials: 401, pointing at the metadata, which names the resource.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let challenge = format!(
        "www-authenticate: Bearer realm=\"omniforge\", \
         resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
        cli.url
    );
    assert!(
        answer.to_lowercase().contains(&challenge.to_lowercase()),
        "{answer}"
    );
    let metadata = rest(
        port,
        "GET",
        "/.well-known/oauth-protected-resource",
        &key,
        None,
    );
    assert_eq!(
        metadata["resource"],
        format!("{}/mcp", cli.url),
        "{metadata}"
    );
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));

    let steps = json!([
        {"list": true},
        {"call": "acme.hello", "arguments": {"name": "Ada"}},
        {"call": "acme.hello", "arguments": {"name": 7}},
        {"call": "acme.loose", "arguments": {"name": 7}},
        {"call": "acme.spin", "arguments": {}},
        {"call": "other.secret", "arguments": {"name": "Eve"}},
    ]);
    for mode in MODES {
        let results = client(&cli.url, &key, mode, &steps);
        let listed = tool_names(&results[0]);
        assert_eq!(listed, ["acme.hello", "acme.loose", "acme.spin"], "{mode}");
        let hello = &results[0]["tools"][0];
        assert_eq!(
            hello["input_schema"]["required"],
            json!(["name"]),
            "{hello}"
        );
        assert_eq!(
            hello["output_schema"]["required"],
            json!(["greeting"]),
            "{hello}"
        );
        assert_eq!(hello["annotations"]["read_only"], true, "{hello}");
        assert_eq!(hello["annotations"]["open_world"], false, "{hello}");

        let greeted = &results[1];
        assert_eq!(greeted["is_error"], false, "{mode}: {greeted}");
        assert_eq!(greeted["structured"], json!({"greeting": "Hello, Ada!"}));

        tool_error(&results[2], "invalid-input", mode);
        tool_error(&results[3], "skill-error", mode);
        let text = tool_error(&results[4], "limit-exceeded", mode);
        assert!(text.contains("fuel"), "{mode}: {text}");

        // Another tenant's private skill is no tool of this one.
        assert!(
            results[5]["error"]["code"].is_i64(),
            "{mode}: {}",
            results[5]
        );
    }
    let versions = client(&cli.url, &key, "2026-07-28", &json!([]));
    assert_eq!(versions[0]["protocol_version"], "2026-07-28");
    let versions = client(&cli.url, &key, "legacy", &json!([]));
    assert_eq!(versions[0]["protocol_version"], "2025-11-25");

    // Installing another tenant's public skill makes it a tool.
    rest(
        port,
        "POST",
        "/api/v1/installations",
        &key,
        Some(json!({"skill": "other/shared"})),
    );
    let results = client(
        &cli.url,
        &key,
        "2026-07-28",
        &json!([{"list": true}, {"call": "other.shared", "arguments": {"name": "Bo"}}]),
    );
    assert!(tool_names(&results[0]).contains(&"other.shared".to_owned()));
    assert_eq!(results[1]["structured"], json!({"greeting": "Hello, Bo!"}));
    // The other tenant never sees this tenant's skills.
    let theirs = client(&cli.url, &other_key, "2026-07-28", &json!([{"list": true}]));
    assert_eq!(tool_names(&theirs[0]), ["other.secret", "other.shared"]);

    // A quota refusal is a tool result that says when to retry.
    let me = rest(port, "GET", "/api/v1/me", &other_key, None);
    let policy_path = format!(
        "/api/v1/tenants/{}/policy",
        me["tenant"]["id"].as_str().unwrap()
    );
    let mut policy = rest(port, "GET", &policy_path, &key, None);
    let used = rest(port, "GET", "/api/v1/usage", &other_key, None)["invocations"]
        .as_u64()
        .unwrap();
    policy["max_invocations"] = json!(used);
    rest(port, "PUT", &policy_path, &key, Some(policy));
    for mode in MODES {
        let refused = client(
            &cli.url,
            &other_key,
            mode,
            &json!([{"call": "other.secret", "arguments": {"name": "Q"}}]),
        );
        let text = tool_error(&refused[0], "too-many-requests", mode);
        assert!(text.contains("retry after"), "{mode}: {text}");
    }

    // Every call is recorded as coming in over MCP, in the request's log with its tenant.
    let logs = server.logs();
    let recorded: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["target"] == "omniforge::invocation")
        .collect();
    let greetings: Vec<&Value> = recorded
        .iter()
        .filter(|e| e["skill"] == "acme/hello" && e["outcome"] == "ok")
        .collect();
    assert_eq!(greetings.len(), MODES.len(), "{recorded:?}");
    for event in &greetings {
        assert_eq!(event["entry"], "mcp", "{event}");
        assert_eq!(event["version"], "1.0.0", "{event}");
        assert!(event["fuel"].as_u64().unwrap() > 0, "{event}");
        let request = event["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|span| span["name"] == "request"))
            .unwrap_or_else(|| panic!("within the request's span: {event}"));
        assert_eq!(request["path"], "/mcp", "{event}");
        assert!(request["tenant_id"].is_string(), "{event}");
    }
    let spun = recorded
        .iter()
        .find(|e| e["skill"] == "acme/spin")
        .expect("the fuel limit is recorded");
    assert_eq!(spun["outcome"], "fuel_exhausted", "{spun}");
    assert!(
        recorded
            .iter()
            .any(|e| e["skill"] == "other/secret" && e["outcome"] == "quota_exceeded"),
        "{recorded:?}"
    );
}

#[test]
fn a_long_tool_list_comes_in_pages_that_a_client_follows() {
    if !python_package("mcp", "pip install mcp==2.3.0") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_server, cli) = ServerCli::start(dir.path());
    let key = cli.key.clone();
    // One page holds 100 tools.
    let names: Vec<String> = (0..101).map(|n| format!("acme/tool-{n:03}")).collect();
    for name in &names {
        cli.publish_wasm(&key, name, programs::HELLO, "", "");
    }
    let results = client(&cli.url, &key, "2026-07-28", &json!([{"list": true}]));
    assert_eq!(results[0]["pages"], 2, "{}", results[0]["pages"]);
    let listed = tool_names(&results[0]);
    let expected: Vec<String> = names.iter().map(|n| n.replace('/', ".")).collect();
    assert_eq!(listed, expected);
}

#[test]
fn listening_clients_are_told_when_their_tool_list_changes_and_only_then() {
    if !python_package("mcp", "pip install mcp==2.3.0") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut server, cli) =
        ServerCli::start_with(dir.path(), &[("OMNIFORGE_MCP_LISTEN_RECHECK_MS", "300")]);
    let port = server.port;
    let other_key = bootstrap_tenant(&cli.dir, "other", "bob@other.test");
    let key = cli.key.clone();
    cli.publish_wasm(&key, "acme/hello", programs::HELLO, HELLO_SCHEMAS, "");
    publish_public(&cli, port, &other_key, "other/shared", "");
    let describe = |text: &str, as_key: &str| {
        json!({"method": "PUT", "path": "/api/v1/skills/other/shared", "key": as_key,
               "body": {"description": text, "visibility": "public"}})
    };

    let steps = json!([
        // Another tenant's skill, not installed here, changes: not this tenant's news.
        {"listen": {"trigger": describe("v2", &other_key), "wait_s": 1.5}},
        // Installing it changes this tenant's tools.
        {"listen": {"trigger": {"method": "POST", "path": "/api/v1/installations",
                                "body": {"skill": "other/shared"}}}},
        // Once installed, its owner's changes are news here too.
        {"listen": {"trigger": describe("v3", &other_key)}},
        // And so is a change to one's own skill.
        {"listen": {"trigger": {"method": "PUT", "path": "/api/v1/skills/acme/hello",
                                "body": {"description": "greets"}}}},
        // Removing the installation is news; after it, the owner's changes are not.
        {"listen": {"trigger": {"method": "DELETE",
                                "path": "/api/v1/installations/other/shared"}}},
        {"listen": {"trigger": describe("v4", &other_key), "wait_s": 1.5}},
    ]);
    let results = client(&cli.url, &key, "2026-07-28", &steps);
    let quiet = &results[0];
    assert_eq!(quiet["honored"], true, "{quiet}");
    assert_eq!(quiet["trigger_status"], 200, "{quiet}");
    assert_eq!(quiet["end"], "waited", "no notification: {quiet}");
    let installed = &results[1];
    assert_eq!(installed["end"], "event", "{installed}");
    assert!(
        installed["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("other.shared")),
        "{installed}"
    );
    assert_eq!(results[2]["end"], "event", "{}", results[2]);
    assert_eq!(results[3]["end"], "event", "{}", results[3]);
    let uninstalled = &results[4];
    assert_eq!(uninstalled["trigger_status"], 204, "{uninstalled}");
    assert_eq!(uninstalled["end"], "event", "{uninstalled}");
    assert!(
        !uninstalled["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("other.shared")),
        "{uninstalled}"
    );
    assert_eq!(
        results[5]["end"], "waited",
        "no longer news: {}",
        results[5]
    );

    // `server/discover` announces the notification (a pinned version skips discovery).
    let discovered = client(&cli.url, &key, "auto", &json!([]));
    assert_eq!(discovered[0]["protocol_version"], "2026-07-28");
    assert_eq!(
        discovered[0]["tools_list_changed"], true,
        "{}",
        discovered[0]
    );

    // Handshake-era clients have no stream to be told on, so the server does not claim it.
    let legacy = client(&cli.url, &key, "legacy", &json!([]));
    assert_eq!(legacy[0]["protocol_version"], "2025-11-25");
    assert_eq!(legacy[0]["tools_list_changed"], false, "{}", legacy[0]);

    // A key revoked while its stream is open ends the stream.
    let created = rest(
        port,
        "POST",
        "/api/v1/api-keys",
        &key,
        Some(json!({"name": "listener"})),
    );
    let listener_key = created["key"].as_str().unwrap();
    let revoke = json!({"method": "DELETE", "key": key,
        "path": format!("/api/v1/api-keys/{}", created["api_key"]["id"].as_str().unwrap())});
    let revoked = client(
        &cli.url,
        listener_key,
        "2026-07-28",
        &json!([{"listen": {"trigger": revoke, "until_closed": true, "wait_s": 10}}]),
    );
    assert_eq!(revoked[0]["trigger_status"], 200, "{}", revoked[0]);
    assert_eq!(revoked[0]["end"], "lost", "{}", revoked[0]);

    // Shutting down ends open streams with the protocol's final result, so SIGTERM does
    // not wait out the grace period for them.
    let ready = cli.dir.join("listening");
    let waiting = start_client(
        &cli.url,
        &key,
        "2026-07-28",
        &json!([{"listen": {"ready_file": ready, "until_closed": true, "wait_s": 20}}]),
    );
    for _ in 0..200 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready.exists(), "the stream was acknowledged");
    let started = std::time::Instant::now();
    assert!(server.terminate().success(), "{}", server.logs());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "shutdown waited for the stream: {:?}",
        started.elapsed()
    );
    let closed = finish(waiting, "2026-07-28");
    assert_eq!(closed[0]["end"], "graceful", "{}", closed[0]);
}
