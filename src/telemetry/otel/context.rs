//! W3C Trace Context (`traceparent` / `tracestate`): continue the caller's trace when it sent a
//! valid `traceparent`, else start one; our span's id goes upstream as the new parent.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Longest `tracestate` kept (W3C: at least 512 characters must be propagated; we keep that
/// much and drop anything longer rather than cut it mid-member).
const MAX_TRACESTATE: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// This request's span.
    pub span_id: [u8; 8],
    /// The caller's span, when it sent one.
    pub parent_span_id: Option<[u8; 8]>,
    pub flags: u8,
    pub tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// The caller's context continued with a new span, or a new trace (sampled).
    pub fn continue_or_start(headers: &HeaderMap) -> TraceContext {
        let span_id = nonzero8();
        match parent(headers) {
            Some((trace_id, parent_span_id, flags)) => TraceContext {
                trace_id,
                span_id,
                parent_span_id: Some(parent_span_id),
                flags,
                tracestate: tracestate(headers),
            },
            None => TraceContext {
                trace_id: nonzero16(),
                span_id,
                parent_span_id: None,
                flags: 0x01,
                tracestate: None,
            },
        }
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// `00-{trace}-{span}-{flags}`: our span is the upstream's parent.
    pub fn traceparent(&self) -> HeaderValue {
        let text = format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        );
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
    }

    /// Sets `traceparent` (and `tracestate`, or removes one we did not accept) for the upstream.
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT, self.traceparent());
        match &self.tracestate {
            Some(state) => {
                headers.insert(TRACESTATE, state.clone());
            }
            None => {
                headers.remove(TRACESTATE);
            }
        }
    }

    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }
}

/// A valid `traceparent`: exactly one, version 00 (or a later version's first four fields),
/// lowercase hex, ids not all zero.
fn parent(headers: &HeaderMap) -> Option<([u8; 16], [u8; 8], u8)> {
    let mut all = headers.get_all(TRACEPARENT).iter();
    let value = all.next()?.to_str().ok()?;
    if all.next().is_some() {
        return None;
    }
    let b = value.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = unhex::<1>(&value[0..2])?[0];
    // Version ff is invalid; version 00 has exactly 55 characters; later ones may add fields.
    if version == 0xff
        || (version == 0 && b.len() != 55)
        || (version != 0 && b.len() > 55 && b[55] != b'-')
    {
        return None;
    }
    let trace_id = unhex::<16>(&value[3..35])?;
    let span_id = unhex::<8>(&value[36..52])?;
    let flags = unhex::<1>(&value[53..55])?[0];
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((trace_id, span_id, flags))
}

/// `tracestate` is kept only beside a valid `traceparent`, as one line of printable ASCII.
fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let lines: Vec<&str> = headers
        .get_all(TRACESTATE)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<_>>()?;
    let joined = lines.join(",");
    if joined.is_empty() || joined.len() > MAX_TRACESTATE {
        return None;
    }
    HeaderValue::from_str(&joined).ok()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let b = text.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None, // uppercase is invalid in traceparent
    };
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    out
}

fn nonzero16() -> [u8; 16] {
    loop {
        let id: [u8; 16] = rand::random();
        if id != [0; 16] {
            return id;
        }
    }
}

fn nonzero8() -> [u8; 8] {
    loop {
        let id: [u8; 8] = rand::random();
        if id != [0; 8] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(parent: &[&str], state: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for p in parent {
            h.append(TRACEPARENT, p.parse().unwrap());
        }
        for s in state {
            h.append(TRACESTATE, s.parse().unwrap());
        }
        h
    }

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_parent_is_continued_with_a_new_span() {
        let ctx = TraceContext::continue_or_start(&with(&[VALID], &["a=1", "b=2"]));
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ctx.parent_span_id,
            Some(*b"\x00\xf0\x67\xaa\x0b\xa9\x02\xb7")
        );
        assert_ne!(ctx.span_id, ctx.parent_span_id.unwrap());
        let mut out = HeaderMap::new();
        ctx.inject(&mut out);
        let tp = out[TRACEPARENT].to_str().unwrap();
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(tp.ends_with("-01"));
        assert_eq!(out[TRACESTATE], "a=1,b=2");
    }

    #[test]
    fn an_invalid_parent_starts_a_new_trace_and_drops_tracestate() {
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "garbage",
        ] {
            let ctx = TraceContext::continue_or_start(&with(&[bad], &["a=1"]));
            assert_eq!(ctx.parent_span_id, None, "{bad}");
            assert_ne!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
            let mut out = with(&[], &["a=1"]);
            ctx.inject(&mut out);
            assert!(!out.contains_key(TRACESTATE), "{bad}");
        }
        // Two traceparents: which one is meant is unknown.
        let ctx = TraceContext::continue_or_start(&with(&[VALID, VALID], &[]));
        assert_eq!(ctx.parent_span_id, None);
        // A later version's first fields are read.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what";
        assert!(
            TraceContext::continue_or_start(&with(&[later], &[]))
                .parent_span_id
                .is_some()
        );
    }
}
