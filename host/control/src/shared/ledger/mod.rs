//! Quota counters shared by every replica: exact quotas however requests are spread.
//!
//! Redis keeps, per tenant and period, what was used and what replicas hold (the layout is in
//! [`scripts`]). A replica admits invocations from a lease ([`leases`]): one script call drops
//! the holds past their deadline, admits against used + held and records the lease as a hold.
//! Far from the quota a lease covers many invocations, so most invocations never wait for
//! Redis; near it a lease is one invocation, which keeps the quota exact and lets no replica
//! sit on the last of it. A hold whose replica died, or whose answer was lost, is released by
//! the first admission after its deadline (the lease's lifetime plus the longest the tenant's
//! invocations may run, plus a margin), so nothing needs refreshing and no replica's crash
//! shrinks a quota for long. Ending a lease removes its hold by id and adds what it used, in
//! one call; a repeated settlement changes nothing.
//!
//! Settlements are sent in batches by a background task, off the request path, and retried
//! while Redis is down. The database is still written by this replica's [`Meter`], which stays
//! the record that usage reports read and the fallback of the `open` failure mode. Usage of
//! invocations admitted by that fallback is added to `…:used` too once Redis is back.
//!
//! Tenants without a quota never wait for Redis: nothing needs sharing to admit them.

pub mod leases;
pub mod scripts;
#[cfg(test)]
mod tests;

use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use omniforge_store::{Database, StoreError, TenantId, UsageCounters};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::{FailureMode, RETRY_AFTER_FAILURE, SharedRedis, Unreachable};
use crate::meter::{Hold, Meter, QuotaExceeded, QuotaLedger, Spent, period_of};
use crate::policy::TenantPolicy;
use leases::{Ended, Grant, Key, LEASE_TTL, Leases, Limits, Settled, Taken};

/// Added to a lease's lifetime and the longest an invocation of the tenant may run to make
/// its hold's deadline: time between admission and the sandbox's start, and a settlement's
/// way to Redis.
const HOLD_MARGIN: Duration = Duration::from_secs(60);

/// How long a period's counters stay in Redis after its end: late settlements still land.
const PERIOD_GRACE: Duration = Duration::from_secs(3600);

/// A lease takes at most this share of what is left of a quota (1/16): replicas that ask
/// later still find some, and within 16 invocations of a quota every lease is one invocation.
const LEASE_SHARE: u64 = 16;

/// How often expired leases are retired and idle ones given back.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// How long shutdown waits for the last settlements to reach Redis.
const CLOSE_PATIENCE: Duration = Duration::from_secs(2);

/// Settlements sent in one script call at most.
const SETTLE_BATCH: usize = 512;

/// How long a batch of settlements Redis refuses (answers with an error) is retried before it
/// is given up (the holds then lapse at their deadlines; the usage is in the database either
/// way). While Redis is unreachable a batch waits however long it takes: lease settlements
/// carry usage that the quota must not lose.
const SETTLE_PATIENCE: Duration = Duration::from_secs(60);

/// Lua's numbers are doubles: counters and limits are kept below 2^53 so that they stay
/// exact in the scripts.
const EXACT_IN_LUA: u64 = (1 << 53) - 1;

struct Settlement {
    base: String,
    /// `None` for usage counted by this replica's own meter (the `open` fallback).
    hold: Option<String>,
    /// What the hold keeps (invocations, fuel); `None` removes it.
    keep: Option<(u64, u64)>,
    counted: Option<UsageCounters>,
}

/// A lease asked for: if the answer never comes (Redis timed out, or the request was dropped
/// while waiting), the hold Redis may have recorded is given back rather than left to lapse.
struct Asking<'a> {
    ledger: &'a RedisLedger,
    base: String,
    id: String,
    sent: AtomicBool,
    answered: bool,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if !self.answered && self.sent.load(Ordering::Relaxed) {
            self.ledger.send(Settlement {
                base: mem::take(&mut self.base),
                hold: Some(mem::take(&mut self.id)),
                keep: None,
                counted: None,
            });
        }
    }
}

enum Message {
    Settle(Settlement),
    /// Answered once everything queued before it was sent (or given up).
    Sent(oneshot::Sender<()>),
}

/// Quota counters in Redis, spent here through leases, with this replica's [`Meter`] for the
/// database and for the `open` failure mode.
pub struct RedisLedger {
    redis: Arc<SharedRedis>,
    db: Database,
    local: Arc<Meter>,
    leases: Arc<Leases>,
    queue: mpsc::UnboundedSender<Message>,
    reserve: redis::Script,
    load: redis::Script,
    next_hold: AtomicU64,
}

impl RedisLedger {
    /// A ledger over `redis`, writing usage to `db`; starts the tasks that send settlements
    /// and give back expired leases.
    pub fn new(redis: Arc<SharedRedis>, db: Database) -> Arc<Self> {
        let (queue, messages) = mpsc::unbounded_channel();
        tokio::spawn(send_settlements(Arc::clone(&redis), messages));
        let ledger = Arc::new(Self {
            local: Meter::new(db.clone()),
            leases: Arc::default(),
            redis,
            db,
            queue,
            reserve: redis::Script::new(scripts::RESERVE),
            load: redis::Script::new(scripts::LOAD),
            next_hold: AtomicU64::new(0),
        });
        tokio::spawn(sweep_leases(Arc::downgrade(&ledger)));
        ledger
    }

    fn base(&self, tenant: &TenantId, period: &str) -> String {
        self.redis.key("quota", &format!("{tenant}:{period}"))
    }

    fn send(&self, settlement: Settlement) {
        // The receiver lives as long as the process; a send fails only at shutdown.
        let _ = self.queue.send(Message::Settle(settlement));
    }

    fn end(&self, ended: Ended) {
        self.send(Settlement {
            base: self.base(&ended.key.0, &ended.key.1),
            hold: Some(ended.id),
            keep: ended.keep,
            counted: Some(ended.used),
        });
    }

    /// Admits from the current lease, or repeats a standing refusal; retires the lease when
    /// it has no room left.
    fn take(&self, key: &Key, limits: Limits, fuel: u64) -> Taken {
        let (taken, ended) = self.leases.take(key, limits, fuel, Instant::now());
        if let Some(ended) = ended {
            self.end(ended);
        }
        taken
    }

    async fn reserve_shared(
        &self,
        tenant: &TenantId,
        policy: &TenantPolicy,
        fuel: u64,
    ) -> Result<Result<Hold, QuotaExceeded>, SharedFailure> {
        let (period, period_left) = period_of(policy.quota_period, OffsetDateTime::now_utc());
        let key = (tenant.clone(), period);
        let limits = Limits::of(policy);
        match self.take(&key, limits, fuel) {
            Taken::Hold(hold) => return Ok(Ok(hold)),
            Taken::Refused(refused) => return Ok(Err(refused)),
            Taken::Ask => {}
        }
        // One request of this replica asks Redis; the others wait and spend what it got (or
        // take its refusal).
        let (gate, size, fuel_each) = self.leases.asking(&key, fuel);
        let _turn = gate.lock().await;
        match self.take(&key, limits, fuel) {
            Taken::Hold(hold) => return Ok(Ok(hold)),
            Taken::Refused(refused) => return Ok(Err(refused)),
            Taken::Ask => {}
        }
        let mut asking = Asking {
            ledger: self,
            base: self.base(&key.0, &key.1),
            id: format!(
                "{}-{}",
                self.redis.replica(),
                self.next_hold.fetch_add(1, Ordering::Relaxed)
            ),
            sent: AtomicBool::new(false),
            answered: false,
        };
        let answer = self
            .ask(&key, policy, fuel, (size, fuel_each), period_left, &asking)
            .await?;
        asking.answered = true;
        Ok(match answer {
            Ok(grant) => {
                let (hold, ended) = self
                    .leases
                    .install(&key, limits, grant, fuel, Instant::now());
                if let Some(ended) = ended {
                    self.end(ended);
                }
                Ok(hold)
            }
            Err(refused) => {
                self.leases.refused(&key, limits, &refused, Instant::now());
                Err(refused)
            }
        })
    }

    /// Asks Redis for a lease of up to `size` invocations of up to `fuel_each` (loading the
    /// period's counters from the database first when Redis does not have them); `fuel` is
    /// what this invocation needs.
    async fn ask(
        &self,
        (tenant, period): &Key,
        policy: &TenantPolicy,
        fuel: u64,
        (size, fuel_each): (u64, u64),
        period_left: u64,
        asking: &Asking<'_>,
    ) -> Result<Result<Grant, QuotaExceeded>, SharedFailure> {
        let (base, id) = (&asking.base, &asking.id);
        let expire_ms = (period_left * 1000 + PERIOD_GRACE.as_millis() as u64).to_string();
        let deadline_ms = (LEASE_TTL + HOLD_MARGIN).as_millis() as u64 + policy.max_timeout_ms;
        let limit = |l: Option<u64>| l.map_or(-1, |l| l.min(EXACT_IN_LUA) as i64);
        let fuel = fuel.min(EXACT_IN_LUA);
        for _ in 0..2 {
            let answer: Vec<i64> = self
                .redis
                .run("quota reserve", |mut conn| {
                    asking.sent.store(true, Ordering::Relaxed);
                    let mut call = self.reserve.key(format!("{base}:used"));
                    call.key(format!("{base}:held"))
                        .key(format!("{base}:holds"))
                        .key(format!("{base}:hold_size"))
                        .arg(id)
                        .arg(limit(policy.max_invocations))
                        .arg(limit(policy.max_total_fuel))
                        .arg(size)
                        .arg(fuel_each.saturating_mul(size).min(EXACT_IN_LUA))
                        .arg(fuel)
                        .arg(deadline_ms)
                        .arg(&expire_ms)
                        .arg(LEASE_SHARE);
                    async move { call.invoke_async(&mut conn).await }
                })
                .await?;
            match answer.as_slice() {
                [-1] => {
                    // What the database has, plus what this replica has not written yet.
                    let stored = self.db.tenant(tenant).usage(period).await?;
                    let unwritten = self.local.unwritten(tenant, period);
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
                [1, invocations, fuel] => {
                    return Ok(Ok(Grant {
                        id: id.clone(),
                        invocations: *invocations as u64,
                        fuel: *fuel as u64,
                    }));
                }
                [0, which, used_up] => {
                    let (quota, limit) = if *which == 1 {
                        ("invocations", policy.max_invocations.unwrap_or(0))
                    } else {
                        ("fuel", policy.max_total_fuel.unwrap_or(0))
                    };
                    // Held by running invocations or other replicas' leases: try again in a
                    // second (a lease lives at most that long).
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
                FailureMode::Open => Ok(self
                    .local
                    .reserve(tenant, policy, fuel)
                    .await?
                    .map(Hold::standing_in)),
                FailureMode::Closed => Err(StoreError::Unavailable(format!(
                    "the shared quota counters cannot be reached: {}",
                    e.0
                ))),
            },
        }
    }

    fn settle(&self, hold: &Hold, spent: Option<Spent>) {
        let Some(id) = hold.shared_id() else {
            // Admitted by this replica's meter: a tenant without a quota (nothing to share),
            // or the `open` fallback, whose usage is added to Redis when the period's
            // counters are there (it must not vanish). Not while Redis is down: the queue
            // would grow with the outage.
            self.local.settle(hold, None);
            let Some(spent) = spent else { return };
            let counted = self.local.record(hold, spent);
            if hold.is_stand_in() && !self.redis.is_down() {
                self.send(Settlement {
                    base: self.base(hold.tenant(), hold.period()),
                    hold: None,
                    keep: None,
                    counted: Some(counted),
                });
            }
            return;
        };
        let counted = spent.map(|spent| self.local.record(hold, spent));
        match self.leases.settle(hold, counted.as_ref()) {
            Settled::Kept => {}
            Settled::Ended(ended) => self.end(ended),
            // Only the replica that admitted it may end a lease: another ending it would
            // free what the first still spends. Its usage is in the database.
            Settled::Unknown => {
                tracing::warn!(
                    hold = id,
                    "a quota hold of another replica's lease, ignored"
                );
            }
        }
    }

    async fn usage(&self, tenant: &TenantId, period: &str) -> Result<UsageCounters, StoreError> {
        self.local.usage(tenant, period).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.local.flush().await
    }

    /// Gives back the leases (those with invocations in flight end as they settle) and waits
    /// a little for the settlements to reach Redis, then writes the database.
    async fn close(&self) -> Result<(), StoreError> {
        for ended in self.leases.retire_all(Instant::now()) {
            self.end(ended);
        }
        let (sent, done) = oneshot::channel();
        if self.queue.send(Message::Sent(sent)).is_ok()
            && tokio::time::timeout(CLOSE_PATIENCE, done).await.is_err()
        {
            tracing::warn!(
                "quota settlements did not reach redis before shutdown (their holds lapse at \
                 their deadlines)"
            );
        }
        self.local.flush().await
    }
}

/// Retires expired leases and gives back those with nothing in flight, for as long as the
/// ledger lives: a replica whose traffic stopped returns its leases within a second.
async fn sweep_leases(ledger: Weak<RedisLedger>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(ledger) = ledger.upgrade() else {
            break;
        };
        for ended in ledger.leases.sweep(Instant::now()) {
            ledger.end(ended);
        }
    }
}

/// Sends settlements as they come, as many per script call as have queued up meanwhile;
/// while Redis is unreachable, the batch waits and is tried again.
async fn send_settlements(redis: Arc<SharedRedis>, mut queue: mpsc::UnboundedReceiver<Message>) {
    let script = redis::Script::new(scripts::SETTLE);
    let mut messages = Vec::with_capacity(SETTLE_BATCH);
    while queue.recv_many(&mut messages, SETTLE_BATCH).await > 0 {
        let mut waiting = Vec::new();
        let mut batch = Vec::with_capacity(messages.len());
        for message in messages.drain(..) {
            match message {
                Message::Settle(settlement) => batch.push(settlement),
                Message::Sent(reply) => waiting.push(reply),
            }
        }
        if !batch.is_empty() {
            settle_batch(&redis, &script, &batch).await;
        }
        for reply in waiting {
            let _ = reply.send(());
        }
    }
}

async fn settle_batch(redis: &SharedRedis, script: &redis::Script, batch: &[Settlement]) {
    let first_try = Instant::now();
    loop {
        let sent = redis
            .run("quota settle", |mut conn| {
                let mut call = script.prepare_invoke();
                for settlement in batch {
                    let counted = settlement.counted.clone().unwrap_or_default();
                    let (keep_inv, keep_fuel) = settlement
                        .keep
                        .map_or((-1, 0), |(inv, fuel)| (inv as i64, fuel));
                    call.arg(&settlement.base)
                        .arg(settlement.hold.as_deref().unwrap_or(""))
                        .arg(keep_inv)
                        .arg(keep_fuel)
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
            Ok(_) => return,
            Err(e) if !redis.is_down() && first_try.elapsed() > SETTLE_PATIENCE => {
                tracing::warn!(
                    settlements = batch.len(),
                    "giving up settling quota holds in redis (they lapse at their \
                     deadlines; the usage is in the database): {e}"
                );
                return;
            }
            Err(_) => tokio::time::sleep(RETRY_AFTER_FAILURE).await,
        }
    }
}
