//! Walks every route of the OpenAPI document (which is built from the router itself) and
//! checks its access rule: 401 for every kind of bad credential, 403 without the route's
//! permission, 404 for another tenant's resource.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, all, hs256_token, now_ms, test_config};

struct Route {
    method: Method,
    path: String,
    /// `None`: public; `Some(None)`: any principal; `Some(Some(p))`: permission `p`.
    access: Option<Option<String>>,
}

fn routes() -> Vec<Route> {
    let api = serde_json::to_value(omniforge_server::openapi()).unwrap();
    let mut routes = Vec::new();
    for (path, item) in api["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let security = operation
                .get("security")
                .unwrap_or_else(|| panic!("{method} {path} declares no access rule"));
            let access = match security.as_array().unwrap().as_slice() {
                [] => None,
                [requirement] => {
                    let scopes = requirement["bearer"].as_array().unwrap();
                    Some(scopes.first().and_then(Value::as_str).map(str::to_owned))
                }
                other => panic!("{method} {path}: unexpected security {other:?}"),
            };
            routes.push(Route {
                method,
                path: path.clone(),
                access,
            });
        }
    }
    routes
}

/// Resources of acme's that paths name.
struct Ids<'a> {
    tenant: &'a str,
    user: &'a str,
    key: &'a str,
    task: &'a str,
    agent: &'a str,
}

/// The path with its `{id}` filled by acme's resource the route's collection holds.
fn fill(path: &str, ids: &Ids<'_>) -> String {
    if !path.contains('{') {
        return path.to_owned();
    }
    if path.starts_with("/api/v1/secrets/") {
        // acme's `api-token`, set before the walk.
        return path.replace("{name}", "api-token");
    }
    if path.contains("{namespace}") {
        // acme's private `examples/hello` 0.1.0, published before the walk.
        return path
            .replace("{namespace}", "examples")
            .replace("{name}", "hello")
            .replace("{version}", "0.1.0");
    }
    let id = if path.starts_with("/api/v1/tenants/") {
        ids.tenant
    } else if path.starts_with("/api/v1/users/") {
        ids.user
    } else if path.starts_with("/api/v1/api-keys/") {
        ids.key
    } else if path.starts_with("/api/v1/tasks/") {
        ids.task
    } else if path.starts_with("/api/v1/agents/") {
        ids.agent
    } else {
        panic!("{path}: teach this test which resource its parameter names")
    };
    path.replace("{id}", id)
}

/// A valid body for the routes that need one to reach their handler.
fn body_for(method: &Method, path: &str) -> Option<Value> {
    match (method.as_str(), path) {
        ("PUT", "/api/v1/users/{id}/roles") => Some(json!({"roles": ["viewer"]})),
        ("PATCH", "/api/v1/tenants/{id}") => Some(json!({"name": "Renamed"})),
        ("PUT", "/api/v1/tenants/{id}/policy") => Some(json!({})),
        ("PUT", "/api/v1/skills/{namespace}/{name}") => Some(json!({"description": "Mine"})),
        ("POST", "/api/v1/skills/{namespace}/{name}/invoke") => {
            Some(json!({"input": {"name": "Eve"}}))
        }
        ("PUT", "/api/v1/agents/{id}") => Some(agent_definition()),
        ("PUT", "/api/v1/secrets/{name}") => Some(json!({"value": "globex's own"})),
        ("POST", "/api/v1/agents/{id}/runs") => Some(json!({"input": {"name": "Eve"}})),
        ("POST", p) if p.ends_with("/cancel") || p.ends_with("/retry") => None,
        ("POST", p) if p.ends_with("/relock") => None,
        (_, p) if p.ends_with("/yank") || p.ends_with("/unyank") => None,
        ("GET" | "DELETE", _) => None,
        (_, p) if p.ends_with("/suspend") || p.ends_with("/resume") => None,
        (m, p) => panic!("{m} {p}: teach this test a valid body"),
    }
}

/// An agent that greets through acme's `examples/hello`.
fn agent_definition() -> Value {
    json!({"name": "greeter", "skill": {"name": "examples/hello"}})
}

#[test]
fn every_route_declares_its_access() {
    let routes = routes();
    assert!(routes.len() >= 19, "only {} routes found", routes.len());
    assert!(
        routes
            .iter()
            .any(|r| r.access.is_none() && r.path == "/healthz")
    );
}

#[tokio::test]
async fn every_route_refuses_bad_credentials_missing_permissions_and_other_tenants() {
    for db in all().await {
        // Every route gets a wrong secret for acme's prefix: more guesses than the default
        // allows (limits.rs tests that limit).
        let mut config = test_config(&db);
        config.rate_limits.failed_key_verifications_per_minute = 0;
        config.rate_limits.failed_auth_per_minute = 0;
        config.secrets.key = Some(omniforge_server::config::Secret::new("11".repeat(32)));
        let app = TestApp::start_with(db, config).await;
        app.call(
            Method::PUT,
            "/api/v1/secrets/api-token",
            Some(&app.acme.key),
            Some(json!({"value": "acme's own"})),
        )
        .await
        .expect(201, "set a secret");
        let acme_key_id = app
            .call(Method::GET, "/api/v1/me", Some(&app.acme.key), None)
            .await
            .expect(200, "me")["api_key_id"]
            .as_str()
            .unwrap()
            .to_owned();

        app.publish(
            &app.acme.key,
            &crate::common::example_package("hello", omniforge_test_programs::HELLO, |m| m),
        )
        .await
        .expect(201, "publish hello");
        // A task that waits: nothing the walk does may start, cancel or delete it.
        let task = app
            .call(
                Method::POST,
                "/api/v1/tasks",
                Some(&app.acme.key),
                Some(json!({
                    "skill": "examples/hello",
                    "input": {"name": "Eve"},
                    "not_before_ms": now_ms() + 3_600_000,
                })),
            )
            .await
            .expect(202, "submit a task")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let agent = app
            .call(
                Method::POST,
                "/api/v1/agents",
                Some(&app.acme.key),
                Some(agent_definition()),
            )
            .await
            .expect(201, "create an agent")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let ids = Ids {
            tenant: &app.acme.id,
            user: &app.acme.owner_id,
            key: &acme_key_id,
            task: &task,
            agent: &agent,
        };
        let (revoked, revoked_id) = app.scoped_key(&["*"]).await;
        app.call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{revoked_id}"),
            Some(&app.acme.key),
            None,
        )
        .await
        .expect(200, "revoke");
        let (expired, expired_id) = app.scoped_key(&["*"]).await;
        app.execute(&format!(
            "UPDATE api_keys SET expires_at_ms = {} WHERE id = '{expired_id}'",
            now_ms() - 1000
        ))
        .await;
        let prefix = &app.acme.key[..17];
        let wrong_secret = format!("{prefix}{}", "A".repeat(43));
        let expired_token = hs256_token(
            "acme",
            &app.acme.owner_id,
            json!({"exp": now_ms() / 1000 - 60}),
        );
        let forged_token = {
            let good = hs256_token("acme", &app.acme.owner_id, json!({}));
            let (rest, _) = good.rsplit_once('.').unwrap();
            format!("{rest}.c2lnbmF0dXJl")
        };
        let bad_credentials: Vec<(&str, Option<String>)> = vec![
            ("no credentials", None),
            ("malformed key", Some("ofk_123".into())),
            ("wrong secret", Some(wrong_secret)),
            ("revoked key", Some(revoked)),
            ("expired key", Some(expired)),
            ("garbage token", Some("not-a-token".into())),
            ("expired token", Some(expired_token)),
            ("forged token", Some(forged_token)),
        ];

        for route in routes() {
            let own = fill(&route.path, &ids);
            let label = format!("{} {}", route.method, route.path);
            let Some(access) = &route.access else {
                let answer = app.call(route.method.clone(), &own, None, None).await;
                assert_ne!(answer.status.as_u16(), 401, "{label} is public");
                continue;
            };
            for (what, credential) in &bad_credentials {
                let answer = app
                    .call(route.method.clone(), &own, credential.as_deref(), None)
                    .await;
                answer.expect(401, &format!("{label} with {what}"));
            }
            // A malformed Authorization header (not Bearer).
            let answer = crate::common::answer(
                app.client
                    .request(route.method.clone(), format!("{}{own}", app.base))
                    .header("authorization", "Basic YWRhOnB3")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            answer.expect(401, &format!("{label} with Basic auth"));

            let Some(permission) = access else { continue };
            let other = if permission == "task:read" {
                "skill:read"
            } else {
                "task:read"
            };
            let (narrow, _) = app.scoped_key(&[other]).await;
            let answer = app
                .call(route.method.clone(), &own, Some(&narrow), None)
                .await;
            answer.expect(403, &format!("{label} without {permission}"));

            // Another tenant's resource: globex's owner holds every tenant permission but
            // not tenant:manage, so it reaches the handler and must learn nothing.
            if route.path.contains('{') && permission != "tenant:manage" {
                let body = body_for(&route.method, &route.path);
                let answer = app
                    .call(route.method.clone(), &own, Some(&app.globex.key), body)
                    .await;
                // A secret's name is looked up in the caller's own tenant: setting one sets
                // the caller's, never another tenant's of the same name (checked below).
                let expected = if label == "PUT /api/v1/secrets/{name}" {
                    201
                } else {
                    404
                };
                answer.expect(expected, &format!("{label} on another tenant's resource"));
            }
        }
        // Nothing of acme's was changed by globex's attempts.
        let me = app
            .call(Method::GET, "/api/v1/me", Some(&app.acme.key), None)
            .await;
        me.expect(200, "acme's key still works");
        assert_eq!(me.body["user"]["roles"], json!(["owner"]));
        let waiting = app
            .call(
                Method::GET,
                &format!("/api/v1/tasks/{task}"),
                Some(&app.acme.key),
                None,
            )
            .await;
        assert_eq!(waiting.expect(200, "acme's task")["state"], "submitted");
        let untouched = app
            .call(
                Method::GET,
                &format!("/api/v1/agents/{agent}"),
                Some(&app.acme.key),
                None,
            )
            .await;
        assert_eq!(untouched.expect(200, "acme's agent")["version"], 1);
        let secrets = app
            .call(Method::GET, "/api/v1/secrets", Some(&app.acme.key), None)
            .await;
        let secrets = secrets.expect(200, "acme's secrets");
        assert_eq!(secrets["items"][0]["name"], "api-token");
        assert_eq!(
            secrets["items"][0]["version"], 1,
            "globex changed acme's secret"
        );
    }
}
