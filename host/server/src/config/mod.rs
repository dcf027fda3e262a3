//! Server configuration: defaults, then a TOML file, then `OMNIFORGE_*` environment variables,
//! validated as a whole so every bad value is reported at once.
//!
//! Unknown keys in the file are errors (a typo must not silently fall back to a default).
//! Unknown `OMNIFORGE_*` variables are not: client-side ones such as `OMNIFORGE_API_KEY`
//! share the prefix. Secrets (database and Redis URLs, JWT secret, secrets keys, AWS credentials) never
//! appear in `Debug` output.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

mod env;
mod mcp;
mod scale;
mod secrets;
mod skills;
mod tasks;
mod telemetry;

pub use mcp::McpConfig;
pub use omniforge_control::PlatformLimits;
pub use scale::{BlobBackend, BlobsConfig, RedisConfig};
pub use secrets::{AwsSecretsConfig, SecretsConfig};
pub use skills::{RateLimitConfig, SkillsConfig};
pub use tasks::TasksConfig;
pub use telemetry::TelemetryConfig;

/// A value that must not be printed: `Debug` shows `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (printed at start).
    pub listen: String,
    /// A second address serving only the operator's routes (`/metrics`, `/healthz`,
    /// `/readyz`); when set, `/metrics` is served there and not on `listen`.
    pub admin_listen: Option<String>,
    /// The SQLite database, blobs and compiled-artifact cache live here.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://PATH`; default: `<data_dir>/omniforge.db`.
    pub database_url: Option<Secret>,
    /// Logging.
    pub log: LogConfig,
    /// HTTP limits.
    pub http: HttpConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Skills: packages, platform limits, the default tenant policy, usage accounting.
    pub skills: SkillsConfig,
    /// Request rates per API key (or token user) and per tenant.
    pub rate_limits: RateLimitConfig,
    /// The MCP endpoint.
    pub mcp: McpConfig,
    /// Trace export.
    pub telemetry: TelemetryConfig,
    /// Durable task workers.
    pub tasks: TasksConfig,
    /// Tenant secrets: their provider and the key that seals them.
    pub secrets: SecretsConfig,
    /// Redis, shared by several replicas (limits, quotas, cache invalidation).
    pub redis: RedisConfig,
    /// Where package and component bytes live.
    pub blobs: BlobsConfig,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `omniforge=debug,warn`, …).
    pub filter: String,
}

/// HTTP limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest accepted JSON request body.
    pub body_limit_bytes: u64,
    /// A request taking longer is answered 503.
    pub request_timeout_ms: u64,
    /// On SIGTERM, in-flight requests get this long to finish.
    pub shutdown_grace_ms: u64,
    /// The header a trusted proxy reports the client's address in (`x-forwarded-for`,
    /// `x-real-ip`); unset: the connection's peer is the client.
    pub client_address_header: Option<String>,
    /// Proxies whose `client_address_header` is believed: addresses or networks
    /// (`10.0.0.0/8`). A request from anywhere else is its own client.
    pub trusted_proxies: Vec<String>,
    /// The URL clients reach this server at (`https://skills.example.com`), named in the
    /// OAuth protected-resource metadata that MCP clients discover; unset: `http://` and the
    /// request's `Host`.
    pub public_url: Option<String>,
}

/// Authentication settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Verified API keys are trusted from memory for this long before their record is read
    /// again (revocation through this server takes effect at once; elsewhere within this).
    pub api_key_recheck_ms: Option<u64>,
    /// Most verified API keys remembered in memory (least recently used go first).
    pub key_cache_capacity: Option<usize>,
    /// Argon2 key verifications running at once, host-wide (default: half the cores, at
    /// least one).
    pub concurrent_verifications: Option<u32>,
    /// How long a key verification waits for a free slot before the request is answered
    /// 503 `busy` (default 5000).
    pub verification_wait_ms: Option<u64>,
    /// JWT bearer tokens; off when absent.
    pub jwt: Option<JwtConfig>,
}

/// JWT bearer-token verification. Roles come from the database, never from the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// HS256 shared secret (at least 32 bytes).
    #[serde(default)]
    pub hs256_secret: Option<Secret>,
    /// RS256 public key, a PEM file.
    #[serde(default)]
    pub rs256_public_key_file: Option<PathBuf>,
    /// RS256 keys from an identity provider's JWKS document.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The claim naming the tenant (id or slug).
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Allowed clock skew for `exp`/`nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// JWKS keys are refreshed (in the background) once they are this old.
    #[serde(default = "default_jwks_ttl")]
    pub jwks_ttl_secs: u64,
}

fn default_jwks_ttl() -> u64 {
    600
}

fn default_tenant_claim() -> String {
    "tenant".into()
}

fn default_leeway() -> u64 {
    30
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            admin_listen: None,
            data_dir: PathBuf::from("./omniforge-data"),
            database_url: None,
            log: LogConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            skills: SkillsConfig::default(),
            rate_limits: RateLimitConfig::default(),
            mcp: McpConfig::default(),
            telemetry: TelemetryConfig::default(),
            tasks: TasksConfig::default(),
            secrets: SecretsConfig::default(),
            redis: RedisConfig::default(),
            blobs: BlobsConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 30_000,
            client_address_header: None,
            public_url: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Why the configuration is unusable: every problem found, one per line.
#[derive(Debug, Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    /// One message per bad value, naming where it came from.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

impl Config {
    /// Loads the configuration: defaults, then `file` (if given), then the process
    /// environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment supplied by the caller (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match file {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::one(format!("cannot read {}: {e}", path.display()))
                })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::one(format!("{}: {e}", path.display())))?
            }
        };
        let mut problems = Vec::new();
        config.apply_env(&env, &mut problems);
        config.validate(&mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    fn validate(&self, problems: &mut Vec<String>) {
        if let Err(e) = self.listen.parse::<SocketAddr>() {
            problems.push(format!(
                "listen: {:?} is not an address like 127.0.0.1:8080 ({e})",
                self.listen
            ));
        }
        if let Some(admin) = &self.admin_listen
            && let Err(e) = admin.parse::<SocketAddr>()
        {
            problems.push(format!(
                "admin_listen: {admin:?} is not an address like 127.0.0.1:9090 ({e})"
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir: must not be empty".into());
        }
        if let Some(url) = &self.database_url {
            let url = url.expose();
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if !known.iter().any(|p| url.starts_with(p)) {
                let scheme = url.split(':').next().unwrap_or_default();
                problems.push(format!(
                    "database_url: scheme {scheme:?} is not supported (use sqlite://PATH or postgres://…)"
                ));
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            problems.push(format!("log.filter: {:?}: {e}", self.log.filter));
        }
        let http = &self.http;
        if !(1..=1 << 30).contains(&http.body_limit_bytes) {
            problems.push("http.body_limit_bytes: must be between 1 and 1073741824".into());
        }
        if http.request_timeout_ms == 0 {
            problems.push("http.request_timeout_ms: must be positive".into());
        }
        if let Err(e) = crate::auth::client::ClientAddressRule::new(
            http.client_address_header.as_deref(),
            &http.trusted_proxies,
        ) {
            problems.push(format!("http.client_address_header / trusted_proxies: {e}"));
        }
        if let Some(url) = &http.public_url {
            let origin = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if origin.is_none_or(|rest| rest.is_empty() || rest.contains(['?', '#', ' '])) {
                problems.push(format!(
                    "http.public_url: {url:?} is not an http:// or https:// URL without query"
                ));
            }
        }
        if http.client_address_header.is_some() && http.trusted_proxies.is_empty() {
            problems.push(
                "http.trusted_proxies: name the proxies whose client_address_header is believed"
                    .into(),
            );
        }
        if self.auth.key_cache_capacity == Some(0) {
            problems.push("auth.key_cache_capacity: must be positive".into());
        }
        if self.auth.concurrent_verifications == Some(0) {
            problems.push("auth.concurrent_verifications: must be positive".into());
        }
        if let Some(jwt) = &self.auth.jwt {
            jwt.validate(problems);
        }
        self.skills.validate(problems);
        self.mcp.validate(problems);
        self.telemetry.validate(problems);
        self.tasks.validate(problems);
        self.secrets.validate(problems);
        self.validate_scale(problems);
    }

    /// The authenticator's settings, defaults filled in.
    pub fn auth_settings(&self) -> crate::auth::AuthSettings {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        crate::auth::AuthSettings {
            recheck: std::time::Duration::from_millis(
                self.auth.api_key_recheck_ms.unwrap_or(2_000),
            ),
            key_cache_capacity: self.auth.key_cache_capacity.unwrap_or(100_000),
            failed_verifications_per_minute: self.rate_limits.failed_key_verifications_per_minute,
            failed_auth_per_minute: self.rate_limits.failed_auth_per_minute,
            concurrent_verifications: self
                .auth
                .concurrent_verifications
                .unwrap_or((cores / 2).max(1)),
            verification_wait: std::time::Duration::from_millis(
                self.auth.verification_wait_ms.unwrap_or(5_000),
            ),
        }
    }

    /// The database URL to connect to.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("omniforge.db").display()),
        }
    }

    /// The database described for messages, never with credentials.
    pub fn database_description(&self) -> String {
        let url = self.database_url();
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return format!("SQLite at {path}");
        }
        let (scheme, rest) = url.split_once("://").unwrap_or(("database", ""));
        let engine = if scheme.starts_with("postgres") {
            "PostgreSQL"
        } else {
            scheme
        };
        let host = rest
            .rsplit('@')
            .next()
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("");
        format!("{engine} at {host}")
    }

    /// The admin listener's address, when one is configured (validated by [`Config::load`]).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listen.as_deref().and_then(|a| a.parse().ok())
    }

    /// The listen address (validated by [`Config::load`]).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

impl JwtConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if self.issuer.trim().is_empty() {
            problems.push("auth.jwt.issuer: required when JWTs are configured".into());
        }
        if self.audience.trim().is_empty() {
            problems.push("auth.jwt.audience: required when JWTs are configured".into());
        }
        let sources = [
            self.hs256_secret.is_some(),
            self.rs256_public_key_file.is_some(),
            self.jwks_url.is_some(),
        ];
        if !sources.contains(&true) {
            problems.push(
                "auth.jwt: give a key: hs256_secret, rs256_public_key_file or jwks_url".into(),
            );
        }
        if let Some(secret) = &self.hs256_secret
            && secret.expose().len() < 32
        {
            problems.push("auth.jwt.hs256_secret: must be at least 32 bytes".into());
        }
        if let Some(path) = &self.rs256_public_key_file
            && !path.is_file()
        {
            problems.push(format!(
                "auth.jwt.rs256_public_key_file: {} is not a readable file",
                path.display()
            ));
        }
        if let Some(url) = &self.jwks_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push(format!("auth.jwt.jwks_url: {url:?} is not an http(s) URL"));
        }
        if self.tenant_claim.trim().is_empty() {
            problems.push("auth.jwt.tenant_claim: must not be empty".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(toml: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("omniforge.toml");
        if let Some(toml) = toml {
            std::fs::write(&path, toml).unwrap();
        }
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(toml.map(|_| path.as_path()), |name| env.get(name).cloned())
    }

    #[test]
    fn no_configuration_means_loopback_8080_and_sqlite_in_the_data_dir() {
        let config = load(None, &[]).unwrap();
        assert_eq!(config.listen_addr().to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.database_url(),
            "sqlite://./omniforge-data/omniforge.db"
        );
        assert!(config.auth.jwt.is_none());
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let config = load(
            Some("listen = \"0.0.0.0:9000\"\n[http]\nbody_limit_bytes = 2048\n"),
            &[("OMNIFORGE_LISTEN", "127.0.0.1:0")],
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.http.body_limit_bytes, 2048);
    }

    #[test]
    fn the_fuel_between_yields_is_bounded() {
        let config = load(Some("[skills]\nfuel_yield_interval = 200000\n"), &[]).unwrap();
        assert_eq!(config.skills.fuel_yield_interval, 200_000);
        for bad in ["0", "9999", "100000001"] {
            let error = load(
                Some(&format!("[skills]\nfuel_yield_interval = {bad}\n")),
                &[],
            )
            .unwrap_err();
            assert!(
                error.to_string().contains("skills.fuel_yield_interval"),
                "{error}"
            );
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let error = load(Some("listen = \"127.0.0.1:1\"\nlisen = 3\n"), &[]).unwrap_err();
        assert!(error.to_string().contains("lisen"), "{error}");
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let error = load(
            None,
            &[
                ("OMNIFORGE_LISTEN", "localhost"),
                ("OMNIFORGE_BODY_LIMIT_BYTES", "lots"),
                ("OMNIFORGE_LOG_FORMAT", "xml"),
                ("OMNIFORGE_DATABASE_URL", "mysql://u:hunter2@db/x"),
                ("OMNIFORGE_JWT_HS256_SECRET", "short"),
            ],
        )
        .unwrap_err();
        let text = error.to_string();
        for expected in [
            "listen",
            "OMNIFORGE_BODY_LIMIT_BYTES",
            "OMNIFORGE_LOG_FORMAT",
            "database_url",
            "auth.jwt.issuer",
            "auth.jwt.audience",
            "hs256_secret",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
        assert!(!text.contains("hunter2"), "the password leaked: {text}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = load(
            None,
            &[
                ("OMNIFORGE_DATABASE_URL", "postgres://u:hunter2@db/x"),
                ("OMNIFORGE_JWT_ISSUER", "https://idp"),
                ("OMNIFORGE_JWT_AUDIENCE", "omniforge"),
                (
                    "OMNIFORGE_JWT_HS256_SECRET",
                    "0123456789abcdef0123456789abcdef-topsecret",
                ),
            ],
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("topsecret"),
            "{debug}"
        );
        assert_eq!(config.database_description(), "PostgreSQL at db");
    }
}
