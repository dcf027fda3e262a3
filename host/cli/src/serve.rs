//! `omniforge serve`: the multi-tenant HTTP server.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use omniforge_server::{Config, LogFormat, Server, Workers};

use crate::telemetry::Traces;
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
    let traces = init_logging(&config)?;
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
    if let Some(traces) = traces {
        tokio::task::spawn_blocking(move || traces.shutdown())
            .await
            .ok();
    }
    Ok(())
}

/// Logs to stderr (text or JSON) and, when a collector is configured, traces to it; the
/// exporter to shut down at exit.
fn init_logging(config: &Config) -> Result<Option<Traces>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, filter};
    let level = EnvFilter::try_new(&config.log.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match config.log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let traces = Traces::start(&config.telemetry)?;
    // Only the platform's own spans: not those of the libraries under it.
    let exported = traces.as_ref().map(|traces| {
        tracing_opentelemetry::layer()
            .with_tracer(traces.tracer())
            .with_filter(filter::filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with("omniforge")
            }))
    });
    tracing_subscriber::registry()
        .with(level)
        .with(logs)
        .with(exported)
        .init();
    Ok(traces)
}
