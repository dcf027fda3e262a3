//! The application state shared by every request, built once at start.

use std::sync::Arc;
use std::time::Duration;

use omniforge_registry::{BlobStore, FsBlobStore};
use omniforge_runtime::{Compiler, Runtime, RuntimeConfig};
use omniforge_store::Database;

use crate::auth::Authenticator;
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
    pub policies: Policies,
    /// Usage and quotas.
    pub meter: Arc<Meter>,
    /// Request rate limits.
    pub rate_limits: RateLimits,
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
        let recheck = Duration::from_millis(config.auth.api_key_recheck_ms.unwrap_or(2_000));
        let auth = Authenticator::new(
            db.clone(),
            jwt,
            recheck,
            config.rate_limits.key_verifications_per_minute,
        );
        let blob_dir = config.data_dir.join("blobs");
        let blobs: Arc<dyn BlobStore> = Arc::new(
            FsBlobStore::open(&blob_dir)
                .map_err(|e| format!("cannot open the blob store {}: {e}", blob_dir.display()))?,
        );
        let runtime_config = RuntimeConfig {
            cache_dir: Some(
                config
                    .skills
                    .artifact_cache_dir
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("artifacts")),
            ),
            ..RuntimeConfig::default()
        };
        let mut builder = Runtime::builder(runtime_config).kv_store(Arc::new(DbKvStore::new(
            db.clone(),
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
        let metadata_recheck = Duration::from_millis(config.skills.metadata_recheck_ms);
        let catalog = Arc::new(Catalog::new(
            db.clone(),
            Arc::clone(&blobs),
            Arc::clone(&runtime),
            metadata_recheck,
        ));
        let policies = Policies::new(
            db.clone(),
            config.skills.default_policy.clone(),
            metadata_recheck,
        );
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
        }))
    }
}
