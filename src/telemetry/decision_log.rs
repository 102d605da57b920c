//! The decision log: one JSON line per decision (target `streetgate::decision`). Denials, and
//! every decision made through a third-party integrator, are always logged; other allows are
//! sampled. The token itself never appears.
//!
//! The line is formatted by hand into a per-worker buffer (integers with `itoa`, strings
//! escaped only where JSON needs it): about a microsecond, against 7–13 µs through
//! tracing-subscriber's JSON layer. A worker hands its buffer to the process's log output
//! (`log_buffer`) when it holds `HAND_OVER_AT` bytes, and its timer task hands over whatever is
//! left every `log_buffer::FLUSH_EVERY`: no wake-up per request. Off the workers (control
//! tasks, tools) a line goes to the output at once. Lines the output cannot take are counted
//! in `streetgate_decision_log_dropped_total`.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::Method;

use super::log_buffer::LogBuffer;
use super::route_metrics::Applied;
use crate::codes::SwaCode;
use crate::reason::Reason;

/// Buffered bytes at which a worker hands its lines over.
const HAND_OVER_AT: usize = 32 * 1024;

/// Where decision lines go: set once by the binary (stdout through `LogBuffer`). Without it
/// (library use, tools) decisions are not logged.
static SINK: OnceLock<LogBuffer> = OnceLock::new();

thread_local! {
    /// This worker's lines not yet handed over.
    static PENDING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Set on data-path workers, whose timer hands `PENDING` over; elsewhere each line goes
    /// straight to the sink.
    static BUFFERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Buffers this thread's lines from now on; the caller runs `flush_periodically` on it and
/// `flush_thread` when it stops (a data-path worker).
pub fn buffer_this_thread() {
    BUFFERED.with(|b| b.set(true));
}

/// Sends decision lines to `sink` from now on; false if a sink was already installed.
pub fn install(sink: LogBuffer) -> bool {
    SINK.set(sink).is_ok()
}

/// A decision id's text, held once for the log line, the rejection body and the header sent
/// both upstream and back: made with one allocation, shared by reference count after that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionId(bytes::Bytes);

impl DecisionId {
    /// A UUID's text (the ids `proxy` mints). Cut from a per-thread slab, so an id costs no
    /// allocation of its own (one per 1,024 ids); a slab is freed when its last id is.
    pub fn from_uuid(text: [u8; 36]) -> DecisionId {
        thread_local! {
            static SLAB: std::cell::RefCell<bytes::BytesMut> =
                std::cell::RefCell::new(bytes::BytesMut::new());
        }
        const IDS_PER_SLAB: usize = 1024;
        SLAB.with(|slab| {
            let mut slab = slab.borrow_mut();
            if slab.capacity() < text.len() {
                // A new slab rather than `reserve`, which could move ids still in use.
                *slab = bytes::BytesMut::with_capacity(text.len() * IDS_PER_SLAB);
            }
            slab.extend_from_slice(&text);
            DecisionId(slab.split().freeze())
        })
    }

    pub fn as_str(&self) -> &str {
        // Only text is ever stored (`from_uuid` takes ASCII, `From` takes `str`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// As a header value, sharing these bytes; "0" if they cannot be one (never for a UUID).
    pub fn header_value(&self) -> http::HeaderValue {
        http::HeaderValue::from_maybe_shared(self.0.clone())
            .unwrap_or(http::HeaderValue::from_static("0"))
    }
}

impl From<&str> for DecisionId {
    fn from(text: &str) -> DecisionId {
        DecisionId(bytes::Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<String> for DecisionId {
    fn from(text: String) -> DecisionId {
        DecisionId(bytes::Bytes::from(text))
    }
}

impl std::ops::Deref for DecisionId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for DecisionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one request decided, filled in phase by phase.
pub struct DecisionRecord {
    pub decision_id: DecisionId,
    pub method: Method,
    pub started: Instant,
    /// The system's wall-clock time when the request arrived: the line's timestamp (read
    /// once with `started`, not again per phase).
    pub at: SystemTime,
    /// When the decision was recorded (`Gateway::record`); forwarding starts from it.
    pub decided: Option<Instant>,
    pub route: Option<Arc<str>>,
    pub user: Option<Arc<str>>,
    pub organisation: Option<Arc<str>>,
    /// The third-party integrator the token acts through: always logged.
    pub integrator: Option<Arc<str>>,
    pub acting_organisation: Option<SwaCode>,
    pub reason: Option<Reason>,
    pub shadow: bool,
    pub status: u16,
    /// Time spent filtering the response body, when it was filtered.
    pub filter_us: Option<u64>,
    /// The request's OpenTelemetry span (with `otel` configured); logged as `trace_id`.
    pub trace: Option<Box<super::otel::Span>>,
}

impl DecisionRecord {
    pub fn new(
        decision_id: DecisionId,
        method: &Method,
        started: Instant,
        at: SystemTime,
    ) -> DecisionRecord {
        DecisionRecord {
            decision_id,
            method: method.clone(),
            started,
            at,
            decided: None,
            route: None,
            user: None,
            organisation: None,
            integrator: None,
            acting_organisation: None,
            reason: None,
            shadow: false,
            status: 0,
            filter_us: None,
            trace: None,
        }
    }

    /// The decision's outcome; `shadowed`: a denial forwarded anyway (shadow mode).
    pub fn set_decision(
        &mut self,
        reason: Reason,
        acting_organisation: Option<SwaCode>,
        shadowed: bool,
    ) {
        self.reason = Some(reason);
        self.acting_organisation = acting_organisation;
        self.shadow = shadowed;
    }
}

pub fn emit(record: &DecisionRecord, allow_sample_rate: f64) {
    let Some(reason) = record.reason else { return };
    if !kept(record, allow_sample_rate, rand::random::<f64>) {
        return;
    }
    let Some(sink) = SINK.get() else { return };
    let now = record.at;
    if !BUFFERED.with(std::cell::Cell::get) {
        let mut line = Vec::with_capacity(320);
        format_line(&mut line, record, reason, now);
        sink.append(&line);
        return;
    }
    PENDING.with(|pending| {
        let Ok(mut pending) = pending.try_borrow_mut() else {
            return;
        };
        format_line(&mut pending, record, reason, now);
        if pending.len() >= HAND_OVER_AT {
            sink.append(&pending);
            pending.clear();
        }
    });
}

/// Hands this thread's buffered lines to the output (a worker's timer, a worker stopping).
pub fn flush_thread() {
    let Some(sink) = SINK.get() else { return };
    PENDING.with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut()
            && !pending.is_empty()
        {
            sink.append(&pending);
            pending.clear();
        }
    });
}

/// A worker's timer: hands its lines over every `FLUSH_EVERY`, so a quiet worker's last lines
/// are not held back.
pub async fn flush_periodically() {
    let mut tick = tokio::time::interval(super::log_buffer::FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush_thread();
    }
}

/// Appends one line: the shape tracing-subscriber's JSON format gave it
/// (`{"timestamp","level","fields":{...},"target"}`), absent fields left out.
pub fn format_line(out: &mut Vec<u8>, record: &DecisionRecord, reason: Reason, now: SystemTime) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"decision_id\":");
    string(out, &record.decision_id);
    out.extend_from_slice(b",\"route\":");
    string(out, record.route.as_deref().unwrap_or("_unmatched"));
    out.extend_from_slice(b",\"method\":");
    string(out, record.method.as_str());
    for (key, value) in [
        (&b",\"user\":"[..], record.user.as_deref()),
        (b",\"organisation\":", record.organisation.as_deref()),
        (b",\"integrator\":", record.integrator.as_deref()),
        (
            b",\"acting_organisation\":",
            record.acting_organisation.as_ref().map(SwaCode::as_str),
        ),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(key);
            string(out, value);
        }
    }
    out.extend_from_slice(b",\"decision\":\"");
    out.extend_from_slice(Applied::of(reason, record.shadow).as_str().as_bytes());
    out.extend_from_slice(b"\",\"reason\":\"");
    out.extend_from_slice(reason.as_str().as_bytes());
    out.extend_from_slice(b"\",\"latency_us\":");
    number(
        out,
        u64::try_from(record.started.elapsed().as_micros()).unwrap_or(u64::MAX),
    );
    out.extend_from_slice(b",\"status\":");
    number(out, u64::from(record.status));
    if let Some(filter_us) = record.filter_us {
        out.extend_from_slice(b",\"filter_us\":");
        number(out, filter_us);
    }
    // Cross-references the request's trace (with `otel` configured).
    if let Some(span) = record.trace.as_deref() {
        out.extend_from_slice(b",\"trace_id\":");
        string(out, &span.trace_id());
    }
    out.extend_from_slice(b"},\"target\":\"streetgate::decision\"}\n");
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A JSON string: quotes, backslashes and control characters escaped, everything else (UTF-8
/// included) copied as is in runs.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Almost every value needs no escape: one branch-free pass (it vectorises) decides that,
    // instead of a branch per byte.
    let plain = bytes.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\') & (b != 0x7f)
    });
    if plain {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// RFC 3339 UTC with microseconds, as tracing-subscriber writes it.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let two = |out: &mut Vec<u8>, v: u64| {
        out.push(b'0' + u8::try_from(v / 10 % 10).unwrap_or(0));
        out.push(b'0' + u8::try_from(v % 10).unwrap_or(0));
    };
    number(out, year);
    out.push(b'-');
    two(out, month);
    out.push(b'-');
    two(out, day);
    out.push(b'T');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem / 60 % 60);
    out.push(b':');
    two(out, rem % 60);
    out.push(b'.');
    let micros = u64::from(since.subsec_micros());
    two(out, micros / 10_000);
    two(out, micros / 100 % 100);
    two(out, micros % 100);
    out.push(b'Z');
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`), for dates from 1970 on.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Whether a decision is logged: denials always, allows made through an integrator always
/// (each must stay attributable), other allows at `allow_sample_rate`.
fn kept(record: &DecisionRecord, allow_sample_rate: f64, draw: impl FnOnce() -> f64) -> bool {
    let sampled = record.reason.is_some_and(Reason::is_allow) && record.integrator.is_none();
    !sampled || allow_sample_rate >= 1.0 || draw() < allow_sample_rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrator_allows_are_never_sampled_away() {
        let mut record =
            DecisionRecord::new("d".into(), &Method::GET, Instant::now(), SystemTime::now());
        record.reason = Some(Reason::RoleGranted);
        assert!(!kept(&record, 0.0, || 0.5));
        assert!(kept(&record, 1.0, || 0.5));
        record.integrator = Some("acme".into());
        assert!(kept(&record, 0.0, || 0.99));
        record.reason = Some(Reason::IntegratorNotAgreed);
        record.integrator = None;
        assert!(kept(&record, 0.0, || 0.99));
    }
    use std::time::Duration;

    fn record() -> DecisionRecord {
        let mut r = DecisionRecord::new(
            "0190f0e0-0000-7000-8000-000000000001".into(),
            &Method::GET,
            Instant::now(),
            SystemTime::now(),
        );
        r.route = Some("GetWork".into());
        r.user = Some("user \"q\" \\ \n\u{1}é".into());
        r.organisation = Some("0001".into());
        r.reason = Some(Reason::RoleGranted);
        r.status = 200;
        r
    }

    /// Every ASCII byte, alone and inside plain text, on the fast path or the escaping one,
    /// comes back as it went in.
    #[test]
    fn every_ascii_byte_round_trips_through_a_json_string() {
        for b in 0u8..=0x7f {
            let c = char::from(b);
            for s in [
                c.to_string(),
                format!("plain-{c}-text é"),
                format!("{c}{c}"),
            ] {
                let mut out = Vec::new();
                string(&mut out, &s);
                let back: String = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("byte {b:#x}: {e}: {out:?}"));
                assert_eq!(back, s, "byte {b:#x}");
            }
        }
    }

    #[test]
    fn a_line_is_json_with_every_field_and_escapes_what_json_needs() {
        let mut out = Vec::new();
        let mut r = record();
        r.filter_us = Some(12);
        let at = UNIX_EPOCH + Duration::from_micros(1_764_531_007_012_345);
        format_line(&mut out, &r, Reason::RoleGranted, at);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["timestamp"], "2025-11-30T19:30:07.012345Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "streetgate::decision");
        let f = &v["fields"];
        assert_eq!(f["user"], "user \"q\" \\ \n\u{1}é");
        assert_eq!(f["route"], "GetWork");
        assert_eq!(f["method"], "GET");
        assert_eq!(f["organisation"], "0001");
        assert_eq!(f["decision"], "allow");
        assert_eq!(f["reason"], "role_granted");
        assert_eq!(f["status"], 200);
        assert_eq!(f["filter_us"], 12);
        assert!(f["latency_us"].is_u64());
        assert!(f.get("acting_organisation").is_none(), "absent: left out");
    }

    #[test]
    fn dates_match_the_calendar() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (20_422, (2025, 11, 30)),
            (20_819, (2027, 1, 1)),
        ] {
            assert_eq!(civil_from_days(days), date, "{days}");
        }
    }
}
