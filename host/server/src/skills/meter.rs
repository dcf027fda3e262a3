//! Usage metering and quota enforcement. Counters live in memory; every invocation reserves
//! its share of the tenant's quota before it runs and settles its real usage after, under one
//! lock, so concurrent invocations never overshoot a quota. A background task adds what was
//! settled to the database at least every `usage_flush_ms` (a crash loses at most that much).
//!
//! One server holds a tenant's counters; several replicas would each enforce the quota on
//! their own view (a shared counter in Redis is the multi-replica design, docs/quotas.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use omniforge_store::{Database, StoreError, TenantId, UsageCounters, UsageDelta};
use time::{Date, Month, OffsetDateTime, Time};

use crate::skills::policy::{QuotaPeriod, TenantPolicy};

/// Which quota refused an invocation, and when the period ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// `invocations` or `fuel`.
    pub quota: &'static str,
    /// The quota.
    pub limit: u64,
    /// Seconds until the period ends.
    pub retry_after_secs: u64,
}

#[derive(Debug, Default)]
struct TenantMeter {
    period: String,
    /// Everything settled in `period`, flushed or not.
    used: UsageCounters,
    reserved_invocations: u64,
    reserved_fuel: u64,
}

#[derive(Default)]
struct State {
    tenants: HashMap<TenantId, TenantMeter>,
    /// Settled since the last flush, per (tenant, period).
    unflushed: HashMap<(TenantId, String), UsageCounters>,
}

/// The usage meter of this server.
pub struct Meter {
    db: Database,
    state: Mutex<State>,
}

/// An admitted invocation's hold on the quota; [`Reservation::settle`] records what it used.
/// Dropped unsettled (the request went away mid-run), it counts the invocation but no fuel.
pub struct Reservation {
    meter: Arc<Meter>,
    tenant: TenantId,
    period: String,
    fuel: u64,
    settled: bool,
}

/// What an invocation used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    /// Fuel consumed.
    pub fuel: u64,
    /// Wall time, ms.
    pub wall_ms: u64,
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

    /// Admits one invocation of `tenant` that may burn up to `fuel`, or refuses it. Returns
    /// the reservation and the fuel the invocation may use (less than asked when the fuel
    /// quota has less left).
    pub async fn reserve(
        self: &Arc<Self>,
        tenant: &TenantId,
        policy: &TenantPolicy,
        fuel: u64,
    ) -> Result<Result<(Reservation, u64), QuotaExceeded>, StoreError> {
        let (period, retry_after_secs) = period_of(policy.quota_period, OffsetDateTime::now_utc());
        let current = self
            .lock()
            .tenants
            .get(tenant)
            .is_some_and(|m| m.period == period);
        if !current {
            // Read outside the lock; if another request loaded it meanwhile, keep theirs.
            let stored = self.db.tenant(tenant).usage(&period).await?;
            let mut state = self.lock();
            let unflushed = state
                .unflushed
                .get(&(tenant.clone(), period.clone()))
                .cloned()
                .unwrap_or_default();
            let meter = state.tenants.entry(tenant.clone()).or_default();
            if meter.period != period {
                *meter = TenantMeter {
                    used: add(&stored, &unflushed),
                    period: period.clone(),
                    ..TenantMeter::default()
                };
            }
        }
        let mut state = self.lock();
        let meter = state.tenants.entry(tenant.clone()).or_default();
        if let Some(limit) = policy.max_invocations {
            let taken = meter.used.invocations as u64 + meter.reserved_invocations;
            if taken >= limit {
                return Ok(Err(QuotaExceeded {
                    quota: "invocations",
                    limit,
                    retry_after_secs,
                }));
            }
        }
        let mut granted = fuel;
        if let Some(limit) = policy.max_total_fuel {
            let taken = meter.used.fuel as u64 + meter.reserved_fuel;
            let left = limit.saturating_sub(taken);
            if left == 0 {
                return Ok(Err(QuotaExceeded {
                    quota: "fuel",
                    limit,
                    retry_after_secs,
                }));
            }
            granted = granted.min(left);
        }
        meter.reserved_invocations += 1;
        meter.reserved_fuel += granted;
        Ok(Ok((
            Reservation {
                meter: Arc::clone(self),
                tenant: tenant.clone(),
                period,
                fuel: granted,
                settled: false,
            },
            granted,
        )))
    }

    /// The tenant's usage in `period` as this server counts it (stored plus unflushed).
    pub async fn usage(
        &self,
        tenant: &TenantId,
        period: &str,
    ) -> Result<UsageCounters, StoreError> {
        if let Some(meter) = self.lock().tenants.get(tenant)
            && meter.period == period
        {
            return Ok(meter.used.clone());
        }
        let stored = self.db.tenant(tenant).usage(period).await?;
        let unflushed = self
            .lock()
            .unflushed
            .get(&(tenant.clone(), period.to_owned()))
            .cloned()
            .unwrap_or_default();
        Ok(add(&stored, &unflushed))
    }

    /// Writes what was settled since the last flush; on failure it is kept for the next.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.lock().unflushed);
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
        if let Err(e) = self.db.platform().add_usage(&deltas).await {
            let mut state = self.lock();
            for (key, counters) in batch {
                let entry = state.unflushed.entry(key).or_default();
                *entry = add(entry, &counters);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Flushes every `every` until the meter is dropped by everyone else, then once more.
    pub fn spawn_flusher(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(meter) = weak.upgrade() else { break };
                if let Err(e) = meter.flush().await {
                    tracing::warn!("cannot write usage counters (kept for the next try): {e}");
                }
            }
        });
    }

    fn settle(&self, tenant: &TenantId, period: &str, reserved_fuel: u64, spent: Spent) {
        let counters = UsageCounters {
            invocations: 1,
            fuel: spent.fuel.min(i64::MAX as u64) as i64,
            wall_ms: spent.wall_ms.min(i64::MAX as u64) as i64,
            failures: i64::from(spent.failed),
        };
        let mut state = self.lock();
        if let Some(meter) = state.tenants.get_mut(tenant)
            && meter.period == period
        {
            meter.reserved_invocations = meter.reserved_invocations.saturating_sub(1);
            meter.reserved_fuel = meter.reserved_fuel.saturating_sub(reserved_fuel);
            meter.used = add(&meter.used, &counters);
        }
        let entry = state
            .unflushed
            .entry((tenant.clone(), period.to_owned()))
            .or_default();
        *entry = add(entry, &counters);
    }
}

fn add(a: &UsageCounters, b: &UsageCounters) -> UsageCounters {
    UsageCounters {
        invocations: a.invocations + b.invocations,
        fuel: a.fuel.saturating_add(b.fuel),
        wall_ms: a.wall_ms.saturating_add(b.wall_ms),
        failures: a.failures + b.failures,
    }
}

impl Reservation {
    /// Records what the invocation used and releases the hold.
    pub fn settle(mut self, spent: Spent) {
        self.settled = true;
        self.meter
            .settle(&self.tenant, &self.period, self.fuel, spent);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.meter.settle(
                &self.tenant,
                &self.period,
                self.fuel,
                Spent {
                    failed: true,
                    ..Spent::default()
                },
            );
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
