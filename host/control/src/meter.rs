//! Usage metering and quota enforcement. Counters live in memory; every invocation reserves
//! its share of the tenant's quota before it runs and settles its real usage after, under one
//! lock, so concurrent invocations never overshoot a quota. A background task adds what was
//! settled to the database at least every `usage_flush_ms` (a crash loses at most that much).
//!
//! Callers hold a [`QuotaLedger`]: [`Meter`] keeps one server's counters; several replicas
//! would each enforce the quota on their own view, so step 12 puts a shared ledger (Redis)
//! behind the same trait without touching its callers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use omniforge_store::{Database, StoreError, TenantId, UsageCounters, UsageDelta};
use time::{Date, Month, OffsetDateTime, Time};

use crate::policy::{QuotaPeriod, TenantPolicy};

/// Which quota refused an invocation, and when the period ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the tenant's {quota} quota ({limit}) for this period is used up")]
pub struct QuotaExceeded {
    /// `invocations` or `fuel`.
    pub quota: &'static str,
    /// The quota.
    pub limit: u64,
    /// Seconds until the period ends.
    pub retry_after_secs: u64,
}

#[derive(Debug, Default)]
struct PeriodMeter {
    /// Everything settled in the period, flushed or not.
    used: UsageCounters,
    reserved_invocations: u64,
    reserved_fuel: u64,
}

type Key = (TenantId, String);

#[derive(Default)]
struct State {
    /// Per (tenant, period): a request that computed its period just before midnight uses
    /// its own period's meter and never resets the next one's.
    meters: HashMap<Key, PeriodMeter>,
    /// Settled since the last flush.
    unflushed: HashMap<Key, UsageCounters>,
    /// Taken by a flush that has not committed yet. Counted when a meter is loaded, so a load
    /// during a flush does not miss it (it may count it twice, which errs on refusing).
    flushing: HashMap<Key, UsageCounters>,
    /// Wall time below a whole millisecond not yet added to the counters.
    wall_us_carry: HashMap<Key, u64>,
}

/// The usage meter of this server.
pub struct Meter {
    db: Database,
    state: Mutex<State>,
}

/// Where quota counters live and how invocations are admitted against them. Reservations
/// are exact under concurrency: an admitted invocation holds its share until it settles.
#[async_trait]
pub trait QuotaLedger: Send + Sync + 'static {
    /// Admits one invocation of `tenant` that may burn up to `fuel`, or says which quota
    /// refuses it. The hold's fuel may be less than asked when the fuel quota has less left.
    async fn reserve(
        &self,
        tenant: &TenantId,
        policy: &TenantPolicy,
        fuel: u64,
    ) -> Result<Result<Hold, QuotaExceeded>, StoreError>;

    /// Ends a hold: counts what was `spent`, or nothing when the invocation never ran.
    fn settle(&self, hold: &Hold, spent: Option<Spent>);

    /// The tenant's usage in `period` as the ledger counts it (stored plus unflushed).
    async fn usage(&self, tenant: &TenantId, period: &str) -> Result<UsageCounters, StoreError>;

    /// Writes what was settled since the last flush to the database.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Gives back what this process holds and writes what it counted: the last call, at
    /// shutdown, once requests are done.
    async fn close(&self) -> Result<(), StoreError> {
        self.flush().await
    }
}

/// One admitted invocation's share of its tenant's quotas, as the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    tenant: TenantId,
    period: String,
    fuel: u64,
    /// The hold's id in a shared ledger; `None` for this process's meter.
    shared: Option<String>,
    /// Admitted by this process's meter standing in for a shared ledger that could not be
    /// reached: its usage belongs in the shared counters too.
    stand_in: bool,
}

impl Hold {
    /// A hold of `fuel` in `tenant`'s `period`, recorded by this process's [`Meter`].
    pub fn new(tenant: TenantId, period: String, fuel: u64) -> Self {
        Self {
            tenant,
            period,
            fuel,
            shared: None,
            stand_in: false,
        }
    }

    /// A hold recorded as `id` in a ledger the replicas share.
    pub fn shared(tenant: TenantId, period: String, fuel: u64, id: String) -> Self {
        Self {
            shared: Some(id),
            ..Self::new(tenant, period, fuel)
        }
    }

    /// The fuel the invocation may burn.
    pub fn fuel(&self) -> u64 {
        self.fuel
    }

    /// The tenant whose quota holds it.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The quota period it counts in.
    pub fn period(&self) -> &str {
        &self.period
    }

    /// Whether a shared ledger (not this process's meter) recorded it.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Its id in the shared ledger that recorded it.
    pub fn shared_id(&self) -> Option<&str> {
        self.shared.as_deref()
    }

    /// The same hold, marked as admitted in place of a shared ledger.
    pub fn standing_in(self) -> Self {
        Self {
            stand_in: true,
            ..self
        }
    }

    /// Whether it was admitted in place of a shared ledger that could not be reached.
    pub fn is_stand_in(&self) -> bool {
        self.stand_in
    }
}

/// An admitted invocation's hold on the quota: [`Reservation::settle`] records what it used,
/// [`Reservation::release`] gives it back when nothing ran. Dropped unsettled, it is charged
/// the invocation and all the fuel it held.
pub struct Reservation {
    ledger: Arc<dyn QuotaLedger>,
    hold: Hold,
    settled: bool,
}

/// What an invocation used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    /// Fuel consumed.
    pub fuel: u64,
    /// Wall time, µs (counters keep ms; the sub-millisecond rest is carried per tenant and
    /// period, so a million 0.2 ms invocations add up to 200 s, not 0).
    pub wall_us: u64,
    /// Whether the outcome was not `ok`.
    pub failed: bool,
}

/// The period containing `now` and the seconds left in it.
pub fn period_of(period: QuotaPeriod, now: OffsetDateTime) -> (String, u64) {
    let date = now.date();
    let (label, end) = match period {
        QuotaPeriod::Day => (
            format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            ),
            date.next_day().map(|d| d.with_time(Time::MIDNIGHT)),
        ),
        QuotaPeriod::Month => {
            let (year, month) = match date.month() {
                Month::December => (date.year() + 1, Month::January),
                m => (date.year(), m.next()),
            };
            (
                format!("{:04}-{:02}", date.year(), u8::from(date.month())),
                Date::from_calendar_date(year, month, 1)
                    .ok()
                    .map(|d| d.with_time(Time::MIDNIGHT)),
            )
        }
    };
    let left = end.map_or(0, |end| {
        (end.assume_utc() - now).whole_seconds().max(1) as u64
    });
    (label, left)
}

impl Meter {
    /// A meter over `db`.
    pub fn new(db: Database) -> Arc<Self> {
        Arc::new(Self {
            db,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What this process settled in `tenant`'s `period` that is not in the database yet.
    pub(crate) fn unwritten(&self, tenant: &TenantId, period: &str) -> UsageCounters {
        Self::pending(&self.lock(), &(tenant.clone(), period.to_owned()))
    }

    /// What was settled but is not in the database yet.
    fn pending(state: &State, key: &Key) -> UsageCounters {
        add(
            &state.unflushed.get(key).cloned().unwrap_or_default(),
            &state.flushing.get(key).cloned().unwrap_or_default(),
        )
    }
}

/// Flushes `ledger` every `every` for as long as it is in use.
pub fn spawn_flusher(ledger: &Arc<dyn QuotaLedger>, every: Duration) {
    let weak = Arc::downgrade(ledger);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(ledger) = weak.upgrade() else { break };
            if let Err(e) = ledger.flush().await {
                tracing::warn!("cannot write usage counters (kept for the next try): {e}");
            }
        }
    });
}

#[async_trait]
impl QuotaLedger for Meter {
    async fn reserve(
        &self,
        tenant: &TenantId,
        policy: &TenantPolicy,
        fuel: u64,
    ) -> Result<Result<Hold, QuotaExceeded>, StoreError> {
        let (period, period_left) = period_of(policy.quota_period, OffsetDateTime::now_utc());
        let key = (tenant.clone(), period);
        if !self.lock().meters.contains_key(&key) {
            // Read outside the lock; if another request loaded it meanwhile, keep theirs.
            // Boxed: the rare path, kept out of every invocation's future.
            let stored = Box::pin(self.db.tenant(tenant).usage(&key.1)).await?;
            let mut state = self.lock();
            let pending = Self::pending(&state, &key);
            state
                .meters
                .entry(key.clone())
                .or_insert_with(|| PeriodMeter {
                    used: add(&stored, &pending),
                    ..PeriodMeter::default()
                });
        }
        let mut state = self.lock();
        let meter = state.meters.entry(key.clone()).or_default();
        // Refused while invocations in progress hold the rest: try again in a second, not at
        // the end of the period.
        if let Some(limit) = policy.max_invocations {
            let used = meter.used.invocations as u64;
            if used + meter.reserved_invocations >= limit {
                return Ok(Err(QuotaExceeded {
                    quota: "invocations",
                    limit,
                    retry_after_secs: if used >= limit { period_left } else { 1 },
                }));
            }
        }
        let mut granted = fuel;
        if let Some(limit) = policy.max_total_fuel {
            let used = meter.used.fuel as u64;
            let left = limit.saturating_sub(used + meter.reserved_fuel);
            if left == 0 {
                return Ok(Err(QuotaExceeded {
                    quota: "fuel",
                    limit,
                    retry_after_secs: if used >= limit { period_left } else { 1 },
                }));
            }
            granted = granted.min(left);
        }
        meter.reserved_invocations += 1;
        meter.reserved_fuel += granted;
        Ok(Ok(Hold::new(key.0, key.1, granted)))
    }

    async fn usage(&self, tenant: &TenantId, period: &str) -> Result<UsageCounters, StoreError> {
        let key = (tenant.clone(), period.to_owned());
        if let Some(meter) = self.lock().meters.get(&key) {
            return Ok(meter.used.clone());
        }
        let stored = self.db.tenant(tenant).usage(period).await?;
        Ok(add(&stored, &Self::pending(&self.lock(), &key)))
    }

    /// On failure what was taken is kept for the next flush. Meters of past periods with
    /// nothing in flight are dropped here.
    async fn flush(&self) -> Result<(), StoreError> {
        let batch = {
            let mut state = self.lock();
            let batch = std::mem::take(&mut state.unflushed);
            for (key, counters) in &batch {
                let entry = state.flushing.entry(key.clone()).or_default();
                *entry = add(entry, counters);
            }
            let today = OffsetDateTime::now_utc();
            let current = [
                period_of(QuotaPeriod::Day, today).0,
                period_of(QuotaPeriod::Month, today).0,
            ];
            state
                .meters
                .retain(|(_, period), m| current.contains(period) || m.reserved_invocations > 0);
            state
                .wall_us_carry
                .retain(|(_, period), _| current.contains(period));
            batch
        };
        if batch.is_empty() {
            return Ok(());
        }
        let deltas: Vec<UsageDelta> = batch
            .iter()
            .map(|((tenant, period), counters)| UsageDelta {
                tenant: tenant.clone(),
                period: period.clone(),
                counters: counters.clone(),
            })
            .collect();
        let written = self.db.platform().add_usage(&deltas).await;
        let mut state = self.lock();
        for (key, counters) in batch {
            if let Some(entry) = state.flushing.get_mut(&key) {
                *entry = sub(entry, &counters);
                if *entry == UsageCounters::default() {
                    state.flushing.remove(&key);
                }
            }
            if written.is_err() {
                let entry = state.unflushed.entry(key).or_default();
                *entry = add(entry, &counters);
            }
        }
        written
    }

    fn settle(&self, hold: &Hold, spent: Option<Spent>) {
        let key = &(hold.tenant.clone(), hold.period.clone());
        let mut state = self.lock();
        if let Some(meter) = state.meters.get_mut(key) {
            meter.reserved_invocations = meter.reserved_invocations.saturating_sub(1);
            meter.reserved_fuel = meter.reserved_fuel.saturating_sub(hold.fuel);
        }
        if let Some(spent) = spent {
            Self::count(&mut state, key, spent);
        }
    }
}

impl Meter {
    /// Counts what an invocation `spent` for the next flush (and in this process's view of
    /// the period), whichever ledger admitted it.
    pub(crate) fn record(&self, hold: &Hold, spent: Spent) -> UsageCounters {
        let key = &(hold.tenant.clone(), hold.period.clone());
        Self::count(&mut self.lock(), key, spent)
    }

    fn count(state: &mut State, key: &Key, spent: Spent) -> UsageCounters {
        let carry = state.wall_us_carry.entry(key.clone()).or_default();
        let wall_us = *carry + spent.wall_us;
        *carry = wall_us % 1000;
        let counters = UsageCounters {
            invocations: 1,
            fuel: spent.fuel.min(i64::MAX as u64) as i64,
            wall_ms: (wall_us / 1000).min(i64::MAX as u64) as i64,
            failures: i64::from(spent.failed),
        };
        if let Some(meter) = state.meters.get_mut(key) {
            meter.used = add(&meter.used, &counters);
        }
        let entry = state.unflushed.entry(key.clone()).or_default();
        *entry = add(entry, &counters);
        counters
    }
}

/// The sum of two sets of counters.
pub(crate) fn add(a: &UsageCounters, b: &UsageCounters) -> UsageCounters {
    UsageCounters {
        invocations: a.invocations + b.invocations,
        fuel: a.fuel.saturating_add(b.fuel),
        wall_ms: a.wall_ms.saturating_add(b.wall_ms),
        failures: a.failures + b.failures,
    }
}

fn sub(a: &UsageCounters, b: &UsageCounters) -> UsageCounters {
    UsageCounters {
        invocations: a.invocations - b.invocations,
        fuel: a.fuel - b.fuel,
        wall_ms: a.wall_ms - b.wall_ms,
        failures: a.failures - b.failures,
    }
}

impl Reservation {
    /// Admits one invocation of `tenant` that may burn up to `fuel` through `ledger`, or
    /// says which quota refuses it. The reservation's [`fuel`](Self::fuel) is what the
    /// invocation may use (less than asked when the fuel quota has less left).
    pub async fn reserve(
        ledger: &Arc<dyn QuotaLedger>,
        tenant: &TenantId,
        policy: &TenantPolicy,
        fuel: u64,
    ) -> Result<Result<Self, QuotaExceeded>, StoreError> {
        Ok(ledger
            .reserve(tenant, policy, fuel)
            .await?
            .map(|hold| Self {
                ledger: Arc::clone(ledger),
                hold,
                settled: false,
            }))
    }

    /// The fuel the invocation may burn.
    pub fn fuel(&self) -> u64 {
        self.hold.fuel
    }

    /// Records what the invocation used and releases the hold.
    pub fn settle(mut self, spent: Spent) {
        self.settled = true;
        self.ledger.settle(&self.hold, Some(spent));
    }

    /// Gives the hold back without counting anything (the invocation never ran).
    pub fn release(mut self) {
        self.settled = true;
        self.ledger.settle(&self.hold, None);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            let spent = Spent {
                fuel: self.hold.fuel,
                wall_us: 0,
                failed: true,
            };
            self.ledger.settle(&self.hold, Some(spent));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_are_utc_days_and_months_with_the_time_left() {
        let now = datetime!(2026-12-31 23:59:00 UTC);
        assert_eq!(period_of(QuotaPeriod::Day, now), ("2026-12-31".into(), 60));
        assert_eq!(period_of(QuotaPeriod::Month, now), ("2026-12".into(), 60));
        let now = datetime!(2026-11-24 12:00:00 UTC);
        assert_eq!(period_of(QuotaPeriod::Month, now).1, (6 * 24 + 12) * 3600);
    }
}
