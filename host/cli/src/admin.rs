//! `omniforge admin …`: operator tasks run directly against the database.

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};

use crate::serve::ConfigArgs;

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the first tenant and its owner, and print the owner's API key once.
    Bootstrap(BootstrapArgs),
}

/// Arguments of `omniforge admin bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The tenant's slug (2-63 lowercase letters, digits and '-').
    #[arg(long)]
    tenant: String,
    /// The owner's email.
    #[arg(long)]
    email: String,
}

/// Runs an admin command.
pub async fn run(command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::Bootstrap(args) => bootstrap(args).await,
    }
}

async fn bootstrap(args: BootstrapArgs) -> Result<()> {
    let config = args.config.load()?;
    let description = config.database_description();
    let db = omniforge_server::open_database(&config)
        .await
        .with_context(|| format!("opening {description}"))?;
    let result = omniforge_server::bootstrap(&db, &args.tenant, &args.email).await;
    db.close().await;
    let (created, key) = result.map_err(|e| anyhow!(e))?;
    eprintln!(
        "created tenant {} ({}) with owner {}{}",
        created.tenant.slug,
        created.tenant.id,
        created.owner.email,
        if created.owner.is_platform_admin {
            ", a platform admin"
        } else {
            ""
        }
    );
    eprintln!("the owner's API key follows; it is shown only this once:");
    println!("{key}");
    Ok(())
}
