//! State that the replicas of one deployment share through Redis: request rate limits (the
//! server's `ratelimit::shared`), quota counters ([`ledger::RedisLedger`]) and cache
//! invalidation ([`changes::RedisChanges`]). Task wake-ups and cancels travel through the
//! database instead (PostgreSQL `LISTEN`/`NOTIFY`, beside the rows they are about).
//!
//! One Redis primary serves them all (with replicas and Sentinel, or a managed service's
//! failover, for availability). Redis Cluster is not supported: one settlement call touches
//! the counters of many tenants at once. The keys of one tenant and period share a hash tag,
//! so a later move to Cluster only has to split those calls by slot.
//!
//! While Redis cannot be reached, [`FailureMode`] decides: `open` falls back to this
//! replica's own counters (limits then hold per replica, not across the deployment), `closed`
//! refuses what needs them with 503. Either way a failed call marks Redis down for
//! [`RETRY_AFTER_FAILURE`], so that requests meanwhile do not each wait for a timeout.

pub mod changes;
pub mod ledger;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

/// What limits and quotas do while Redis is unreachable.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum FailureMode {
    /// Keep serving with this replica's own counters: a tenant may get up to one limit per
    /// replica until Redis is back.
    #[default]
    Open,
    /// Refuse requests that need the shared counters (503 with `Retry-After`).
    Closed,
}

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// What happens while it is unreachable.
    pub failure_mode: FailureMode,
    /// The longest a command or a connection attempt may take before Redis counts as down.
    pub timeout: Duration,
    /// Put before every key, so that deployments can share one Redis.
    pub key_prefix: String,
}

/// Why a shared counter could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("redis is unreachable: {0}")]
pub struct Unreachable(pub String);

/// How long Redis counts as down after a failed call before the next call tries it again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// This replica's connection to Redis: one multiplexed connection (concurrent commands are
/// pipelined on it), reconnected when it breaks.
pub struct SharedRedis {
    client: redis::Client,
    conn: ConnectionManager,
    failure_mode: FailureMode,
    key_prefix: String,
    replica: String,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not tried.
    down_until_ms: AtomicU64,
    /// Whether the last call failed (so that recovery is logged once).
    down: AtomicBool,
    round_trips: AtomicU64,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRedis")
            .field("replica", &self.replica)
            .field("failure_mode", &self.failure_mode)
            .finish_non_exhaustive()
    }
}

impl SharedRedis {
    /// A connection to `settings.url`, made on first use: a replica starts (and serves, in
    /// `open` mode) while Redis is still down.
    pub fn connect(settings: &RedisSettings) -> Result<Self, String> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| format!("redis.url: {}", e.to_string().replace(&settings.url, "…")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(settings.timeout);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("redis: {e}"))?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| format!("no randomness: {e}"))?;
        Ok(Self {
            client,
            conn,
            failure_mode: settings.failure_mode,
            key_prefix: settings.key_prefix.clone(),
            replica: hex::encode(id),
            started: Instant::now(),
            down_until_ms: AtomicU64::new(0),
            down: AtomicBool::new(false),
            round_trips: AtomicU64::new(0),
        })
    }

    /// This process's id among the replicas (random per start).
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// What limits do while Redis is unreachable.
    pub fn failure_mode(&self) -> FailureMode {
        self.failure_mode
    }

    /// The key `<prefix>:<kind>:{<tag>}`: the braces make every key of one tag one hash slot.
    pub fn key(&self, kind: &str, tag: &str) -> String {
        format!("{}:{kind}:{{{tag}}}", self.key_prefix)
    }

    /// Round trips made so far (every command or script call is one; benchmarks read it).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// A client for connections of their own (subscriptions).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether the last call failed and Redis was not reached since.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs `call` on the shared connection, unless Redis failed less than
    /// [`RETRY_AFTER_FAILURE`] ago. A failure marks it down and is logged once per outage.
    pub async fn run<T, F, Fut>(&self, what: &str, call: F) -> Result<T, Unreachable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.now_ms() < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(Unreachable("it failed less than a second ago".into()));
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match call(self.conn.clone()).await {
            Ok(value) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis is reachable again");
                }
                Ok(value)
            }
            Err(e)
                if e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error() =>
            {
                Err(self.failed(what, &e))
            }
            // Redis answered, with an error (a script's, out of memory, read-only replica):
            // worth saying loudly, and treated like an outage by the caller, but the next
            // call tries again at once.
            Err(e) => {
                tracing::error!("redis refused {what}: {e}");
                Err(Unreachable(e.to_string()))
            }
        }
    }

    /// Marks Redis down after `error`.
    pub(crate) fn failed(&self, what: &str, error: &redis::RedisError) -> Unreachable {
        self.down_until_ms.store(
            self.now_ms() + RETRY_AFTER_FAILURE.as_millis() as u64,
            Ordering::Relaxed,
        );
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                failure_mode = %self.failure_mode,
                "redis is unreachable ({what}: {error}); limits and quotas are {}",
                match self.failure_mode {
                    FailureMode::Open => "this replica's own until it is back",
                    FailureMode::Closed => "refused until it is back",
                }
            );
        }
        Unreachable(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_redis_fails_fast_and_is_not_retried_for_a_second() {
        // A port nobody listens on: connections are refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = SharedRedis::connect(&RedisSettings {
            url: format!("redis://127.0.0.1:{port}"),
            failure_mode: FailureMode::Closed,
            timeout: Duration::from_millis(200),
            key_prefix: "t".into(),
        })
        .unwrap();
        let ping = |mut c: ConnectionManager| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        };
        assert!(redis.run("ping", ping).await.is_err());
        let before = redis.round_trips();
        let started = Instant::now();
        let err = redis.run("ping", ping).await.unwrap_err();
        assert!(err.0.contains("less than a second"), "{err}");
        assert_eq!(redis.round_trips(), before, "not tried while marked down");
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(
            redis.key("quota", "ten_a:2026-12"),
            "t:quota:{ten_a:2026-12}"
        );
    }

    #[test]
    fn failure_modes_parse_from_configuration_words() {
        assert_eq!("open".parse::<FailureMode>().unwrap(), FailureMode::Open);
        assert_eq!(
            "closed".parse::<FailureMode>().unwrap(),
            FailureMode::Closed
        );
        assert!("maybe".parse::<FailureMode>().is_err());
    }
}
