//! `OMNIFORGE_*` environment variables over the file's values: which variable sets which key.

use std::path::PathBuf;

use super::{
    Config, JwtConfig, LogFormat, Secret, default_jwks_ttl, default_leeway, default_tenant_claim,
};

impl Config {
    /// Applies the environment's `OMNIFORGE_*` variables, adding a problem for every value
    /// that does not parse.
    pub(super) fn apply_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
        problems: &mut Vec<String>,
    ) {
        let mut number = |name: &str, target: &mut u64| {
            if let Some(value) = env(name) {
                match value.trim().parse() {
                    Ok(n) => *target = n,
                    Err(_) => problems.push(format!("{name}: {value:?} is not a whole number")),
                }
            }
        };
        number(
            "OMNIFORGE_BODY_LIMIT_BYTES",
            &mut self.http.body_limit_bytes,
        );
        number(
            "OMNIFORGE_REQUEST_TIMEOUT_MS",
            &mut self.http.request_timeout_ms,
        );
        number(
            "OMNIFORGE_SHUTDOWN_GRACE_MS",
            &mut self.http.shutdown_grace_ms,
        );
        number(
            "OMNIFORGE_MAX_PACKAGE_BYTES",
            &mut self.skills.max_package_bytes,
        );
        number(
            "OMNIFORGE_MCP_LISTEN_RECHECK_MS",
            &mut self.mcp.listen_recheck_ms,
        );
        number("OMNIFORGE_TASK_LEASE_MS", &mut self.tasks.lease_ms);
        number("OMNIFORGE_TASK_SWEEP_MS", &mut self.tasks.sweep_ms);
        number("OMNIFORGE_TASK_DRAIN_MS", &mut self.tasks.drain_ms);
        number(
            "OMNIFORGE_BREAKER_WINDOW_MS",
            &mut self.tasks.breaker_window_ms,
        );
        number(
            "OMNIFORGE_BREAKER_MIN_CALLS",
            &mut self.tasks.breaker_min_calls,
        );
        number("OMNIFORGE_BREAKER_OPEN_MS", &mut self.tasks.breaker_open_ms);
        number("OMNIFORGE_TASK_RETENTION_MS", &mut self.tasks.retention_ms);
        number(
            "OMNIFORGE_TASK_STREAM_RECHECK_MS",
            &mut self.tasks.stream_recheck_ms,
        );
        if let Some(value) = env("OMNIFORGE_BREAKER_FAILURE_RATE") {
            match value.trim().parse() {
                Ok(rate) => self.tasks.breaker_failure_rate = rate,
                Err(_) => problems.push(format!(
                    "OMNIFORGE_BREAKER_FAILURE_RATE: {value:?} is not a number"
                )),
            }
        }
        let mut rate = |name: &str, target: &mut u32| {
            if let Some(value) = env(name) {
                match value.trim().parse() {
                    Ok(n) => *target = n,
                    Err(_) => problems.push(format!("{name}: {value:?} is not a whole number")),
                }
            }
        };
        let limits = &mut self.rate_limits;
        rate(
            "OMNIFORGE_RATE_PER_KEY_PER_SECOND",
            &mut limits.per_key_per_second,
        );
        rate("OMNIFORGE_RATE_PER_KEY_BURST", &mut limits.per_key_burst);
        rate(
            "OMNIFORGE_RATE_PER_TENANT_PER_SECOND",
            &mut limits.per_tenant_per_second,
        );
        rate(
            "OMNIFORGE_RATE_PER_TENANT_BURST",
            &mut limits.per_tenant_burst,
        );
        rate(
            "OMNIFORGE_RATE_FAILED_KEY_VERIFICATIONS_PER_MINUTE",
            &mut limits.failed_key_verifications_per_minute,
        );
        rate(
            "OMNIFORGE_RATE_FAILED_AUTH_PER_MINUTE",
            &mut limits.failed_auth_per_minute,
        );
        rate(
            "OMNIFORGE_MCP_LISTENERS_PER_TENANT",
            &mut self.mcp.listeners_per_tenant,
        );
        rate("OMNIFORGE_TASK_WORKERS", &mut self.tasks.workers);
        rate("OMNIFORGE_TASK_MAX_ATTEMPTS", &mut self.tasks.max_attempts);
        rate(
            "OMNIFORGE_TASK_STREAMS_PER_TENANT",
            &mut self.tasks.streams_per_tenant,
        );
        if let Some(v) = env("OMNIFORGE_PUBLIC_URL") {
            self.http.public_url = Some(v);
        }
        if let Some(v) = env("OMNIFORGE_CLIENT_ADDRESS_HEADER") {
            self.http.client_address_header = Some(v);
        }
        if let Some(v) = env("OMNIFORGE_TRUSTED_PROXIES") {
            self.http.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = env("OMNIFORGE_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = env("OMNIFORGE_ADMIN_LISTEN") {
            self.admin_listen = Some(v);
        }
        // OpenTelemetry's own variables name the collector too; ours wins.
        if let Some(v) =
            env("OMNIFORGE_OTLP_ENDPOINT").or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            self.telemetry.otlp_endpoint = Some(v);
        }
        if let Some(v) = env("OTEL_SERVICE_NAME") {
            self.telemetry.service_name = v;
        }
        if let Some(v) = env("OMNIFORGE_METRICS") {
            match v.trim() {
                "on" | "true" => self.telemetry.metrics = true,
                "off" | "false" => self.telemetry.metrics = false,
                _ => problems.push(format!("OMNIFORGE_METRICS: {v:?} is not on or off")),
            }
        }
        self.apply_secrets_env(env, problems);
        self.apply_scale_env(env, problems);
        if let Some(v) = env("OMNIFORGE_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("OMNIFORGE_DATABASE_URL") {
            self.database_url = Some(Secret(v));
        }
        if let Some(v) = env("OMNIFORGE_LOG") {
            self.log.filter = v;
        }
        match env("OMNIFORGE_LOG_FORMAT").as_deref() {
            None => {}
            Some("text") => self.log.format = LogFormat::Text,
            Some("json") => self.log.format = LogFormat::Json,
            Some(other) => problems.push(format!(
                "OMNIFORGE_LOG_FORMAT: {other:?} is not one of text, json"
            )),
        }
        let jwt_vars = [
            "OMNIFORGE_JWT_ISSUER",
            "OMNIFORGE_JWT_AUDIENCE",
            "OMNIFORGE_JWT_HS256_SECRET",
            "OMNIFORGE_JWT_RS256_PUBLIC_KEY_FILE",
            "OMNIFORGE_JWT_JWKS_URL",
            "OMNIFORGE_JWT_TENANT_CLAIM",
        ];
        if jwt_vars.iter().any(|name| env(name).is_some()) {
            let jwt = self.auth.jwt.get_or_insert_with(|| JwtConfig {
                issuer: String::new(),
                audience: String::new(),
                hs256_secret: None,
                rs256_public_key_file: None,
                jwks_url: None,
                tenant_claim: default_tenant_claim(),
                leeway_secs: default_leeway(),
                jwks_ttl_secs: default_jwks_ttl(),
            });
            if let Some(v) = env("OMNIFORGE_JWT_ISSUER") {
                jwt.issuer = v;
            }
            if let Some(v) = env("OMNIFORGE_JWT_AUDIENCE") {
                jwt.audience = v;
            }
            if let Some(v) = env("OMNIFORGE_JWT_HS256_SECRET") {
                jwt.hs256_secret = Some(Secret(v));
            }
            if let Some(v) = env("OMNIFORGE_JWT_RS256_PUBLIC_KEY_FILE") {
                jwt.rs256_public_key_file = Some(PathBuf::from(v));
            }
            if let Some(v) = env("OMNIFORGE_JWT_JWKS_URL") {
                jwt.jwks_url = Some(v);
            }
            if let Some(v) = env("OMNIFORGE_JWT_TENANT_CLAIM") {
                jwt.tenant_claim = v;
            }
        }
    }
}

impl Config {
    /// The `OMNIFORGE_SECRETS_*` variables, and AWS's own for the `aws` provider.
    fn apply_secrets_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
        problems: &mut Vec<String>,
    ) {
        let secrets = &mut self.secrets;
        if let Some(v) = env("OMNIFORGE_SECRETS_PROVIDER") {
            match v.trim().parse() {
                Ok(kind) => secrets.provider = kind,
                Err(_) => problems.push(format!(
                    "OMNIFORGE_SECRETS_PROVIDER: {v:?} is not one of db, env, files, aws"
                )),
            }
        }
        if let Some(v) = env("OMNIFORGE_SECRETS_KEY") {
            secrets.key = Some(Secret(v));
        }
        if let Some(v) = env("OMNIFORGE_SECRETS_KEY_FILE") {
            secrets.key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("OMNIFORGE_SECRETS_PREVIOUS_KEY") {
            secrets.previous_key = Some(Secret(v));
        }
        if let Some(v) = env("OMNIFORGE_SECRETS_PREVIOUS_KEY_FILE") {
            secrets.previous_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("OMNIFORGE_SECRETS_DIR") {
            secrets.dir = Some(PathBuf::from(v));
        }
        let aws = &mut secrets.aws;
        if let Some(v) = env("OMNIFORGE_SECRETS_AWS_REGION")
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
        {
            aws.region = Some(v);
        }
        if let Some(v) = env("OMNIFORGE_SECRETS_AWS_ENDPOINT")
            .or_else(|| env("AWS_ENDPOINT_URL_SECRETS_MANAGER"))
        {
            aws.endpoint = Some(v);
        }
        if let Some(v) = env("OMNIFORGE_SECRETS_AWS_PREFIX") {
            aws.prefix = v;
        }
        if let Some(v) = env("OMNIFORGE_SECRETS_CACHE_TTL_MS") {
            match v.trim().parse() {
                Ok(ms) => aws.cache_ttl_ms = ms,
                Err(_) => problems.push(format!(
                    "OMNIFORGE_SECRETS_CACHE_TTL_MS: {v:?} is not a whole number"
                )),
            }
        }
        if let Some(v) = env("AWS_ACCESS_KEY_ID") {
            aws.access_key_id = Some(v);
        }
        if let Some(v) = env("AWS_SECRET_ACCESS_KEY") {
            aws.secret_access_key = Some(Secret(v));
        }
        if let Some(v) = env("AWS_SESSION_TOKEN") {
            aws.session_token = Some(Secret(v));
        }
    }
}
