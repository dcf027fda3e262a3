//! Embedded migrations, one folder per backend, and their status.

use sqlx::migrate::{Migrate, Migrator};

use crate::database::Database;
use crate::error::StoreError;

static SQLITE: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("../../migrations/postgres");

/// One migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The migration's version (its file name's number).
    pub version: i64,
    /// Its description (the rest of its file name).
    pub description: String,
    /// Whether it has been applied.
    pub applied: bool,
}

impl Database {
    fn migrator(&self) -> &'static Migrator {
        match self {
            Self::Sqlite(_) => &SQLITE,
            Self::Postgres(_) => &POSTGRES,
        }
    }

    /// Applies the migrations the database does not have yet, each in its own transaction;
    /// returns the versions applied now (empty when already up to date).
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.applied_versions().await?;
        match self {
            Self::Sqlite(pool) => SQLITE.run(pool).await?,
            Self::Postgres(pool) => POSTGRES.run(pool).await?,
        }
        let after = self.applied_versions().await?;
        let applied: Vec<i64> = after.into_iter().filter(|v| !before.contains(v)).collect();
        if !applied.is_empty() {
            tracing::info!(
                backend = self.backend().name(),
                ?applied,
                "applied migrations"
            );
        }
        Ok(applied)
    }

    /// Applies the pending migrations up to and including `version`, and no later ones: for
    /// tests of how a migration treats the data written before it.
    pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(pool) => SQLITE.run_to(version, pool).await?,
            Self::Postgres(pool) => POSTGRES.run_to(version, pool).await?,
        }
        Ok(())
    }

    /// Every known migration and whether it has been applied, oldest first.
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let applied = self.applied_versions().await?;
        Ok(self
            .migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                applied: applied.contains(&m.version),
            })
            .collect())
    }

    /// Versions recorded as applied; an empty list when the bookkeeping table does not exist
    /// yet (a status check never creates it).
    async fn applied_versions(&self) -> Result<Vec<i64>, StoreError> {
        let applied = match self {
            Self::Sqlite(pool) => {
                let exists: bool = sqlx::query_scalar(
                    "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(pool)
                .await?;
                if !exists {
                    return Ok(Vec::new());
                }
                pool.acquire()
                    .await?
                    .list_applied_migrations(&SQLITE.table_name)
                    .await?
            }
            Self::Postgres(pool) => {
                let exists: bool =
                    sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                        .fetch_one(pool)
                        .await?;
                if !exists {
                    return Ok(Vec::new());
                }
                pool.acquire()
                    .await?
                    .list_applied_migrations(&POSTGRES.table_name)
                    .await?
            }
        };
        Ok(applied.into_iter().map(|m| m.version).collect())
    }
}
