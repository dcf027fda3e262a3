//! Tenant secrets against the real binary: set through the API, read by a published skill
//! (`secret-reader`, which answers a value's length and hash, never the value), kept apart
//! per tenant and per declared name, re-sealed by `omniforge admin rotate-secrets-key` and
//! read again under the new key; then every place a value must never reach is searched for
//! it. The environment, file and AWS Secrets Manager providers (the last against moto's
//! server) serve the same skill.

use std::path::Path;
use std::time::Duration;

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use crate::examples::ServerCli;
use crate::server::{Running, http, serve_in};
use crate::services::Moto;
use crate::{bootstrap_env, ok, omniforge_env};

/// The reader's manifest: two names declared.
const READER: &str = "[permissions]\nsecrets = [\"api-token\", \"db-password\"]\n";

/// What `secret-reader` answers for a value: its length and FNV-1a hash.
fn digest_of(value: &str) -> Value {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    json!({ "len": value.len(), "fnv1a": format!("{hash:016x}") })
}

/// A value no log line or test fixture holds by chance.
fn fresh_value(label: &str) -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{label}-{hex}")
}

/// Every answer a test saw, searched for values at the end.
#[derive(Default)]
struct Seen(String);

impl Seen {
    fn call(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        key: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let (status, text) = http(port, method, path, Some(key), body);
        self.0.push_str(&text);
        self.0.push('\n');
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
        };
        (status, value)
    }

    fn put(&mut self, port: u16, key: &str, name: &str, value: &str) -> (u16, Value) {
        let body = json!({ "value": value }).to_string();
        self.call(
            port,
            "PUT",
            &format!("/api/v1/secrets/{name}"),
            key,
            Some(&body),
        )
    }

    fn read(&mut self, port: u16, key: &str, skill: &str, names: &[&str]) -> Value {
        let body = json!({ "input": { "names": names } }).to_string();
        let path = format!("/api/v1/skills/{skill}/invoke");
        let (status, answer) = self.call(port, "POST", &path, key, Some(&body));
        assert_eq!(status, 200, "{answer}");
        answer["output"].clone()
    }
}

fn tenant_id(port: u16, key: &str) -> String {
    let (status, me) = http(port, "GET", "/api/v1/me", Some(key), None);
    assert_eq!(status, 200, "{me}");
    serde_json::from_str::<Value>(&me).unwrap()["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn generate_key(dir: &Path) -> String {
    let out = omniforge_env(dir, &["admin", "generate-secrets-key"], &[]);
    ok(&out, "generate-secrets-key").trim().to_owned()
}

#[test]
fn secrets_are_set_read_by_their_tenants_skills_rotated_and_never_shown() {
    let (otlp_port, exports) = crate::traces::receiver();
    let dir = tempfile::tempdir().unwrap();
    let (first_key, second_key) = (generate_key(dir.path()), generate_key(dir.path()));
    assert_ne!(first_key, second_key);
    let endpoint = format!("http://127.0.0.1:{otlp_port}");
    let common = [
        ("OMNIFORGE_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OMNIFORGE_LOG_FORMAT", "json"),
        ("OMNIFORGE_LOG", "debug"),
    ];
    let with_key = |key: &str| {
        let mut envs: Vec<(&str, String)> =
            common.iter().map(|(k, v)| (*k, v.to_string())).collect();
        envs.push(("OMNIFORGE_SECRETS_KEY", key.to_owned()));
        envs
    };
    let envs = with_key(&first_key);
    let borrowed: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut server, cli) = ServerCli::start_with(dir.path(), &borrowed);
    let other = bootstrap_env(dir.path(), "other", "bob@other.test", &borrowed);
    cli.publish_wasm(&cli.key, "acme/reader", programs::SECRET_READER, "", READER);
    cli.publish_wasm(&other, "other/reader", programs::SECRET_READER, "", READER);
    let port = server.port;
    let mut seen = Seen::default();
    let (first, acme_value, other_value) = (
        fresh_value("first"),
        fresh_value("acme"),
        fresh_value("other"),
    );

    // Set, then change: 201 then 200, the version counting.
    let (status, created) = seen.put(port, &cli.key, "api-token", &first);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);
    let (status, changed) = seen.put(port, &cli.key, "api-token", &acme_value);
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["version"], 2);
    // The other tenant's secret of the same name is its own.
    let (status, _) = seen.put(port, &other, "api-token", &other_value);
    assert_eq!(status, 201);
    // Bad names and oversized values are refused, naming no value.
    let (status, _) = seen.put(port, &cli.key, ".hidden", "x");
    assert_eq!(status, 422);
    let (status, large) = seen.put(port, &cli.key, "big", &"x".repeat(70_000));
    assert_eq!(status, 422, "{large}");

    let read = |seen: &mut Seen, key: &str, skill: &str| {
        seen.read(
            port,
            key,
            skill,
            &["api-token", "db-password", "undeclared"],
        )
    };
    let acme_reads = read(&mut seen, &cli.key, "acme/reader");
    assert_eq!(
        acme_reads["api-token"],
        digest_of(&acme_value),
        "{acme_reads}"
    );
    assert_eq!(
        acme_reads["db-password"]["error"], "not-found",
        "{acme_reads}"
    );
    assert_eq!(acme_reads["undeclared"]["error"], "denied", "{acme_reads}");
    let other_reads = read(&mut seen, &other, "other/reader");
    assert_eq!(
        other_reads["api-token"],
        digest_of(&other_value),
        "{other_reads}"
    );
    // A careless skill logs the value, writes it to stderr and fails with it: the host masks
    // it in all three (the logs are searched below).
    let careless = json!({ "input": { "names": ["api-token"], "careless": true } }).to_string();
    let (status, failed) = seen.call(
        port,
        "POST",
        "/api/v1/skills/acme/reader/invoke",
        &cli.key,
        Some(&careless),
    );
    assert_eq!(status, 422, "{failed}");
    assert!(
        failed["detail"]
            .as_str()
            .is_some_and(|d| d.contains("failed holding [secret]")),
        "{failed}"
    );

    // Listings show names and metadata; a tenant lists only its own.
    let (status, listed) = seen.call(port, "GET", "/api/v1/secrets", &cli.key, None);
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["name"], "api-token");
    assert_eq!(listed["items"][0]["version"], 2);
    // A deleted secret is not-found to the skill; deleting it again is 404.
    let (status, _) = seen.put(port, &other, "db-password", "temporary");
    assert_eq!(status, 201);
    let (status, _) = seen.call(port, "DELETE", "/api/v1/secrets/db-password", &other, None);
    assert_eq!(status, 204);
    let (status, _) = seen.call(port, "DELETE", "/api/v1/secrets/db-password", &other, None);
    assert_eq!(status, 404);

    let acme_id = tenant_id(port, &cli.key);
    let (status, _) = seen.call(
        port,
        "GET",
        &format!("/api/v1/tenants/{acme_id}/export"),
        &cli.key,
        None,
    );
    assert_eq!(status, 200);
    let (status, audit) = seen.call(
        port,
        "GET",
        "/api/v1/audit-events?limit=200",
        &cli.key,
        None,
    );
    assert_eq!(status, 200);
    let sets = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "secret.set")
        .count();
    assert_eq!(sets, 2, "{audit}");
    server.terminate();
    let mut logs = server.logs();

    // Rotation: the new key current, the old one previous; a second run has nothing to do.
    let rotate_env = [
        ("OMNIFORGE_SECRETS_KEY", second_key.as_str()),
        ("OMNIFORGE_SECRETS_PREVIOUS_KEY", first_key.as_str()),
    ];
    let rotated = omniforge_env(dir.path(), &["admin", "rotate-secrets-key"], &rotate_env);
    let rotated_text = ok(&rotated, "rotate-secrets-key") + &crate::stderr(&rotated);
    assert!(
        rotated_text.contains("re-sealed 2 secrets"),
        "{rotated_text}"
    );
    let again = omniforge_env(dir.path(), &["admin", "rotate-secrets-key"], &rotate_env);
    let again_text = crate::stderr(&again);
    assert!(again_text.contains("re-sealed 0 secrets"), "{again_text}");

    // Under the new key alone, the same values are read again.
    let envs = with_key(&second_key);
    let borrowed: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = serve_in(dir.path(), &borrowed);
    let port = server.port;
    let acme_reads = seen.read(port, &cli.key, "acme/reader", &["api-token"]);
    assert_eq!(
        acme_reads["api-token"],
        digest_of(&acme_value),
        "{acme_reads}"
    );
    let other_reads = seen.read(port, &other, "other/reader", &["api-token", "db-password"]);
    assert_eq!(
        other_reads["api-token"],
        digest_of(&other_value),
        "{other_reads}"
    );
    assert_eq!(other_reads["db-password"]["error"], "not-found");
    server.terminate();
    logs.push_str(&server.logs());

    // Under the old key alone, the skill is told the store cannot be read, not a value.
    let envs = with_key(&first_key);
    let borrowed: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = serve_in(dir.path(), &borrowed);
    let stale = seen.read(server.port, &cli.key, "acme/reader", &["api-token"]);
    assert_eq!(stale["api-token"]["error"], "unavailable", "{stale}");
    server.terminate();
    logs.push_str(&server.logs());
    assert!(
        logs.contains("does not have"),
        "the log names the missing key: {logs}"
    );

    // Nowhere: logs, traces, answers (audit events, the export, errors), CLI output, the
    // database and its write-ahead log.
    std::thread::sleep(Duration::from_millis(300));
    let traces: Vec<u8> = exports.lock().unwrap().concat();
    assert!(!traces.is_empty(), "the exporter sent spans");
    let mut database = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("omniforge-data")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("omniforge.db") {
            database.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(database.len() > 4096, "the database files were read");
    // Each place is really searched: what it must hold besides values is found in it.
    let holds =
        |text: &[u8], marker: &str| text.windows(marker.len()).any(|w| w == marker.as_bytes());
    assert!(holds(logs.as_bytes(), "acme/reader"), "logs: {logs}");
    assert!(
        holds(logs.as_bytes(), "the value is [secret]!"),
        "the masked log line: {logs}"
    );
    assert!(
        holds(seen.0.as_bytes(), "secret.set"),
        "the audit events were read"
    );
    assert!(
        holds(seen.0.as_bytes(), "db-password"),
        "the answers were kept"
    );
    assert!(holds(&traces, "acme/reader"), "the spans name the skill");
    assert!(
        holds(&database, "api-token"),
        "the database holds the names"
    );
    for value in [&first, &acme_value, &other_value] {
        for (place, text) in [
            ("logs", logs.as_bytes()),
            ("answers", seen.0.as_bytes()),
            ("cli output", rotated_text.as_bytes()),
            ("traces", &traces),
            ("database", &database),
        ] {
            assert!(
                !text.windows(value.len()).any(|w| w == value.as_bytes()),
                "a secret value appears in the {place}"
            );
        }
    }
}

/// Starts the server on `dir` with `envs`, checks what the tenant of `key` reads, lists and
/// may not set, and stops it.
fn provider_serves(dir: &Path, envs: &[(&str, &str)], key: &str, provider: &str, value: &str) {
    let mut server: Running = serve_in(dir, envs);
    let port = server.port;
    let mut seen = Seen::default();
    let reads = seen.read(
        port,
        key,
        "acme/reader",
        &["api-token", "db-password", "undeclared"],
    );
    assert_eq!(reads["api-token"], digest_of(value), "{provider}: {reads}");
    assert_eq!(
        reads["db-password"]["error"], "not-found",
        "{provider}: {reads}"
    );
    assert_eq!(
        reads["undeclared"]["error"], "denied",
        "{provider}: {reads}"
    );
    let (status, listed) = seen.call(port, "GET", "/api/v1/secrets", key, None);
    assert_eq!(status, 200, "{provider}: {listed}");
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-token"], "{provider}");
    let (status, refused) = seen.put(port, key, "api-token", "new");
    assert_eq!(status, 409, "{provider}: {refused}");
    assert_eq!(refused["provider"], provider);
    server.terminate();
    assert!(
        !server.logs().contains(value),
        "{provider}: the value appears in the logs"
    );
}

#[test]
fn the_environment_files_and_aws_providers_serve_the_same_skill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, cli) = ServerCli::start(dir.path());
    cli.publish_wasm(&cli.key, "acme/reader", programs::SECRET_READER, "", READER);
    let acme = tenant_id(server.port, &cli.key);
    server.terminate();

    let value = fresh_value("env");
    let variable = format!("OMNIFORGE_SECRET__{acme}__api-token");
    // Another tenant's variable of the same name is never read as acme's.
    let others = "OMNIFORGE_SECRET__ten_someoneelse__db-password";
    provider_serves(
        dir.path(),
        &[
            ("OMNIFORGE_SECRETS_PROVIDER", "env"),
            (&variable, &value),
            (others, "not-acme"),
        ],
        &cli.key,
        "env",
        &value,
    );

    let value = fresh_value("file");
    let mounted = dir.path().join("mounted");
    std::fs::create_dir_all(mounted.join(&acme)).unwrap();
    std::fs::write(mounted.join(&acme).join("api-token"), format!("{value}\n")).unwrap();
    std::fs::create_dir_all(mounted.join("ten_someoneelse")).unwrap();
    std::fs::write(mounted.join("ten_someoneelse/db-password"), "not-acme").unwrap();
    provider_serves(
        dir.path(),
        &[
            ("OMNIFORGE_SECRETS_PROVIDER", "files"),
            ("OMNIFORGE_SECRETS_DIR", mounted.to_str().unwrap()),
        ],
        &cli.key,
        "files",
        &value,
    );

    let moto = Moto::start();
    let value = fresh_value("aws");
    moto.create_secret(&format!("omniforge/{acme}/api-token"), &value);
    moto.create_secret("omniforge/ten_someoneelse/db-password", "not-acme");
    provider_serves(
        dir.path(),
        &[
            ("OMNIFORGE_SECRETS_PROVIDER", "aws"),
            ("OMNIFORGE_SECRETS_AWS_ENDPOINT", &moto.endpoint),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
        &cli.key,
        "aws",
        &value,
    );
}
