//! The `[redis]` and `[blobs]` sections: what several replicas share (docs/deployment/).
//! Without them a server keeps its limits in memory and its blobs under `data_dir`, which is
//! right for one process and wrong for two.

use std::time::Duration;

use omniforge_control::blobs::S3Options;
use omniforge_control::shared::{FailureMode, RedisSettings};
use serde::Deserialize;

use super::{Config, Secret};

/// Redis, shared by the replicas for rate limits, quota counters and cache invalidation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://…` or `rediss://…`; unset: nothing is shared (one replica).
    pub url: Option<Secret>,
    /// `open` (the default: each replica falls back to its own limits) or `closed` (requests
    /// that need the shared counters are refused with 503) while Redis is unreachable.
    pub failure_mode: FailureMode,
    /// The longest one Redis call may take before Redis counts as unreachable, ms.
    pub timeout_ms: u64,
    /// Put before every key.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            failure_mode: FailureMode::Open,
            timeout_ms: 250,
            key_prefix: "omniforge".into(),
        }
    }
}

impl RedisConfig {
    /// The connection settings, when a URL is configured.
    pub fn settings(&self) -> Option<RedisSettings> {
        let url = self.url.as_ref()?;
        Some(RedisSettings {
            url: url.expose().to_owned(),
            failure_mode: self.failure_mode,
            timeout: Duration::from_millis(self.timeout_ms),
            key_prefix: self.key_prefix.clone(),
        })
    }

    fn validate(&self, problems: &mut Vec<String>) {
        if let Some(url) = &self.url {
            let url = url.expose();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                problems.push("redis.url: must start with redis:// or rediss://".into());
            }
        }
        if !(10..=10_000).contains(&self.timeout_ms) {
            problems.push("redis.timeout_ms: must be 10 to 10000".into());
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}', ' ']) {
            problems.push("redis.key_prefix: must be non-empty, without braces or spaces".into());
        }
    }
}

/// Where package and component bytes live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, strum::EnumString)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum BlobBackend {
    /// Files under `<data_dir>/blobs` (one replica, or a shared volume).
    #[default]
    Fs,
    /// An S3-compatible bucket.
    S3,
}

/// Blob storage.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobsConfig {
    /// `fs` or `s3`.
    pub backend: BlobBackend,
    /// The bucket, for `s3`.
    pub bucket: Option<String>,
    /// The region (default: `AWS_REGION` or `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// A non-AWS endpoint (MinIO, Ceph, R2, …), addressed path-style.
    pub endpoint: Option<String>,
    /// Put before every object name, to share a bucket.
    pub prefix: String,
}

impl BlobsConfig {
    /// The S3 store's options, when the backend is `s3`.
    pub fn s3(&self) -> Option<S3Options> {
        (self.backend == BlobBackend::S3).then(|| S3Options {
            bucket: self.bucket.clone().unwrap_or_default(),
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            prefix: self.prefix.clone(),
        })
    }

    fn validate(&self, problems: &mut Vec<String>) {
        if self.backend == BlobBackend::S3 && self.bucket.as_deref().is_none_or(str::is_empty) {
            problems.push("blobs.bucket: name the bucket of the s3 backend".into());
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.push(format!(
                "blobs.endpoint: {endpoint:?} is not an http(s) URL"
            ));
        }
        if !(self.prefix.is_empty() || self.prefix.ends_with('/')) || self.prefix.starts_with('/') {
            problems.push("blobs.prefix: must be empty or like omniforge/ (no leading /)".into());
        }
    }
}

impl Config {
    /// The `OMNIFORGE_REDIS_*` and `OMNIFORGE_BLOBS_*` variables.
    pub(super) fn apply_scale_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
        problems: &mut Vec<String>,
    ) {
        if let Some(v) = env("OMNIFORGE_REDIS_URL") {
            self.redis.url = (!v.is_empty()).then(|| Secret::new(v));
        }
        if let Some(v) = env("OMNIFORGE_REDIS_FAILURE_MODE") {
            match v.trim().parse() {
                Ok(mode) => self.redis.failure_mode = mode,
                Err(_) => problems.push(format!(
                    "OMNIFORGE_REDIS_FAILURE_MODE: {v:?} is not one of open, closed"
                )),
            }
        }
        if let Some(v) = env("OMNIFORGE_REDIS_TIMEOUT_MS") {
            match v.trim().parse() {
                Ok(ms) => self.redis.timeout_ms = ms,
                Err(_) => problems.push(format!(
                    "OMNIFORGE_REDIS_TIMEOUT_MS: {v:?} is not a whole number"
                )),
            }
        }
        if let Some(v) = env("OMNIFORGE_REDIS_KEY_PREFIX") {
            self.redis.key_prefix = v;
        }
        if let Some(v) = env("OMNIFORGE_BLOBS_BACKEND") {
            match v.trim().parse() {
                Ok(backend) => self.blobs.backend = backend,
                Err(_) => problems.push(format!(
                    "OMNIFORGE_BLOBS_BACKEND: {v:?} is not one of fs, s3"
                )),
            }
        }
        if let Some(v) = env("OMNIFORGE_BLOBS_BUCKET") {
            self.blobs.bucket = Some(v);
        }
        if let Some(v) = env("OMNIFORGE_BLOBS_REGION") {
            self.blobs.region = Some(v);
        }
        if let Some(v) = env("OMNIFORGE_BLOBS_ENDPOINT") {
            self.blobs.endpoint = Some(v);
        }
        if let Some(v) = env("OMNIFORGE_BLOBS_PREFIX") {
            self.blobs.prefix = v;
        }
    }

    pub(super) fn validate_scale(&self, problems: &mut Vec<String>) {
        self.redis.validate(problems);
        self.blobs.validate(problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, super::super::ConfigError> {
        Config::load_with_env(None, |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn redis_and_s3_come_from_the_environment_and_bad_values_are_named() {
        let config = load(&[
            ("OMNIFORGE_REDIS_URL", "redis://:pw@cache:6379/2"),
            ("OMNIFORGE_REDIS_FAILURE_MODE", "closed"),
            ("OMNIFORGE_BLOBS_BACKEND", "s3"),
            ("OMNIFORGE_BLOBS_BUCKET", "skills"),
            ("OMNIFORGE_BLOBS_ENDPOINT", "http://127.0.0.1:9000"),
            ("OMNIFORGE_BLOBS_PREFIX", "prod/"),
        ])
        .unwrap();
        let redis = config.redis.settings().unwrap();
        assert_eq!(redis.failure_mode, FailureMode::Closed);
        assert_eq!(redis.timeout, Duration::from_millis(250));
        assert!(
            !format!("{config:?}").contains(":pw@"),
            "the URL is a secret"
        );
        let s3 = config.blobs.s3().unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("skills", "prod/")
        );

        assert!(Config::default().redis.settings().is_none());
        assert!(Config::default().blobs.s3().is_none());

        let problems = load(&[
            ("OMNIFORGE_REDIS_URL", "http://cache"),
            ("OMNIFORGE_REDIS_FAILURE_MODE", "sometimes"),
            ("OMNIFORGE_BLOBS_BACKEND", "s3"),
        ])
        .unwrap_err()
        .problems
        .join("\n");
        for expected in ["redis.url", "OMNIFORGE_REDIS_FAILURE_MODE", "blobs.bucket"] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
    }
}
