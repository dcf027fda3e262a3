//! Failed authentications counted per key (a client address, an API key prefix), so that
//! repeated failures can be refused cheaply while successes are never counted.
//!
//! `governor` (used for request rates) has no way to ask "is this key over its limit?"
//! without spending a cell, and the authenticator must ask that before it knows whether an
//! attempt fails. This is the same GCRA, kept per key in a bounded map.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once. Beyond it, keys not seen yet are not tracked (and so not
/// limited) until expired ones are dropped: the map never grows without bound, whatever an
/// attacker varies.
const CAPACITY: usize = 100_000;

/// Failures per key: `per_minute` sustained, and as many at once.
pub struct FailureLimiter<K> {
    /// Time one failure occupies.
    interval: Duration,
    /// Failures allowed at once.
    burst: u32,
    /// Per key, the theoretical time at which its failures are all forgiven.
    forgiven_at: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    /// A limiter allowing `per_minute` failures a minute per key; `None` when 0 (off).
    pub fn per_minute(per_minute: u32) -> Option<Self> {
        (per_minute > 0).then(|| Self {
            interval: Duration::from_secs(60) / per_minute,
            burst: per_minute,
            forgiven_at: Mutex::new(HashMap::new()),
        })
    }

    fn budget(&self) -> Duration {
        self.interval * self.burst
    }

    /// How long until `key` may fail again, when it has used up its failures.
    pub fn limited(&self, key: &K) -> Option<Duration> {
        let now = Instant::now();
        let map = self.forgiven_at.lock().unwrap_or_else(|e| e.into_inner());
        let owed = map.get(key)?.saturating_duration_since(now);
        (owed + self.interval > self.budget()).then(|| owed + self.interval - self.budget())
    }

    /// Counts a failure of `key`; `Err` with the time to wait when it was one too many.
    pub fn record(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.forgiven_at.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY && !map.contains_key(key) {
            map.retain(|_, at| *at > now);
            if map.len() >= CAPACITY {
                return Ok(());
            }
        }
        let at = map.entry(key.clone()).or_insert(now);
        let next = (*at).max(now) + self.interval;
        if next - now > self.budget() {
            // One too many: the key stays limited for one more interval, however often it
            // keeps failing, so a client that stops is forgiven on schedule.
            *at = now + self.budget();
            Err(self.interval)
        } else {
            *at = next;
            Ok(())
        }
    }

    /// Forgets keys whose failures are all forgiven (called periodically).
    pub fn shrink(&self) {
        let now = Instant::now();
        self.forgiven_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, at| *at > now);
    }
}

/// The key a client address is limited under: the address itself for IPv4, its /64 network
/// for IPv6 (one host usually holds a whole /64, so single addresses would be free to vary).
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_burst_are_refused_and_others_are_not_touched() {
        let limiter = FailureLimiter::per_minute(3).unwrap();
        for _ in 0..3 {
            assert!(limiter.limited(&"a").is_none());
            assert!(limiter.record(&"a").is_ok());
        }
        let wait = limiter
            .limited(&"a")
            .expect("three failures use the budget");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limiter.record(&"a").is_err());
        assert!(limiter.limited(&"b").is_none());
        assert!(limiter.record(&"b").is_ok());
    }

    #[test]
    fn persistent_failures_do_not_push_forgiveness_away() {
        let limiter = FailureLimiter::per_minute(2).unwrap();
        for _ in 0..1000 {
            let _ = limiter.record(&1);
        }
        let wait = limiter.limited(&1).unwrap();
        assert!(wait <= Duration::from_secs(30), "{wait:?}");
    }

    #[test]
    fn zero_turns_the_limit_off_and_ipv6_hosts_share_their_network() {
        assert!(FailureLimiter::<u8>::per_minute(0).is_none());
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let c: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
