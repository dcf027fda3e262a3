//! Sharing between tenants: private skills are invisible, public ones are read-only to
//! others and run only once installed, with the permissions the installation accepted.

use omniforge_test_programs as programs;
use reqwest::Method;
use serde_json::json;

use crate::common::{TestApp, all, example_package};

#[tokio::test]
async fn tenants_see_use_and_change_only_what_they_may() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let (acme, globex) = (app.acme.key.clone(), app.globex.key.clone());
        let counter = |version: &str, extra: &str| {
            example_package("kv-counter", programs::KV_COUNTER, |m| {
                m.replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
                    .replace("kv = true", &format!("kv = true\n{extra}"))
            })
        };
        app.publish(&acme, &counter("0.1.0", ""))
            .await
            .expect(201, "publish");
        let skill = "/api/v1/skills/examples/kv-counter";

        // Private: globex learns nothing.
        let listed = app
            .call(Method::GET, "/api/v1/skills", Some(&globex), None)
            .await;
        assert_eq!(listed.expect(200, "list")["items"], json!([]));
        for (method, path) in [
            (Method::GET, skill.to_owned()),
            (Method::GET, format!("{skill}/versions")),
            (Method::GET, format!("{skill}/versions/0.1.0")),
            (Method::GET, format!("{skill}/versions/0.1.0/download")),
            (Method::POST, format!("{skill}/versions/0.1.0/yank")),
            (Method::DELETE, skill.to_owned()),
        ] {
            app.call(method.clone(), &path, Some(&globex), None)
                .await
                .expect(404, &format!("globex {method} {path}"));
        }
        app.invoke(&globex, "examples/kv-counter", json!({"key": "k"}), None)
            .await
            .expect(404, "invoke private");
        let install = json!({"skill": "examples/kv-counter"});
        app.call(
            Method::POST,
            "/api/v1/installations",
            Some(&globex),
            Some(install.clone()),
        )
        .await
        .expect(404, "install private");

        // A namespace belongs to its first publisher.
        let squat = example_package("hello", programs::HELLO, |m| m);
        app.publish(&globex, &squat)
            .await
            .expect(403, "another tenant's namespace");

        // Public: visible, not changeable, usable only once installed.
        app.call(
            Method::PUT,
            skill,
            Some(&acme),
            Some(json!({"visibility": "public"})),
        )
        .await
        .expect(200, "make public");
        let listed = app
            .call(Method::GET, "/api/v1/skills", Some(&globex), None)
            .await;
        let items = listed.expect(200, "list public")["items"].clone();
        assert_eq!(items[0]["full_name"], "examples/kv-counter");
        assert_eq!(items[0]["owned"], false);
        assert_eq!(items[0]["permissions"], json!(["kv"]));
        app.call(Method::GET, skill, Some(&globex), None)
            .await
            .expect(200, "read public");
        app.call(
            Method::POST,
            &format!("{skill}/versions/0.1.0/yank"),
            Some(&globex),
            None,
        )
        .await
        .expect(403, "yank another tenant's skill");
        app.call(
            Method::PUT,
            skill,
            Some(&globex),
            Some(json!({"description": "mine now"})),
        )
        .await
        .expect(403, "change another tenant's skill");
        app.call(Method::DELETE, skill, Some(&globex), None)
            .await
            .expect(403, "delete another tenant's skill");
        let refused = app
            .invoke(&globex, "examples/kv-counter", json!({"key": "k"}), None)
            .await;
        assert_eq!(
            refused.expect(403, "not installed")["type"],
            "https://omniforge.dev/problems/not-installed"
        );
        let installed = app
            .call(
                Method::POST,
                "/api/v1/installations",
                Some(&globex),
                Some(install.clone()),
            )
            .await;
        let installed = installed.expect(200, "install").clone();
        assert_eq!(installed["version"], "0.1.0");
        assert_eq!(installed["accepted_permissions"]["kv"], true);

        // kv is per tenant: each tenant counts on its own, in the database.
        for expected in [1, 2] {
            let answer = app
                .invoke(&globex, "examples/kv-counter", json!({"key": "k"}), None)
                .await;
            assert_eq!(
                answer.expect(200, "globex counts")["output"]["count"],
                expected
            );
        }
        let answer = app
            .invoke(&acme, "examples/kv-counter", json!({"key": "k"}), None)
            .await;
        assert_eq!(answer.expect(200, "acme counts")["output"]["count"], 1);
        assert_eq!(app.count("kv_entries").await, 2);

        // A newer version asking for more is not used until the installation accepts it.
        app.publish(&acme, &counter("0.2.0", "http = [\"api.example.com\"]"))
            .await
            .expect(201, "0.2.0");
        let answer = app
            .invoke(&globex, "examples/kv-counter", json!({"key": "k"}), None)
            .await;
        let body = answer.expect(200, "still 0.1.0").clone();
        assert_eq!(body["version"], "0.1.0");
        assert_eq!(body["pending_update"]["version"], "0.2.0");
        assert_eq!(
            body["pending_update"]["new_permissions"],
            json!(["http:https://api.example.com"])
        );
        let answer = app
            .invoke(
                &globex,
                "examples/kv-counter",
                json!({"key": "k"}),
                Some("=0.2.0"),
            )
            .await;
        assert_eq!(
            answer.expect(403, "0.2.0 not accepted")["new_permissions"],
            json!(["http:https://api.example.com"])
        );
        app.call(
            Method::POST,
            "/api/v1/installations",
            Some(&globex),
            Some(install),
        )
        .await
        .expect(200, "update the installation");
        let answer = app
            .invoke(&globex, "examples/kv-counter", json!({"key": "k"}), None)
            .await;
        let body = answer.expect(200, "now 0.2.0").clone();
        assert_eq!(body["version"], "0.2.0");
        assert!(body.get("pending_update").is_none());

        // Exports carry skills, versions and installations.
        let export = app
            .call(
                Method::GET,
                &format!("/api/v1/tenants/{}/export", app.acme.id),
                Some(&acme),
                None,
            )
            .await;
        let export = export.expect(200, "acme export").clone();
        assert_eq!(export["skills"][0]["name"], "kv-counter");
        assert_eq!(export["skill_versions"].as_array().unwrap().len(), 2);
        assert_eq!(export["namespaces"], json!(["examples"]));
        let export = app
            .call(
                Method::GET,
                &format!("/api/v1/tenants/{}/export", app.globex.id),
                Some(&globex),
                None,
            )
            .await;
        let export = export.expect(200, "globex export").clone();
        assert_eq!(export["installations"][0]["skill"], "examples/kv-counter");
        assert_eq!(export["skills"], json!([]));

        // Uninstalled, it stops working.
        app.call(
            Method::DELETE,
            "/api/v1/installations/examples/kv-counter",
            Some(&globex),
            None,
        )
        .await
        .expect(204, "uninstall");
        app.invoke(&globex, "examples/kv-counter", json!({"key": "k"}), None)
            .await
            .expect(403, "uninstalled");
    }
}

/// Installing a skill that calls others names the callees the tenant cannot invoke yet.
#[tokio::test]
async fn installing_a_composing_skill_names_its_missing_dependencies() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let (acme, globex) = (app.acme.key.clone(), app.globex.key.clone());
        for (example, wasm) in [
            ("text-stats", programs::TEXT_STATS),
            ("text-report", programs::TEXT_REPORT),
        ] {
            app.publish(&acme, &example_package(example, wasm, |m| m))
                .await
                .expect(201, example);
            app.call(
                Method::PUT,
                &format!("/api/v1/skills/examples/{example}"),
                Some(&acme),
                Some(json!({"visibility": "public"})),
            )
            .await
            .expect(200, "make public");
        }
        let install = |skill: &'static str| {
            app.call(
                Method::POST,
                "/api/v1/installations",
                Some(&globex),
                Some(json!({ "skill": skill })),
            )
        };
        let installed = install("examples/text-report").await;
        let installed = installed.expect(200, "install text-report");
        // markdown-to-text is not published at all; text-stats is public, not installed.
        assert_eq!(
            installed["missing_dependencies"],
            json!(["examples/markdown-to-text", "examples/text-stats"])
        );
        assert_eq!(
            installed["accepted_permissions"]["skills"]["examples/text-stats"],
            "^0.1"
        );
        let stats = install("examples/text-stats").await;
        assert_eq!(
            stats.expect(200, "install text-stats")["missing_dependencies"],
            json!([])
        );
        let again = install("examples/text-report").await;
        assert_eq!(
            again.expect(200, "install again")["missing_dependencies"],
            json!(["examples/markdown-to-text"])
        );
        // Invoked anyway, its first call reaches nothing, and that error passes through.
        let refused = app
            .invoke(
                &globex,
                "examples/text-report",
                json!({"markdown": "# Hi"}),
                None,
            )
            .await;
        let refused = refused.expect(422, "a callee the tenant cannot reach");
        assert_eq!(refused["kind"], "not-found", "{refused}");
    }
}
