//! What users do: manage keys, users and tenants, read the audit log and exports; and what
//! bad requests get.

use reqwest::Method;
use serde_json::json;

use crate::common::{TestApp, all, now_ms, test_config};

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_scoped_and_revoked_at_once() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let created = app
            .call(
                Method::POST,
                "/api/v1/api-keys",
                Some(&app.acme.key),
                Some(json!({"name": "ci", "scopes": ["skill:read", "skill:invoke"]})),
            )
            .await;
        let body = created.expect(201, "create").clone();
        let key = body["key"].as_str().unwrap().to_owned();
        // After `ofk_<12 hex>_`; the secret itself may contain `_`.
        let secret = key["ofk_".len() + 12 + 1..].to_owned();
        assert_eq!(secret.len(), 43, "{key}");
        assert!(key.starts_with(&format!(
            "ofk_{}_",
            body["api_key"]["prefix"].as_str().unwrap()
        )));

        let list = app
            .call(Method::GET, "/api/v1/api-keys", Some(&app.acme.key), None)
            .await;
        let list_text = list.expect(200, "list").to_string();
        assert!(!list_text.contains(&secret), "a listing showed a secret");
        for table in ["api_keys", "audit_events"] {
            let rows = app.dump(table).await;
            assert!(!rows.contains(&secret), "{table} holds a key in plain text");
        }
        assert!(app.dump("api_keys").await.contains("$argon2id$"));

        // The new key works within its scopes only.
        let me = app.call(Method::GET, "/api/v1/me", Some(&key), None).await;
        assert_eq!(
            me.expect(200, "me").get("permissions").unwrap(),
            &json!(["skill:read", "skill:invoke"])
        );
        app.call(Method::GET, "/api/v1/users", Some(&key), None)
            .await
            .expect(403, "user:read is outside the key's scopes");

        // Its use is recorded (in the background, at most once a minute).
        let id = body["api_key"]["id"].as_str().unwrap().to_owned();
        let mut used = false;
        for _ in 0..50 {
            let list = app
                .call(Method::GET, "/api/v1/api-keys", Some(&app.acme.key), None)
                .await;
            let entry = list.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["id"] == id)
                .cloned()
                .unwrap();
            if entry["last_used_at_ms"].is_i64() {
                used = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(used, "last_used_at_ms was never set");

        app.call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            Some(&app.acme.key),
            None,
        )
        .await
        .expect(200, "revoke");
        app.call(Method::GET, "/api/v1/me", Some(&key), None)
            .await
            .expect(401, "a revoked key stops at once");

        for (body, status, what) in [
            (
                json!({"name": "x", "scopes": ["skill:fly"]}),
                422,
                "unknown scope",
            ),
            (json!({"name": "x", "scopes": []}), 422, "no scopes"),
            (json!({"name": "", "scopes": ["*"]}), 422, "empty name"),
            (
                json!({"name": "x", "expires_at_ms": now_ms() - 1}),
                422,
                "past expiry",
            ),
        ] {
            app.call(
                Method::POST,
                "/api/v1/api-keys",
                Some(&app.acme.key),
                Some(body),
            )
            .await
            .expect(status, what);
        }
    }
}

#[tokio::test]
async fn users_roles_and_ownership_follow_the_rules() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let owner = Some(app.acme.key.as_str());
        let admin = app
            .call(
                Method::POST,
                "/api/v1/users",
                owner,
                Some(json!({"email": "root@acme.test", "roles": ["admin"]})),
            )
            .await
            .expect(201, "create admin")
            .clone();
        app.call(
            Method::POST,
            "/api/v1/users",
            owner,
            Some(json!({"email": "root@acme.test", "roles": []})),
        )
        .await
        .expect(409, "duplicate email");
        app.call(
            Method::POST,
            "/api/v1/users",
            owner,
            Some(json!({"email": "nope", "roles": []})),
        )
        .await
        .expect(422, "bad email");
        let admin_id = admin["id"].as_str().unwrap();
        let admin_key = app
            .call(
                Method::POST,
                "/api/v1/api-keys",
                owner,
                Some(json!({"name": "for admin", "user_id": admin_id})),
            )
            .await
            .expect(201, "key for the admin")["key"]
            .as_str()
            .unwrap()
            .to_owned();
        // An admin manages users but cannot make owners or demote the owner.
        app.call(
            Method::PUT,
            &format!("/api/v1/users/{admin_id}/roles"),
            Some(&admin_key),
            Some(json!({"roles": ["owner"]})),
        )
        .await
        .expect(403, "admins do not grant ownership");
        app.call(
            Method::PUT,
            &format!("/api/v1/users/{}/roles", app.acme.owner_id),
            owner,
            Some(json!({"roles": ["admin"]})),
        )
        .await
        .expect(409, "the last owner stays");
        let viewer = app
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&admin_key),
                Some(json!({"email": "v@acme.test", "roles": ["viewer"], "display_name": "V"})),
            )
            .await
            .expect(201, "admins create users")
            .clone();
        let listed = app
            .call(Method::GET, "/api/v1/users?limit=2", Some(&admin_key), None)
            .await
            .expect(200, "list")
            .clone();
        assert_eq!(listed["items"].as_array().unwrap().len(), 2);
        let cursor = listed["next_cursor"].as_str().unwrap();
        let rest = app
            .call(
                Method::GET,
                &format!("/api/v1/users?limit=2&cursor={cursor}"),
                Some(&admin_key),
                None,
            )
            .await
            .expect(200, "second page")
            .clone();
        assert_eq!(rest["items"].as_array().unwrap().len(), 1);
        assert!(rest["next_cursor"].is_null());

        // Disabling the admin revokes their keys at once.
        app.call(
            Method::DELETE,
            &format!("/api/v1/users/{admin_id}"),
            owner,
            None,
        )
        .await
        .expect(200, "disable");
        app.call(Method::GET, "/api/v1/me", Some(&admin_key), None)
            .await
            .expect(401, "a disabled user's key");
        assert_eq!(viewer["roles"], json!(["viewer"]));
    }
}

#[tokio::test]
async fn platform_admins_manage_tenants_and_owners_export_theirs() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let admin = Some(app.acme.key.as_str());
        let globex = Some(app.globex.key.as_str());
        let list = app.call(Method::GET, "/api/v1/tenants", admin, None).await;
        assert_eq!(
            list.expect(200, "list")
                .get("items")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            2
        );
        app.call(Method::GET, "/api/v1/tenants", globex, None)
            .await
            .expect(403, "only platform admins list tenants");
        let own = format!("/api/v1/tenants/{}", app.globex.id);
        app.call(Method::GET, &own, globex, None)
            .await
            .expect(200, "own tenant");
        app.call(
            Method::GET,
            &format!("/api/v1/tenants/{}", app.acme.id),
            globex,
            None,
        )
        .await
        .expect(404, "another tenant");
        for (slug, status) in [("Bad Slug", 422), ("acme", 409), ("-x", 422)] {
            app.call(
                Method::POST,
                "/api/v1/tenants",
                admin,
                Some(json!({"slug": slug})),
            )
            .await
            .expect(status, slug);
        }
        app.call(
            Method::PATCH,
            &own,
            admin,
            Some(json!({"name": "Globex Corp"})),
        )
        .await
        .expect(200, "rename");

        app.call(Method::POST, &format!("{own}/suspend"), admin, None)
            .await
            .expect(200, "suspend");
        let refused = app.call(Method::GET, "/api/v1/me", globex, None).await;
        refused.expect(403, "a suspended tenant");
        assert!(
            refused.body["type"]
                .as_str()
                .unwrap()
                .ends_with("tenant-suspended")
        );
        app.call(Method::POST, &format!("{own}/resume"), admin, None)
            .await
            .expect(200, "resume");
        app.call(Method::GET, "/api/v1/me", globex, None)
            .await
            .expect(200, "resumed");
        app.call(
            Method::POST,
            &format!("/api/v1/tenants/{}/suspend", app.acme.id),
            admin,
            None,
        )
        .await
        .expect(409, "admins do not suspend their own tenant");

        let export = app
            .call(Method::GET, &format!("{own}/export"), globex, None)
            .await;
        let export = export.expect(200, "export").clone();
        assert_eq!(export["tenant"]["name"], "Globex Corp");
        assert_eq!(export["users"][0]["email"], "bo@globex.test");
        assert_eq!(export["api_keys"].as_array().unwrap().len(), 1);
        let actions: Vec<&str> = export["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "tenant.create",
                "user.create",
                "api_key.create",
                "tenant.update",
                "tenant.suspend",
                "tenant.resume"
            ]
        );
        assert!(
            !export.to_string().contains("argon2"),
            "no hashes in exports"
        );
    }
}

#[tokio::test]
async fn the_audit_log_records_request_ids_and_pages_with_filters() {
    for db in all().await {
        let app = TestApp::start(db).await;
        for i in 0..5 {
            let response = app
                .client
                .post(format!("{}/api/v1/api-keys", app.base))
                .bearer_auth(&app.acme.key)
                .header("x-request-id", format!("req-{i}"))
                .json(&json!({"name": format!("k{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            assert_eq!(
                response.headers()["x-request-id"],
                format!("req-{i}").as_str()
            );
        }
        let key = Some(app.acme.key.as_str());
        let mut cursor = String::new();
        let mut seen = Vec::new();
        loop {
            let page = app
                .call(
                    Method::GET,
                    &format!("/api/v1/audit-events?action=api_key.create&limit=2{cursor}"),
                    key,
                    None,
                )
                .await
                .expect(200, "page")
                .clone();
            for event in page["items"].as_array().unwrap() {
                let id = event["id"].as_str().unwrap();
                assert!(id.starts_with("aud_") && id.len() == 36, "{id}");
                // Creating globex made its owner's first key; acme's log has the platform
                // admin's copy of that event.
                let label = match event["details"]["in_tenant"].as_str() {
                    Some(tenant) if tenant == app.globex.id => "globex's first key",
                    _ => event["request_id"].as_str().unwrap(),
                };
                seen.push(label.to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(
            seen,
            [
                "req-4",
                "req-3",
                "req-2",
                "req-1",
                "req-0",
                "globex's first key",
                "bootstrap"
            ]
        );
        app.call(Method::GET, "/api/v1/audit-events?limit=0", key, None)
            .await
            .expect(400, "limit 0");
        // A cursor is a position: one this endpoint never gave is a position too (here, before
        // every event), not an error.
        let past = app
            .call(Method::GET, "/api/v1/audit-events?cursor=abc", key, None)
            .await;
        assert_eq!(past.expect(200, "a foreign cursor")["items"], json!([]));
        app.call(Method::GET, "/api/v1/audit-events?colour=red", key, None)
            .await
            .expect(400, "unknown parameter");
        let globex = app
            .call(
                Method::GET,
                "/api/v1/audit-events?limit=200",
                Some(&app.globex.key),
                None,
            )
            .await
            .expect(200, "globex's log")
            .clone();
        let items = globex["items"].as_array().unwrap();
        assert!(
            items
                .iter()
                .all(|e| e["tenant_id"] == app.globex.id.as_str()),
            "another tenant's events leaked"
        );
        // Globex's creation is in its log as the platform's doing, without acme's ids.
        let text = globex.to_string();
        assert!(!text.contains(&app.acme.owner_id), "{text}");
        assert!(!text.contains(&app.acme.id), "{text}");
        let created: Vec<&str> = items
            .iter()
            .filter(|e| {
                ["tenant.create", "user.create", "api_key.create"]
                    .contains(&e["action"].as_str().unwrap())
            })
            .map(|e| e["actor"].as_str().unwrap())
            .collect();
        assert_eq!(created, ["platform", "platform", "platform"], "{text}");
        // Ids are opaque: nothing in them counts other tenants' events.
        let ids: Vec<&str> = items.iter().map(|e| e["id"].as_str().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(ids, sorted, "newest first, by id");
    }
}

#[tokio::test]
async fn bad_requests_get_problem_documents_never_500() {
    for db in all().await {
        let mut config = test_config(&db);
        config.http.body_limit_bytes = 2048;
        let app = TestApp::start_with(db, config).await;
        let url = format!("{}/api/v1/api-keys", app.base);
        let send = |body: String, content_type: &'static str| {
            app.client
                .post(&url)
                .bearer_auth(&app.acme.key)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let cases = [
            ("{\"name\": ", "application/json", 400, "malformed JSON"),
            ("{\"name\": \"x\"}", "text/plain", 415, "wrong content type"),
            (
                "{\"name\": \"x\", \"admin\": true}",
                "application/json",
                422,
                "unknown field",
            ),
            ("[1, 2]", "application/json", 422, "wrong shape"),
        ];
        for (body, content_type, status, what) in cases {
            let answer =
                crate::common::answer(send(body.into(), content_type).await.unwrap()).await;
            answer.expect(status, what);
            assert!(
                answer.body["request_id"].is_string(),
                "{what}: no request id"
            );
            assert_eq!(answer.body["instance"], "/api/v1/api-keys");
        }
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(10_000));
        let answer = crate::common::answer(send(big, "application/json").await.unwrap()).await;
        answer.expect(413, "oversize body");

        app.call(Method::GET, "/nowhere", None, None)
            .await
            .expect(404, "unknown path");
        app.call(Method::DELETE, "/healthz", None, None)
            .await
            .expect(405, "wrong method");

        // Request ids: a plain one is kept, a hostile one replaced.
        let kept = app
            .client
            .get(format!("{}/healthz", app.base))
            .header("x-request-id", "trace-123")
            .send()
            .await
            .unwrap();
        assert_eq!(kept.headers()["x-request-id"], "trace-123");
        let replaced = app
            .client
            .get(format!("{}/healthz", app.base))
            .header("x-request-id", "bad id\twith spaces")
            .send()
            .await
            .unwrap();
        let id = replaced.headers()["x-request-id"].to_str().unwrap();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );

        app.call(Method::GET, "/readyz", None, None)
            .await
            .expect(200, "ready");
    }
}
