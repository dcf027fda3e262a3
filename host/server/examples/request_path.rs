//! In-process cost of one REST invocation through the whole router — authentication, rate
//! limits, resolution, schema check, quota reservation, the sandbox, settlement, the JSON
//! answer — and of the invocation service alone beneath it, without sockets or a load generator sharing the cores. It separates what the
//! server adds on top of the runtime from what the network and kernel cost
//! (scripts/bench-invoke.sh measures the whole; docs/performance.md has both).
//!
//! The nested call's cost is (relay → hello) − (relay alone) − (hello alone), all through the
//! service: what calling through `omniforge:skill/skills` adds beyond running both skills.
//!
//! `cargo run --release -p omniforge-server --example request_path -- <hello.wasm> [seconds]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use omniforge_control::{Call, EntryPoint};
use omniforge_registry::{PackageLimits, pack_dir};
use omniforge_runtime::{Grants, InvocationContext, InvocationLimits, InvocationRequest, Outcome};
use omniforge_server::{App, Config, bootstrap, open_database, router};
use omniforge_store::TenantId;
use serde_json::value::RawValue;
use tower::ServiceExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let wasm = PathBuf::from(
        args.next()
            .ok_or("usage: request_path <hello.wasm> [seconds]")?,
    );
    let seconds: u64 = args.next().map_or(Ok(5), |s| s.parse())?;
    let data = tempfile::tempdir()?;

    let mut config = Config {
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    config.rate_limits.per_key_per_second = 10_000_000;
    config.rate_limits.per_key_burst = 10_000_000;
    config.rate_limits.per_tenant_per_second = 10_000_000;
    config.rate_limits.per_tenant_burst = 10_000_000;
    // Quotas on, so reservation and settlement are on the path.
    config.skills.default_policy.max_invocations = Some(1 << 40);
    config.skills.default_policy.max_total_fuel = Some(1 << 60);
    let db = open_database(&config).await?;
    let (_, key) = bootstrap(&db, "bench", "bench@example.com").await?;
    let app = App::new(config, db, omniforge_server::Workers::default())?;
    omniforge_control::meter::spawn_flusher(app.invocations.ledger(), Duration::from_millis(1_000));
    let router = router(Arc::clone(&app));

    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../example-skills/rust/hello");
    publish(&router, &key, &example, &wasm).await?;
    // The relay guest as `bench/relay`, granted `examples/hello`: A → B for the nested call.
    let relay_dir = data.path().join("relay");
    std::fs::create_dir_all(&relay_dir)?;
    std::fs::write(
        relay_dir.join("omniforge.toml"),
        "[package]\nname = \"bench/relay\"\nversion = \"1.0.0\"\ndescription = \"relay\"\n\
         license = \"MIT\"\n[skill]\nworld = \"skill\"\ncomponent = \"skill.wasm\"\n\
         [permissions]\nskills = { \"examples/hello\" = \"^0.1\" }\n",
    )?;
    publish(
        &router,
        &key,
        &relay_dir,
        &PathBuf::from(omniforge_test_programs::RELAY),
    )
    .await?;

    let bearer = format!("Bearer {key}");
    let (tenant, _) = app_tenant(&router, &bearer).await;
    let invoke = {
        let router = router.clone();
        move || {
            let request = Request::post("/api/v1/skills/examples/hello/invoke")
                .header(header::AUTHORIZATION, &bearer)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"input": {"name": "Ada"}}"#))
                .expect("a valid request");
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await.expect("infallible");
                let status = response.status();
                let body = to_bytes(response.into_body(), 1 << 20)
                    .await
                    .expect("a body");
                assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            }
        }
    };
    // Warm up: compile, fill the caches.
    for _ in 0..1_000 {
        invoke().await;
    }
    let resolved = app
        .invocations
        .catalog()
        .resolve(&tenant, &"examples/hello".parse().unwrap(), None)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let loaded = Arc::clone(&resolved.prepared.loaded);
    let runtime = Arc::clone(&app.runtime);
    let limits = InvocationLimits {
        fuel: Some(100_000_000),
        ..InvocationLimits::platform_default()
    };
    let run_only = {
        let tenant = tenant.clone();
        move || {
            let (runtime, loaded, tenant) =
                (Arc::clone(&runtime), Arc::clone(&loaded), tenant.clone());
            async move {
                let report = runtime
                    .invoke(
                        &loaded,
                        InvocationRequest {
                            context: InvocationContext {
                                tenant,
                                skill: "examples/hello".parse().unwrap(),
                                version: "0.1.0".into(),
                                request_id: "bench".into(),
                                trace_parent: None,
                            },
                            input: r#"{"name": "Ada"}"#.into(),
                            limits,
                            grants: Grants::default(),
                            callers: Vec::new(),
                            cancel: None,
                            task: None,
                        },
                    )
                    .await;
                assert!(matches!(report.outcome, Outcome::Ok { .. }));
            }
        }
    };

    let service = |skill: &'static str, input: &'static str| {
        let (invocations, tenant) = (Arc::clone(&app.invocations), tenant.clone());
        move || {
            let (invocations, tenant) = (Arc::clone(&invocations), tenant.clone());
            async move {
                let call = Call {
                    tenant,
                    skill: skill.parse().expect("a skill name"),
                    requirement: None,
                    input: RawValue::from_string(input.into()).expect("JSON"),
                    request_id: "bench".into(),
                    deadline: None,
                    entry: EntryPoint::Rest,
                    cancel: None,
                    task: None,
                };
                invocations.invoke(call).await.expect("the skill answers");
            }
        }
    };
    let health = {
        let router = router.clone();
        move || {
            let router = router.clone();
            async move {
                let request = Request::get("/healthz").body(Body::empty()).expect("valid");
                let response = router.oneshot(request).await.expect("infallible");
                assert_eq!(response.status(), StatusCode::OK);
                to_bytes(response.into_body(), 1 << 20)
                    .await
                    .expect("a body");
            }
        }
    };

    // One task on a worker thread, as a connection's task runs in the server: the latency
    // of each layer alone.
    latency("router only (GET /healthz)", seconds, health).await?;
    latency("runtime only (fresh instance + invoke)", seconds, run_only).await?;
    latency(
        "service (Invocations::invoke)",
        seconds,
        service("examples/hello", r#"{"name": "Ada"}"#),
    )
    .await?;
    latency(
        "service: relay alone (A, no call)",
        seconds,
        service("bench/relay", r#"{"chain": []}"#),
    )
    .await?;
    latency(
        "service: relay → hello (A → B)",
        seconds,
        service(
            "bench/relay",
            r#"{"chain": ["examples/hello"], "tail": {"name": "Ada"}}"#,
        ),
    )
    .await?;
    latency("whole path (POST …/invoke)", seconds, invoke.clone()).await?;

    // 32 tasks on both workers: throughput of the path on all cores.
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let invoke = invoke.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    invoke().await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    println!(
        "32 tasks:  {total} requests, {:.0} requests/s",
        total as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Packs the project `dir` with the component `wasm` and publishes it as `key`'s tenant.
async fn publish(
    router: &Router,
    key: &str,
    dir: &std::path::Path,
    wasm: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let (package, _) = pack_dir(dir, Some(wasm), &PackageLimits::default())?;
    let published = router
        .clone()
        .oneshot(
            Request::post("/api/v1/skills")
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/zip")
                .body(Body::from(package))?,
        )
        .await?;
    assert_eq!(
        published.status(),
        StatusCode::CREATED,
        "publishing {}",
        dir.display()
    );
    Ok(())
}

/// The caller's tenant, from `GET /api/v1/me`.
async fn app_tenant(router: &Router, bearer: &str) -> (TenantId, serde_json::Value) {
    let request = Request::get("/api/v1/me")
        .header(header::AUTHORIZATION, bearer)
        .body(Body::empty())
        .expect("a valid request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let body = to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    let me: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let id = me["tenant"]["id"].as_str().expect("a tenant id");
    (TenantId::new(id), me)
}

/// Runs `step` in a loop on one worker task for `seconds` and prints its latency.
async fn latency<F, Fut>(label: &str, seconds: u64, step: F) -> Result<(), tokio::task::JoinError>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut samples = tokio::spawn(async move {
        let mut samples = Vec::new();
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            let started = Instant::now();
            step().await;
            samples.push(started.elapsed());
        }
        samples
    })
    .await?;
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{label:<40} median {:6.1} µs  p99 {:6.1} µs  ({} runs)",
        at(0.5),
        at(0.99),
        samples.len()
    );
    Ok(())
}
