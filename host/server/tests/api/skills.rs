//! Publishing, discovery, invocation, yanking, sharing between tenants, hostile skills,
//! quotas and upload limits, over HTTP against the real server, on both engines.

use std::io::Write;
use std::time::Duration;

use omniforge_test_programs as programs;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, all, example_package, guest_package, test_config};

fn hello(version: &str) -> Vec<u8> {
    example_package("hello", programs::HELLO, |m| {
        m.replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
    })
}

#[tokio::test]
async fn publish_find_invoke_yank_and_resolve_past_the_yank() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let key = app.acme.key.clone();
        let package = hello("0.1.0");

        let published = app.publish(&key, &package).await;
        let body = published.expect(201, "publish").clone();
        assert_eq!(body["name"], "examples/hello");
        assert_eq!(body["version"], "0.1.0");
        assert_eq!(body["visibility"], "private");
        let digest = body["digest"].as_str().unwrap().to_owned();
        assert_eq!(digest.len(), 64);

        // The same version again: 409, and nothing changes.
        let audit_before = app.count("audit_events").await;
        let blobs_before = app.blob_count();
        app.publish(&key, &package).await.expect(409, "republish");
        assert_eq!(app.count("skill_versions").await, 1);
        assert_eq!(app.count("audit_events").await, audit_before);
        assert_eq!(app.blob_count(), blobs_before);

        // Found by search, by prefix, by category; not by an unrelated word.
        for query in [
            "q=greets",
            "q=hel",
            "q=greeting%20example",
            "category=examples",
        ] {
            let page = app
                .call(
                    Method::GET,
                    &format!("/api/v1/skills?{query}"),
                    Some(&key),
                    None,
                )
                .await;
            let items = page.expect(200, query)["items"].as_array().unwrap().clone();
            assert_eq!(items.len(), 1, "{query}");
            assert_eq!(items[0]["full_name"], "examples/hello");
            assert_eq!(items[0]["latest_version"], "0.1.0");
            assert_eq!(items[0]["owned"], true);
        }
        for query in [
            "q=zebra",
            "category=finance",
            "permission=kv",
            "visibility=public",
        ] {
            let page = app
                .call(
                    Method::GET,
                    &format!("/api/v1/skills?{query}"),
                    Some(&key),
                    None,
                )
                .await;
            assert_eq!(page.expect(200, query)["items"], json!([]), "{query}");
        }
        app.call(Method::GET, "/api/v1/skills?sort=popular", Some(&key), None)
            .await
            .expect(400, "unknown sort");

        // Invoke, with the input checked against the schema first.
        let answer = app
            .invoke(&key, "examples/hello", json!({"name": "Ada"}), None)
            .await;
        let body = answer.expect(200, "invoke").clone();
        assert_eq!(body["output"], json!({"greeting": "Hello, Ada!"}));
        assert_eq!(body["version"], "0.1.0");
        assert!(body["usage"]["fuel"].as_u64().unwrap() > 0);
        let answer = app
            .invoke(&key, "examples/hello", json!({"name": 7}), None)
            .await;
        let problem = answer.expect(422, "schema").clone();
        assert_eq!(
            problem["type"],
            "https://omniforge.dev/problems/invalid-input"
        );
        assert_eq!(problem["pointer"], "/name");

        // A newer version wins; yanked, resolution skips it; unyanked, it is back.
        app.publish(&key, &hello("0.2.0"))
            .await
            .expect(201, "0.2.0");
        let run = |version: Option<&'static str>| {
            let app = &app;
            let key = key.clone();
            async move {
                app.invoke(&key, "examples/hello", json!({"name": "Bo"}), version)
                    .await
            }
        };
        assert_eq!(run(None).await.expect(200, "latest")["version"], "0.2.0");
        let yank = "/api/v1/skills/examples/hello/versions/0.2.0/yank";
        let yanked = app.call(Method::POST, yank, Some(&key), None).await;
        assert_eq!(yanked.expect(200, "yank")["yanked"], true);
        assert_eq!(
            run(None).await.expect(200, "after yank")["version"],
            "0.1.0"
        );
        assert_eq!(
            run(Some("^0.1")).await.expect(200, "^0.1")["version"],
            "0.1.0"
        );
        run(Some("=0.2.0"))
            .await
            .expect(404, "a yanked version is not resolved");
        run(Some("not semver")).await.expect(422, "bad requirement");
        let detail = app
            .call(
                Method::GET,
                "/api/v1/skills/examples/hello",
                Some(&key),
                None,
            )
            .await;
        let detail = detail.expect(200, "detail").clone();
        assert_eq!(detail["latest_version"], "0.1.0");
        assert_eq!(detail["versions"][0]["version"], "0.2.0");
        assert_eq!(detail["versions"][0]["yanked"], true);
        let unyank = "/api/v1/skills/examples/hello/versions/0.2.0/unyank";
        app.call(Method::POST, unyank, Some(&key), None)
            .await
            .expect(200, "unyank");
        assert_eq!(
            run(None).await.expect(200, "after unyank")["version"],
            "0.2.0"
        );

        // One version in full, and its package byte for byte.
        let version = app
            .call(
                Method::GET,
                "/api/v1/skills/examples/hello/versions/0.1.0",
                Some(&key),
                None,
            )
            .await;
        let version = version.expect(200, "version").clone();
        assert_eq!(version["package_sha256"], digest.as_str());
        assert_eq!(version["manifest"]["package"]["name"], "examples/hello");
        assert_eq!(version["input_schema"]["required"], json!(["name"]));
        let download = app
            .client
            .get(format!(
                "{}/api/v1/skills/examples/hello/versions/0.1.0/download",
                app.base
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 200);
        assert_eq!(download.headers()["content-type"], "application/zip");
        assert_eq!(download.bytes().await.unwrap().as_ref(), package.as_slice());
        let listed = app
            .call(
                Method::GET,
                "/api/v1/skills?sort=downloads",
                Some(&key),
                None,
            )
            .await;
        assert_eq!(
            listed.expect(200, "by downloads")["items"][0]["downloads"],
            1
        );

        // Changed, then deleted: gone for everyone, and publishing brings it back.
        let changed = app
            .call(
                Method::PUT,
                "/api/v1/skills/examples/hello",
                Some(&key),
                Some(json!({"description": "Says hello.", "categories": ["greetings"]})),
            )
            .await;
        assert_eq!(
            changed.expect(200, "update")["categories"],
            json!(["greetings"])
        );
        app.call(
            Method::DELETE,
            "/api/v1/skills/examples/hello",
            Some(&key),
            None,
        )
        .await
        .expect(204, "delete");
        app.call(
            Method::GET,
            "/api/v1/skills/examples/hello",
            Some(&key),
            None,
        )
        .await
        .expect(404, "deleted");
        run(None)
            .await
            .expect(404, "a deleted skill is not invoked");
        app.publish(&key, &hello("0.3.0"))
            .await
            .expect(201, "0.3.0");
        assert_eq!(run(None).await.expect(200, "restored")["version"], "0.3.0");
    }
}

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

#[tokio::test]
async fn hostile_skills_get_their_status_and_the_server_keeps_serving() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let key = app.acme.key.clone();
        let policy =
            json!({"max_fuel": 2_000_000_000u64, "max_memory_mb": 64, "max_timeout_ms": 5000});
        app.call(
            Method::PUT,
            &format!("/api/v1/tenants/{}/policy", app.acme.id),
            Some(&key),
            Some(policy),
        )
        .await
        .expect(200, "policy");
        app.publish(&key, &hello("0.1.0"))
            .await
            .expect(201, "hello");
        let guests = [
            (
                "spin-loop",
                programs::SPIN_LOOP,
                422,
                "limit-exceeded",
                Some("fuel"),
            ),
            (
                "memory-hog",
                programs::MEMORY_HOG,
                422,
                "limit-exceeded",
                Some("memory"),
            ),
            (
                "deep-recursion",
                programs::DEEP_RECURSION,
                502,
                "skill-trapped",
                None,
            ),
            ("panic", programs::PANIC, 502, "skill-trapped", None),
        ];
        for (name, wasm, ..) in guests {
            app.publish(&key, &guest_package(name, wasm))
                .await
                .expect(201, name);
        }
        let names: Vec<String> = guests
            .iter()
            .map(|(name, ..)| format!("acme-tests/{name}"))
            .collect();
        let hostile = futures_util::future::join_all(
            names
                .iter()
                .map(|name| app.invoke(&key, name, json!({}), None)),
        );
        let meanwhile = async {
            let mut served = 0;
            for _ in 0..20 {
                let answer = app
                    .invoke(&key, "examples/hello", json!({"name": "Ada"}), None)
                    .await;
                answer.expect(200, "hello meanwhile");
                served += 1;
            }
            served
        };
        let (answers, served) = tokio::join!(hostile, meanwhile);
        assert_eq!(served, 20);
        for ((name, _, status, kind, limit), answer) in guests.iter().zip(&answers) {
            let problem = answer.expect(*status, name);
            assert_eq!(
                problem["type"],
                format!("https://omniforge.dev/problems/{kind}"),
                "{name}"
            );
            if let Some(limit) = limit {
                assert_eq!(problem["limit"], *limit, "{name}");
            }
            assert!(problem["usage"].is_object(), "{name}: {problem}");
        }
        let usage = app
            .call(Method::GET, "/api/v1/usage", Some(&key), None)
            .await;
        let usage = usage.expect(200, "usage").clone();
        assert_eq!(usage["invocations"], 24);
        assert_eq!(usage["failures"], 4);
    }
}

#[tokio::test]
async fn quotas_are_exact_under_concurrency() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let key = app.acme.key.clone();
        app.publish(&key, &hello("0.1.0"))
            .await
            .expect(201, "hello");
        app.call(
            Method::PUT,
            &format!("/api/v1/tenants/{}/policy", app.acme.id),
            Some(&key),
            Some(json!({"max_invocations": 20, "quota_period": "day"})),
        )
        .await
        .expect(200, "policy");
        let answers = futures_util::future::join_all((0..50).map(|i| {
            app.invoke(
                &key,
                "examples/hello",
                json!({"name": format!("n{i}")}),
                None,
            )
        }))
        .await;
        let ok = answers.iter().filter(|a| a.status == 200).count();
        let refused: Vec<&Value> = answers
            .iter()
            .filter(|a| a.status == 429)
            .map(|a| &a.body)
            .collect();
        assert_eq!(ok, 20);
        assert_eq!(refused.len(), 30);
        assert!(refused.iter().all(|p| p["limit"] == "invocations"));
        let usage = app
            .call(Method::GET, "/api/v1/usage", Some(&key), None)
            .await;
        assert_eq!(usage.expect(200, "usage")["invocations"], 20);

        // The counters reach the database within the flush interval.
        let mut stored = 0;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stored = app.count("usage_counters").await;
            if stored > 0 {
                break;
            }
        }
        assert_eq!(stored, 1);
        assert!(app.dump("usage_counters").await.contains(&app.acme.id));
        // The quota is acme's alone.
        app.publish(&app.globex.key, &guest_package("panic", programs::PANIC))
            .await
            .expect(201, "globex publishes");
        app.invoke(&app.globex.key, "acme-tests/panic", json!({}), None)
            .await
            .expect(502, "globex is not limited by acme's quota");
    }
}

#[tokio::test]
async fn oversize_and_interrupted_uploads_leave_nothing_behind() {
    for db in all().await {
        let mut config = test_config(&db);
        config.skills.max_package_bytes = 4096;
        let app = TestApp::start_with(db, config).await;
        let key = app.acme.key.clone();
        let big = hello("0.1.0");
        assert!(big.len() > 4096);
        let answer = app.publish(&key, &big).await;
        assert_eq!(
            answer.expect(413, "oversize")["type"],
            "https://omniforge.dev/problems/package-too-large"
        );
        // Without a length up front, the stream is cut off at the limit.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            big.chunks(1024).map(|c| Ok(c.to_vec())).collect();
        let response = app
            .client
            .post(format!("{}/api/v1/skills", app.base))
            .bearer_auth(&key)
            .header("content-type", "application/zip")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413);

        // A body that stops half way: the connection drops, nothing is stored.
        let addr = app.base.trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "POST /api/v1/skills HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\n\
             content-type: application/zip\r\ncontent-length: 4000\r\n\r\n"
        )
        .unwrap();
        stream.write_all(&big[..1000]).unwrap();
        drop(stream);
        // The server sees the connection go; give it a moment to (not) store anything.
        tokio::time::sleep(Duration::from_millis(300)).await;

        // A package that is not one.
        let answer = app.publish(&key, b"PK\x03\x04 not really a zip").await;
        answer.expect(422, "garbage");
        let answer = app
            .client
            .post(format!("{}/api/v1/skills", app.base))
            .bearer_auth(&key)
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 415);

        assert_eq!(app.count("skills").await, 0);
        assert_eq!(app.count("skill_versions").await, 0);
        assert_eq!(app.count("namespaces").await, 0);
        assert_eq!(app.blob_count(), 0);
    }
}

#[tokio::test]
async fn a_bare_component_with_manifest_fields_is_published_as_a_package() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let manifest = "[package]\nname = \"acme-tools/hello\"\nversion = \"1.0.0\"\n\
                        description = \"Hello from a bare component\"\nlicense = \"MIT\"\n\n\
                        [skill]\nworld = \"tool\"\ncomponent = \"target/whatever.wasm\"\n";
        let form = reqwest::multipart::Form::new()
            .part(
                "wasm",
                reqwest::multipart::Part::bytes(programs::read(programs::HELLO))
                    .file_name("hello.wasm"),
            )
            .text("manifest", manifest)
            .text("readme", "# Hello\n");
        let response = app
            .client
            .post(format!("{}/api/v1/skills", app.base))
            .bearer_auth(&app.acme.key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let answer = crate::common::answer(response).await;
        assert_eq!(answer.expect(201, "bare wasm")["name"], "acme-tools/hello");
        let detail = app
            .call(
                Method::GET,
                "/api/v1/skills/acme-tools/hello",
                Some(&app.acme.key),
                None,
            )
            .await;
        assert_eq!(detail.expect(200, "detail")["readme"], "# Hello\n");
        let answer = app
            .invoke(
                &app.acme.key,
                "acme-tools/hello",
                json!({"name": "Cy"}),
                None,
            )
            .await;
        assert_eq!(
            answer.expect(200, "invoke")["output"]["greeting"],
            "Hello, Cy!"
        );
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_key_and_per_tenant() {
    for db in all().await {
        let mut config = test_config(&db);
        config.rate_limits.per_key_per_second = 1;
        config.rate_limits.per_key_burst = 3;
        config.rate_limits.per_tenant_per_second = 1;
        config.rate_limits.per_tenant_burst = 5;
        let app = TestApp::start_with(db, config).await;
        let me = |key: &str| {
            let key = key.to_owned();
            let app = &app;
            async move { app.call(Method::GET, "/api/v1/me", Some(&key), None).await }
        };
        // globex's key has not been used yet: 3 requests per key, 5 per tenant.
        let first = app.globex.key.clone();
        let created = app
            .call(
                Method::POST,
                "/api/v1/api-keys",
                Some(&first),
                Some(json!({"name": "second"})),
            )
            .await;
        let second = created.expect(201, "second key")["key"]
            .as_str()
            .unwrap()
            .to_owned();
        me(&first).await.expect(200, "first key, 2nd request");
        me(&first).await.expect(200, "first key, 3rd request");
        let refused = app
            .client
            .get(format!("{}/api/v1/me", app.base))
            .bearer_auth(&first)
            .send()
            .await
            .unwrap();
        let retry: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        let problem = crate::common::answer(refused).await;
        assert_eq!(problem.expect(429, "per key")["limit"], "api_key");

        // The second key has its own budget until the tenant's (5) is spent.
        me(&second).await.expect(200, "second key, 1st request");
        me(&second).await.expect(200, "second key, 2nd request");
        assert_eq!(
            me(&second).await.expect(429, "per tenant")["limit"],
            "tenant"
        );
        // Another tenant is not affected.
        me(&app.acme.key).await.expect(200, "acme");
    }
}
