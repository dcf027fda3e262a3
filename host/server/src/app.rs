//! The application state shared by every request, built once at start.

use std::sync::Arc;
use std::time::Duration;

use omniforge_registry::{BlobStore, FsBlobStore};
use omniforge_runtime::{Compiler, Runtime, RuntimeConfig};
use omniforge_store::Database;

use crate::auth::Authenticator;
use crate::auth::client::ClientAddressRule;
use crate::auth::jwt::JwtVerifier;
use crate::config::Config;
use crate::ratelimit::RateLimits;
use crate::skills::catalog::Catalog;
use crate::skills::kv::DbKvStore;
use crate::skills::meter::Meter;
use crate::skills::policy::Policies;

/// Everything handlers share: the database, the configuration, the authenticator and the
/// skill services.
pub struct App {
    /// The database.
    pub db: Database,
    /// The validated configuration.
    pub config: Config,
    /// Turns credentials into principals (and caches verified keys).
    pub auth: Authenticator,
    /// Package and component bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Runs skills.
    pub runtime: Arc<Runtime>,
    /// Resolves and prepares skill versions.
    pub catalog: Arc<Catalog>,
    /// Tenant policies.
    pub policies: Arc<Policies>,
    /// Usage and quotas.
    pub meter: Arc<Meter>,
    /// Request rate limits.
    pub rate_limits: RateLimits,
    /// How a request's client address is found (behind trusted proxies, from a header).
    pub client_addresses: ClientAddressRule,
}

/// How handlers receive the application.
pub type AppState = Arc<App>;

impl App {
    /// Builds the application over an open, migrated database, compiling components with
    /// `compiler` (default: on a thread of this process).
    pub fn new(
        config: Config,
        db: Database,
        compiler: Option<Arc<dyn Compiler>>,
    ) -> Result<AppState, String> {
        let jwt = config.auth.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        let auth = Authenticator::new(db.clone(), jwt, &config.auth_settings());
        let client_addresses = ClientAddressRule::new(
            config.http.client_address_header.as_deref(),
            &config.http.trusted_proxies,
        )?;
        let blob_dir = config.data_dir.join("blobs");
        let fs_blobs = FsBlobStore::open(&blob_dir)
            .map_err(|e| format!("cannot open the blob store {}: {e}", blob_dir.display()))?;
        // Whatever a killed process was writing is garbage now.
        let swept = fs_blobs
            .sweep_temporary()
            .map_err(|e| format!("cannot clean {}: {e}", blob_dir.join("tmp").display()))?;
        if swept > 0 {
            tracing::info!(
                swept,
                "removed temporary blob files an earlier process left"
            );
        }
        let blobs: Arc<dyn BlobStore> = Arc::new(fs_blobs);
        let runtime_config = RuntimeConfig {
            memory_budget_bytes: Some(
                config
                    .skills
                    .memory_budget_mb
                    .map_or_else(omniforge_runtime::default_memory_budget, |mb| mb << 20),
            ),
            memory_budget_wait: Duration::from_millis(config.skills.memory_budget_wait_ms),
            cache_dir: Some(
                config
                    .skills
                    .artifact_cache_dir
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("artifacts")),
            ),
            ..RuntimeConfig::default()
        };
        let metadata_recheck = Duration::from_millis(config.skills.metadata_recheck_ms);
        let policies = Arc::new(Policies::new(
            db.clone(),
            config.skills.default_policy.clone(),
            metadata_recheck,
        ));
        let mut builder = Runtime::builder(runtime_config).kv_store(Arc::new(DbKvStore::new(
            db.clone(),
            Arc::clone(&policies),
            config.skills.kv_quota_bytes,
        )));
        if let Some(compiler) = compiler {
            builder = builder.compiler(compiler);
        }
        let runtime = Arc::new(
            builder
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?,
        );
        let catalog = Arc::new(Catalog::new(
            db.clone(),
            Arc::clone(&blobs),
            Arc::clone(&runtime),
            metadata_recheck,
        ));
        let meter = Meter::new(db.clone());
        let rate_limits = RateLimits::new(&config.rate_limits);
        Ok(Arc::new(Self {
            db,
            config,
            auth,
            blobs,
            runtime,
            catalog,
            policies,
            meter,
            rate_limits,
            client_addresses,
        }))
    }
}
