//! Connecting to SQLite or PostgreSQL.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::error::StoreError;

/// Runs `$body` with `$pool` bound to the backend's pool. The body is written once and
/// compiled once per backend: queries use `$1`-style placeholders, which both SQLite and
/// PostgreSQL accept, and rows decode through `sqlx::FromRow` types valid for both.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::database::Database::Sqlite($pool) => $body,
            $crate::database::Database::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Transactions for check-then-write rules (a quota, "a tenant keeps an owner") that two
/// concurrent transactions must not both pass: the transaction runs alone among those that
/// name the same scope. SQLite takes its write lock up front (`BEGIN IMMEDIATE`, which also
/// avoids a failed read-to-write upgrade); PostgreSQL, whose READ COMMITTED would let both
/// checks pass, takes a transaction-scoped advisory lock on the scope's hash.
pub(crate) trait BeginExclusive {
    /// The engine.
    type Db: sqlx::Database;

    /// Begins a transaction that holds `scope` until it ends.
    fn begin_exclusive(
        &self,
        scope: &str,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginExclusive for SqlitePool {
    type Db = sqlx::Sqlite;

    async fn begin_exclusive(
        &self,
        _scope: &str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        // One writer at a time is SQLite's rule anyway; the scope needs no lock of its own.
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginExclusive for PgPool {
    type Db = sqlx::Postgres;

    async fn begin_exclusive(
        &self,
        scope: &str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(scope)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Transactions that will write: SQLite takes its write lock at the start (a read that later
/// writes could otherwise fail to upgrade to it), PostgreSQL begins as usual.
pub(crate) trait BeginWrite {
    /// The engine.
    type Db: sqlx::Database;

    /// Begins a transaction that will write.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for sqlx::PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// Which database engine a [`Database`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: the zero-configuration default.
    Sqlite,
    /// PostgreSQL: for several replicas and larger deployments.
    Postgres,
}

impl Backend {
    /// The engine's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// A connection pool to the OmniForge database.
#[derive(Debug, Clone)]
pub enum Database {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

impl Database {
    /// Connects to `url`: `sqlite://PATH` (the file and its directory are created if missing;
    /// WAL journal, foreign keys on, a 5 s busy timeout) or `postgres://…`/`postgresql://…`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|source| StoreError::Connect {
                    backend: "PostgreSQL",
                    source,
                })?;
            return Ok(Self::Postgres(pool));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Self::open_sqlite(path).await;
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::UnsupportedUrl(format!("{scheme}:…")))
    }

    async fn open_sqlite(path: &str) -> Result<Self, StoreError> {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(dir) = Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let connect = |source| StoreError::Connect {
            backend: "SQLite",
            source,
        };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(connect)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(connect)?;
        Ok(Self::Sqlite(pool))
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}
