//! `omniforge migrate`: apply the database migrations, or show their status.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use omniforge_store::Database;

/// Where the database is; shared by the commands that use it.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL (`postgres://…`, or `sqlite://PATH`); default: a SQLite file in the data
    /// directory.
    #[arg(long, env = "OMNIFORGE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Data directory: the SQLite database, blobs and the compiled-artifact cache.
    #[arg(long, env = "OMNIFORGE_DATA_DIR", default_value = "./omniforge-data")]
    data_dir: PathBuf,
}

impl DatabaseArgs {
    /// The URL to connect to, and a description that never shows credentials.
    fn resolve(&self) -> (String, String) {
        match &self.database_url {
            Some(url) if url.starts_with("sqlite:") => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                (url.clone(), format!("SQLite at {path}"))
            }
            // Other URLs may carry a password: describe them by scheme and host only.
            Some(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("database", url));
                let host = rest
                    .rsplit('@')
                    .next()
                    .unwrap_or("")
                    .split('/')
                    .next()
                    .unwrap_or("");
                let engine = if scheme.starts_with("postgres") {
                    "PostgreSQL"
                } else {
                    scheme
                };
                (url.clone(), format!("{engine} at {host}"))
            }
            None => {
                let file = self.data_dir.join("omniforge.db");
                (
                    format!("sqlite://{}", file.display()),
                    format!("SQLite at {}", file.display()),
                )
            }
        }
    }

    /// Connects to the database.
    pub async fn connect(&self) -> Result<(Database, String)> {
        let (url, description) = self.resolve();
        let db = Database::connect(&url)
            .await
            .with_context(|| format!("opening {description}"))?;
        Ok((db, description))
    }
}

/// Arguments of `omniforge migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Only show which migrations are applied and which are pending.
    #[arg(long)]
    status: bool,
}

/// Runs `omniforge migrate`.
pub async fn run(args: MigrateArgs) -> Result<()> {
    let (db, description) = args.database.connect().await?;
    println!("database: {description}");
    if !args.status {
        let applied = db.migrate().await.context("applying migrations")?;
        if applied.is_empty() {
            println!("up to date");
        } else {
            println!("applied {} migration(s)", applied.len());
        }
    }
    for migration in db.migration_status().await? {
        let state = if migration.applied {
            "applied"
        } else {
            "pending"
        };
        println!(
            "{:>14}  {:<32} {state}",
            migration.version, migration.description
        );
    }
    db.close().await;
    Ok(())
}
