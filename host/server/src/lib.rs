//! # omniforge-server
//!
//! The multi-tenant HTTP server: REST API under `/api/v1`, authentication (API keys, JWTs),
//! RBAC, the audit log, OpenAPI with Swagger UI and ReDoc, health endpoints.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = omniforge_server::Config::load(None)?;
//! let server = omniforge_server::Server::start(config).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.run(omniforge_server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```

pub mod a2a;
pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod contract;
pub mod error;
pub mod mcp;
pub mod middleware;
pub mod ratelimit;
pub mod router;
pub mod slots;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use omniforge_store::{AuditContext, Bootstrapped, Database, NewApiKey};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use app::{App, AppState, Workers};
pub use config::{Config, ConfigError, LogFormat};
pub use router::{openapi, router};

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The database could not be opened or migrated.
    #[error("{description}: {source}")]
    Database {
        /// Which database, without credentials.
        description: String,
        /// Why.
        source: omniforge_store::StoreError,
    },
    /// Part of the configuration could not be put to use (a key file, say).
    #[error("{0}")]
    Setup(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    admin: Option<TcpListener>,
    app: AppState,
}

impl Server {
    /// Opens and migrates the database and binds the listen address; components compile and
    /// packages are validated on blocking threads of this process.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        Self::start_with(config, Workers::default()).await
    }

    /// [`Server::start`] with workers for compiling and validating (the CLI passes ones that
    /// work in child processes).
    pub async fn start_with(config: Config, workers: Workers) -> Result<Self, ServerError> {
        let db = open_database(&config).await?;
        let addr = config.listen_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let admin = match config.admin_addr() {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let app = App::new(config, db, workers).map_err(ServerError::Setup)?;
        Ok(Self {
            listener,
            admin,
            app,
        })
    }

    /// The admin listener's bound address, when one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting connections and lets
    /// in-flight requests finish for up to the configured grace period.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = Duration::from_millis(self.app.config.http.shutdown_grace_ms);
        let db = self.app.db.clone();
        let ledger = Arc::clone(self.app.invocations.ledger());
        omniforge_control::meter::spawn_flusher(
            &ledger,
            Duration::from_millis(self.app.config.skills.usage_flush_ms),
        );
        spawn_rate_limit_cleanup(&self.app);
        if let Some(admin) = self.admin {
            let stopping = self.app.stopping.clone();
            let router = admin::router(Arc::clone(&self.app));
            tokio::spawn(async move {
                let served = axum::serve(admin, router)
                    .with_graceful_shutdown(stopping.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!("the admin listener failed: {e}");
                }
            });
        }
        let tasks = Arc::clone(&self.app.tasks);
        tasks.run_workers();
        let stopping = Arc::new(Notify::new());
        let notify = Arc::clone(&stopping);
        let streams = self.app.stopping.clone();
        let (drained_tx, drained) = tokio::sync::oneshot::channel();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests and running tasks");
            streams.cancel();
            notify.notify_one();
            // Tasks drain beside the requests: claiming stops now, running tasks get the
            // drain time, then go back to the queue.
            tokio::spawn(async move {
                tasks.drain().await;
                drained_tx.send(()).ok();
            });
        };
        // Connection info carries the peer address: failed authentications are limited per
        // client address.
        let serve = axum::serve(
            self.listener,
            router(self.app).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let result = tokio::select! {
            result = serve => result,
            () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; dropping unfinished requests");
                Ok(())
            }
        };
        // Requests are done; the tasks' drain has its own bound.
        drained.await.ok();
        if let Err(e) = ledger.close().await {
            tracing::error!("cannot write the last usage counters: {e}");
        }
        db.close().await;
        result
    }
}

/// Forgets idle rate-limit state every minute, so one-off credentials do not pile up.
fn spawn_rate_limit_cleanup(app: &AppState) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { break };
            app.rate_limits.shrink();
            app.auth.shrink();
        }
    });
}

/// Opens the configured database and applies pending migrations.
pub async fn open_database(config: &Config) -> Result<Database, ServerError> {
    let description = config.database_description();
    let error = |source| ServerError::Database {
        description: description.clone(),
        source,
    };
    let db = Database::connect(&config.database_url())
        .await
        .map_err(error)?;
    db.migrate().await.map_err(error)?;
    Ok(db)
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Creates a tenant with an owner and the owner's first API key, directly in the database
/// (`omniforge admin bootstrap`). The owner is a platform admin when none exists yet.
/// Returns what was created and the full key, which is shown once and never stored.
pub async fn bootstrap(
    db: &Database,
    slug: &str,
    email: &str,
) -> Result<(Bootstrapped, String), String> {
    api::tenants::check_slug(slug).map_err(|e| e.problem().detail)?;
    api::users::check_email(email).map_err(|e| e.problem().detail)?;
    let platform_admin = !db
        .platform()
        .has_platform_admin()
        .await
        .map_err(|e| e.to_string())?;
    let minted = auth::api_key::mint()?;
    let audit = AuditContext::system("bootstrap", "bootstrap");
    let (prefix, secret_hash) = (minted.prefix.clone(), minted.secret_hash.clone());
    let created = db
        .platform()
        .create_tenant_with_owner(&audit, slug, slug, email, platform_admin, |owner| {
            NewApiKey {
                user_id: owner.clone(),
                name: "bootstrap".into(),
                prefix,
                secret_hash,
                scopes: vec!["*".into()],
                expires_at_ms: None,
                created_by: None,
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok((created, minted.full))
}
