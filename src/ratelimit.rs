//! Optional per-client-IP and per-user request rates (`rate_limit` in the config).
//!
//! Each key has one `AtomicU64`: its theoretical arrival time (GCRA, the "generic cell rate
//! algorithm"), nanoseconds since the limiter's epoch. A request is allowed when the TAT is at
//! most `tolerance` ahead of now, and pushes it one `interval` further. That is a token bucket of
//! `burst` tokens refilled at `rate`/s, kept in one word updated by compare-and-swap: no lock on
//! the request path beyond DashMap's shard lock for the lookup.
//!
//! A key whose TAT is in the past is indistinguishable from a new one, so `evict` drops those:
//! the maps hold only clients seen in the last second or so plus the eviction period.
//!
//! Kept over governor: side by side in one criterion run (its keyed DashMap limiter against
//! this GCRA, release build) one hot key cost 118 ns there and 159 ns here, 10 000 keys 325 ns
//! there and 126 ns here, so no speed to gain; and this limiter takes `now` from the caller (one
//! clock read per request, and tests move time instead of sleeping).

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::Deserialize;

use crate::problems::Problems;

/// How often the app evicts refilled buckets.
pub const EVICT_EVERY: Duration = Duration::from_secs(5);

/// Over the limit; `retry_after` is when the next token is available (at most one interval,
/// `1 / rate`: see `the_wait_is_at_most_one_interval`). It becomes `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

/// Defined here rather than in `error` so the error type does not depend on the limiter.
impl From<Limited> for crate::error::ProxyError {
    fn from(limited: Limited) -> Self {
        crate::error::ProxyError::RateLimited {
            retry_after: limited.retry_after,
        }
    }
}

/// One rate: `per_second` requests per second, burst = one second's worth (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    interval_ns: u64,
    tolerance_ns: u64,
}

impl Rate {
    #[allow(
        clippy::cast_possible_truncation,
        reason = "float-to-int `as` saturates, which is what an absurd rate should get"
    )]
    fn per_second(n: f64) -> Option<Rate> {
        if !(n.is_finite() && n > 0.0) {
            return None;
        }
        // At least 1 ns, so absurd rates still limit instead of never.
        let interval_ns = ((1e9 / n) as u64).max(1);
        let burst = (n.floor() as u64).max(1);
        Some(Rate {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(burst - 1),
        })
    }

    /// The GCRA step on one key's TAT at `now` (ns since the epoch).
    fn admit(self, tat: &AtomicU64, now: u64) -> Result<(), Limited> {
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let base = current.max(now);
            let ahead = base - now;
            if ahead > self.tolerance_ns {
                return Err(Limited {
                    retry_after: Duration::from_nanos(ahead - self.tolerance_ns),
                });
            }
            match tat.compare_exchange_weak(
                current,
                base + self.interval_ns,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }
}

/// Buckets for one kind of key.
struct Buckets<K: Hash + Eq> {
    rate: Rate,
    tats: DashMap<K, AtomicU64>,
}

impl<K: Hash + Eq> Buckets<K> {
    fn new(rate: Rate) -> Self {
        Buckets {
            rate,
            tats: DashMap::new(),
        }
    }

    fn admit<Q>(&self, key: &Q, now: u64) -> Result<(), Limited>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized + ToOwned<Owned = K>,
    {
        if let Some(tat) = self.tats.get(key) {
            return self.rate.admit(&tat, now);
        }
        let tat = self
            .tats
            .entry(key.to_owned())
            .or_insert_with(|| AtomicU64::new(0));
        self.rate.admit(&tat, now)
    }

    fn evict(&self, now: u64) {
        self.tats.retain(|_, tat| tat.load(Ordering::Acquire) > now);
    }
}

pub struct RateLimiter {
    epoch: Instant,
    per_ip: Option<Buckets<IpAddr>>,
    per_user: Option<Buckets<Arc<str>>>,
}

impl RateLimiter {
    /// None when no rate is configured (nothing to check on the request path).
    /// None when no rate is set.
    pub fn new(limits: &RateLimits) -> Option<RateLimiter> {
        let per_ip = limits.per_ip.map(Buckets::new);
        let per_user = limits.per_user.map(Buckets::new);
        (per_ip.is_some() || per_user.is_some()).then(|| RateLimiter {
            epoch: Instant::now(),
            per_ip,
            per_user,
        })
    }

    /// Checked before authentication: the client's address is all we know.
    pub fn check_ip(&self, ip: IpAddr, now: Instant) -> Result<(), Limited> {
        match &self.per_ip {
            Some(b) => b.admit(&ip, self.nanos(now)),
            None => Ok(()),
        }
    }

    /// Checked after authentication, keyed by the token's subject.
    pub fn check_user(&self, subject: &Arc<str>, now: Instant) -> Result<(), Limited> {
        match &self.per_user {
            Some(b) => b.admit(subject, self.nanos(now)),
            None => Ok(()),
        }
    }

    /// Drops buckets that have refilled completely (same as absent).
    pub fn evict(&self, now: Instant) {
        let now = self.nanos(now);
        if let Some(b) = &self.per_ip {
            b.evict(now);
        }
        if let Some(b) = &self.per_user {
            b.evict(now);
        }
    }

    /// Keys currently tracked (IPs + users), for tests and debugging.
    pub fn tracked(&self) -> usize {
        self.per_ip.as_ref().map_or(0, |b| b.tats.len())
            + self.per_user.as_ref().map_or(0, |b| b.tats.len())
    }

    fn nanos(&self, now: Instant) -> u64 {
        // Offset by one so a fresh bucket's TAT of 0 is always in the past.
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX / 2)
            + 1
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Requests per second per client IP (burst = one second's worth, at least one); below 1
    /// (`0.1`: one request every 10 s) the wait, and so `Retry-After`, exceeds a second.
    #[serde(default)]
    pub per_ip: Option<f64>,
    /// Requests per second per authenticated user.
    #[serde(default)]
    pub per_user: Option<f64>,
}

/// The `rate_limit` section compiled: each rate checked once and turned into its GCRA
/// interval and tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    per_ip: Option<Rate>,
    per_user: Option<Rate>,
}

impl TryFrom<&RawRateLimit> for RateLimits {
    type Error = Problems;

    fn try_from(raw: &RawRateLimit) -> Result<RateLimits, Problems> {
        let mut problems = Problems::default();
        let mut rate = |field: &str, value: Option<f64>| {
            let rate = value.map(Rate::per_second)?;
            if rate.is_none() {
                problems.push(
                    format!("rate_limit.{field}"),
                    "must be a number of requests per second above zero (leave it out to disable)",
                );
            }
            rate
        };
        let limits = RateLimits {
            per_ip: rate("per_ip", raw.per_ip),
            per_user: rate("per_user", raw.per_user),
        };
        problems.into_result(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: Option<f64>, per_user: Option<f64>) -> Result<RateLimits, Problems> {
        RateLimits::try_from(&RawRateLimit { per_ip, per_user })
    }

    fn limiter(per_ip: Option<f64>, per_user: Option<f64>) -> RateLimiter {
        RateLimiter::new(&limits(per_ip, per_user).unwrap()).unwrap()
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn nothing_configured_is_no_limiter() {
        assert!(RateLimiter::new(&limits(None, None).unwrap()).is_none());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let problems = limits(Some(1.0), Some(bad)).unwrap_err();
            assert_eq!(
                problems
                    .iter()
                    .map(|p| p.location.as_str())
                    .collect::<Vec<_>>(),
                ["rate_limit.per_user"],
                "{bad}"
            );
        }
    }

    #[test]
    fn burst_is_one_seconds_worth_then_refills_at_the_rate() {
        let l = limiter(Some(5.0), None);
        let t0 = l.epoch;
        for i in 0..5 {
            assert_eq!(l.check_ip(IP, t0), Ok(()), "request {i} of the burst");
        }
        let denied = l.check_ip(IP, t0).unwrap_err();
        assert_eq!(denied.retry_after, Duration::from_millis(200));
        // Another client has its own bucket.
        assert_eq!(l.check_ip(OTHER, t0), Ok(()));
        // One interval later, exactly one more.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(l.check_ip(IP, t1), Ok(()));
        assert!(l.check_ip(IP, t1).is_err());
        // After a full second idle the whole burst is back.
        let t2 = t1 + Duration::from_secs(1);
        for _ in 0..5 {
            assert_eq!(l.check_ip(IP, t2), Ok(()));
        }
        assert!(l.check_ip(IP, t2).is_err());
    }

    #[test]
    fn a_sustained_client_gets_exactly_the_rate() {
        let l = limiter(None, Some(10.0));
        let user: Arc<str> = "u1".into();
        let t0 = l.epoch;
        let mut allowed = 0;
        // 100 requests per second for 3 seconds, 1 ms apart.
        for ms in 0..3000 {
            if l.check_user(&user, t0 + Duration::from_millis(ms)).is_ok() {
                allowed += 1;
            }
        }
        // Burst of 10, then 10/s for just under 3 s.
        assert!((38..=40).contains(&allowed), "{allowed}");
        // Per-IP is not configured: never limits.
        for _ in 0..100 {
            assert_eq!(l.check_ip(IP, t0), Ok(()));
        }
    }

    #[test]
    fn evict_drops_only_refilled_buckets() {
        let l = limiter(Some(2.0), Some(2.0));
        let t0 = l.epoch;
        l.check_ip(IP, t0).unwrap();
        l.check_user(&Arc::from("u"), t0).unwrap();
        l.check_ip(OTHER, t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(l.tracked(), 3);
        l.evict(t0 + Duration::from_secs(5));
        assert_eq!(l.tracked(), 1, "the recent client stays");
        l.evict(t0 + Duration::from_secs(10));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn concurrent_clients_never_exceed_the_burst() {
        let l = Arc::new(limiter(Some(100.0), None));
        let now = l.epoch + Duration::from_secs(1);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || (0..50).filter(|_| l.check_ip(IP, now).is_ok()).count())
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 100);
    }

    #[test]
    fn the_wait_is_at_most_one_interval() {
        // The next token is at most one interval (1 / rate) away: under a second for rates of
        // one per second and more, longer for slower rates.
        for rate in [0.1, 0.25, 1.0, 2.0, 3.0, 7.0, 1000.0, 100_000.0] {
            let l = limiter(Some(rate), None);
            let t0 = l.epoch;
            let denied = loop {
                if let Err(d) = l.check_ip(IP, t0) {
                    break d;
                }
            };
            let interval = Duration::from_secs_f64(1.0 / rate);
            assert!(denied.retry_after <= interval, "{rate}");
            assert!(denied.retry_after > Duration::ZERO, "{rate}");
        }
    }

    #[test]
    fn the_wait_shrinks_as_the_bucket_refills() {
        // One request every 4 s, burst of one.
        let l = limiter(Some(0.25), None);
        let t0 = l.epoch;
        l.check_ip(IP, t0).unwrap();
        let wait = |t| l.check_ip(IP, t).unwrap_err().retry_after;
        assert_eq!(wait(t0), Duration::from_secs(4));
        assert_eq!(
            wait(t0 + Duration::from_millis(2500)),
            Duration::from_millis(1500)
        );
        // Denials do not push the next token further away.
        assert_eq!(
            wait(t0 + Duration::from_millis(3900)),
            Duration::from_millis(100)
        );
        assert_eq!(l.check_ip(IP, t0 + Duration::from_secs(4)), Ok(()));
    }
}
