//! Storage errors.
//!
//! Error policy: callers get a typed cause (cannot connect, migration failed, a query failed)
//! with the database's own message; connection URLs are never included, since they may carry
//! passwords.

use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database URL is not one OmniForge can use.
    #[error("unsupported database URL (expected sqlite://PATH or postgres://…): {0}")]
    UnsupportedUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        /// `SQLite` or `PostgreSQL`.
        backend: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// Applying migrations failed; the failed migration was rolled back.
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// The change would break a uniqueness or integrity rule (a taken slug, the last owner).
    #[error("{0}")]
    Conflict(String),
    /// The tenant may not do this (a namespace of another tenant).
    #[error("{0}")]
    Forbidden(String),
    /// A caller-supplied value is malformed (a cursor).
    #[error("{0}")]
    Invalid(String),
    /// A stored value could not be read back (a value outside its allowed set).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A write handed to a shared commit got no answer (the commit failed unexpectedly); it
    /// may or may not have been written.
    #[error("the database write was interrupted: {0}")]
    Interrupted(String),
    /// A service the platform shares between replicas (Redis) cannot be reached, and the
    /// operator chose to refuse rather than go on without it.
    #[error("{0}")]
    Unavailable(String),
    /// The SQLite file's directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Turns a unique-constraint violation into [`StoreError::Conflict`] with `message`.
pub(crate) fn conflict_on_unique(error: sqlx::Error, message: impl Into<String>) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(message.into())
        }
        _ => StoreError::Query(error),
    }
}
