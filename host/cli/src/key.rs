//! `omniforge key generate`: an ed25519 key pair for signing packages.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use omniforge_registry::SigningKey;

/// Key management.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a signing key pair: PREFIX.secret (keep it private) and PREFIX.pub.
    Generate(GenerateArgs),
}

/// Arguments of `omniforge key generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Path prefix of the two key files.
    #[arg(long, default_value = "omniforge-signing")]
    out: PathBuf,
}

/// Runs a `key` subcommand.
pub fn run(command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Generate(args) => generate(&args.out),
    }
}

fn generate(prefix: &Path) -> Result<()> {
    let secret_path = prefix.with_extension("secret");
    let public_path = prefix.with_extension("pub");
    for path in [&secret_path, &public_path] {
        if path.exists() {
            bail!(
                "{} already exists; refusing to overwrite a key",
                path.display()
            );
        }
    }
    let key = SigningKey::generate();
    write_new(&secret_path, key.to_text().as_bytes(), 0o600)?;
    write_new(
        &public_path,
        key.verifying_key().to_text().as_bytes(),
        0o644,
    )?;
    println!("secret key: {} (keep it private)", secret_path.display());
    println!("public key: {}", public_path.display());
    println!("key id:     {}", key.verifying_key().key_id());
    Ok(())
}

/// Creates a file that must not exist yet, with `mode` from the start (no window in which a
/// secret key is world-readable).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
