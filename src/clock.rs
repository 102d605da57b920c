//! The time the gateway, its rate limiter and its grants store judge by. In production it is
//! the system's; a test makes a `Clock::adjustable()` and moves it ahead with `advance`, so
//! staleness, token-bucket refills and expiry are tested without sleeping. One clock is shared
//! by everything of one sidecar, so they never disagree about what time it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Nanoseconds added to the system's time; `None` for the plain system clock.
    ahead: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Runs with the system's time, plus whatever `advance` added.
    pub fn adjustable() -> Clock {
        Clock {
            ahead: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Moves an adjustable clock ahead; a system clock cannot be moved, and ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(ahead) = &self.ahead {
            let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            ahead.fetch_add(ns, Ordering::Relaxed);
        }
    }

    fn offset(&self) -> Duration {
        self.ahead.as_ref().map_or(Duration::ZERO, |a| {
            Duration::from_nanos(a.load(Ordering::Relaxed))
        })
    }

    /// Wall-clock time (snapshot ages, timestamps).
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.offset()
    }

    /// This clock's time when the system's was `system`: one read of the system clock serves
    /// a whole request.
    pub fn at(&self, system: SystemTime) -> SystemTime {
        system + self.offset()
    }

    /// Monotonic time (rate limits).
    pub fn instant(&self) -> Instant {
        Instant::now() + self.offset()
    }

    /// Whole seconds since the Unix epoch (token `exp`, `nbf`, `iat`).
    pub fn unix_secs(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_and_a_system_clock_does_not() {
        let clock = Clock::adjustable();
        let before = clock.instant();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.instant() >= before + Duration::from_secs(3600));
        assert!(clock.now() >= SystemTime::now() + Duration::from_secs(3599));

        let system = Clock::system();
        system.advance(Duration::from_secs(3600));
        assert!(system.now() <= SystemTime::now());
    }
}
