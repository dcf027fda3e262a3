//! Rate limits that hold across every replica: the same GCRA as one process, with its state
//! (the theoretical arrival time of each credential and tenant) in Redis.
//!
//! A round trip per request would put Redis on every request's path, so a replica takes
//! tokens in small leases: one script call checks the credential's and the tenant's bucket,
//! takes up to a hundredth of a second's worth from both, and the replica spends them
//! locally for [`LEASE_LIFE`]. Tokens are taken before they are spent, so the deployment
//! never admits more than the limit; a lease that expires unspent only makes the limit a
//! little stricter (at most a hundredth of the rate per replica and lease). A refusal is
//! remembered for its `Retry-After`, so traffic above the limit costs Redis one call per
//! wait, not one per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use omniforge_control::shared::{FailureMode, SharedRedis};
use omniforge_store::TenantId;

use super::{CredentialKey, RateLimited, RateLimits, Refused, RequestLimiter};
use crate::config::RateLimitConfig;

/// Takes up to ARGV[1] tokens from the buckets KEYS[1] (credential) and KEYS[2] (tenant).
/// ARGV[2..5]: each bucket's emission interval and tolerance in ms (interval 0: no limit).
/// Answers `{granted}` or `{0, 1 (credential) | 2 (tenant), wait ms}`.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local want = tonumber(ARGV[1])
local function room(key, interval, tolerance)
  if interval <= 0 then return want, 0, 0 end
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local n = math.floor((tolerance - (tat - now)) / interval)
  if n > want then n = want end
  return n, tat + interval - tolerance - now, tat
end
local i1, i2 = tonumber(ARGV[2]), tonumber(ARGV[4])
local n1, w1, tat1 = room(KEYS[1], i1, tonumber(ARGV[3]))
if n1 < 1 then return {0, 1, math.ceil(w1)} end
local n2, w2, tat2 = room(KEYS[2], i2, tonumber(ARGV[5]))
if n2 < 1 then return {0, 2, math.ceil(w2)} end
local n = math.min(n1, n2)
if i1 > 0 then
  local tat = tat1 + n * i1
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
if i2 > 0 then
  local tat = tat2 + n * i2
  redis.call('SET', KEYS[2], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
return {n}
";

/// How long leased tokens may be spent; unspent ones are dropped after it.
pub const LEASE_LIFE: Duration = Duration::from_millis(250);

/// One bucket's GCRA parameters in milliseconds; `None` when its limit is off.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    interval_ms: f64,
    tolerance_ms: f64,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let burst = if burst == 0 { rate } else { burst };
        let interval_ms = 1000.0 / f64::from(rate);
        Some(Self {
            interval_ms,
            tolerance_ms: interval_ms * f64::from(burst),
        })
    }
}

#[derive(Debug)]
struct Lease {
    tokens: u32,
    until: Instant,
    /// A refusal to repeat without asking until `until`.
    refused: Option<RateLimited>,
}

/// Rate limits in Redis, with this replica's own limiter for the `open` failure mode.
pub struct SharedRateLimits {
    redis: Arc<SharedRedis>,
    local: RateLimits,
    credential: Option<Bucket>,
    tenant: Option<Bucket>,
    lease_size: u32,
    leases: Mutex<HashMap<(TenantId, CredentialKey), Lease>>,
    take: redis::Script,
}

impl SharedRateLimits {
    /// Limits as configured, shared through `redis`.
    pub fn new(config: &RateLimitConfig, redis: Arc<SharedRedis>) -> Self {
        let credential = Bucket::new(config.per_key_per_second, config.per_key_burst);
        let tenant = Bucket::new(config.per_tenant_per_second, config.per_tenant_burst);
        let slowest = [config.per_key_per_second, config.per_tenant_per_second]
            .into_iter()
            .filter(|rate| *rate > 0)
            .min()
            .unwrap_or(0);
        Self {
            redis,
            local: RateLimits::new(config),
            credential,
            tenant,
            lease_size: (slowest / 100).max(1),
            leases: Mutex::default(),
            take: redis::Script::new(TAKE),
        }
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<(TenantId, CredentialKey), Lease>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn credential_key(&self, credential: &CredentialKey) -> String {
        match credential {
            CredentialKey::ApiKey(id) => self.redis.key("rate", &format!("key:{id}")),
            CredentialKey::User(id) => self.redis.key("rate", &format!("user:{id}")),
        }
    }

    /// Spends a leased token or repeats a remembered refusal; `None` when Redis must be asked.
    fn spend_lease(&self, key: &(TenantId, CredentialKey)) -> Option<Result<(), RateLimited>> {
        let mut leases = self.leases();
        let lease = leases.get_mut(key)?;
        let now = Instant::now();
        if now >= lease.until {
            leases.remove(key);
            return None;
        }
        if let Some(refused) = lease.refused {
            return Some(Err(RateLimited {
                retry_after: lease.until - now,
                ..refused
            }));
        }
        if lease.tokens == 0 {
            return None;
        }
        lease.tokens -= 1;
        Some(Ok(()))
    }
}

#[async_trait]
impl RequestLimiter for SharedRateLimits {
    async fn check(&self, tenant: &TenantId, credential: &CredentialKey) -> Result<(), Refused> {
        if self.credential.is_none() && self.tenant.is_none() {
            return Ok(());
        }
        let key = (tenant.clone(), credential.clone());
        if let Some(answer) = self.spend_lease(&key) {
            return answer.map_err(Refused::Limited);
        }
        let off = Bucket {
            interval_ms: 0.0,
            tolerance_ms: 0.0,
        };
        let (credential_bucket, tenant_bucket) =
            (self.credential.unwrap_or(off), self.tenant.unwrap_or(off));
        let answer: Result<Vec<i64>, _> = self
            .redis
            .run("rate limit", |mut conn| {
                let mut call = self.take.key(self.credential_key(credential));
                call.key(self.redis.key("rate", &format!("tenant:{tenant}")))
                    .arg(self.lease_size)
                    .arg(credential_bucket.interval_ms)
                    .arg(credential_bucket.tolerance_ms)
                    .arg(tenant_bucket.interval_ms)
                    .arg(tenant_bucket.tolerance_ms);
                async move { call.invoke_async(&mut conn).await }
            })
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                return match self.redis.failure_mode() {
                    FailureMode::Open => self
                        .local
                        .check_here(tenant, credential)
                        .map_err(Refused::Limited),
                    FailureMode::Closed => Err(Refused::Unavailable(format!(
                        "the shared rate limits cannot be reached: {}",
                        e.0
                    ))),
                };
            }
        };
        let now = Instant::now();
        match answer.as_slice() {
            [granted] if *granted > 0 => {
                let spare = u32::try_from(*granted - 1).unwrap_or(0);
                if spare > 0 {
                    self.leases().insert(
                        key,
                        Lease {
                            tokens: spare,
                            until: now + LEASE_LIFE,
                            refused: None,
                        },
                    );
                }
                Ok(())
            }
            [0, which, wait_ms] => {
                let refused = RateLimited {
                    limit: if *which == 1 { "api_key" } else { "tenant" },
                    retry_after: Duration::from_millis((*wait_ms).max(1) as u64),
                };
                self.leases().insert(
                    key,
                    Lease {
                        tokens: 0,
                        until: now + refused.retry_after,
                        refused: Some(refused),
                    },
                );
                Err(Refused::Limited(refused))
            }
            other => Err(Refused::Unavailable(format!(
                "the rate limit script answered {other:?}"
            ))),
        }
    }

    fn shrink(&self) {
        let now = Instant::now();
        self.leases().retain(|_, lease| lease.until > now);
        self.local.shrink_here();
    }
}

#[cfg(test)]
mod tests {
    use omniforge_control::shared::RedisSettings;
    use omniforge_store::ApiKeyId;

    use super::*;

    fn replica(url: &str, prefix: &str, mode: FailureMode) -> SharedRateLimits {
        let redis = SharedRedis::connect(&RedisSettings {
            url: url.to_owned(),
            failure_mode: mode,
            timeout: Duration::from_millis(500),
            key_prefix: prefix.to_owned(),
        })
        .unwrap();
        SharedRateLimits::new(
            &RateLimitConfig {
                per_key_per_second: 0,
                per_key_burst: 0,
                per_tenant_per_second: 10,
                per_tenant_burst: 5,
                ..RateLimitConfig::default()
            },
            Arc::new(redis),
        )
    }

    #[tokio::test]
    async fn two_replicas_share_one_tenant_bucket() {
        let Some(url) = omniforge_store::testing::redis_url() else {
            return;
        };
        let prefix = omniforge_store::testing::unique_prefix("rate");
        let replicas = [
            replica(&url, &prefix, FailureMode::Closed),
            replica(&url, &prefix, FailureMode::Closed),
        ];
        let acme = TenantId::new("ten_acme");
        let mut admitted = 0;
        let mut waits = Vec::new();
        for i in 0..30 {
            let key = CredentialKey::ApiKey(ApiKeyId::new(format!("key_{}", i % 3)));
            match replicas[i % 2].check(&acme, &key).await {
                Ok(()) => admitted += 1,
                Err(Refused::Limited(limited)) => {
                    assert_eq!(limited.limit, "tenant");
                    waits.push(limited.retry_after);
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        // The burst, plus at most one more if 100 ms passed meanwhile: not one burst each.
        assert!((5..=6).contains(&admitted), "admitted {admitted}");
        assert!(
            waits.iter().all(|w| *w <= Duration::from_millis(100)),
            "{waits:?}"
        );
        // Another tenant has its own bucket.
        let globex = TenantId::new("ten_globex");
        let key = CredentialKey::ApiKey(ApiKeyId::new("key_g"));
        assert!(replicas[0].check(&globex, &key).await.is_ok());
        // The rate refills: a tenth of a second later there is room again.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(replicas[1].check(&acme, &key).await.is_ok());
    }

    #[tokio::test]
    async fn without_redis_open_falls_back_to_this_replica_and_closed_refuses() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        let acme = TenantId::new("ten_acme");
        let key = CredentialKey::ApiKey(ApiKeyId::new("key_a"));
        let open = replica(&url, "t", FailureMode::Open);
        let outcomes: Vec<bool> =
            futures_util::future::join_all((0..8).map(|_| open.check(&acme, &key)))
                .await
                .into_iter()
                .map(|r| r.is_ok())
                .collect();
        // This replica's own bucket: its burst of 5, then refusals.
        assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 5, "{outcomes:?}");
        let closed = replica(&url, "t", FailureMode::Closed);
        assert!(matches!(
            closed.check(&acme, &key).await,
            Err(Refused::Unavailable(_))
        ));
    }
}
