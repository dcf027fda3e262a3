//! `TestApp`: the real server on port 0 over a fresh database, with two tenants: `acme`
//! (bootstrapped; its owner is the platform admin) and `globex` (created over the API).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use omniforge_server::config::{JwtConfig, Secret};
use omniforge_server::{Config, Server};
pub use omniforge_store::testing::{TestDatabase, all};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const JWT_SECRET: &str = "an-hs256-secret-for-tests-only-0123456789";
pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "omniforge-tests";

/// One tenant's handles.
pub struct TenantHandle {
    pub id: String,
    pub owner_id: String,
    pub key: String,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub acme: TenantHandle,
    pub globex: TenantHandle,
    /// The server's data directory (blobs).
    pub data: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// A JSON answer.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// Asserts the status and, for errors, that the body is a problem document.
    pub fn expect(&self, status: u16, context: &str) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{context}: {}",
            serde_json::to_string_pretty(&self.body).unwrap()
        );
        if status >= 400 {
            assert_eq!(self.content_type, "application/problem+json", "{context}");
            assert_eq!(self.body["status"], status, "{context}");
            assert!(self.body["type"].as_str().is_some(), "{context}");
        }
        &self.body
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The default test configuration: port 0, the test database, HS256 tokens.
pub fn test_config(db: &TestDatabase) -> Config {
    let mut config = Config::load_with_env(None, |_| None).unwrap();
    config.listen = "127.0.0.1:0".into();
    config.database_url = Some(Secret::new(db.url.clone()));
    config.auth.jwt = Some(JwtConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        hs256_secret: Some(Secret::new(JWT_SECRET)),
        rs256_public_key_file: None,
        jwks_url: None,
        tenant_claim: "tenant".into(),
        leeway_secs: 0,
        jwks_ttl_secs: 600,
    });
    config
}

impl TestApp {
    pub async fn start(db: TestDatabase) -> Self {
        let config = test_config(&db);
        Self::start_with(db, config).await
    }

    pub async fn start_with(db: TestDatabase, config: Config) -> Self {
        Self::start_with_workers(db, config, omniforge_server::Workers::default()).await
    }

    /// The server with its own compiler or validator.
    pub async fn start_with_workers(
        db: TestDatabase,
        mut config: Config,
        workers: omniforge_server::Workers,
    ) -> Self {
        let data = tempfile::tempdir().unwrap();
        config.data_dir = data.path().to_owned();
        // Compiled components are shared by every test (content-addressed, written
        // atomically), so each component compiles once per run, not once per test; a test
        // about compiling gives its own directory.
        config
            .skills
            .artifact_cache_dir
            .get_or_insert_with(|| std::env::temp_dir().join("omniforge-test-artifacts"));
        db.db.migrate().await.unwrap();
        let (created, acme_key) = omniforge_server::bootstrap(&db.db, "acme", "ada@acme.test")
            .await
            .unwrap();
        let server = Server::start_with(config, workers)
            .await
            .expect("the server starts");
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let mut app = Self {
            base,
            client,
            db,
            acme: TenantHandle {
                id: created.tenant.id.to_string(),
                owner_id: created.owner.id.to_string(),
                key: acme_key,
            },
            globex: TenantHandle {
                id: String::new(),
                owner_id: String::new(),
                key: String::new(),
            },
            data,
            shutdown: Some(stop),
        };
        let body = app
            .call(
                Method::POST,
                "/api/v1/tenants",
                Some(&app.acme.key),
                Some(json!({"slug": "globex", "name": "Globex", "owner_email": "bo@globex.test"})),
            )
            .await
            .expect(201, "create globex")
            .clone();
        app.globex.id = body["tenant"]["id"].as_str().unwrap().into();
        app.globex.owner_id = body["owner"]["id"].as_str().unwrap().into();
        app.globex.key = body["owner_api_key"]["key"].as_str().unwrap().into();
        app
    }

    /// Sends a request with an optional bearer credential and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.unwrap()).await
    }

    /// A new API key of the acme owner, limited to `scopes`.
    pub async fn scoped_key(&self, scopes: &[&str]) -> (String, String) {
        let body = self
            .call(
                Method::POST,
                "/api/v1/api-keys",
                Some(&self.acme.key),
                Some(json!({"name": "scoped", "scopes": scopes})),
            )
            .await
            .expect(201, "create a scoped key")
            .clone();
        (
            body["key"].as_str().unwrap().to_owned(),
            body["api_key"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Runs one SQL statement on the test database (to age a key, say).
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.db.db {
            omniforge_store::Database::Sqlite(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
            omniforge_store::Database::Postgres(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
        }
    }

    /// Every text column of a table, concatenated per row.
    pub async fn dump(&self, table: &str) -> String {
        let sql = sqlx::AssertSqlSafe(format!("SELECT * FROM {table}"));
        macro_rules! text_rows {
            ($pool:expr) => {{
                use sqlx::Row;
                let rows = sqlx::query(sql).fetch_all($pool).await.unwrap();
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.try_get::<String, _>(i).unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect::<Vec<String>>()
            }};
        }
        let rows = match &self.db.db {
            omniforge_store::Database::Sqlite(pool) => text_rows!(pool),
            omniforge_store::Database::Postgres(pool) => text_rows!(pool),
        };
        rows.join("\n")
    }
}

impl TestApp {
    /// The number of rows of a table.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"));
        match &self.db.db {
            omniforge_store::Database::Sqlite(pool) => {
                sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
            }
            omniforge_store::Database::Postgres(pool) => {
                sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
            }
        }
    }

    /// Uploads a package as `application/zip`.
    pub async fn publish(&self, key: &str, package: &[u8]) -> Answer {
        let response = self
            .client
            .post(format!("{}/api/v1/skills", self.base))
            .bearer_auth(key)
            .header("content-type", "application/zip")
            .body(package.to_vec())
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// Invokes `skill` (`ns/name`) with `input`, and a version requirement if given.
    pub async fn invoke(
        &self,
        key: &str,
        skill: &str,
        input: Value,
        version: Option<&str>,
    ) -> Answer {
        let mut body = json!({ "input": input });
        if let Some(version) = version {
            body["version"] = json!(version);
        }
        self.call(
            Method::POST,
            &format!("/api/v1/skills/{skill}/invoke"),
            Some(key),
            Some(body),
        )
        .await
    }

    /// Files in the server's blob store.
    pub fn blob_count(&self) -> usize {
        fn walk(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() { walk(&path) } else { 1 }
                    })
                    .sum()
            })
        }
        walk(&self.data.path().join("blobs"))
    }
}

/// A package of the Rust example skill `example` (a directory of `EXAMPLES_DIR`) with its
/// built component, the manifest edited by `edit` (e.g. to change the version).
pub fn example_package(example: &str, wasm: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    let dir = std::path::Path::new(omniforge_test_programs::EXAMPLES_DIR).join(example);
    let manifest = std::fs::read_to_string(dir.join("omniforge.toml")).unwrap();
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        "omniforge.toml".to_owned(),
        edit(manifest)
            .replace(&component_line(&dir), "component = \"skill.wasm\"")
            .into_bytes(),
    );
    files.insert("skill.wasm".to_owned(), omniforge_test_programs::read(wasm));
    if let Ok(readme) = std::fs::read(dir.join("README.md")) {
        files.insert("README.md".to_owned(), readme);
    }
    // Schemas the manifest names by file.
    if let Ok(schemas) = std::fs::read_dir(dir.join("schemas")) {
        for schema in schemas {
            let schema = schema.unwrap();
            let name = format!("schemas/{}", schema.file_name().to_string_lossy());
            files.insert(name, std::fs::read(schema.path()).unwrap());
        }
    }
    omniforge_registry::write_archive(&files)
}

fn component_line(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("omniforge.toml"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("component"))
        .unwrap()
        .to_owned()
}

/// The `hello` example packaged as `version`.
pub fn hello_package(version: &str) -> Vec<u8> {
    example_package("hello", omniforge_test_programs::HELLO, |m| {
        m.replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
    })
}

/// A package of a test guest (a `tool` world component) named `acme-tests/<name>`.
pub fn guest_package(name: &str, wasm: &str) -> Vec<u8> {
    guest_package_named("acme-tests", name, wasm)
}

/// A package of a test guest (a `tool` world component) named `<namespace>/<name>`.
pub fn guest_package_named(namespace: &str, name: &str, wasm: &str) -> Vec<u8> {
    let manifest = format!(
        "[package]\nname = \"{namespace}/{name}\"\nversion = \"1.0.0\"\n\
         description = \"Hostile test guest {name}\"\nlicense = \"Apache-2.0\"\n\n\
         [skill]\nworld = \"tool\"\n"
    );
    let mut files = std::collections::BTreeMap::new();
    files.insert("omniforge.toml".to_owned(), manifest.into_bytes());
    files.insert("skill.wasm".to_owned(), omniforge_test_programs::read(wasm));
    omniforge_registry::write_archive(&files)
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        body,
    }
}

/// An HS256 token for `subject` in `tenant`, with `extra` claims merged over the defaults.
pub fn hs256_token(tenant: &str, subject: &str, extra: Value) -> String {
    let now = now_ms() / 1000;
    let mut claims = json!({
        "sub": subject, "tenant": tenant, "iss": ISSUER, "aud": AUDIENCE,
        "iat": now, "exp": now + 300,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}
