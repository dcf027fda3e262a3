//! This replica's quota leases: blocks of a tenant's quota taken from Redis in one round trip
//! and spent here, one invocation at a time, without asking Redis again.
//!
//! A lease is a hold in Redis like any other (its invocations and fuel count as held for every
//! replica), so quotas stay exact whatever the lease sizes: the sum of what is used and held
//! never passes the quota. What leases change is how often Redis is asked. Far from the
//! quota, a lease covers many invocations; near it, Redis grants one invocation at a time (a
//! lease of one, spent at once by the invocation that asked), so no replica sits on the last
//! of a quota while another is refused.
//!
//! A lease is spent until it runs out, the tenant's limits change, or [`LEASE_TTL`] passes;
//! then it is retired: its hold in Redis shrinks to what its invocations in flight hold, and
//! what the others used is added, in one script call. Once its last invocation settles it
//! ends: the rest of its usage is added and its hold removed. Fuel an invocation held but did not burn returns to its lease's pool, so a
//! lease's fuel is a budget for the invocations in flight, not a prepayment per invocation.
//!
//! Lease sizes adapt per tenant and period: a lease used up within half its lifetime makes
//! the next one twice as large, one that expires mostly unused makes it half as large.

use std::collections::HashMap;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use omniforge_store::{TenantId, UsageCounters};

use crate::meter::{Hold, QuotaExceeded, add};
use crate::policy::TenantPolicy;

/// How long a replica spends one lease before it returns what is left. Other replicas may be
/// refused meanwhile ("held, not used up"), which is why refusals say retry in a second.
pub const LEASE_TTL: Duration = Duration::from_secs(1);

/// The invocations the first lease of a tenant and period asks for.
pub const FIRST_LEASE: u64 = 8;

/// The most invocations a replica asks for in one lease.
pub const MAX_LEASE: u64 = 1024;

/// How long a refusal because the rest of the quota is held (by running invocations or other
/// replicas' leases) is answered without asking Redis again: a tenant over its quota then
/// costs Redis a call per tenth of a second, not one per request.
pub const HELD_REFUSAL_MEMORY: Duration = Duration::from_millis(100);

/// The same for a quota used up: it stays used up until the period ends or the policy
/// changes (which changes the [`Limits`]).
const USED_UP_REFUSAL_MEMORY: Duration = Duration::from_secs(1);

/// A tenant and quota period.
pub type Key = (TenantId, String);

/// The quotas a lease was granted under. A lease is spent only under the same quotas: a
/// changed policy retires it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    invocations: Option<u64>,
    fuel: Option<u64>,
    /// The longest an invocation may run, which the hold's deadline is made of.
    max_timeout_ms: u64,
}

impl Limits {
    /// The quotas of `policy`.
    pub fn of(policy: &TenantPolicy) -> Self {
        Self {
            invocations: policy.max_invocations,
            fuel: policy.max_total_fuel,
            max_timeout_ms: policy.max_timeout_ms,
        }
    }
}

/// What Redis granted: a hold of `invocations` and `fuel` recorded as `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The hold's id in Redis.
    pub id: String,
    /// Invocations the lease covers (at least one).
    pub invocations: u64,
    /// Fuel the lease covers; ignored when there is no fuel quota.
    pub fuel: u64,
}

/// A lease retired or ended: `used` is to be added to the period's counters in Redis and the
/// lease's hold removed, or shrunk to what is still in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// The tenant and period it counted in.
    pub key: Key,
    /// Its hold's id in Redis.
    pub id: String,
    /// What its invocations used (since a shrink, for the end of a retired lease).
    pub used: UsageCounters,
    /// `None`: the lease ended, its hold goes. Otherwise the invocations and fuel its
    /// invocations in flight still hold, which its hold shrinks to.
    pub keep: Option<(u64, u64)>,
}

/// What the current lease says to one invocation.
#[derive(Debug, PartialEq)]
pub enum Taken {
    /// Admitted from the lease.
    Hold(Hold),
    /// Refused a moment ago, and still.
    Refused(QuotaExceeded),
    /// Redis has to be asked.
    Ask,
}

struct Lease {
    id: String,
    limits: Limits,
    size: u64,
    invocations_left: u64,
    /// `None`: no fuel quota, nothing to budget.
    fuel_left: Option<u64>,
    in_flight: u64,
    /// The fuel its invocations in flight hold.
    fuel_in_flight: u64,
    used: UsageCounters,
    taken_at: Instant,
    /// Set when it was retired because it ran out (not because it expired).
    ran_out_at: Option<Instant>,
}

impl Lease {
    fn fits(&self, limits: Limits, fuel: u64) -> bool {
        self.limits == limits
            && self.invocations_left > 0
            && self.fuel_left.is_none_or(|left| left >= fuel)
    }

    /// Admits one invocation that may burn `fuel`, cut to the pool (the first invocation of
    /// a lease cut to what was left of the quota).
    fn take(&mut self, key: &Key, fuel: u64) -> Hold {
        let fuel = self.fuel_left.map_or(fuel, |left| left.min(fuel));
        self.invocations_left -= 1;
        if let Some(left) = &mut self.fuel_left {
            *left -= fuel;
        }
        self.in_flight += 1;
        self.fuel_in_flight += fuel;
        Hold::shared(key.0.clone(), key.1.clone(), fuel, self.id.clone())
    }

    fn end(self, key: &Key) -> Ended {
        Ended {
            key: key.clone(),
            id: self.id,
            used: self.used,
            keep: None,
        }
    }
}

#[derive(Default)]
struct Slot {
    current: Option<Lease>,
    /// Retired leases waiting for their invocations in flight, by id.
    retired: HashMap<String, Lease>,
    /// Invocations the next lease asks for.
    next_size: u64,
    /// The most fuel one invocation of the slot asked for. A lease's fuel is sized by it, so
    /// that a lease asked for by a nested call (which holds no fuel of its own) still serves
    /// the top-level invocations that come after it.
    fuel_each: u64,
    /// The last refusal, under which limits, and until when it stands.
    refused: Option<(Limits, QuotaExceeded, Instant)>,
    /// Serialises this replica's requests for a lease of the slot: one asks, the others wait
    /// and spend what it got.
    asking: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    /// Retires the current lease: it ends when nothing of it is in flight, or its hold
    /// shrinks to what is.
    fn retire(&mut self, key: &Key, now: Instant, ran_out: bool) -> Option<Ended> {
        let mut lease = self.current.take()?;
        if ran_out {
            lease.ran_out_at = Some(now);
        }
        self.adapt(&lease);
        if lease.in_flight == 0 {
            return Some(lease.end(key));
        }
        let fuel = lease.limits.fuel.map_or(0, |_| lease.fuel_in_flight);
        let shrunk = Ended {
            key: key.clone(),
            id: lease.id.clone(),
            used: mem::take(&mut lease.used),
            keep: Some((lease.in_flight, fuel)),
        };
        self.retired.insert(lease.id.clone(), lease);
        Some(shrunk)
    }

    fn adapt(&mut self, lease: &Lease) {
        let quick = lease
            .ran_out_at
            .is_some_and(|at| at.duration_since(lease.taken_at) < LEASE_TTL / 2);
        self.next_size = if quick {
            (lease.size.max(self.next_size) * 2).min(MAX_LEASE)
        } else if lease.ran_out_at.is_none() && lease.invocations_left * 2 > lease.size {
            (self.next_size / 2).max(1)
        } else {
            self.next_size
        };
    }
}

/// This replica's leases, per tenant and period.
#[derive(Default)]
pub struct Leases {
    slots: Mutex<HashMap<Key, Slot>>,
}

impl Leases {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits an invocation from the current lease of `key`, if it has room under `limits`,
    /// or repeats a refusal that still stands. A lease without room is retired; what that
    /// does to its hold is in the second value.
    pub fn take(
        &self,
        key: &Key,
        limits: Limits,
        fuel: u64,
        now: Instant,
    ) -> (Taken, Option<Ended>) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(key) else {
            return (Taken::Ask, None);
        };
        if let Some((under, refusal, until)) = &slot.refused {
            if *under == limits && now < *until {
                return (Taken::Refused(refusal.clone()), None);
            }
            slot.refused = None;
        }
        let Some(lease) = &mut slot.current else {
            return (Taken::Ask, None);
        };
        let expired = now.duration_since(lease.taken_at) >= LEASE_TTL;
        if !expired && lease.fits(limits, fuel) {
            return (Taken::Hold(lease.take(key, fuel)), None);
        }
        let ran_out = !expired && lease.limits == limits;
        (Taken::Ask, slot.retire(key, now, ran_out))
    }

    /// Remembers that Redis refused `key` under `limits`, so that the next requests are
    /// refused without asking for a moment.
    pub fn refused(&self, key: &Key, limits: Limits, refusal: &QuotaExceeded, now: Instant) {
        let memory = if refusal.retry_after_secs > 1 {
            USED_UP_REFUSAL_MEMORY
        } else {
            HELD_REFUSAL_MEMORY
        };
        if let Some(slot) = self.lock().get_mut(key) {
            slot.refused = Some((limits, refusal.clone(), now + memory));
        }
    }

    /// The lock that makes this replica ask Redis for one lease of `key` at a time, and
    /// what to ask for: invocations, and the fuel of each (at least the `fuel` this
    /// invocation asks for).
    pub fn asking(&self, key: &Key, fuel: u64) -> (Arc<tokio::sync::Mutex<()>>, u64, u64) {
        let mut slots = self.lock();
        let slot = slots.entry(key.clone()).or_insert_with(|| Slot {
            next_size: FIRST_LEASE,
            ..Slot::default()
        });
        slot.fuel_each = slot.fuel_each.max(fuel);
        (Arc::clone(&slot.asking), slot.next_size, slot.fuel_each)
    }

    /// Records the lease Redis granted and admits the invocation that asked for it. A lease
    /// of one is spent at once, so it is retired at once.
    pub fn install(
        &self,
        key: &Key,
        limits: Limits,
        grant: Grant,
        fuel: u64,
        now: Instant,
    ) -> (Hold, Option<Ended>) {
        let mut slots = self.lock();
        let slot = slots.entry(key.clone()).or_insert_with(|| Slot {
            next_size: FIRST_LEASE,
            ..Slot::default()
        });
        let ended = slot.retire(key, now, true);
        let mut lease = Lease {
            id: grant.id,
            limits,
            size: grant.invocations,
            invocations_left: grant.invocations.max(1),
            fuel_left: limits.fuel.map(|_| grant.fuel),
            in_flight: 0,
            fuel_in_flight: 0,
            used: UsageCounters::default(),
            taken_at: now,
            ran_out_at: None,
        };
        let hold = lease.take(key, fuel);
        if lease.invocations_left == 0 {
            lease.ran_out_at = Some(now);
            slot.retired.insert(lease.id.clone(), lease);
        } else {
            slot.current = Some(lease);
        }
        (hold, ended)
    }

    /// Ends `hold`'s invocation: counts `counted` (nothing when it never ran, which gives its
    /// invocation back to the lease) and returns unburnt fuel to the pool. Answers the lease
    /// when this was the last invocation of a retired one, and `None` for a hold of a lease
    /// this replica does not know (settled elsewhere than admitted).
    pub fn settle(&self, hold: &Hold, counted: Option<&UsageCounters>) -> Settled {
        let Some(id) = hold.shared_id() else {
            return Settled::Unknown;
        };
        let key = (hold.tenant().clone(), hold.period().to_owned());
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(&key) else {
            return Settled::Unknown;
        };
        let current = slot.current.as_mut().filter(|lease| lease.id == id);
        let Some(lease) = current.or_else(|| slot.retired.get_mut(id)) else {
            return Settled::Unknown;
        };
        lease.in_flight = lease.in_flight.saturating_sub(1);
        lease.fuel_in_flight = lease.fuel_in_flight.saturating_sub(hold.fuel());
        let burnt = match counted {
            Some(counted) => {
                lease.used = add(&lease.used, counted);
                (counted.fuel.max(0) as u64).min(hold.fuel())
            }
            None => {
                lease.invocations_left += 1;
                0
            }
        };
        if let Some(left) = &mut lease.fuel_left {
            *left += hold.fuel() - burnt;
        }
        if lease.in_flight > 0 || slot.current.as_ref().is_some_and(|l| l.id == id) {
            return Settled::Kept;
        }
        let lease = slot
            .retired
            .remove(id)
            .expect("found among the retired above");
        Settled::Ended(lease.end(&key))
    }

    /// Retires the leases that expired and ends those with nothing in flight; forgets slots
    /// with nothing left in them.
    pub fn sweep(&self, now: Instant) -> Vec<Ended> {
        let mut done = Vec::new();
        let mut slots = self.lock();
        for (key, slot) in slots.iter_mut() {
            let expired = slot
                .current
                .as_ref()
                .is_some_and(|lease| now.duration_since(lease.taken_at) >= LEASE_TTL);
            if expired {
                done.extend(slot.retire(key, now, false));
            }
        }
        // An idle slot is forgotten (its lease size with it): quota periods come and go.
        slots.retain(|_, slot| {
            slot.current.is_some()
                || !slot.retired.is_empty()
                || slot
                    .refused
                    .as_ref()
                    .is_some_and(|(_, _, until)| now < *until)
                || Arc::strong_count(&slot.asking) > 1
        });
        done
    }

    /// Retires every lease: at shutdown, to give back what this replica will not spend
    /// (leases with invocations in flight shrink to them and end as they settle).
    pub fn retire_all(&self, now: Instant) -> Vec<Ended> {
        let mut slots = self.lock();
        slots
            .iter_mut()
            .filter_map(|(key, slot)| slot.retire(key, now, false))
            .collect()
    }
}

/// What settling an invocation did to its lease.
#[derive(Debug, PartialEq)]
pub enum Settled {
    /// The lease lives on.
    Kept,
    /// It was the last invocation of a retired lease, which ended.
    Ended(Ended),
    /// The hold is not of a lease of this replica.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        (TenantId::new("ten_a"), "2026-12".to_owned())
    }

    fn fuel_quota() -> Limits {
        Limits {
            invocations: Some(1_000),
            fuel: Some(1_000_000),
            max_timeout_ms: 30_000,
        }
    }

    fn grant(id: &str, invocations: u64, fuel: u64) -> Grant {
        Grant {
            id: id.to_owned(),
            invocations,
            fuel,
        }
    }

    fn burnt(fuel: i64) -> UsageCounters {
        UsageCounters {
            invocations: 1,
            fuel,
            ..UsageCounters::default()
        }
    }

    fn admitted(taken: (Taken, Option<Ended>)) -> Hold {
        match taken {
            (Taken::Hold(hold), None) => hold,
            other => panic!("not admitted from the lease: {other:?}"),
        }
    }

    #[test]
    fn a_lease_is_spent_here_gets_unburnt_fuel_back_shrinks_when_retired_and_ends_last() {
        let (leases, key, limits, t0) = (Leases::default(), key(), fuel_quota(), Instant::now());
        assert_eq!(leases.take(&key, limits, 100, t0), (Taken::Ask, None));
        let (first, ended) = leases.install(&key, limits, grant("l1", 3, 250), 100, t0);
        assert_eq!(
            (first.fuel(), first.shared_id(), ended),
            (100, Some("l1"), None)
        );
        let second = admitted(leases.take(&key, limits, 100, t0));
        // 50 fuel left: the third does not fit until fuel comes back.
        assert_eq!(leases.settle(&first, Some(&burnt(30))), Settled::Kept);
        let third = admitted(leases.take(&key, limits, 100, t0));
        // Out of invocations: retired; its hold shrinks to the two in flight and their fuel,
        // and what the first used goes to Redis with it.
        let (taken, shrunk) = leases.take(&key, limits, 100, t0);
        assert_eq!(taken, Taken::Ask);
        let shrunk = shrunk.expect("retired");
        assert_eq!((shrunk.id.as_str(), shrunk.keep), ("l1", Some((2, 200))));
        assert_eq!((shrunk.used.invocations, shrunk.used.fuel), (1, 30));
        assert_eq!(leases.settle(&second, None), Settled::Kept);
        let Settled::Ended(ended) = leases.settle(&third, Some(&burnt(5))) else {
            panic!("the last invocation ends a retired lease");
        };
        assert_eq!(
            (ended.id.as_str(), &ended.key, ended.keep),
            ("l1", &key, None)
        );
        assert_eq!((ended.used.invocations, ended.used.fuel), (1, 5));
        assert_eq!(leases.settle(&third, None), Settled::Unknown);
        // Used up in no time: the next lease asks for twice as many.
        assert_eq!(leases.asking(&key, 0).1, 2 * FIRST_LEASE);
    }

    #[test]
    fn a_lease_of_one_is_retired_at_once_and_expired_or_outdated_leases_end() {
        let (leases, key, limits, t0) = (Leases::default(), key(), fuel_quota(), Instant::now());
        let (exact, _) = leases.install(&key, limits, grant("one", 1, 40), 100, t0);
        assert_eq!(exact.fuel(), 40, "cut to the quota's rest");
        assert_eq!(leases.take(&key, limits, 1, t0), (Taken::Ask, None));
        let Settled::Ended(ended) = leases.settle(&exact, None) else {
            panic!("a lease of one ends with its invocation");
        };
        assert_eq!((ended.used.invocations, ended.keep), (0, None));

        let (hold, _) = leases.install(&key, limits, grant("big", 100, 10_000), 100, t0);
        assert_eq!(leases.settle(&hold, Some(&burnt(1))), Settled::Kept);
        // Changed quotas retire it; nothing in flight, so it ends at once.
        let other = Limits {
            invocations: Some(5),
            ..limits
        };
        let (taken, ended) = leases.take(&key, other, 1, t0);
        assert_eq!(taken, Taken::Ask);
        let ended = ended.expect("retired");
        assert_eq!((ended.id.as_str(), ended.keep), ("big", None));

        let (hold, _) = leases.install(&key, limits, grant("idle", 100, 10_000), 100, t0);
        let later = t0 + LEASE_TTL;
        assert!(leases.sweep(t0 + LEASE_TTL / 2).is_empty());
        let shrunk = leases.sweep(later);
        assert_eq!(shrunk.len(), 1, "expired");
        assert_eq!(
            (shrunk[0].id.as_str(), shrunk[0].keep),
            ("idle", Some((1, 100)))
        );
        let Settled::Ended(ended) = leases.settle(&hold, Some(&burnt(1))) else {
            panic!("its last invocation ends an expired lease");
        };
        assert_eq!((ended.id.as_str(), ended.used.invocations), ("idle", 1));
        // Retired mostly unused twice: the lease size halved twice; idle, the slot is
        // forgotten.
        assert_eq!(leases.asking(&key, 0).1, FIRST_LEASE / 4);
        assert!(leases.sweep(later).is_empty());
        assert!(leases.lock().is_empty());

        // A refusal stands for a moment, under the same quotas only.
        let _slot = leases.asking(&key, 0);
        let refusal = QuotaExceeded {
            quota: "invocations",
            limit: 1_000,
            retry_after_secs: 1,
        };
        leases.refused(&key, limits, &refusal, later);
        let (taken, _) = leases.take(&key, limits, 1, later);
        assert_eq!(taken, Taken::Refused(refusal.clone()));
        let (taken, _) = leases.take(&key, limits, 1, later + HELD_REFUSAL_MEMORY / 2);
        assert_eq!(taken, Taken::Refused(refusal.clone()));
        let (taken, _) = leases.take(&key, limits, 1, later + HELD_REFUSAL_MEMORY);
        assert_eq!(taken, Taken::Ask);
        leases.refused(&key, limits, &refusal, later);
        assert_eq!(leases.take(&key, other, 1, later).0, Taken::Ask);

        // At shutdown, leases with nothing in flight end at once; the others shrink.
        let (spent, _) = leases.install(&key, limits, grant("spare", 10, 1_000), 1, later);
        let busy = (TenantId::new("ten_b"), key.1.clone());
        let _ = leases.install(&busy, limits, grant("busy", 10, 1_000), 1, later);
        assert_eq!(leases.settle(&spent, Some(&burnt(1))), Settled::Kept);
        let mut returned = leases.retire_all(later);
        returned.sort_by(|a, b| a.id.cmp(&b.id));
        let returned: Vec<_> = returned
            .iter()
            .map(|e| (e.id.as_str(), e.keep, e.used.invocations))
            .collect();
        assert_eq!(returned, [("busy", Some((1, 1)), 0), ("spare", None, 1)]);
    }
}
