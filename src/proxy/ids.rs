//! Small per-request bookkeeping: decision ids, the in-flight guard, and the clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::telemetry::decision_log::DecisionId;

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

/// Decision ids: UUIDv7 (RFC 9562), so ids from any number of processes never collide and
/// sort by time. The 48-bit Unix-millisecond timestamp and the 12 bits after it are one
/// counter per process (method 3 of RFC 9562 §6.2 with a sequence instead of a sub-millisecond
/// fraction), so ids from one process are strictly increasing even within a millisecond; the
/// 62 random bits make ids from different processes distinct. No lock: one compare-and-swap
/// and one thread-local random draw per id.
pub(super) struct DecisionIds {
    /// `unix_ms << 12 | sequence` of the last id handed out.
    last: AtomicU64,
}

/// Bits of sequence under the millisecond timestamp.
const SEQ_BITS: u32 = 12;

impl DecisionIds {
    pub(super) fn new() -> DecisionIds {
        DecisionIds {
            last: AtomicU64::new(0),
        }
    }

    /// The next id, stamped with `now` (the request's arrival, read once per request).
    pub(super) fn next(&self, now: SystemTime) -> DecisionId {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let floor = (now_ms & ((1 << 48) - 1)) << SEQ_BITS;
        // Past 4096 ids in one millisecond the sequence carries into the timestamp: the ids
        // run a little ahead of the clock rather than repeat.
        let prev = self
            .last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(floor.max(last + 1))
            })
            .unwrap_or_else(|last| last);
        let stamp = floor.max(prev + 1);
        DecisionId::from_uuid(format_v7(stamp, rand::random::<u64>()))
    }
}

/// `stamp` is `unix_ms << 12 | rand_a`; 62 bits of `random` fill rand_b.
fn format_v7(stamp: u64, random: u64) -> [u8; 36] {
    let hi = (stamp >> SEQ_BITS) << 16 | 0x7000 | (stamp & 0xfff);
    let lo = (random & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let mut out = [b'-'; 36];
    // (value, nibbles, where they start): the five groups between the dashes.
    let groups = [
        (hi >> 32, 8, 0),
        ((hi >> 16) & 0xffff, 4, 9),
        (hi & 0xffff, 4, 14),
        (lo >> 48, 4, 19),
        (lo & 0xffff_ffff_ffff, 12, 24),
    ];
    for (v, nibbles, at) in groups {
        for i in 0..nibbles {
            let shift = (nibbles - 1 - i) * 4;
            out[at + i] = b"0123456789abcdef"[((v >> shift) & 0xf) as usize];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_as_a_header_value_is_the_same_text() {
        let id = DecisionIds::new().next(SystemTime::now());
        let value = id.header_value();
        assert_eq!(value.to_str().unwrap(), id.as_str());
        assert_eq!(value.clone(), value);
        assert_eq!(DecisionId::from("not-a-uuid").header_value(), "not-a-uuid");
        assert_eq!(DecisionId::from("bad\n").header_value(), "0");
        assert_eq!(DecisionId::from(String::from("é")).as_str(), "é");
    }

    #[test]
    fn ids_are_uuid_v7_with_the_current_time() {
        let before = unix_now() * 1000;
        let id = DecisionIds::new().next(SystemTime::now()).to_string();
        let after = (unix_now() + 1) * 1000;
        assert_eq!(id.len(), 36);
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(
            id.bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(&groups[2][..1], "7", "version");
        assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "variant");
        let ms = u64::from_str_radix(&format!("{}{}", groups[0], groups[1]), 16).unwrap();
        assert!(
            (before..=after).contains(&ms),
            "{ms} not in {before}..{after}"
        );
    }

    #[test]
    fn ids_from_one_process_strictly_increase_even_within_a_millisecond() {
        let ids = DecisionIds::new();
        let all: Vec<String> = (0..10_000)
            .map(|_| ids.next(SystemTime::now()).to_string())
            .collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_from_two_processes_at_the_same_instant_differ() {
        // Same clock and sequence; only the random bits tell them apart.
        let a = format_v7(1 << SEQ_BITS, 1);
        let b = format_v7(1 << SEQ_BITS, 2);
        assert_ne!(a, b);
        assert_eq!(&a[..19], &b[..19]);
        let (a, b) = (
            DecisionIds::new().next(SystemTime::now()),
            DecisionIds::new().next(SystemTime::now()),
        );
        assert_ne!(a, b);
    }
}
