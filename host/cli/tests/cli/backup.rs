//! scripts/backup.sh as an operator runs it: back up a live server, destroy its database and
//! blobs, restore, start again, and find the same data: skills that still run, tasks, keys
//! that still authenticate, secrets, the audit trail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use crate::tasks::{Api, Backend, start};

const HELLO_SCHEMA: &str = "input-schema = { type = \"object\", properties = { name = { type = \
                            \"string\" } }, required = [\"name\"] }";

/// The secrets key the server runs with: a restore needs the same one.
const SECRETS_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/backup.sh")
}

/// Runs the script with the server's variables; its stdout.
fn backup(action: &str, target: &Path, envs: &[(&str, &str)]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args([action, target.to_str().unwrap()])
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "backup.sh {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the tenant sees, minus what a fresh process may answer differently.
async fn snapshot(api: &Api) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        "/api/v1/skills",
        "/api/v1/tasks?limit=100",
        "/api/v1/api-keys",
        "/api/v1/secrets",
        "/api/v1/audit-events?limit=200",
    ] {
        let mut body = api.expect("GET", path, None, 200).await;
        // Keys record when they were last used; the snapshot itself uses one.
        if let Some(items) = body["items"].as_array_mut() {
            for item in items {
                if let Some(item) = item.as_object_mut() {
                    item.remove("last_used_at_ms");
                }
            }
        }
        seen.push(body);
    }
    seen
}

fn round_trip(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("omniforge-data");
    let mut envs = vec![
        ("OMNIFORGE_SECRETS_KEY", SECRETS_KEY),
        ("OMNIFORGE_DATA_DIR", data_dir.to_str().unwrap()),
    ];
    envs.extend(backend.envs());
    let (mut server, cli) = start(dir.path(), backend, &envs);
    cli.publish_wasm(&cli.key, "acme/hello", programs::HELLO, HELLO_SCHEMA, "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    let (before, second_key) = runtime.block_on(async {
        let task = api
            .submit(json!({"skill": "acme/hello", "input": {"name": "Ada"}}))
            .await;
        let done = api
            .ended(task["id"].as_str().unwrap(), Duration::from_secs(60))
            .await;
        assert_eq!(done["state"], "completed", "{done}");
        api.expect(
            "PUT",
            "/api/v1/secrets/api-token",
            Some(json!({"value": "kept-across-restores"})),
            201,
        )
        .await;
        let created = api
            .expect("POST", "/api/v1/api-keys", Some(json!({"name": "ci"})), 201)
            .await;
        (
            snapshot(&api).await,
            created["key"].as_str().unwrap().to_owned(),
        )
    });

    // Backed up while the server runs.
    let target = dir.path().join("backup");
    let said = backup("create", &target, &envs);
    assert!(said.contains("and the blobs"), "{said}");
    assert!(server.terminate().success());

    // Everything lost: the database and the data directory.
    std::fs::remove_dir_all(&data_dir).unwrap();
    if let Backend::Postgres(db) = backend {
        let dropped = Command::new("psql")
            .args([
                &db.url,
                "-q",
                "-c",
                "DROP SCHEMA public CASCADE; CREATE SCHEMA public;",
            ])
            .output()
            .unwrap();
        assert!(
            dropped.status.success(),
            "{}",
            String::from_utf8_lossy(&dropped.stderr)
        );
    }

    // A restore refuses what is not a backup, then restores this one.
    let bogus = Command::new("bash")
        .arg(script())
        .args(["restore", dir.path().to_str().unwrap()])
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(!bogus.status.success());
    backup("restore", &target, &envs);

    let mut server_envs = envs.clone();
    server_envs.push(("OMNIFORGE_LOG_FORMAT", "json"));
    let restarted = crate::server::serve_in(dir.path(), &server_envs);
    let url = format!("http://127.0.0.1:{}", restarted.port);
    runtime.block_on(async {
        let api = Api::new(&url, &cli.key);
        assert_eq!(snapshot(&api).await, before, "the same data");
        // The skill runs: its component came back with the blobs.
        let invoked = api
            .expect(
                "POST",
                "/api/v1/skills/acme/hello/invoke",
                Some(json!({"input": {"name": "Bo"}})),
                200,
            )
            .await;
        assert_eq!(invoked["output"], json!({"greeting": "Hello, Bo!"}));
        // A key created before the backup still authenticates.
        Api::new(&url, &second_key)
            .expect("GET", "/api/v1/me", None, 200)
            .await;
    });
}

#[test]
fn a_backup_restores_a_destroyed_sqlite_installation() {
    round_trip(&Backend::Sqlite);
}

#[test]
fn a_backup_restores_a_destroyed_postgres_installation() {
    if let Some(backend) = Backend::postgres() {
        round_trip(&backend);
    }
}
