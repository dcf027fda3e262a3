//! Quota counters shared by every replica: exact quotas however requests are spread.
//!
//! Per tenant and period Redis keeps what was used (`…:used`, a hash that is the admission
//! view) and, per replica, what its running invocations hold (`…:held:<replica>`, expiring
//! unless the replica keeps refreshing it, so a crashed replica's holds are released). One
//! script admits an invocation against used + every replica's holds and records the hold:
//! one round trip per admitted invocation. Settlements are sent in batches by a background
//! task, off the request path; the database is still written by this replica's [`Meter`],
//! which stays the record that usage reports read.
//!
//! Tenants without a quota never touch Redis: nothing needs sharing to admit them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use omniforge_store::{Database, StoreError, TenantId, UsageCounters};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::{FailureMode, SharedRedis, Unreachable};
use crate::meter::{Hold, Meter, QuotaExceeded, QuotaLedger, Spent, period_of};
use crate::policy::TenantPolicy;

/// Admits against used + every live replica's holds; records the hold. Returns `{-1}` when
/// the period's counters are not in Redis yet, `{1, fuel granted}` when admitted, or
/// `{0, 1 (invocations) | 2 (fuel), 1 if used up (not only held)}` when refused.
const RESERVE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local used = redis.call('HMGET', KEYS[1], 'inv', 'fuel')
local used_inv, used_fuel = tonumber(used[1] or '0'), tonumber(used[2] or '0')
local held_inv, held_fuel = 0, 0
for _, replica in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local held = redis.call('HMGET', ARGV[7] .. replica, 'inv', 'fuel')
  if held[1] == false then
    redis.call('SREM', KEYS[2], replica)
  else
    held_inv = held_inv + math.max(tonumber(held[1]), 0)
    held_fuel = held_fuel + math.max(tonumber(held[2] or '0'), 0)
  end
end
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
local mine = ARGV[7] .. ARGV[1]
redis.call('HINCRBY', mine, 'inv', 1)
redis.call('HINCRBY', mine, 'fuel', string.format('%d', granted))
redis.call('PEXPIRE', mine, ARGV[5])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
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

/// Settles a batch: ARGV[1] is the replica, then six values per hold (key base, minus the
/// fuel held, counted 0/1, fuel, wall ms, failed 0/1). A period whose counters are gone (expired, or
/// Redis restarted) is reloaded from the database on its next admission instead.
const SETTLE: &str = r"
local i = 2
while i <= #ARGV do
  local base = ARGV[i]
  local held = base .. ':held:' .. ARGV[1]
  if redis.call('EXISTS', held) == 1 then
    redis.call('HINCRBY', held, 'inv', -1)
    redis.call('HINCRBY', held, 'fuel', ARGV[i + 1])
  end
  local used = base .. ':used'
  if ARGV[i + 2] == '1' and redis.call('EXISTS', used) == 1 then
    redis.call('HINCRBY', used, 'inv', 1)
    redis.call('HINCRBY', used, 'fuel', ARGV[i + 3])
    redis.call('HINCRBY', used, 'wall_ms', ARGV[i + 4])
    redis.call('HINCRBY', used, 'fail', ARGV[i + 5])
  end
  i = i + 6
end
return 1
";

/// How long a replica's holds outlive its last refresh: a replica that dies releases its
/// running invocations' share of the quota after this.
const HOLD_TTL: Duration = Duration::from_secs(30);

/// How long a period's counters stay in Redis after its end: late settlements still land.
const PERIOD_GRACE: Duration = Duration::from_secs(3600);

/// Settlements sent in one script call at most.
const SETTLE_BATCH: usize = 512;

struct Settlement {
    base: String,
    held_fuel: u64,
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
    /// Holds in progress per key base, whose expiry the flush refreshes.
    open_holds: Mutex<HashMap<String, u64>>,
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
            open_holds: Mutex::default(),
        })
    }

    fn base(&self, tenant: &TenantId, period: &str) -> String {
        self.redis.key("quota", &format!("{tenant}:{period}"))
    }

    fn open_holds(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.open_holds.lock().unwrap_or_else(|e| e.into_inner())
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
        let limit = |l: Option<u64>| l.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
        for _ in 0..2 {
            let answer: Vec<i64> = self
                .redis
                .run("quota reserve", |mut conn| {
                    let mut call = self.reserve.key(format!("{base}:used"));
                    call.key(format!("{base}:holders"))
                        .arg(self.redis.replica())
                        .arg(limit(policy.max_invocations))
                        .arg(limit(policy.max_total_fuel))
                        .arg(fuel.min(i64::MAX as u64))
                        .arg(HOLD_TTL.as_millis() as u64)
                        .arg(&expire_ms)
                        .arg(format!("{base}:held:"));
                    async move { call.invoke_async(&mut conn).await }
                })
                .await?;
            match answer.as_slice() {
                [-1] => {
                    let stored = self.db.tenant(tenant).usage(&period).await?;
                    self.redis
                        .run("quota load", |mut conn| {
                            let mut call = self.load.key(format!("{base}:used"));
                            call.arg(stored.invocations)
                                .arg(stored.fuel)
                                .arg(stored.wall_ms)
                                .arg(stored.failures)
                                .arg(&expire_ms);
                            async move { call.invoke_async::<i64>(&mut conn).await }
                        })
                        .await?;
                }
                [1, granted] => {
                    *self.open_holds().entry(base).or_default() += 1;
                    let hold = Hold::shared(tenant.clone(), period, *granted as u64);
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
        if !hold.is_shared() {
            return self.local.settle(hold, spent);
        }
        let counted = spent.map(|spent| self.local.record(hold, spent));
        let base = self.base(hold.tenant(), hold.period());
        {
            let mut open = self.open_holds();
            if let Some(count) = open.get_mut(&base) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&base);
                }
            }
        }
        // The sender lives as long as the task; a send fails only at shutdown.
        let _ = self.settlements.send(Settlement {
            base,
            held_fuel: hold.fuel(),
            counted,
        });
    }

    async fn usage(&self, tenant: &TenantId, period: &str) -> Result<UsageCounters, StoreError> {
        self.local.usage(tenant, period).await
    }

    /// Writes this replica's settled usage to the database and refreshes the expiry of the
    /// holds it still has, so that they outlive no more than [`HOLD_TTL`] of silence.
    async fn flush(&self) -> Result<(), StoreError> {
        let bases: Vec<String> = self.open_holds().keys().cloned().collect();
        if !bases.is_empty() {
            let replica = self.redis.replica().to_owned();
            let refreshed = self
                .redis
                .run("quota hold refresh", |mut conn| {
                    let mut pipe = redis::pipe();
                    for base in &bases {
                        pipe.pexpire(
                            format!("{base}:held:{replica}"),
                            HOLD_TTL.as_millis() as i64,
                        )
                        .ignore();
                    }
                    async move { pipe.query_async::<()>(&mut conn).await }
                })
                .await;
            if let Err(e) = refreshed {
                tracing::debug!("cannot refresh quota holds: {e}");
            }
        }
        self.local.flush().await
    }
}

/// Sends settlements as they come, as many per script call as have queued up meanwhile.
async fn send_settlements(redis: Arc<SharedRedis>, mut queue: mpsc::UnboundedReceiver<Settlement>) {
    let script = redis::Script::new(SETTLE);
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    while queue.recv_many(&mut batch, SETTLE_BATCH).await > 0 {
        let sent = redis
            .run("quota settle", |mut conn| {
                let mut call = script.arg(redis.replica());
                for settlement in &batch {
                    let counted = settlement.counted.clone().unwrap_or_default();
                    call.arg(&settlement.base)
                        .arg(-(settlement.held_fuel.min(i64::MAX as u64) as i64))
                        .arg(u8::from(settlement.counted.is_some()))
                        .arg(counted.fuel)
                        .arg(counted.wall_ms)
                        .arg(counted.failures);
                }
                async move { call.invoke_async::<i64>(&mut conn).await }
            })
            .await;
        if let Err(e) = sent {
            // The holds expire with HOLD_TTL; the usage is in the database either way.
            tracing::warn!(
                settlements = batch.len(),
                "cannot settle quota holds in redis: {e}"
            );
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
        let (a, b) = (
            RedisLedger::new(replica(&url, &prefix), test.db.clone()),
            RedisLedger::new(replica(&url, &prefix), test.db.clone()),
        );
        let tenant = TenantId::new("ten_acme");
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
        let other = TenantId::new("ten_globex");
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
