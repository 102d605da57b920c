//! Small per-request bookkeeping: decision ids, the in-flight guard, and the clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Counts a request in `streetgate_requests_in_flight` until dropped.
pub(super) struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    pub(super) fn enter(gauge: &'a prometheus::IntGauge) -> InFlight<'a> {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A decision id as a header value (ids are hex, so the fallback is never used).
pub(super) fn header_value(id: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(id).unwrap_or(http::HeaderValue::from_static("0"))
}

/// Decision ids: a random per-process prefix and a counter, unique without coordination.
pub(super) struct DecisionIds {
    prefix: u32,
    counter: AtomicU64,
}

impl DecisionIds {
    pub(super) fn new() -> DecisionIds {
        DecisionIds {
            prefix: rand::random(),
            counter: AtomicU64::new(0),
        }
    }

    pub(super) fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:012x}", self.prefix, n)
    }
}
