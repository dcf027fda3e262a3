//! Several `omniforge serve` replicas as an operator runs them behind a load balancer: one
//! PostgreSQL database, one Redis and one S3-compatible store (moto's server), each replica
//! with a data directory of its own, requests spread round-robin. And Redis stopped under
//! load, in both failure modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use crate::examples::ServerCli;
use crate::server::{Running, serve_in};
use crate::services::{Moto, RedisServer};
use crate::tasks::{Api, Backend, Reply};

const HELLO_SCHEMA: &str = "input-schema = { type = \"object\", properties = { name = { type = \
                            \"string\" } }, required = [\"name\"] }";

/// Requests per second and burst of each tenant, across the deployment: low enough that a
/// loaded CI machine still offers several times as much.
const TENANT_RATE: f64 = 50.0;
const TENANT_BURST: f64 = 10.0;

/// Replicas of one deployment and a client of each.
struct Deployment {
    replicas: Vec<Running>,
    urls: Vec<String>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Deployment {
    fn api(&self, replica: usize, key: &str) -> Api {
        Api::new(&self.urls[replica % self.urls.len()], key)
    }

    /// Task invocations each replica logged.
    fn task_runs(&self) -> Vec<usize> {
        self.replicas
            .iter()
            .map(|r| {
                r.logs()
                    .lines()
                    .filter(|l| {
                        l.contains("invocation finished") && l.contains("\"entry\":\"task\"")
                    })
                    .count()
            })
            .collect()
    }
}

/// `method path` on `api`, waiting out the tenant's rate limit (429 `limit: tenant`) so that
/// what comes back is the answer of the route itself.
async fn past_rate_limit(api: &Api, method: &str, path: &str, body: Option<Value>) -> Reply {
    loop {
        let reply = api.call(method, path, body.clone(), &[]).await;
        if reply.status == 429 && reply.body["limit"] == "tenant" {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        return reply;
    }
}

#[test]
fn three_replicas_share_rate_limits_quotas_changes_tasks_and_blobs() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let redis = RedisServer::start();
    let moto = Moto::start();
    moto.create_bucket("omniforge-blobs");
    let root = tempfile::tempdir().unwrap();
    // Caches trust what they hold for ten minutes: whatever another replica sees sooner came
    // through the shared change feed.
    let config = root.path().join("omniforge.toml");
    std::fs::write(
        &config,
        "[skills]\nmetadata_recheck_ms = 600000\n[auth]\napi_key_recheck_ms = 600000\n",
    )
    .unwrap();
    let (rate, burst) = (TENANT_RATE.to_string(), TENANT_BURST.to_string());
    let mut envs = backend.envs();
    envs.extend(moto.blob_envs("omniforge-blobs"));
    envs.extend([
        ("OMNIFORGE_REDIS_URL", redis.url.as_str()),
        ("OMNIFORGE_CONFIG", config.to_str().unwrap()),
        ("OMNIFORGE_RATE_PER_KEY_PER_SECOND", "0"),
        ("OMNIFORGE_RATE_PER_TENANT_PER_SECOND", rate.as_str()),
        ("OMNIFORGE_RATE_PER_TENANT_BURST", burst.as_str()),
        ("OMNIFORGE_TASK_WORKERS", "2"),
        ("OMNIFORGE_TASK_SWEEP_MS", "200"),
        ("OMNIFORGE_LOG_FORMAT", "json"),
    ]);
    let acme = crate::bootstrap_env(root.path(), "acme", "ada@acme.test", &envs);
    let globex = crate::bootstrap_env(root.path(), "globex", "gil@globex.test", &envs);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let replicas: Vec<Running> = dirs.iter().map(|d| serve_in(d.path(), &envs)).collect();
    let deployment = Deployment {
        urls: replicas
            .iter()
            .map(|r| format!("http://127.0.0.1:{}", r.port))
            .collect(),
        replicas,
        _dirs: dirs,
    };

    // Published through the first replica; the others have never seen the bytes.
    let first = |key: &str| ServerCli {
        dir: root.path().to_owned(),
        url: deployment.urls[0].clone(),
        key: key.to_owned(),
    };
    first(&acme).publish_wasm(&acme, "acme/hello", programs::HELLO, HELLO_SCHEMA, "");
    first(&globex).publish_wasm(&globex, "globex/hello", programs::HELLO, HELLO_SCHEMA, "");
    let objects = moto.objects("omniforge-blobs");
    assert!(
        objects.len() >= 2 && objects.iter().all(|o| o.starts_with("sha256/")),
        "the package and its component are objects named by digest: {objects:?}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let hello = |name: &str| Some(json!({"input": {"name": name}}));
        // Served by the replicas that did not store it: from object storage.
        for replica in 1..3 {
            let reply = past_rate_limit(
                &deployment.api(replica, &acme),
                "POST",
                "/api/v1/skills/acme/hello/invoke",
                hello("Ada"),
            )
            .await;
            assert_eq!(reply.status, 200, "replica {replica}: {}", reply.body);
        }
        for dir in &deployment._dirs {
            let local = dir.path().join("blobs");
            assert!(
                !local.exists(),
                "no blob on local disk: {}",
                local.display()
            );
        }

        rate_limit_holds_across_replicas(&deployment, &acme).await;
        quota_is_exact_across_replicas(&deployment, &acme, &globex).await;
        revocations_and_yanks_reach_every_replica(&deployment, &acme).await;

        // Tasks submitted anywhere run once, somewhere.
        let before: usize = deployment.task_runs().iter().sum();
        let mut ids = Vec::new();
        for i in 0..30 {
            let body = json!({"skill": "globex/hello", "input": {"name": format!("T{i}")}});
            let reply = past_rate_limit(
                &deployment.api(i, &globex),
                "POST",
                "/api/v1/tasks",
                Some(body),
            )
            .await;
            assert_eq!(reply.status, 202, "{}", reply.body);
            ids.push(reply.body["id"].as_str().unwrap().to_owned());
        }
        for (i, id) in ids.iter().enumerate() {
            let api = deployment.api(i + 1, &globex);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let task = past_rate_limit(&api, "GET", &format!("/api/v1/tasks/{id}"), None).await;
                if task.body["state"] == "completed" {
                    assert_eq!(task.body["attempts"], 1, "{}", task.body);
                    break;
                }
                assert!(
                    Instant::now() < deadline && task.body["state"] != "failed",
                    "{}",
                    task.body
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let runs = deployment.task_runs();
        assert_eq!(
            runs.iter().sum::<usize>() - before,
            30,
            "each ran once: {runs:?}"
        );
    });
}

/// Sixteen clients (keep-alive connections to every replica) hammer the three replicas for
/// three seconds: the tenant gets its burst plus its rate, not three times that.
async fn rate_limit_holds_across_replicas(deployment: &Deployment, key: &str) {
    // Let the bucket fill up after the requests before.
    tokio::time::sleep(Duration::from_secs_f64(TENANT_BURST / TENANT_RATE + 0.2)).await;
    let admitted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let run_for = Duration::from_secs(3);
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let apis: Vec<Api> = deployment
                .urls
                .iter()
                .map(|url| Api::new(url, key))
                .collect();
            let (admitted, refused) = (Arc::clone(&admitted), Arc::clone(&refused));
            tokio::spawn(async move {
                let mut n = client;
                while started.elapsed() < run_for {
                    // Round-robin over the replicas, as a load balancer would.
                    let api = &apis[n % apis.len()];
                    n += 1;
                    let reply = api.call("GET", "/api/v1/me", None, &[]).await;
                    match reply.status {
                        200 => admitted.fetch_add(1, Ordering::Relaxed),
                        429 => refused.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected {other}: {}", reply.body),
                    };
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    // Requests were sent for `run_for`; the last ones were answered by `elapsed`. The limit
    // allows burst + rate × the time admissions were decided in, which lies in between.
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = admitted.load(Ordering::Relaxed) as f64;
    let at_least = TENANT_BURST + TENANT_RATE * run_for.as_secs_f64();
    let at_most = TENANT_BURST + TENANT_RATE * elapsed;
    let refused = refused.load(Ordering::Relaxed);
    assert!(
        refused as f64 > at_most,
        "the clients asked for well over the limit: {refused} refused, {admitted} admitted"
    );
    assert!(
        admitted >= at_least * 0.95 && admitted <= at_most * 1.05,
        "admitted {admitted} in {elapsed:.2} s across three replicas; the limit allows \
         {at_least:.0} to {at_most:.0} (one replica's limit times three would be {:.0})",
        at_least * 3.0
    );
}

/// A quota of 25 invocations, asked for 60 times at once through all replicas: exactly 25.
async fn quota_is_exact_across_replicas(deployment: &Deployment, admin: &str, key: &str) {
    let admin_api = deployment.api(0, admin);
    let me = past_rate_limit(&deployment.api(0, key), "GET", "/api/v1/me", None).await;
    let policy_path = format!(
        "/api/v1/tenants/{}/policy",
        me.body["tenant"]["id"].as_str().unwrap()
    );
    let mut policy = past_rate_limit(&admin_api, "GET", &policy_path, None)
        .await
        .body;
    policy["max_invocations"] = json!(25);
    let set = past_rate_limit(&admin_api, "PUT", &policy_path, Some(policy)).await;
    assert_eq!(set.status, 200, "{}", set.body);

    let calls: Vec<_> = (0..60)
        .map(|i| {
            let api = deployment.api(i, key);
            tokio::spawn(async move {
                past_rate_limit(
                    &api,
                    "POST",
                    "/api/v1/skills/globex/hello/invoke",
                    Some(json!({"input": {"name": format!("Q{i}")}})),
                )
                .await
            })
        })
        .collect();
    let (mut ok, mut over) = (0, 0);
    for call in calls {
        let reply = call.await.unwrap();
        match (reply.status, reply.body["limit"].as_str()) {
            (200, _) => ok += 1,
            (429, Some("invocations")) => over += 1,
            (status, _) => panic!("unexpected {status}: {}", reply.body),
        }
    }
    assert_eq!(
        (ok, over),
        (25, 35),
        "exactly the quota, across three replicas"
    );

    // Lifted again for the tasks that follow.
    let mut policy = past_rate_limit(&admin_api, "GET", &policy_path, None)
        .await
        .body;
    policy["max_invocations"] = Value::Null;
    let set = past_rate_limit(&admin_api, "PUT", &policy_path, Some(policy)).await;
    assert_eq!(set.status, 200, "{}", set.body);
}

/// Waits until `refused` holds for the answer of `method path` on `api`; how long it took.
async fn until_refused(api: &Api, method: &str, path: &str, body: Option<Value>) -> Duration {
    let started = Instant::now();
    loop {
        let reply = past_rate_limit(api, method, path, body.clone()).await;
        if reply.status != 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still served: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A key revoked and a version yanked on one replica are refused by the others within a
/// second, although their caches would trust what they hold for ten minutes.
async fn revocations_and_yanks_reach_every_replica(deployment: &Deployment, key: &str) {
    let created = past_rate_limit(
        &deployment.api(0, key),
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "short-lived"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let second = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["api_key"]["id"].as_str().unwrap().to_owned();
    let invoke = "/api/v1/skills/acme/hello/invoke";
    let input = Some(json!({"input": {"name": "Cy"}}));
    // Both other replicas now hold the key and the skill in their caches.
    for replica in 1..3 {
        let reply = past_rate_limit(
            &deployment.api(replica, &second),
            "POST",
            invoke,
            input.clone(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    let revoked = past_rate_limit(
        &deployment.api(0, key),
        "DELETE",
        &format!("/api/v1/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    for replica in 1..3 {
        let took =
            until_refused(&deployment.api(replica, &second), "GET", "/api/v1/me", None).await;
        assert!(
            took < Duration::from_secs(1),
            "replica {replica} took {took:?}"
        );
    }

    let yanked = past_rate_limit(
        &deployment.api(0, key),
        "POST",
        "/api/v1/skills/acme/hello/versions/1.0.0/yank",
        None,
    )
    .await;
    assert_eq!(yanked.status, 200, "{}", yanked.body);
    for replica in 1..3 {
        let took =
            until_refused(&deployment.api(replica, key), "POST", invoke, input.clone()).await;
        assert!(
            took < Duration::from_secs(1),
            "replica {replica} took {took:?}"
        );
    }
}

/// What one server answered while Redis went away and came back.
#[derive(Default)]
struct Tally {
    ok: usize,
    unavailable: usize,
    other: Vec<String>,
}

#[test]
fn redis_stopped_under_load_keeps_each_failure_mode_and_nothing_crashes() {
    let mut redis = RedisServer::start();
    let servers: Vec<_> = ["open", "closed"]
        .into_iter()
        .map(|mode| {
            let dir = tempfile::tempdir().unwrap();
            let envs = [
                ("OMNIFORGE_REDIS_URL", redis.url.as_str()),
                ("OMNIFORGE_REDIS_FAILURE_MODE", mode),
                ("OMNIFORGE_REDIS_TIMEOUT_MS", "200"),
                ("OMNIFORGE_RATE_PER_TENANT_PER_SECOND", "100000"),
            ];
            let (server, cli) = ServerCli::start_with(dir.path(), &envs);
            cli.publish_wasm(&cli.key, "acme/hello", programs::HELLO, HELLO_SCHEMA, "");
            (mode, dir, server, cli)
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // A quota, so that every invocation reserves through Redis.
        for (_, _, _, cli) in &servers {
            let api = Api::new(&cli.url, &cli.key);
            let me = api.expect("GET", "/api/v1/me", None, 200).await;
            let path = format!(
                "/api/v1/tenants/{}/policy",
                me["tenant"]["id"].as_str().unwrap()
            );
            let mut policy = api.expect("GET", &path, None, 200).await;
            policy["max_invocations"] = json!(1_000_000);
            api.expect("PUT", &path, Some(policy), 200).await;
        }
        let phase = |label: &'static str, for_how_long: Duration| {
            let clients: Vec<_> = servers
                .iter()
                .flat_map(|(mode, _, _, cli)| {
                    (0..3).map(move |_| (*mode, Api::new(&cli.url, &cli.key)))
                })
                .map(|(mode, api)| {
                    tokio::spawn(async move {
                        let mut tally = Tally::default();
                        let started = Instant::now();
                        while started.elapsed() < for_how_long {
                            let reply = api
                                .call(
                                    "POST",
                                    "/api/v1/skills/acme/hello/invoke",
                                    Some(json!({"input": {"name": "Load"}})),
                                    &[],
                                )
                                .await;
                            match (reply.status, reply.body["type"].as_str()) {
                                (200, _) => tally.ok += 1,
                                (503, Some(t)) if t.ends_with("limits-unavailable") => {
                                    tally.unavailable += 1
                                }
                                (status, _) => {
                                    tally.other.push(format!("{label} {status} {}", reply.body))
                                }
                            }
                        }
                        (mode, tally)
                    })
                })
                .collect();
            async move {
                let mut by_mode: Vec<(&str, Tally)> = Vec::new();
                for client in clients {
                    let (mode, tally) = client.await.unwrap();
                    match by_mode.iter_mut().find(|(m, _)| *m == mode) {
                        Some((_, total)) => {
                            total.ok += tally.ok;
                            total.unavailable += tally.unavailable;
                            total.other.extend(tally.other);
                        }
                        None => by_mode.push((mode, tally)),
                    }
                }
                by_mode
            }
        };

        let before = phase("before", Duration::from_millis(800)).await;
        for (mode, tally) in &before {
            assert!(
                tally.ok > 0 && tally.unavailable == 0,
                "{mode}: {:?}",
                tally.other
            );
        }

        // Stopped while the load runs.
        let during = phase("during", Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.stop();
        let during = during.await;
        for (mode, tally) in &during {
            assert!(tally.other.is_empty(), "{mode}: {:?}", tally.other);
            match *mode {
                "open" => assert_eq!(tally.unavailable, 0, "open keeps serving"),
                _ => assert!(
                    tally.unavailable > 0,
                    "closed refuses with 503 limits-unavailable ({} ok)",
                    tally.ok
                ),
            }
        }
        // The closed one refuses from the first failure until Redis is back.
        let api = Api::new(&servers[1].3.url, &servers[1].3.key);
        let refused = api
            .call(
                "POST",
                "/api/v1/skills/acme/hello/invoke",
                Some(json!({"input": {"name": "X"}})),
                &[],
            )
            .await;
        assert_eq!(refused.status, 503, "{}", refused.body);

        redis.resume();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reply = api
                .call(
                    "POST",
                    "/api/v1/skills/acme/hello/invoke",
                    Some(json!({"input": {"name": "Y"}})),
                    &[],
                )
                .await;
            if reply.status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "not back: {}", reply.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let after = phase("after", Duration::from_millis(800)).await;
        for (mode, tally) in &after {
            assert!(
                tally.ok > 0 && tally.other.is_empty(),
                "{mode}: {:?}",
                tally.other
            );
        }
    });
    for (mode, _, server, _) in &servers {
        let alive = std::process::Command::new("kill")
            .args(["-0", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(alive.success(), "the {mode} server is still running");
        let logs = server.logs();
        assert!(
            logs.contains("redis is unreachable"),
            "{mode}: the outage is logged"
        );
        assert!(!logs.contains("panicked"), "{mode}: {logs}");
    }
    // Redis holds the counters again (the quota was reloaded from the database).
    assert!(
        redis
            .cli(&["--scan", "--pattern", "omniforge:quota:*"])
            .contains(":used")
    );
}
