//! Agents over HTTP on both engines: saving checks the workflow and pins its skills;
//! optimistic locking (428 without If-Match, 412 on a stale one, one winner of two); yanked
//! pins warn until a relock moves them; deletion is soft; listings filter and page; agent
//! steps may not form cycles; another tenant's private skill cannot be used.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Answer, TestApp, all, answer, hello_package};

fn pipeline(name: &str) -> Value {
    json!({
        "name": name,
        "description": "greets twice",
        "workflow": {
            "steps": [
                {"id": "first", "kind": "skill", "skill": "examples/hello", "version": "^0.1",
                 "input": {"name": "${input.who}"}},
                {"id": "second", "kind": "skill", "skill": "examples/hello",
                 "input": {"name": "${steps.first.output.greeting}"}}
            ],
            "output": "${steps.second.output}"
        },
        "input_schema": {"type": "object", "required": ["who"]},
    })
}

/// Sends `body` with `If-Match: "<version>"` (none when `version` is `None`); answers the
/// answer and its ETag.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    version: Option<i64>,
    body: Option<Value>,
) -> (Answer, Option<String>) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(&app.acme.key);
    if let Some(version) = version {
        request = request.header("if-match", format!("\"{version}\""));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    (answer(response).await, etag)
}

#[tokio::test]
async fn agents_are_checked_pinned_versioned_and_deleted_softly() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let key = app.acme.key.clone();
        app.publish(&key, &hello_package("0.1.0"))
            .await
            .expect(201, "hello 0.1.0");

        // Created: version 1, ETag and Location, both skill steps pinned once.
        let (created, etag) = send(
            &app,
            Method::POST,
            "/api/v1/agents",
            None,
            Some(pipeline("greeter")),
        )
        .await;
        let agent = created.expect(201, "create").clone();
        let id = agent["id"].as_str().unwrap().to_owned();
        assert_eq!(etag.as_deref(), Some("\"1\""));
        assert_eq!(agent["version"], 1);
        assert_eq!(agent["status"], "ready");
        assert_eq!(agent["lock"].as_array().unwrap().len(), 2, "{agent}");
        assert_eq!(agent["lock"][0]["version"], "0.1.0");
        assert_eq!(
            agent["lock"][0]["component_sha256"].as_str().unwrap().len(),
            64
        );
        assert_eq!(agent["workflow"]["steps"][0]["id"], "first");
        let path = format!("/api/v1/agents/{id}");
        let (read, etag) = send(&app, Method::GET, &path, None, None).await;
        assert_eq!(read.expect(200, "read")["name"], "greeter");
        assert_eq!(etag.as_deref(), Some("\"1\""));
        app.call(
            Method::POST,
            "/api/v1/agents",
            Some(&key),
            Some(pipeline("greeter")),
        )
        .await
        .expect(409, "the name is taken");

        // Problems name the step and the field; nothing is stored.
        let mut broken = pipeline("broken");
        broken["workflow"]["steps"][1]["input"] = json!({"name": "${steps.later.output}"});
        broken["workflow"]["steps"][0]["skill"] = json!("examples/missing");
        let refused = app
            .call(Method::POST, "/api/v1/agents", Some(&key), Some(broken))
            .await;
        let problems = refused.expect(422, "broken")["problems"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0]["step"], "second");
        assert_eq!(problems[0]["field"], "/workflow/steps/1/input");
        let mut unknown = pipeline("unknown");
        unknown["workflow"]["steps"][0]["skill"] = json!("examples/missing");
        let refused = app
            .call(Method::POST, "/api/v1/agents", Some(&key), Some(unknown))
            .await;
        let body = refused.expect(422, "unknown skill");
        assert_eq!(body["field"], "/workflow/steps/0/skill");
        assert_eq!(body["problems"][0]["step"], "first");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("examples/missing"),
            "{body}"
        );
        let single = app
            .call(
                Method::POST,
                "/api/v1/agents",
                Some(&key),
                Some(
                    json!({"name": "single", "skill": {"name": "examples/hello", "version": "^9"}}),
                ),
            )
            .await;
        assert_eq!(
            single.expect(422, "no such version")["field"],
            "/skill/name"
        );

        // Optimistic locking.
        let mut renamed = pipeline("welcomer");
        renamed["description"] = json!("renamed");
        let (missing, _) = send(&app, Method::PUT, &path, None, Some(renamed.clone())).await;
        missing.expect(428, "no If-Match");
        let (first, etag) = send(&app, Method::PUT, &path, Some(1), Some(renamed.clone())).await;
        assert_eq!(first.expect(200, "first writer")["version"], 2);
        assert_eq!(etag.as_deref(), Some("\"2\""));
        let (second, _) = send(&app, Method::PUT, &path, Some(1), Some(pipeline("other"))).await;
        assert_eq!(second.expect(412, "second writer")["version"], 2);
        let now = app.call(Method::GET, &path, Some(&key), None).await;
        assert_eq!(now.expect(200, "read")["name"], "welcomer");

        // A yanked pin warns; a relock moves it to the newest version not yanked.
        app.publish(&key, &hello_package("0.1.1"))
            .await
            .expect(201, "hello 0.1.1");
        app.call(
            Method::POST,
            "/api/v1/skills/examples/hello/versions/0.1.0/yank",
            Some(&key),
            None,
        )
        .await
        .expect(200, "yank");
        let warned = app.call(Method::GET, &path, Some(&key), None).await;
        let warned = warned.expect(200, "read").clone();
        assert_eq!(warned["status"], "warning");
        assert!(
            warned["warnings"][0]
                .as_str()
                .unwrap()
                .contains("0.1.0 is yanked"),
            "{warned}"
        );
        let listed = app
            .call(
                Method::GET,
                "/api/v1/agents?status=warning",
                Some(&key),
                None,
            )
            .await;
        assert_eq!(
            listed.expect(200, "warning list")["items"][0]["id"],
            id.as_str()
        );
        let (stale, _) = send(&app, Method::POST, &format!("{path}/relock"), Some(1), None).await;
        stale.expect(412, "relock of a stale version");
        let (relocked, etag) =
            send(&app, Method::POST, &format!("{path}/relock"), None, None).await;
        let relocked = relocked.expect(200, "relock").clone();
        assert_eq!(etag.as_deref(), Some("\"3\""));
        assert_eq!(relocked["status"], "ready");
        assert!(
            relocked["lock"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["version"] == "0.1.1")
        );
        let lock = app
            .call(Method::GET, &format!("{path}/lock"), Some(&key), None)
            .await;
        let lock = lock.expect(200, "lock");
        assert_eq!(lock["version"], 3);
        assert_eq!(lock["pins"].as_array().unwrap().len(), 2);

        // Agent steps: a missing agent and a cycle are refused.
        let calls = |name: &str, callee: &str| {
            json!({"name": name, "workflow": {"steps": [
                {"id": "child", "kind": "agent", "agent": callee}
            ]}})
        };
        let refused = app
            .call(
                Method::POST,
                "/api/v1/agents",
                Some(&key),
                Some(calls("outer", "nobody")),
            )
            .await;
        assert!(
            refused.expect(422, "missing agent")["detail"]
                .as_str()
                .unwrap()
                .contains("no agent named")
        );
        app.call(
            Method::POST,
            "/api/v1/agents",
            Some(&key),
            Some(calls("outer", "welcomer")),
        )
        .await
        .expect(201, "outer calls welcomer");
        let mut looping = pipeline("welcomer");
        looping["workflow"]["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "back", "kind": "agent", "agent": "outer"}));
        let (cycle, _) = send(&app, Method::PUT, &path, Some(3), Some(looping)).await;
        let cycle = cycle.expect(422, "a cycle");
        assert!(
            cycle["detail"]
                .as_str()
                .unwrap()
                .contains("welcomer → outer → welcomer"),
            "{cycle}"
        );
        assert_eq!(cycle["field"], "/workflow/steps/2/agent");

        // Listing: filter by skill, sort, page.
        let page = app
            .call(
                Method::GET,
                "/api/v1/agents?skill=examples/hello&limit=1",
                Some(&key),
                None,
            )
            .await;
        let page = page.expect(200, "by skill").clone();
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        assert_eq!(page["items"][0]["name"], "welcomer");
        let after = format!(
            "/api/v1/agents?skill=examples/hello&limit=1&cursor={}",
            page["next_cursor"].as_str().unwrap()
        );
        let rest = app.call(Method::GET, &after, Some(&key), None).await;
        assert!(
            rest.expect(200, "next page")["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let all = app
            .call(
                Method::GET,
                "/api/v1/agents?sort=created&order=desc",
                Some(&key),
                None,
            )
            .await;
        let names: Vec<&str> = all.expect(200, "all")["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["outer", "welcomer"]);

        // Another tenant: nothing to see, and acme's private skill is not usable.
        let theirs = app
            .call(Method::GET, &path, Some(&app.globex.key), None)
            .await;
        theirs.expect(404, "another tenant's agent");
        let empty = app
            .call(Method::GET, "/api/v1/agents", Some(&app.globex.key), None)
            .await;
        assert!(
            empty.expect(200, "globex's agents")["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let borrowed = app
            .call(
                Method::POST,
                "/api/v1/agents",
                Some(&app.globex.key),
                Some(pipeline("thief")),
            )
            .await;
        assert!(
            borrowed.expect(422, "acme's private skill")["detail"]
                .as_str()
                .unwrap()
                .contains("no skill examples/hello is visible")
        );

        // Deleting: stale If-Match loses; then gone, and its name is free.
        let (stale, _) = send(&app, Method::DELETE, &path, Some(1), None).await;
        stale.expect(412, "stale delete");
        let (deleted, _) = send(&app, Method::DELETE, &path, Some(3), None).await;
        assert_eq!(deleted.status.as_u16(), 204);
        app.call(Method::GET, &path, Some(&key), None)
            .await
            .expect(404, "deleted");
        app.call(Method::GET, &format!("{path}/lock"), Some(&key), None)
            .await
            .expect(404, "deleted lock");
        app.call(
            Method::POST,
            "/api/v1/agents",
            Some(&key),
            Some(pipeline("welcomer")),
        )
        .await
        .expect(201, "the name is free again");

        // Every change is audited.
        let audit = app
            .call(
                Method::GET,
                "/api/v1/audit-events?resource_type=agent&limit=100",
                Some(&key),
                None,
            )
            .await;
        let actions: Vec<&str> = audit.expect(200, "audit")["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for action in [
            "agent.create",
            "agent.update",
            "agent.relock",
            "agent.delete",
        ] {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
    }
}

#[tokio::test]
async fn another_tenants_public_skill_is_pinned_only_once_installed() {
    for db in all().await {
        let app = TestApp::start(db).await;
        app.publish(&app.acme.key, &hello_package("0.1.0"))
            .await
            .expect(201, "hello");
        app.call(
            Method::PUT,
            "/api/v1/skills/examples/hello",
            Some(&app.acme.key),
            Some(json!({"visibility": "public"})),
        )
        .await
        .expect(200, "make hello public");
        let definition = json!({"name": "borrower", "skill": {"name": "examples/hello"}});
        let create = || {
            app.call(
                Method::POST,
                "/api/v1/agents",
                Some(&app.globex.key),
                Some(definition.clone()),
            )
        };
        let refused = create().await;
        let refused = refused.expect(422, "not installed");
        assert_eq!(refused["field"], "/skill/name");
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("install it first"),
            "{refused}"
        );
        app.call(
            Method::POST,
            "/api/v1/installations",
            Some(&app.globex.key),
            Some(json!({"skill": "examples/hello"})),
        )
        .await
        .expect(200, "install");
        let created = create().await;
        let created = created.expect(201, "installed");
        assert_eq!(created["lock"][0]["skill"], "examples/hello");
        assert_eq!(created["lock"][0]["version"], "0.1.0");
        // The owner sees none of globex's agents.
        let theirs = app
            .call(Method::GET, "/api/v1/agents", Some(&app.acme.key), None)
            .await;
        assert!(
            theirs.expect(200, "acme's agents")["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn definitions_may_be_sent_as_yaml() {
    for db in all().await {
        let app = TestApp::start(db).await;
        app.publish(&app.acme.key, &hello_package("0.1.0"))
            .await
            .expect(201, "hello");
        let post = |body: &'static str| {
            let app = &app;
            async move {
                answer(
                    app.client
                        .post(format!("{}/api/v1/agents", app.base))
                        .bearer_auth(&app.acme.key)
                        .header("content-type", "application/yaml")
                        .body(body)
                        .send()
                        .await
                        .unwrap(),
                )
                .await
            }
        };
        let created = post(
            "name: yaml-greeter\nworkflow:\n  steps:\n    - id: hi\n      kind: skill\n      \
             skill: examples/hello\n      input: {name: \"${input.who}\"}\n",
        )
        .await;
        let created = created.expect(201, "a YAML definition");
        assert_eq!(
            created["workflow"]["steps"][0]["input"]["name"],
            "${input.who}"
        );
        assert_eq!(created["lock"][0]["skill"], "examples/hello");
        let malformed = post("name: [unclosed\n").await;
        assert_eq!(
            malformed.expect(400, "malformed YAML")["type"],
            "https://omniforge.dev/problems/malformed-yaml"
        );
        post("- a list\n").await.expect(422, "not a mapping");
        let unknown = post("name: x\nskill: {name: examples/hello}\nfavourite: true\n").await;
        assert!(
            unknown.expect(422, "unknown field")["detail"]
                .as_str()
                .unwrap()
                .contains("favourite")
        );
    }
}

#[tokio::test]
async fn the_workflow_schema_is_public() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let schema = app
            .call(Method::GET, "/api/v1/schemas/workflow.json", None, None)
            .await;
        let schema = schema.expect(200, "schema");
        assert_eq!(
            schema["$id"],
            "https://omniforge.dev/api/v1/schemas/workflow.json"
        );
        assert!(schema.to_string().contains("quorum"));
    }
}
