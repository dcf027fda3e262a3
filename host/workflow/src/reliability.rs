//! The rules of a step's reliability, as pure functions of time and outcomes: how long a
//! retry waits, whether an outcome is retried, and the circuit breaker's state machine.
//!
//! Time is passed in (unix ms) rather than read, so the engine can persist what it decided
//! (a durable timer is a stored deadline) and the rules can be tested exactly. Where the
//! breakers live (per tenant and skill, in one process or shared) is the engine's concern.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::document::{RetryOn, RetryPolicy};

impl RetryPolicy {
    /// The upper bound of the wait after failed attempt `attempt` (1-based):
    /// `min(max_delay_ms, initial_delay_ms × multiplier^(attempt−1))`.
    pub fn backoff_bound_ms(&self, attempt: u32) -> u64 {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let bound = self.initial_delay_ms as f64 * self.multiplier.powi(exponent);
        if bound.is_finite() {
            (bound as u64).min(self.max_delay_ms)
        } else {
            self.max_delay_ms
        }
    }

    /// The wait after failed attempt `attempt`, "full jitter": `unit` (uniform in `[0, 1)`)
    /// times the bound, so retries of many runs spread out instead of arriving together.
    pub fn backoff_ms(&self, attempt: u32, unit: f64) -> u64 {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (self.backoff_bound_ms(attempt) as f64 * unit) as u64
    }

    /// Whether attempt `attempt` (1-based), which ended with `outcome`, is retried.
    pub fn retries(&self, attempt: u32, outcome: RetryOn) -> bool {
        attempt < self.max_attempts && self.retry_on.contains(&outcome)
    }
}

/// When a breaker opens, for how long, and how it probes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BreakerPolicy {
    /// The window over which the failure rate is computed, in ms.
    pub window_ms: u64,
    /// Fewer calls than this in the window never open the breaker.
    pub min_calls: u32,
    /// The failure rate (0 to 1) at or above which it opens.
    pub failure_rate: f64,
    /// How long it stays open before letting one probe through, in ms.
    pub open_ms: u64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            window_ms: 60_000,
            min_calls: 5,
            failure_rate: 0.5,
            open_ms: 30_000,
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum BreakerState {
    /// Calls go through; outcomes are counted.
    Closed,
    /// Calls fail fast until `until_ms`.
    Open {
        /// When a probe may go through, unix ms.
        until_ms: u64,
    },
    /// One probe is (or may be) in flight; its outcome closes or reopens the breaker.
    HalfOpen,
}

/// What a breaker says to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead as the probe: its outcome decides.
    Probe,
    /// Fail fast; a probe may go through after this many ms.
    Rejected {
        /// Until the breaker half-opens.
        retry_after_ms: u64,
    },
}

/// A change of state a recorded outcome or an admission caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed (or half-open) → open.
    Opened,
    /// Half-open → closed.
    Closed,
}

/// One circuit breaker: opens when at least `min_calls` calls in the last `window_ms` failed
/// at `failure_rate` or more, rejects calls while open, then lets one probe through and
/// closes on its success or reopens on its failure.
#[derive(Debug, Clone)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
    /// Outcomes in the window, oldest first: (when, failed).
    outcomes: VecDeque<(u64, bool)>,
    probing: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            state: BreakerState::Closed,
            outcomes: VecDeque::new(),
            probing: false,
        }
    }

    /// Its state at `now_ms` (an open breaker whose time is up reads as half-open).
    pub fn state(&self, now_ms: u64) -> BreakerState {
        match self.state {
            BreakerState::Open { until_ms } if now_ms >= until_ms => BreakerState::HalfOpen,
            state => state,
        }
    }

    /// Failures and calls in the window at `now_ms`.
    pub fn counts(&mut self, now_ms: u64) -> (u32, u32) {
        self.forget(now_ms);
        let failures = self.outcomes.iter().filter(|(_, failed)| *failed).count();
        (failures as u32, self.outcomes.len() as u32)
    }

    /// Whether a call may go through at `now_ms`.
    pub fn admit(&mut self, now_ms: u64) -> Admission {
        match self.state(now_ms) {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::Open { until_ms } => Admission::Rejected {
                retry_after_ms: until_ms - now_ms,
            },
            BreakerState::HalfOpen if self.probing => Admission::Rejected {
                retry_after_ms: self.policy.open_ms.min(1_000),
            },
            BreakerState::HalfOpen => {
                self.state = BreakerState::HalfOpen;
                self.probing = true;
                Admission::Probe
            }
        }
    }

    /// Records a call's outcome at `now_ms`.
    pub fn record(&mut self, now_ms: u64, failed: bool) -> Option<Transition> {
        if self.state(now_ms) == BreakerState::HalfOpen && self.probing {
            self.probing = false;
            self.outcomes.clear();
            return if failed {
                self.open(now_ms);
                Some(Transition::Opened)
            } else {
                self.state = BreakerState::Closed;
                Some(Transition::Closed)
            };
        }
        if self.state != BreakerState::Closed {
            // A call admitted before the breaker opened: its outcome changes nothing now.
            return None;
        }
        self.outcomes.push_back((now_ms, failed));
        let (failures, calls) = self.counts(now_ms);
        let rate = f64::from(failures) / f64::from(calls.max(1));
        if calls >= self.policy.min_calls && rate >= self.policy.failure_rate {
            self.open(now_ms);
            return Some(Transition::Opened);
        }
        None
    }

    fn open(&mut self, now_ms: u64) {
        self.state = BreakerState::Open {
            until_ms: now_ms.saturating_add(self.policy.open_ms),
        };
        self.outcomes.clear();
    }

    fn forget(&mut self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(self.policy.window_ms);
        while self.outcomes.front().is_some_and(|(at, _)| *at < oldest) {
            self.outcomes.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_delay_ms: 100,
            max_delay_ms: 1_000,
            multiplier: 3.0,
            retry_on: vec![RetryOn::Timeout, RetryOn::Unavailable],
        }
    }

    #[test]
    fn backoff_grows_to_its_cap_with_full_jitter() {
        let p = policy();
        let bounds: Vec<u64> = (1..=5).map(|n| p.backoff_bound_ms(n)).collect();
        assert_eq!(bounds, [100, 300, 900, 1_000, 1_000]);
        assert_eq!(p.backoff_ms(2, 0.0), 0);
        assert_eq!(p.backoff_ms(2, 0.5), 150);
        assert_eq!(p.backoff_ms(2, 0.999_999), 299);
        assert_eq!(p.backoff_ms(2, f64::NAN), 0);
        assert_eq!(p.backoff_bound_ms(u32::MAX), 1_000);
    }

    #[test]
    fn only_listed_outcomes_are_retried_and_only_while_attempts_remain() {
        let p = policy();
        assert!(p.retries(1, RetryOn::Timeout));
        assert!(p.retries(3, RetryOn::Unavailable));
        assert!(!p.retries(4, RetryOn::Timeout), "the last attempt");
        assert!(!p.retries(1, RetryOn::Trap), "not listed");
    }

    #[test]
    fn a_breaker_opens_on_a_failure_rate_fails_fast_and_closes_after_a_good_probe() {
        let mut b = Breaker::new(BreakerPolicy {
            window_ms: 10_000,
            min_calls: 4,
            failure_rate: 0.5,
            open_ms: 5_000,
        });
        // Three failures alone are too few calls to judge.
        for t in [0, 1, 2] {
            assert_eq!(b.admit(t), Admission::Allowed);
            assert_eq!(b.record(t, true), None);
        }
        // Old outcomes leave the window.
        assert_eq!(b.counts(10_001), (2, 2));
        assert_eq!(b.record(10_001, false), None);
        assert_eq!(
            b.record(10_001, true),
            Some(Transition::Opened),
            "3 of 4 failed"
        );
        assert_eq!(b.state(10_003), BreakerState::Open { until_ms: 15_001 });
        assert_eq!(
            b.admit(12_001),
            Admission::Rejected {
                retry_after_ms: 3_000
            }
        );
        // An outcome of a call admitted before it opened changes nothing.
        assert_eq!(b.record(12_002, false), None);
        // Time is up: one probe, and no second call while it runs.
        assert_eq!(b.state(15_001), BreakerState::HalfOpen);
        assert_eq!(b.admit(15_001), Admission::Probe);
        assert!(matches!(b.admit(15_002), Admission::Rejected { .. }));
        // A failed probe reopens; a good one closes.
        assert_eq!(b.record(15_100, true), Some(Transition::Opened));
        assert_eq!(b.state(15_101), BreakerState::Open { until_ms: 20_100 });
        assert_eq!(b.admit(20_100), Admission::Probe);
        assert_eq!(b.record(20_200, false), Some(Transition::Closed));
        assert_eq!(b.admit(20_201), Admission::Allowed);
        assert_eq!(
            b.counts(20_201),
            (0, 0),
            "a closed breaker starts counting afresh"
        );
    }
}
