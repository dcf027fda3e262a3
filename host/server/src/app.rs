//! The application state shared by every request, built once at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use omniforge_registry::{BlobStore, FsBlobStore};
use omniforge_runtime::{AllocatorConfig, Compiler, DeadlineEnforcement, Runtime, RuntimeConfig};
use omniforge_store::{Census, Database};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::auth::client::ClientAddressRule;
use crate::auth::jwt::JwtVerifier;
use crate::config::Config;
use crate::ratelimit::shared::SharedRateLimits;
use crate::ratelimit::{RateLimits, RequestLimiter};
use crate::slots::StreamSlots;
use omniforge_control::QuotaLedger;
use omniforge_control::agents::Agents;
use omniforge_control::blobs::ObjectBlobStore;
use omniforge_control::catalog::Catalog;
use omniforge_control::changes::{Applied, Caches, CredentialCache, LocalChanges};
use omniforge_control::compiles::Compiles;
use omniforge_control::invocations::{Invocations, Parts};
use omniforge_control::kv::DbKvStore;
use omniforge_control::meter::Meter;
use omniforge_control::metrics::Metrics;
use omniforge_control::nested::NestedCalls;
use omniforge_control::packages::{InProcessValidator, PackageValidator};
use omniforge_control::policy::Policies;
use omniforge_control::secrets::{
    AwsSecrets, DbSecrets, EnvSecrets, FileSecrets, ProviderKind, SecretProvider, Secrets,
};
use omniforge_control::shared::SharedRedis;
use omniforge_control::shared::changes::RedisChanges;
use omniforge_control::shared::ledger::RedisLedger;
use omniforge_control::tasks::Tasks;

/// Work the server can hand to other processes so that large components never pass through
/// its memory: compiling components and validating packages. `None` does it in this process
/// (on blocking threads); `omniforge serve` passes child-process workers.
#[derive(Clone, Default)]
pub struct Workers {
    /// Compiles components.
    pub compiler: Option<Arc<dyn Compiler>>,
    /// Validates uploaded packages.
    pub validator: Option<Arc<dyn PackageValidator>>,
}

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
    /// The invocation pipeline, with the catalog, policies and quota ledger it owns.
    pub invocations: Arc<Invocations>,
    /// Durable tasks: submission, cancel, retry, and the workers `Server::run` starts.
    pub tasks: Arc<Tasks>,
    /// Saving agents: definitions checked, skills resolved and pinned.
    pub agents: Arc<Agents>,
    /// Open task event streams per tenant.
    pub task_streams: Arc<StreamSlots>,
    /// Compiles published components.
    pub compiles: Arc<Compiles>,
    /// How long a request waits for a compile (a publish before answering `compiled:
    /// false`, an invocation before answering `skill-compiling`).
    pub compile_wait: Duration,
    /// Validates uploaded packages.
    pub validator: Arc<dyn PackageValidator>,
    /// Publishes in progress at once (each holds an upload on disk and a validation).
    pub publishes: Arc<Semaphore>,
    /// Where uploads are spooled while they are validated.
    pub uploads: PathBuf,
    /// Request rate limits.
    pub rate_limits: Arc<dyn RequestLimiter>,
    /// How a request's client address is found (behind trusted proxies, from a header).
    pub client_addresses: ClientAddressRule,
    /// Cancelled when the server starts shutting down: streams that would otherwise stay
    /// open (MCP change streams) end, so the connections they hold can close.
    pub stopping: CancellationToken,
    /// Tenant secrets, from the configured provider.
    pub secrets: Secrets,
    /// The process's Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The platform's last counts for `/metrics`, and when they were taken (see
    /// [`crate::admin`]).
    pub census: tokio::sync::Mutex<Option<(std::time::Instant, Census)>>,
}

/// How handlers receive the application.
pub type AppState = Arc<App>;

/// Creates `dir` and removes the files a killed process left in it: only a process that owns
/// the data directory and has not started serving may call it.
fn clean_scratch(dir: &Path, what: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let swept = omniforge_registry::sweep_dir(dir)
        .map_err(|e| format!("cannot clean {}: {e}", dir.display()))?;
    if swept > 0 {
        tracing::info!(swept, dir = %dir.display(), "removed {what} an earlier process left");
    }
    Ok(())
}

impl App {
    /// The URL clients reach this server at: `http.public_url`, else `http://` and the
    /// request's `Host` (used in documents and headers only after checking it is a plain host
    /// name).
    pub fn base_url(&self, headers: &axum::http::HeaderMap) -> String {
        if let Some(url) = self.config.http.public_url.as_deref() {
            return url.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// Builds the application over an open, migrated database, handing compiles and package
    /// validation to `workers`.
    pub fn new(config: Config, db: Database, workers: Workers) -> Result<AppState, String> {
        let jwt = config.auth.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        let auth = Authenticator::new(db.clone(), jwt, &config.auth_settings());
        let client_addresses = ClientAddressRule::new(
            config.http.client_address_header.as_deref(),
            &config.http.trusted_proxies,
        )?;
        let blobs = build_blobs(&config)?;
        let redis = config
            .redis
            .settings()
            .map(|settings| SharedRedis::connect(&settings).map(Arc::new))
            .transpose()?;
        let stopping = CancellationToken::new();
        let uploads = config.data_dir.join("uploads");
        clean_scratch(&uploads, "unfinished uploads")?;

        let metadata_recheck = Duration::from_millis(config.skills.metadata_recheck_ms);
        let policies = Arc::new(Policies::new(
            db.clone(),
            config.skills.default_policy.clone(),
            metadata_recheck,
        ));
        let nested = Arc::new(NestedCalls::default());
        let secrets = build_secrets(&config, &db)?;
        let runtime = Arc::new(build_runtime(
            &config,
            &db,
            &policies,
            Arc::clone(&nested),
            &secrets,
            workers.compiler,
        )?);
        let compiles = Arc::new(Compiles::new(
            Arc::clone(&runtime),
            Arc::clone(&blobs),
            uploads.clone(),
            config.skills.concurrent_compiles,
        ));
        // A request must never wait for a compile past its own deadline.
        let compile_wait = Duration::from_millis(
            config
                .skills
                .compile_wait_ms
                .min(config.http.request_timeout_ms / 3),
        );
        let catalog = Arc::new(Catalog::new(
            db.clone(),
            Arc::clone(&runtime),
            Arc::clone(&compiles),
            metadata_recheck,
            compile_wait,
        ));
        let caches = Caches {
            catalog,
            policies,
            credentials: Arc::clone(auth.keys()) as Arc<dyn CredentialCache>,
            applied: Applied::new(),
        };
        let metrics = Arc::new(if config.telemetry.metrics {
            Metrics::new()
        } else {
            Metrics::disabled()
        });
        let invocations = Arc::new(Invocations::new(Parts {
            runtime: Arc::clone(&runtime),
            catalog: Arc::clone(&caches.catalog),
            policies: Arc::clone(&caches.policies),
            ledger: match &redis {
                Some(redis) => {
                    RedisLedger::new(Arc::clone(redis), db.clone()) as Arc<dyn QuotaLedger>
                }
                None => Meter::new(db.clone()),
            },
            applied: caches.applied.clone(),
            changes: match &redis {
                Some(redis) => Arc::new(RedisChanges::start(
                    caches,
                    Arc::clone(redis),
                    stopping.clone(),
                )),
                None => Arc::new(LocalChanges(caches)),
            },
            platform_max: config.skills.platform_max,
            max_depth: config.skills.max_depth,
            metrics: Arc::clone(&metrics),
        }));
        nested.attach(&invocations);
        let tasks = Tasks::new(
            db.clone(),
            Arc::clone(&invocations),
            config.tasks.settings(),
            Arc::new(crate::api::tasks::HttpTaskProblems),
        );
        let agents = Arc::new(Agents::new(db.clone(), Arc::clone(invocations.catalog())));
        let rate_limits: Arc<dyn RequestLimiter> = match &redis {
            Some(redis) => {
                tracing::info!(
                    failure_mode = %redis.failure_mode(),
                    replica = redis.replica(),
                    "rate limits, quotas and cache invalidation are shared through redis"
                );
                Arc::new(SharedRateLimits::new(
                    &config.rate_limits,
                    Arc::clone(redis),
                ))
            }
            None => Arc::new(RateLimits::new(&config.rate_limits)),
        };
        Ok(Arc::new(Self {
            secrets,
            metrics,
            census: tokio::sync::Mutex::new(None),
            agents,
            task_streams: StreamSlots::new(config.tasks.streams_per_tenant),
            stopping,
            validator: workers
                .validator
                .unwrap_or_else(|| Arc::new(InProcessValidator)),
            publishes: Arc::new(Semaphore::new(config.skills.concurrent_publishes.max(1))),
            db,
            config,
            auth,
            blobs,
            runtime,
            invocations,
            tasks,
            compiles,
            compile_wait,
            uploads,
            rate_limits,
            client_addresses,
        }))
    }
}

/// The configured blob store: files under `<data_dir>/blobs`, or an S3-compatible bucket.
fn build_blobs(config: &Config) -> Result<Arc<dyn BlobStore>, String> {
    if let Some(s3) = config.blobs.s3() {
        tracing::info!(bucket = %s3.bucket, "blobs are stored in object storage");
        return Ok(Arc::new(ObjectBlobStore::s3(&s3)?));
    }
    let blob_dir = config.data_dir.join("blobs");
    let fs_blobs = FsBlobStore::open(&blob_dir)
        .map_err(|e| format!("cannot open the blob store {}: {e}", blob_dir.display()))?;
    clean_scratch(&blob_dir.join("tmp"), "temporary blob files")?;
    Ok(Arc::new(fs_blobs))
}

/// The configured secrets provider.
fn build_secrets(config: &Config, db: &Database) -> Result<Secrets, String> {
    let settings = &config.secrets;
    let provider: Arc<dyn SecretProvider> = match settings.provider {
        ProviderKind::Db => {
            let keys = settings.key_ring()?;
            if let Some(keys) = &keys {
                tracing::info!(
                    key_id = keys.current().id(),
                    "secrets are sealed in the database"
                );
            }
            Arc::new(DbSecrets::new(db.clone(), keys.map(Arc::new)))
        }
        ProviderKind::Env => Arc::new(EnvSecrets::from_vars(std::env::vars())),
        ProviderKind::Files => Arc::new(FileSecrets::new(
            settings
                .dir
                .clone()
                .ok_or("secrets.dir: name the files provider's directory")?,
        )),
        ProviderKind::Aws => Arc::new(AwsSecrets::new(settings.aws_options()?)?),
    };
    Ok(Secrets::new(provider))
}

fn build_runtime(
    config: &Config,
    db: &Database,
    policies: &Arc<Policies>,
    nested: Arc<NestedCalls>,
    secrets: &Secrets,
    compiler: Option<Arc<dyn Compiler>>,
) -> Result<Runtime, String> {
    let platform = config.skills.platform_max.runtime_limits();
    let mut allocator = RuntimeConfig::default().allocator;
    if let AllocatorConfig::Pooling(pool) = &mut allocator {
        // One linear memory may be as large as the whole allowance.
        pool.max_memory_bytes = pool
            .max_memory_bytes
            .max(usize::try_from(platform.memory_bytes).unwrap_or(usize::MAX));
    }
    let runtime_config = RuntimeConfig {
        platform_limits: platform,
        allocator,
        memory_budget_bytes: Some(
            config
                .skills
                .memory_budget_mb
                .map_or_else(omniforge_runtime::default_memory_budget, |mb| mb << 20),
        ),
        memory_budget_wait: Duration::from_millis(config.skills.memory_budget_wait_ms),
        cpu_slots: config
            .skills
            .cpu_slots
            .unwrap_or_else(omniforge_runtime::default_cpu_slots),
        deadlines: DeadlineEnforcement::FuelYields {
            interval: config.skills.fuel_yield_interval,
        },
        cache_dir: Some(
            config
                .skills
                .artifact_cache_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("artifacts")),
        ),
        ..RuntimeConfig::default()
    };
    let mut builder = Runtime::builder(runtime_config)
        .kv_store(Arc::new(DbKvStore::new(
            db.clone(),
            Arc::clone(policies),
            config.skills.kv_quota_bytes,
        )))
        .secret_source(Arc::new(secrets.clone()))
        .skill_caller(nested);
    if let Some(compiler) = compiler {
        builder = builder.compiler(compiler);
    }
    builder
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_configured_platform_maximum_is_the_one_the_runtime_enforces() {
        let test = omniforge_store::testing::sqlite().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::load_with_env(None, |_| None).unwrap();
        config.data_dir = dir.path().to_owned();
        // Above the runtime's built-in defaults (512 MiB, 60 s).
        config.skills.platform_max.memory_mb = 2048;
        config.skills.platform_max.timeout_ms = 120_000;
        let app = App::new(config, test.db.clone(), Workers::default()).unwrap();
        let platform = app.runtime.config().platform_limits;
        assert_eq!(platform.memory_bytes, 2048 << 20);
        assert_eq!(platform.timeout, Duration::from_secs(120));
        assert_eq!(
            platform.tenant_concurrency,
            omniforge_control::policy::PolicyMaxima::CONCURRENCY
        );
        // A policy and manifest asking for that much get it, past the runtime's own clamp.
        let policy = omniforge_control::policy::TenantPolicy {
            max_memory_mb: 2048,
            max_timeout_ms: 120_000,
            ..Default::default()
        };
        let limits = policy
            .limits(&Default::default(), &app.config.skills.platform_max)
            .min(platform);
        assert_eq!(limits.memory_bytes, 2048 << 20);
        assert_eq!(limits.timeout, Duration::from_secs(120));
        match &app.runtime.config().allocator {
            AllocatorConfig::Pooling(pool) => assert!(pool.max_memory_bytes >= 2048 << 20),
            AllocatorConfig::OnDemand => {}
        }
    }
}
