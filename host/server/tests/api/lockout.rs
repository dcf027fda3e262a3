//! One client's failures and one tenant's administration never lock anyone else out: the
//! verified-key cache forgets only what a change concerns, failed authentications are
//! limited per client address and per key prefix, and valid credentials are never refused
//! for others' failures.

use reqwest::Method;
use serde_json::json;

use crate::common::{Answer, TestApp, all, answer, test_config};

/// `GET /api/v1/me` with `key`, as if from `client` behind the trusted proxy.
async fn me_from(app: &TestApp, key: &str, client: &str) -> Answer {
    answer(
        app.client
            .get(format!("{}/api/v1/me", app.base))
            .bearer_auth(key)
            .header("x-forwarded-for", client)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn unknown_key(n: usize) -> String {
    format!("ofk_{n:012x}_{}", "A".repeat(43))
}

#[tokio::test]
async fn another_tenants_role_changes_leave_a_key_working() {
    for db in all().await {
        // The defaults: 10 wrong secrets a minute per prefix. Before, every role change
        // anywhere sent every key back through argon2 and this limit.
        let app = TestApp::start(db).await;
        let bo = &app.globex.owner_id;
        let mut refused = Vec::new();
        for round in 0..60 {
            app.call(
                Method::PUT,
                &format!("/api/v1/users/{bo}/roles"),
                Some(&app.globex.key),
                Some(json!({"roles": ["owner"]})),
            )
            .await
            .expect(200, "globex's no-op role change");
            let answer = app
                .call(Method::GET, "/api/v1/me", Some(&app.acme.key), None)
                .await;
            if answer.status != 200 {
                refused.push((round, answer.status));
            }
        }
        assert!(refused.is_empty(), "acme's key was refused: {refused:?}");
    }
}

#[tokio::test]
async fn a_key_evicted_from_a_full_cache_is_verified_again_not_refused() {
    for db in all().await {
        let mut config = test_config(&db);
        // Two remembered keys for three in use: every use is a cache miss.
        config.auth.key_cache_capacity = Some(2);
        config.rate_limits.failed_key_verifications_per_minute = 2;
        let app = TestApp::start_with(db, config).await;
        let mut keys = Vec::new();
        for _ in 0..3 {
            keys.push(app.scoped_key(&["tenant:read"]).await.0);
        }
        for round in 0..8 {
            for key in &keys {
                app.call(Method::GET, "/api/v1/me", Some(key), None)
                    .await
                    .expect(200, &format!("round {round}"));
            }
        }
    }
}

#[tokio::test]
async fn a_flood_of_unknown_keys_is_limited_per_address_and_valid_keys_keep_working() {
    for db in all().await {
        let mut config = test_config(&db);
        // Five failures a minute: one is forgiven every 12 s, far longer than the test takes.
        config.rate_limits.failed_auth_per_minute = 5;
        config.http.client_address_header = Some("x-forwarded-for".into());
        config.http.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()];
        let app = TestApp::start_with(db, config).await;
        let attacker = "203.0.113.7";
        // acme's key is in use before the flood; a second one has never been used.
        me_from(&app, &app.acme.key, attacker)
            .await
            .expect(200, "before");
        let (cold, _) = app.scoped_key(&["tenant:read"]).await;

        let mut statuses = Vec::new();
        for n in 0..12 {
            statuses.push(
                me_from(&app, &unknown_key(n), attacker)
                    .await
                    .status
                    .as_u16(),
            );
        }
        assert!(statuses[..5].iter().all(|s| *s == 401), "{statuses:?}");
        assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
        let limited = app
            .client
            .get(format!("{}/api/v1/me", app.base))
            .bearer_auth(unknown_key(99))
            .header("x-forwarded-for", attacker)
            .send()
            .await
            .unwrap();
        let retry: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=24).contains(&retry), "{retry}");
        assert_eq!(
            answer(limited).await.expect(429, "flooding")["limit"],
            "failed_authentications"
        );
        // Valid credentials from the same address keep working, remembered or not.
        me_from(&app, &app.acme.key, attacker)
            .await
            .expect(200, "the key in use");
        me_from(&app, &cold, attacker)
            .await
            .expect(200, "a key never used before");
        let token = crate::common::hs256_token("acme", &app.acme.owner_id, json!({}));
        me_from(&app, &token, attacker).await.expect(200, "a token");
        // Other addresses have their own allowance.
        me_from(&app, &unknown_key(1), "198.51.100.9")
            .await
            .expect(401, "another address");
    }
}

#[tokio::test]
async fn a_prefix_flooded_with_wrong_secrets_refuses_only_the_failing_attempts() {
    for db in all().await {
        let mut config = test_config(&db);
        config.rate_limits.failed_key_verifications_per_minute = 3;
        config.rate_limits.failed_auth_per_minute = 5;
        config.http.client_address_header = Some("x-forwarded-for".into());
        config.http.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()];
        let app = TestApp::start_with(db, config).await;
        // A key nobody has used yet: its first use needs a verification.
        let (victim, _) = app.scoped_key(&["tenant:read"]).await;
        let prefix = &victim[..17];
        let wrong = |n: usize| format!("{prefix}{n:0>43}");
        let mut statuses = Vec::new();
        for n in 0..12 {
            let attacker = format!("203.0.113.{}", n % 2 + 1);
            statuses.push(me_from(&app, &wrong(n), &attacker).await.status.as_u16());
        }
        assert!(statuses[..3].iter().all(|s| *s == 401), "{statuses:?}");
        assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
        // The valid key works from anywhere else while its prefix is flooded.
        me_from(&app, &victim, "198.51.100.20")
            .await
            .expect(200, "the flooded prefix's own key");
        me_from(&app, &wrong(50), "203.0.113.1")
            .await
            .expect(429, "the flood goes on being refused");
        me_from(&app, &victim, "198.51.100.21")
            .await
            .expect(200, "still");
    }
}
