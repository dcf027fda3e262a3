//! JWT bearer tokens: HS256, RS256 from a PEM file and from a JWKS served over real HTTP,
//! and the attacks they must resist (alg none, algorithm confusion, bad claims).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use omniforge_server::config::JwtConfig;
use reqwest::Method;
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::LineEnding;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::common::{AUDIENCE, ISSUER, TestApp, all, hs256_token, now_ms, test_config};

#[tokio::test]
async fn hs256_tokens_authenticate_and_their_claims_are_checked() {
    for db in all().await {
        let app = TestApp::start(db).await;
        let me = |token: String| {
            let app = &app;
            async move {
                app.call(Method::GET, "/api/v1/me", Some(&token), None)
                    .await
            }
        };
        let ok = me(hs256_token("acme", "ada@acme.test", json!({}))).await;
        assert_eq!(
            ok.expect(200, "by email").get("credential").unwrap(),
            "token"
        );
        me(hs256_token(&app.acme.id, &app.acme.owner_id, json!({})))
            .await
            .expect(200, "by ids");
        let narrowed = me(hs256_token(
            "acme",
            "ada@acme.test",
            json!({"scope": "openid skill:read"}),
        ))
        .await;
        assert_eq!(
            narrowed.expect(200, "scoped").get("permissions").unwrap(),
            &json!(["skill:read"])
        );

        let now = now_ms() / 1000;
        for (claims, what) in [
            (json!({"exp": now - 10}), "expired"),
            (json!({"nbf": now + 600}), "not yet valid"),
            (json!({"aud": "someone-else"}), "wrong audience"),
            (json!({"iss": "https://evil.test"}), "wrong issuer"),
            (json!({"iss": null}), "no issuer"),
            (json!({"exp": null}), "no expiry"),
            (json!({"tenant": null}), "no tenant"),
            (json!({"sub": "nobody@acme.test"}), "unknown user"),
            (json!({"tenant": "globex"}), "user of another tenant"),
        ] {
            me(hs256_token("acme", "ada@acme.test", claims))
                .await
                .expect(401, what);
        }

        // alg none: a valid-looking payload with no signature.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(
            json!({"sub": "ada@acme.test", "tenant": "acme", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60})
                .to_string(),
        );
        me(format!("{header}.{payload}."))
            .await
            .expect(401, "alg none");
    }
}

fn jwks_of(key: &rsa::RsaPublicKey, kid: &str) -> Value {
    json!({"keys": [{
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    }]})
}

fn rs256(private: &rsa::RsaPrivateKey, kid: Option<&str>, claims: Value) -> String {
    let pem = private.to_pkcs1_pem(LineEnding::LF).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn rs256_tokens_from_a_pem_or_a_jwks_and_no_algorithm_confusion() {
    let mut rng = rsa::rand_core::OsRng;
    let idp = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let file_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let stranger = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();

    // The identity provider's JWKS, over real HTTP.
    let jwks = jwks_of(&idp.to_public_key(), "idp-1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let router = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        axum::serve(listener, router).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("public.pem");
    let public_pem = file_key
        .to_public_key()
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(&pem_path, &public_pem).unwrap();

    for db in all().await {
        let mut config = test_config(&db);
        config.auth.jwt = Some(JwtConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            hs256_secret: None,
            rs256_public_key_file: Some(pem_path.clone()),
            jwks_url: Some(jwks_url.clone()),
            tenant_claim: "tenant".into(),
            leeway_secs: 0,
            jwks_ttl_secs: 600,
        });
        let app = TestApp::start_with(db, config).await;
        let now = now_ms() / 1000;
        let claims = json!({"sub": "ada@acme.test", "tenant": "acme", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60});
        let me = |token: String| {
            let app = &app;
            async move {
                app.call(Method::GET, "/api/v1/me", Some(&token), None)
                    .await
            }
        };
        me(rs256(&idp, Some("idp-1"), claims.clone()))
            .await
            .expect(200, "JWKS key");
        me(rs256(&file_key, None, claims.clone()))
            .await
            .expect(200, "PEM key");
        me(rs256(&stranger, Some("idp-1"), claims.clone()))
            .await
            .expect(401, "wrong key, known kid");
        me(rs256(&stranger, Some("idp-9"), claims.clone()))
            .await
            .expect(401, "unknown kid");
        me(rs256(&stranger, None, claims.clone()))
            .await
            .expect(401, "wrong key, no kid");
        // Algorithm confusion: HS256 signed with the RSA public key as the HMAC secret.
        let confused = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(public_pem.as_bytes()),
        )
        .unwrap();
        me(confused)
            .await
            .expect(401, "HS256 with the public key as secret");
    }
}

/// An identity provider that answers its first JWKS request at once and every later one
/// only when the test says so: a provider that has become slow.
struct SlowIdp {
    url: String,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    release: std::sync::Arc<tokio::sync::Semaphore>,
}

async fn slow_idp(jwks: Value) -> SlowIdp {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fetches = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let (counter, gate) = (Arc::clone(&fetches), Arc::clone(&release));
    tokio::spawn(async move {
        let router = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (jwks, counter, gate) = (jwks.clone(), Arc::clone(&counter), Arc::clone(&gate));
                async move {
                    if counter.fetch_add(1, Ordering::SeqCst) > 0 {
                        let _slow = gate.acquire().await.unwrap();
                    }
                    axum::Json(jwks)
                }
            }),
        );
        axum::serve(listener, router).await.unwrap();
    });
    SlowIdp {
        url,
        fetches,
        release,
    }
}

#[tokio::test]
async fn a_slow_identity_provider_delays_no_token_whose_key_is_known() {
    use std::sync::atomic::Ordering;
    let mut rng = rsa::rand_core::OsRng;
    let idp_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    for db in all().await {
        let idp = slow_idp(jwks_of(&idp_key.to_public_key(), "idp-1")).await;
        let mut config = test_config(&db);
        config.auth.jwt = Some(JwtConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            hs256_secret: None,
            rs256_public_key_file: None,
            jwks_url: Some(idp.url.clone()),
            tenant_claim: "tenant".into(),
            leeway_secs: 0,
            // Keys grow old at once: every later token asks for a refresh.
            jwks_ttl_secs: 0,
        });
        let app = TestApp::start_with(db, config).await;
        let now = now_ms() / 1000;
        let token = rs256(
            &idp_key,
            Some("idp-1"),
            json!({"sub": "ada@acme.test", "tenant": "acme", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60}),
        );
        let me = || app.call(Method::GET, "/api/v1/me", Some(&token), None);
        me().await.expect(200, "the first token fetches the keys");
        // The keys are old now: the next token starts a refresh, which hangs at the provider.
        // Meanwhile tokens signed with a known key keep working (before, every RS256 login
        // waited on the refresh's lock).
        for n in 0..20 {
            let answer = tokio::time::timeout(std::time::Duration::from_secs(5), me())
                .await
                .unwrap_or_else(|_| panic!("request {n} waited for the provider"));
            answer.expect(200, "a known key during a slow refresh");
        }
        // Exactly one refresh is in flight, however many tokens saw old keys.
        for _ in 0..100 {
            if idp.fetches.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            idp.fetches.load(Ordering::SeqCst),
            2,
            "refreshes are single-flight"
        );
        idp.release.add_permits(100);
    }
}
