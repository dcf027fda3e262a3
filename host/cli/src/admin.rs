//! `omniforge admin …`: operator tasks run directly against the database.

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};

use crate::serve::ConfigArgs;

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the first tenant and its owner, and print the owner's API key once.
    Bootstrap(BootstrapArgs),
    /// Re-seal every stored secret under the current secrets key (OMNIFORGE_SECRETS_KEY or
    /// OMNIFORGE_SECRETS_KEY_FILE), opening each with it or the previous key
    /// (OMNIFORGE_SECRETS_PREVIOUS_KEY or its _FILE). Safe to run while servers run, and again.
    RotateSecretsKey(RotateArgs),
    /// Print a new random secrets key (base64), for OMNIFORGE_SECRETS_KEY or its file.
    GenerateSecretsKey,
    /// Exit 0 when a server's readiness URL answers 200 (a container health check: the
    /// image has no curl).
    Health(HealthArgs),
}

/// Arguments of `omniforge admin health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The URL to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
    url: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 2_000)]
    timeout_ms: u64,
}

async fn health(args: HealthArgs) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(args.timeout_ms))
        .build()?;
    let response = client
        .get(&args.url)
        .send()
        .await
        .with_context(|| format!("asking {}", args.url))?;
    let status = response.status();
    if status.is_success() {
        println!("ready ({status})");
        Ok(())
    } else {
        Err(anyhow!("{} answered {status}", args.url))
    }
}

/// Arguments of `omniforge admin rotate-secrets-key`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    config: ConfigArgs,
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
        AdminCommand::RotateSecretsKey(args) => rotate_secrets_key(args).await,
        AdminCommand::Health(args) => health(args).await,
        AdminCommand::GenerateSecretsKey => {
            use base64::Engine as _;
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(key.as_mut()).map_err(|e| anyhow!("no randomness: {e}"))?;
            println!(
                "{}",
                zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(*key))
                    .as_str()
            );
            Ok(())
        }
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

async fn rotate_secrets_key(args: RotateArgs) -> Result<()> {
    let config = args.config.load()?;
    let keys = config
        .secrets
        .key_ring()
        .map_err(|e| anyhow!(e))?
        .ok_or_else(|| {
            anyhow!(
                "no secrets key: give the new key as OMNIFORGE_SECRETS_KEY (or _FILE) and the \
                 one it replaces as OMNIFORGE_SECRETS_PREVIOUS_KEY (or _FILE)"
            )
        })?;
    let description = config.database_description();
    let db = omniforge_server::open_database(&config)
        .await
        .with_context(|| format!("opening {description}"))?;
    let result = omniforge_control::secrets::rotate(&db, &keys).await;
    db.close().await;
    let rotation = result.map_err(|e| anyhow!(e))?;
    eprintln!(
        "re-sealed {} secrets under key {}{}",
        rotation.resealed,
        keys.current().id(),
        match rotation.changed_meanwhile {
            0 => String::new(),
            n => format!(
                " ({n} changed meanwhile and were left to their writer; run it again if a replica still has only the old key)"
            ),
        }
    );
    if rotation.failed.is_empty() {
        return Ok(());
    }
    for (tenant, name, why) in &rotation.failed {
        eprintln!("could not re-seal {tenant}/{name}: {why}");
    }
    Err(anyhow!(
        "{} secrets were left as they were; give the key they need as \
         OMNIFORGE_SECRETS_PREVIOUS_KEY and run this again",
        rotation.failed.len()
    ))
}
