//! Publishing, discovery, invocation and yanking over HTTP against the real server, on both
//! engines; uploads that must leave nothing behind.

use std::io::Write;
use std::time::Duration;

use omniforge_test_programs as programs;
use reqwest::Method;
use serde_json::json;

use crate::common::{TestApp, all, hello_package as hello, test_config};

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
async fn an_output_that_breaks_its_schema_is_answered_502_invalid_output_not_delivered() {
    for db in all().await {
        let app = TestApp::start(db).await;
        // hello promises {"greeting": string}; this version also promises a "language".
        let package =
            crate::common::example_package("hello", omniforge_test_programs::HELLO, |m| {
                m.replace(
                    r#"output-schema = { type = "object", required = ["greeting"]"#,
                    r#"output-schema = { type = "object", required = ["greeting", "language"]"#,
                )
                .replace("version = \"0.1.0\"", "version = \"0.2.0\"")
            });
        app.publish(&app.acme.key, &crate::common::hello_package("0.1.0"))
            .await
            .expect(201, "a version whose output keeps its promise");
        app.publish(&app.acme.key, &package)
            .await
            .expect(201, "a version whose output breaks it");
        let kept = app
            .invoke(
                &app.acme.key,
                "examples/hello",
                json!({"name": "Ada"}),
                Some("=0.1.0"),
            )
            .await;
        assert_eq!(
            kept.expect(200, "kept")["output"]["greeting"],
            "Hello, Ada!"
        );
        let broken = app
            .invoke(
                &app.acme.key,
                "examples/hello",
                json!({"name": "Ada"}),
                Some("=0.2.0"),
            )
            .await;
        let problem = broken.expect(502, "broken");
        assert_eq!(
            problem["type"],
            "https://omniforge.dev/problems/invalid-output"
        );
        assert_eq!(problem["pointer"], "");
        assert!(
            problem["detail"].as_str().unwrap().contains("language"),
            "{problem}"
        );
        assert!(
            !problem.to_string().contains("Hello, Ada!"),
            "the output was delivered"
        );
        assert!(problem["usage"]["fuel"].as_u64().unwrap() > 0);
        // Charged as a failure.
        let mut failures = 0;
        for _ in 0..50 {
            let usage = app
                .call(
                    reqwest::Method::GET,
                    "/api/v1/usage",
                    Some(&app.acme.key),
                    None,
                )
                .await
                .expect(200, "usage")
                .clone();
            failures = usage["failures"].as_i64().unwrap();
            if failures > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(failures, 1);
    }
}
