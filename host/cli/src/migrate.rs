//! `omniforge migrate`: apply the database migrations, or show their status.

use anyhow::{Context, Result};
use clap::Args;
use omniforge_store::Database;

use crate::serve::ConfigArgs;

/// Arguments of `omniforge migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Only show which migrations are applied and which are pending.
    #[arg(long)]
    status: bool,
}

/// Runs `omniforge migrate`.
pub async fn run(args: MigrateArgs) -> Result<()> {
    let config = args.config.load()?;
    let description = config.database_description();
    let db = Database::connect(&config.database_url())
        .await
        .with_context(|| format!("opening {description}"))?;
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
