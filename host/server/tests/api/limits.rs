//! Limits over HTTP: hostile skills get their documented status while the server keeps
//! serving, quotas are exact under concurrency, rate limits answer 429 with Retry-After.

use std::time::Duration;

use omniforge_test_programs as programs;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, all, guest_package, hello_package as hello, test_config};

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
async fn an_invocation_whose_caller_hangs_up_finishes_and_is_charged() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let key = app.acme.key.clone();
        let fuel = 50_000_000_000u64;
        let set_policy = |timeout_ms: u64| {
            let policy =
                json!({"max_fuel": fuel, "max_timeout_ms": timeout_ms, "max_concurrency": 1});
            let path = format!("/api/v1/tenants/{}/policy", app.acme.id);
            let key = key.clone();
            let app = &app;
            async move {
                app.call(Method::PUT, &path, Some(&key), Some(policy))
                    .await
                    .expect(200, "policy");
            }
        };
        app.publish(&key, &guest_package("spin-loop", programs::SPIN_LOOP))
            .await
            .expect(201, "spin-loop");
        app.publish(&key, &hello("0.1.0"))
            .await
            .expect(201, "hello");
        // Loaded first (a short run that times out), so the hang-up below lands while the
        // guest runs, not while its component is still being compiled.
        set_policy(100).await;
        app.invoke(&key, "acme-tests/spin-loop", json!({}), None)
            .await
            .expect(504, "warm-up run");
        set_policy(1_500).await;

        // The skill spins until its 1.5 s limit; its caller gives up after 300 ms.
        let hung_up = app
            .client
            .post(format!(
                "{}/api/v1/skills/acme-tests/spin-loop/invoke",
                app.base
            ))
            .bearer_auth(&key)
            .json(&json!({"input": {}}))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(hung_up.is_err_and(|e| e.is_timeout()));

        // The guest runs on to its limit: with a concurrency of one, hello is refused until
        // then, and served after.
        assert_eq!(
            app.invoke(&key, "examples/hello", json!({"name": "Ada"}), None)
                .await
                .expect(429, "the abandoned invocation still runs")["limit"],
            "concurrency"
        );
        let mut served = false;
        for _ in 0..100 {
            let answer = app
                .invoke(&key, "examples/hello", json!({"name": "Ada"}), None)
                .await;
            if answer.status == 200 {
                served = true;
                break;
            }
            assert_eq!(answer.expect(429, "slot taken")["limit"], "concurrency");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(served, "the abandoned invocation never ended");

        // Hanging up saved nothing: the invocation is charged the fuel it burned.
        let usage = app
            .call(Method::GET, "/api/v1/usage", Some(&key), None)
            .await;
        let usage = usage.expect(200, "usage");
        assert_eq!(usage["invocations"], 3, "{usage}");
        assert_eq!(usage["failures"], 2, "{usage}");
        assert!(usage["fuel"].as_u64().unwrap() > 1_000_000, "{usage}");
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
        let (retry, problem) = me_refused(&app, &first).await;
        assert!((1..=2).contains(&retry), "{retry}");
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

#[tokio::test]
async fn guessing_a_known_keys_secret_is_limited_per_prefix() {
    for db in all().await {
        let mut config = test_config(&db);
        config.rate_limits.failed_key_verifications_per_minute = 3;
        let app = TestApp::start_with(db, config).await;
        let me = |key: String| {
            let app = &app;
            async move { app.call(Method::GET, "/api/v1/me", Some(&key), None).await }
        };
        // acme's key is in use (verified once, then answered from memory); its successful
        // verification does not count against its prefix.
        me(app.acme.key.clone()).await.expect(200, "acme's key");
        let prefix = &app.acme.key[..17];
        let guess = |n: usize| format!("{prefix}{n:0>43}");
        for n in 0..3 {
            me(guess(n)).await.expect(401, "a wrong secret");
        }
        let (retry, problem) = me_refused(&app, &guess(3)).await;
        assert!((1..=20).contains(&retry), "{retry}");
        assert_eq!(
            problem.expect(429, "a guess past the limit")["limit"],
            "api_key_verifications"
        );
        // The key in use still works, and other keys' prefixes have their own allowance.
        me(app.acme.key.clone())
            .await
            .expect(200, "acme's key, still");
        let globex_prefix = &app.globex.key[..17];
        me(format!("{globex_prefix}{}", "A".repeat(43)))
            .await
            .expect(401, "a wrong secret for another prefix");
        me(app.globex.key.clone()).await.expect(200, "globex's key");
        // Unknown prefixes are refused without a verification and never limited.
        for _ in 0..5 {
            me(format!("ofk_000000000000_{}", "A".repeat(43)))
                .await
                .expect(401, "an unknown prefix");
        }
    }
}

/// `GET /api/v1/me` with `key`, answered with its `Retry-After` seconds and problem document.
async fn me_refused(app: &TestApp, key: &str) -> (u64, crate::common::Answer) {
    let refused = app
        .client
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let retry = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (retry, crate::common::answer(refused).await)
}

#[tokio::test]
async fn an_operators_raised_platform_maximum_is_the_one_in_force() {
    for db in all().await {
        let mut config = test_config(&db);
        // Above the runtime's built-in 512 MiB, which used to clamp it silently.
        config.skills.platform_max.memory_mb = 1024;
        config.skills.default_policy.max_memory_mb = 1024;
        let app = TestApp::start_with(db, config).await;
        app.publish(
            &app.acme.key,
            &guest_package("memory-hog", programs::MEMORY_HOG),
        )
        .await
        .expect(201, "publish");
        let held = app
            .invoke(
                &app.acme.key,
                "acme-tests/memory-hog",
                json!({"mib": 700}),
                None,
            )
            .await;
        assert_eq!(
            held.expect(200, "700 MiB under a 1024 MiB maximum")["output"]["held_bytes"],
            700 << 20
        );
        let refused = app
            .invoke(&app.acme.key, "acme-tests/memory-hog", json!({}), None)
            .await;
        assert_eq!(
            refused.expect(422, "past the maximum")["limit_value"],
            1024_u64 << 20
        );
    }
}
