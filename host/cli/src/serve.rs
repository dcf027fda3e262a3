//! `omniforge serve`: the multi-tenant HTTP server.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use omniforge_server::{Config, LogFormat, Server, Workers};
use tracing_subscriber::EnvFilter;

/// Where configuration comes from, shared by the commands that need it: a TOML file, then
/// `OMNIFORGE_*` variables, then these flags.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "OMNIFORGE_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL (`postgres://…` or `sqlite://PATH`); default: a SQLite file in the data
    /// directory. Also OMNIFORGE_DATABASE_URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Data directory (default ./omniforge-data). Also OMNIFORGE_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// Loads and validates the configuration with these overrides.
    pub fn load(&self) -> Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(url) = &self.database_url {
            config.database_url = Some(omniforge_server::config::Secret::new(url.clone()));
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}

/// Arguments of `omniforge serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks one). Also
    /// OMNIFORGE_LISTEN.
    #[arg(long)]
    listen: Option<String>,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> Result<()> {
    let mut config = args.config.load()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
        config
            .listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| {
                format!(
                    "--listen {:?} is not an address like 127.0.0.1:8080",
                    config.listen
                )
            })?;
    }
    init_logging(&config);
    let database = config.database_description();
    let workers = if config.skills.compile_in_subprocess {
        let worker = crate::offload::ProcessWorker::current()?;
        Workers {
            compiler: Some(Arc::new(crate::offload::ProcessCompiler(worker.clone()))),
            validator: Some(Arc::new(crate::offload::ProcessValidator(worker))),
        }
    } else {
        Workers::default()
    };
    let server = Server::start_with(config, workers).await?;
    // Scripts and tests read this line to learn the port when 0 was asked for.
    println!("listening on http://{}", server.local_addr());
    if let Some(admin) = server.admin_addr() {
        println!("admin listening on http://{admin}");
    }
    tracing::info!(addr = %server.local_addr(), %database, "serving");
    server
        .run(omniforge_server::shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
