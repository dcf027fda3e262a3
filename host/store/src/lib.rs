//! # omniforge-store
//!
//! The database behind OmniForge: SQLite (default) or PostgreSQL, with embedded migrations.
//!
//! ```no_run
//! # async fn demo() -> Result<(), omniforge_store::StoreError> {
//! let db = omniforge_store::Database::connect("sqlite://./omniforge-data/omniforge.db").await?;
//! let applied = db.migrate().await?;
//! println!("applied {} migrations", applied.len());
//! # Ok(()) }
//! ```

mod database;
mod error;
mod migrations;

pub use database::{Backend, Database};
pub use error::StoreError;
pub use migrations::MigrationStatus;
