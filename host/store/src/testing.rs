//! Test support (feature `testing`): a fresh database per test, for each backend.
//!
//! PostgreSQL tests run when `OMNIFORGE_TEST_DATABASE_URL` names a server whose user may
//! create databases; each test gets its own database, dropped afterwards. Without the
//! variable they are skipped loudly, except under `CI=true`, where that is a failure.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Database;

/// Notes a skipped test where `./scripts/test.sh` reads it (the file named by
/// `OMNIFORGE_TEST_SKIPS`), so its summary says what was skipped and why.
pub fn record_skip(what: &str, why: &str) {
    use std::io::Write as _;
    if let Some(path) = std::env::var_os("OMNIFORGE_TEST_SKIPS")
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(file, "{what}: {why}");
    }
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    /// An open pool.
    pub db: Database,
    postgres_cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres_cleanup.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on another thread removes the database.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(Database::Postgres(pool)) = Database::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                    }
                });
            }
        })
        .join();
    }
}

/// A fresh SQLite database in a temporary directory that does not exist yet.
pub async fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/omniforge.db", dir.path().display());
    let db = Database::connect(&url).await.expect("SQLite opens");
    TestDatabase {
        url,
        db,
        postgres_cleanup: None,
        _dir: Some(dir),
    }
}

/// A fresh PostgreSQL database, or `None` (with a loud message) when no server is configured
/// outside CI.
pub async fn postgres() -> Option<TestDatabase> {
    let Ok(admin_url) = std::env::var("OMNIFORGE_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "OMNIFORGE_TEST_DATABASE_URL must be set under CI: the PostgreSQL tests cannot be skipped"
        );
        eprintln!("SKIPPING PostgreSQL tests: OMNIFORGE_TEST_DATABASE_URL is not set");
        record_skip(
            "the PostgreSQL half of a storage or API test",
            "OMNIFORGE_TEST_DATABASE_URL is not set and no PostgreSQL answered at 127.0.0.1:5432",
        );
        return None;
    };
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "omniforge_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let Database::Postgres(admin) = Database::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("OMNIFORGE_TEST_DATABASE_URL is set but unusable: {e}"))
    else {
        panic!("OMNIFORGE_TEST_DATABASE_URL must be a postgres:// URL");
    };
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&admin)
        .await
        .expect("the test user may create databases");
    admin.close().await;
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url.as_str(), String::new()),
    };
    let (server, _) = base.rsplit_once('/').expect("the URL names a database");
    let url = format!("{server}/{name}{query}");
    let db = Database::connect(&url)
        .await
        .expect("the new database opens");
    Some(TestDatabase {
        url,
        db,
        postgres_cleanup: Some((admin_url, name)),
        _dir: None,
    })
}

/// Every backend available to this run.
pub async fn all() -> Vec<TestDatabase> {
    let mut dbs = vec![sqlite().await];
    dbs.extend(postgres().await);
    dbs
}

/// The shared Redis of the test machine (`OMNIFORGE_TEST_REDIS_URL`), or `None` (with a loud
/// message) outside CI. Tests give their keys a prefix of their own and never stop it; a test
/// that stops Redis starts its own `redis-server`.
pub fn redis_url() -> Option<String> {
    if let Ok(url) = std::env::var("OMNIFORGE_TEST_REDIS_URL") {
        return Some(url);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "OMNIFORGE_TEST_REDIS_URL must be set under CI: the Redis tests cannot be skipped"
    );
    eprintln!("SKIPPING Redis tests: OMNIFORGE_TEST_REDIS_URL is not set");
    record_skip(
        "a test of limits shared through Redis",
        "OMNIFORGE_TEST_REDIS_URL is not set and no Redis answered at 127.0.0.1:6379",
    );
    None
}

/// A key prefix no other test run uses.
pub fn unique_prefix(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "test-{what}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
