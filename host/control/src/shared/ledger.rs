//! Quota counters shared by every replica: exact quotas however requests are spread.
//!
//! Per tenant and period Redis keeps what was used (`…:used`, the admission view), what
//! running invocations hold (`…:held`, a sum), and each hold with its deadline (`…:holds`, a
//! sorted set, and `…:hold_fuel`). One script drops the holds past their deadline, admits an
//! invocation against used + held, and records its hold: one round trip per admitted
//! invocation. A hold whose replica died, or whose answer was lost, is released by the first
//! admission after its deadline (the longest the tenant's invocations may run, plus a
//! margin), so nothing needs refreshing and no replica's crash shrinks a quota for long.
//! Settling removes the hold by id, which makes a repeated settlement harmless.
//!
//! Settlements are sent in batches by a background task, off the request path, and retried
//! while Redis is down. The database is still written by this replica's [`Meter`], which stays
//! the record that usage reports read and the fallback of the `open` failure mode. Usage of
//! invocations admitted by that fallback is added to `…:used` too once Redis is back.
//!
//! Tenants without a quota never wait for Redis: nothing needs sharing to admit them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use omniforge_store::{Database, StoreError, TenantId, UsageCounters};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::{FailureMode, RETRY_AFTER_FAILURE, SharedRedis, Unreachable};
use crate::meter::{Hold, Meter, QuotaExceeded, QuotaLedger, Spent, period_of};
use crate::policy::TenantPolicy;

/// KEYS: used, held, holds, hold_fuel. ARGV: hold id, max invocations (-1: none), max fuel
/// (-1: none), fuel asked, hold deadline from now (ms), counters' expiry (ms). Drops expired
/// holds, then answers `{-1}` when the period's counters are not in Redis yet, `{1, fuel
/// granted}` when admitted, or `{0, 1 (invocations) | 2 (fuel), 1 if used up, not only held}`.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(expired) do
  local fuel = redis.call('HGET', KEYS[4], id)
  redis.call('HINCRBY', KEYS[2], 'inv', -1)
  redis.call('HINCRBY', KEYS[2], 'fuel', '-' .. (fuel or '0'))
  redis.call('HDEL', KEYS[4], id)
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local used = redis.call('HMGET', KEYS[1], 'inv', 'fuel')
local held = redis.call('HMGET', KEYS[2], 'inv', 'fuel')
local used_inv, used_fuel = tonumber(used[1] or '0'), tonumber(used[2] or '0')
local held_inv = math.max(tonumber(held[1] or '0'), 0)
local held_fuel = math.max(tonumber(held[2] or '0'), 0)
local max_inv, max_fuel = tonumber(ARGV[2]), tonumber(ARGV[3])
if max_inv >= 0 and used_inv + held_inv >= max_inv then
  return {0, 1, used_inv >= max_inv and 1 or 0}
end
local granted = tonumber(ARGV[4])
if max_fuel >= 0 then
  local left = max_fuel - used_fuel - held_fuel
  if left <= 0 then return {0, 2, used_fuel >= max_fuel and 1 or 0} end
  if left < granted then granted = left end
end
local fuel = string.format('%d', granted)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], fuel)
redis.call('HINCRBY', KEYS[2], 'inv', 1)
redis.call('HINCRBY', KEYS[2], 'fuel', fuel)
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
return {1, granted}
";

/// Loads a period's counters (read from the database) unless another replica did first.
const LOAD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'inv', ARGV[1], 'fuel', ARGV[2], 'wall_ms', ARGV[3], 'fail', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
";

/// Settles a batch: seven values per settlement (key base, hold id or '' for a hold of this
/// replica's own meter, counted 0/1, invocations, fuel, wall ms, failures). A hold is removed
/// once: settling it again changes nothing. A period whose counters are gone (expired, or
/// Redis restarted) is loaded from the database on its next admission instead.
const SETTLE: &str = r"
local i = 1
while i <= #ARGV do
  local base, id = ARGV[i], ARGV[i + 1]
  local fresh = true
  if id ~= '' then
    fresh = redis.call('ZREM', base .. ':holds', id) == 1
    if fresh then
      local fuel = redis.call('HGET', base .. ':hold_fuel', id)
      redis.call('HDEL', base .. ':hold_fuel', id)
      redis.call('HINCRBY', base .. ':held', 'inv', -1)
      redis.call('HINCRBY', base .. ':held', 'fuel', '-' .. (fuel or '0'))
    end
  end
  local used = base .. ':used'
  if fresh and ARGV[i + 2] == '1' and redis.call('EXISTS', used) == 1 then
    redis.call('HINCRBY', used, 'inv', ARGV[i + 3])
    redis.call('HINCRBY', used, 'fuel', ARGV[i + 4])
    redis.call('HINCRBY', used, 'wall_ms', ARGV[i + 5])
    redis.call('HINCRBY', used, 'fail', ARGV[i + 6])
  end
  i = i + 7
end
return 1
";

/// Added to the longest an invocation of the tenant may run to make a hold's deadline: time
/// between admission and the sandbox's start, and a settlement's way to Redis.
const HOLD_MARGIN: Duration = Duration::from_secs(60);

/// How long a period's counters stay in Redis after its end: late settlements still land.
const PERIOD_GRACE: Duration = Duration::from_secs(3600);

/// Settlements sent in one script call at most.
const SETTLE_BATCH: usize = 512;

/// How long a batch of settlements is retried while Redis is unreachable before it is given
/// up (the holds then lapse at their deadlines; the usage is in the database either way).
const SETTLE_PATIENCE: Duration = Duration::from_secs(60);

/// Lua's numbers are doubles: counters and limits are kept below 2^53 so that they stay
/// exact in the scripts.
const EXACT_IN_LUA: u64 = (1 << 53) - 1;

struct Settlement {
    base: String,
    /// `None` for a hold of this replica's own meter (the `open` fallback).
    hold: Option<String>,
    counted: Option<UsageCounters>,
}

/// Quota counters in Redis, with this replica's [`Meter`] for the database and for the
/// `open` failure mode.
pub struct RedisLedger {
    redis: Arc<SharedRedis>,
    db: Database,
    local: Arc<Meter>,
    settlements: mpsc::UnboundedSender<Settlement>,
    reserve: redis::Script,
    load: redis::Script,
    next_hold: AtomicU64,
}

impl RedisLedger {
    /// A ledger over `redis`, writing usage to `db`; starts the task that sends settlements.
    pub fn new(redis: Arc<SharedRedis>, db: Database) -> Arc<Self> {
        let (settlements, queue) = mpsc::unbounded_channel();
        tokio::spawn(send_settlements(Arc::clone(&redis), queue));
        Arc::new(Self {
            local: Meter::new(db.clone()),
            redis,
            db,
            settlements,
            reserve: redis::Script::new(RESERVE),
            load: redis::Script::new(LOAD),
            next_hold: AtomicU64::new(0),
        })
    }

    fn base(&self, tenant: &TenantId, period: &str) -> String {
        self.redis.key("quota", &format!("{tenant}:{period}"))
    }

    async fn reserve_shared(
        &self,
        tenant: &TenantId,
        policy: &TenantPolicy,
        fuel: u64,
    ) -> Result<Result<Hold, QuotaExceeded>, SharedFailure> {
        let (period, period_left) = period_of(policy.quota_period, OffsetDateTime::now_utc());
        let base = self.base(tenant, &period);
        let expire_ms = (period_left * 1000 + PERIOD_GRACE.as_millis() as u64).to_string();
        let deadline_ms = policy.max_timeout_ms + HOLD_MARGIN.as_millis() as u64;
        let limit = |l: Option<u64>| l.map_or(-1, |l| l.min(EXACT_IN_LUA) as i64);
        let id = format!(
            "{}-{}",
            self.redis.replica(),
            self.next_hold.fetch_add(1, Ordering::Relaxed)
        );
        for _ in 0..2 {
            let answer: Vec<i64> = self
                .redis
                .run("quota reserve", |mut conn| {
                    let mut call = self.reserve.key(format!("{base}:used"));
                    call.key(format!("{base}:held"))
                        .key(format!("{base}:holds"))
                        .key(format!("{base}:hold_fuel"))
                        .arg(&id)
                        .arg(limit(policy.max_invocations))
                        .arg(limit(policy.max_total_fuel))
                        .arg(fuel.min(EXACT_IN_LUA))
                        .arg(deadline_ms)
                        .arg(&expire_ms);
                    async move { call.invoke_async(&mut conn).await }
                })
                .await?;
            match answer.as_slice() {
                [-1] => {
                    // What the database has, plus what this replica has not written yet.
                    let stored = self.db.tenant(tenant).usage(&period).await?;
                    let unwritten = self.local.unwritten(tenant, &period);
                    self.redis
                        .run("quota load", |mut conn| {
                            let mut call = self.load.key(format!("{base}:used"));
                            call.arg(stored.invocations + unwritten.invocations)
                                .arg(stored.fuel.saturating_add(unwritten.fuel))
                                .arg(stored.wall_ms.saturating_add(unwritten.wall_ms))
                                .arg(stored.failures + unwritten.failures)
                                .arg(&expire_ms);
                            async move { call.invoke_async::<i64>(&mut conn).await }
                        })
                        .await?;
                }
                [1, granted] => {
                    let hold = Hold::shared(tenant.clone(), period, *granted as u64, id);
                    return Ok(Ok(hold));
                }
                [0, which, used_up] => {
                    let (quota, limit) = if *which == 1 {
                        ("invocations", policy.max_invocations.unwrap_or(0))
                    } else {
                        ("fuel", policy.max_total_fuel.unwrap_or(0))
                    };
                    // Held by running invocations: try again in a second.
                    let retry_after_secs = if *used_up == 1 { period_left } else { 1 };
                    return Ok(Err(QuotaExceeded {
                        quota,
                        limit,
                        retry_after_secs,
                    }));
                }
                other => {
                    return Err(SharedFailure::Store(StoreError::Corrupt(format!(
                        "the quota script answered {other:?}"
                    ))));
                }
            }
        }
        Err(SharedFailure::Store(StoreError::Corrupt(
            "the quota counters vanished twice while loading".into(),
        )))
    }
}

enum SharedFailure {
    Redis(Unreachable),
    Store(StoreError),
}

impl From<Unreachable> for SharedFailure {
    fn from(e: Unreachable) -> Self {
        Self::Redis(e)
    }
}

impl From<StoreError> for SharedFailure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

#[async_trait]
impl QuotaLedger for RedisLedger {
    async fn reserve(
        &self,
        tenant: &TenantId,
        policy: &TenantPolicy,
        fuel: u64,
    ) -> Result<Result<Hold, QuotaExceeded>, StoreError> {
        if policy.max_invocations.is_none() && policy.max_total_fuel.is_none() {
            return self.local.reserve(tenant, policy, fuel).await;
        }
        match self.reserve_shared(tenant, policy, fuel).await {
            Ok(answer) => Ok(answer),
            Err(SharedFailure::Store(e)) => Err(e),
            Err(SharedFailure::Redis(e)) => match self.redis.failure_mode() {
                FailureMode::Open => self.local.reserve(tenant, policy, fuel).await,
                FailureMode::Closed => Err(StoreError::Unavailable(format!(
                    "the shared quota counters cannot be reached: {}",
                    e.0
                ))),
            },
        }
    }

    fn settle(&self, hold: &Hold, spent: Option<Spent>) {
        let counted = match hold.shared_id() {
            Some(_) => spent.map(|spent| self.local.record(hold, spent)),
            None => {
                // Admitted by this replica's meter: counted there, and in Redis when the
                // period's counters are there (the fallback's usage must not vanish). Not
                // while Redis is down: the queue would grow with the outage.
                self.local.settle(hold, None);
                let Some(spent) = spent else { return };
                let counted = self.local.record(hold, spent);
                if self.redis.is_down() {
                    return;
                }
                Some(counted)
            }
        };
        // The receiver lives as long as the process; a send fails only at shutdown.
        let _ = self.settlements.send(Settlement {
            base: self.base(hold.tenant(), hold.period()),
            hold: hold.shared_id().map(str::to_owned),
            counted,
        });
    }

    async fn usage(&self, tenant: &TenantId, period: &str) -> Result<UsageCounters, StoreError> {
        self.local.usage(tenant, period).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.local.flush().await
    }
}

/// Sends settlements as they come, as many per script call as have queued up meanwhile;
/// while Redis is unreachable, the batch waits and is tried again.
async fn send_settlements(redis: Arc<SharedRedis>, mut queue: mpsc::UnboundedReceiver<Settlement>) {
    let script = redis::Script::new(SETTLE);
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    while queue.recv_many(&mut batch, SETTLE_BATCH).await > 0 {
        let first_try = std::time::Instant::now();
        loop {
            let sent = redis
                .run("quota settle", |mut conn| {
                    let mut call = script.prepare_invoke();
                    for settlement in &batch {
                        let counted = settlement.counted.clone().unwrap_or_default();
                        call.arg(&settlement.base)
                            .arg(settlement.hold.as_deref().unwrap_or(""))
                            .arg(u8::from(settlement.counted.is_some()))
                            .arg(counted.invocations)
                            .arg(counted.fuel)
                            .arg(counted.wall_ms)
                            .arg(counted.failures);
                    }
                    async move { call.invoke_async::<i64>(&mut conn).await }
                })
                .await;
            match sent {
                Ok(_) => break,
                Err(e) if first_try.elapsed() > SETTLE_PATIENCE => {
                    tracing::warn!(
                        settlements = batch.len(),
                        "giving up settling quota holds in redis (they lapse at their \
                         deadlines; the usage is in the database): {e}"
                    );
                    break;
                }
                Err(_) => tokio::time::sleep(RETRY_AFTER_FAILURE).await,
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::RedisSettings;

    fn replica(url: &str, prefix: &str) -> Arc<SharedRedis> {
        Arc::new(
            SharedRedis::connect(&RedisSettings {
                url: url.to_owned(),
                failure_mode: FailureMode::Closed,
                timeout: Duration::from_secs(2),
                key_prefix: prefix.to_owned(),
            })
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn two_replicas_admit_exactly_the_quota_and_settled_holds_free_their_share() {
        let Some(url) = omniforge_store::testing::redis_url() else {
            return;
        };
        let prefix = omniforge_store::testing::unique_prefix("ledger");
        let test = omniforge_store::testing::sqlite().await;
        test.db.migrate().await.unwrap();
        let audit = omniforge_store::AuditContext::system("test", "ledger");
        let platform = test.db.platform();
        let tenant = platform
            .create_tenant(&audit, "acme", "Acme")
            .await
            .unwrap()
            .id;
        let other = platform
            .create_tenant(&audit, "globex", "Globex")
            .await
            .unwrap()
            .id;
        let (a, b) = (
            RedisLedger::new(replica(&url, &prefix), test.db.clone()),
            RedisLedger::new(replica(&url, &prefix), test.db.clone()),
        );
        let policy = TenantPolicy {
            max_invocations: Some(10),
            ..TenantPolicy::default()
        };
        let asks: Vec<_> = (0..40)
            .map(|i| {
                let ledger = Arc::clone(if i % 2 == 0 { &a } else { &b });
                let (tenant, policy) = (tenant.clone(), policy.clone());
                tokio::spawn(async move { ledger.reserve(&tenant, &policy, 100).await.unwrap() })
            })
            .collect();
        let mut holds = Vec::new();
        for ask in asks {
            match ask.await.unwrap() {
                Ok(hold) => holds.push(hold),
                Err(refused) => {
                    assert_eq!(refused.quota, "invocations");
                    assert_eq!(refused.retry_after_secs, 1, "held, not used up");
                }
            }
        }
        assert_eq!(holds.len(), 10, "exactly the quota across both replicas");
        assert!(holds.iter().all(Hold::is_shared));

        // Three ran; two never did (their share comes back); five are still running.
        let spent = Spent {
            fuel: 40,
            wall_us: 1_500,
            failed: false,
        };
        for hold in &holds[..3] {
            a.settle(hold, Some(spent));
        }
        for hold in &holds[3..5] {
            b.settle(hold, None);
        }
        let mut admitted = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while admitted < 2 {
            match a.reserve(&tenant, &policy, 100).await.unwrap() {
                Ok(_) => admitted += 1,
                Err(_) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the released share never came back"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        let refused = b.reserve(&tenant, &policy, 100).await.unwrap().unwrap_err();
        assert_eq!(refused.quota, "invocations");

        // The database learns what ran from the replica that settled it.
        a.flush().await.unwrap();
        let (period, _) = period_of(policy.quota_period, OffsetDateTime::now_utc());
        let stored = test.db.tenant(&tenant).usage(&period).await.unwrap();
        assert_eq!((stored.invocations, stored.fuel), (3, 120));

        // Fuel: the hold is cut to what is left, then refused.
        let fuel = TenantPolicy {
            max_total_fuel: Some(1_000),
            ..TenantPolicy::default()
        };
        let first = a.reserve(&other, &fuel, 600).await.unwrap().unwrap();
        let second = b.reserve(&other, &fuel, 600).await.unwrap().unwrap();
        assert_eq!((first.fuel(), second.fuel()), (600, 400));
        assert_eq!(
            a.reserve(&other, &fuel, 1)
                .await
                .unwrap()
                .unwrap_err()
                .quota,
            "fuel"
        );

        // A hold nobody settles (its replica died) lapses at its deadline: moved to the past
        // here, it is released by the next admission.
        assert_eq!(
            a.reserve(&other, &fuel, 1)
                .await
                .unwrap()
                .unwrap_err()
                .quota,
            "fuel"
        );
        let (period, _) = period_of(fuel.quota_period, OffsetDateTime::now_utc());
        let base = a.base(&other, &period);
        let id = second.shared_id().unwrap().to_owned();
        let moved: i64 = a
            .redis
            .run("test", |mut conn| async move {
                redis::cmd("ZADD")
                    .arg(format!("{base}:holds"))
                    .arg("XX")
                    .arg("CH")
                    .arg(0)
                    .arg(&id)
                    .query_async(&mut conn)
                    .await
            })
            .await
            .unwrap();
        assert_eq!(moved, 1);
        assert_eq!(
            a.reserve(&other, &fuel, 600).await.unwrap().unwrap().fuel(),
            400
        );
        // Settling the lapsed hold later changes nothing: it was released once.
        b.settle(&second, None);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            b.reserve(&other, &fuel, 1)
                .await
                .unwrap()
                .unwrap_err()
                .quota,
            "fuel"
        );

        // A tenant without a quota never asks Redis.
        let before = a.redis.round_trips();
        let free = a
            .reserve(&TenantId::new("ten_free"), &TenantPolicy::default(), 10)
            .await
            .unwrap()
            .unwrap();
        assert!(!free.is_shared());
        assert_eq!(a.redis.round_trips(), before);
    }
}
