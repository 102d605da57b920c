//! HTTP/1 framing guard. hyper drops a `Content-Length` that arrives with `Transfer-Encoding`
//! and folds repeated identical ones, so the request handler can no longer see either smuggling
//! attempt. `FramingIo` watches the bytes hyper reads from a connection (without copying or
//! changing them), follows the message framing exactly as hyper does, and leaves one verdict
//! per request head in a FIFO the service pops before handling the request. Requests on one
//! HTTP/1 connection are handled in order, so the n-th pop belongs to the n-th request.
//!
//! Whenever the tracker cannot follow the stream (a head it cannot parse, one over the size cap,
//! a body encoding hyper would refuse, the HTTP/2 preface) it stops. A request that then finds
//! the FIFO empty is rejected: the guard fails closed.
//!
//! Kept rather than moved onto what hyper parsed: hyper has already dropped the `Content-Length`
//! beside `Transfer-Encoding` and folded repeated ones by the time the handler runs, so the
//! smuggling attempts this guard rejects are invisible there; the second parse costs ≈ 2–3 % of
//! a request's CPU (docs/performance.md).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http1::{digits, is_chunked};
use crate::normalize::hex;
use crate::reason::Reason;

/// What the guard says about one request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// hyper may serve it.
    Pass,
    /// Refused with this reason; the connection is closed after the answer.
    Refuse(Reason),
}

/// The per-connection verdict queue, shared between the reader and the service.
#[derive(Debug, Clone, Default)]
pub struct Verdicts(Arc<Mutex<VecDeque<Verdict>>>);

impl Verdicts {
    /// The verdict for the next request; none queued means the tracker lost the stream.
    pub fn next(&self) -> Verdict {
        self.lock()
            .pop_front()
            .unwrap_or(Verdict::Refuse(Reason::BadFraming))
    }

    fn push(&self, verdict: Verdict) {
        self.lock().push_back(verdict);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Verdict>> {
        // The queue holds plain values; a panic elsewhere cannot leave it half-written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The HTTP/2 prior-knowledge preface starts like this; such a connection is not HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// The whole preface a prior-knowledge HTTP/2 client opens with (RFC 9113 §3.4).
const H2_PRIOR_KNOWLEDGE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// What the first read of a connection may take in while looking for that preface: enough
/// for a usual first head, which hyper then gets without another read.
const SNIFF_BYTES: usize = 4096;

/// The HTTP a connection speaks, known before hyper reads from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// Headers parsed on the stack before falling back to a heap array of `max_headers`.
const STACK_HEADERS: usize = 32;

/// Where the tracker is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a request head (leading empty lines skipped, as httparse does).
    Head,
    /// Skipping this many body bytes.
    Length(u64),
    /// Skipping a chunked body.
    Chunked(Chunk),
    /// Not following the stream any more.
    Off,
}

/// The chunked decoder states of hyper 1.x (`proto/h1/decode.rs`), minus its size limits:
/// where hyper refuses a body it closes the connection, so no later request depends on us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Start,
    Size(u64),
    SizeLws(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    EndCr,
    EndLf,
    Trailer,
    TrailerLf,
}

/// Follows HTTP/1 request framing over a byte stream and queues a verdict per request head.
#[derive(Debug)]
pub struct Tracker {
    state: State,
    head: Vec<u8>,
    /// Where the line being collected starts in `head`.
    line_start: usize,
    max_head_bytes: usize,
    max_headers: usize,
    first: bool,
    verdicts: Verdicts,
}

impl Tracker {
    pub fn new(max_head_bytes: usize, max_headers: usize, verdicts: Verdicts) -> Tracker {
        Tracker {
            state: State::Head,
            head: Vec::new(),
            line_start: 0,
            max_head_bytes,
            max_headers,
            first: true,
            verdicts,
        }
    }

    /// Feeds the next bytes read from the client, in stream order.
    pub fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = match self.state {
                State::Off => return,
                State::Head => self.head_bytes(bytes),
                State::Length(left) => {
                    let n = left.min(bytes.len() as u64);
                    self.state = match left - n {
                        0 => State::Head,
                        rest => State::Length(rest),
                    };
                    usize::try_from(n).unwrap_or(bytes.len())
                }
                State::Chunked(Chunk::Data(left)) => {
                    let n = left.min(bytes.len() as u64);
                    self.state = State::Chunked(match left - n {
                        0 => Chunk::DataCr,
                        rest => Chunk::Data(rest),
                    });
                    usize::try_from(n).unwrap_or(bytes.len())
                }
                State::Chunked(chunk) => {
                    self.state = chunk_step(chunk, bytes[0]);
                    1
                }
            };
            bytes = &bytes[used..];
        }
    }

    /// Consumes head bytes up to the end of the current line; returns how many it used.
    fn head_bytes(&mut self, bytes: &[u8]) -> usize {
        if self.head.is_empty() {
            let blank = bytes
                .iter()
                .position(|b| !matches!(b, b'\r' | b'\n'))
                .unwrap_or(bytes.len());
            if blank > 0 {
                return blank;
            }
            if let Some(used) = self.whole_head(bytes) {
                return used;
            }
        }
        let (line, complete) = match bytes.iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[..=i], true),
            None => (bytes, false),
        };
        self.head.extend_from_slice(line);
        if self.head.len() > self.max_head_bytes {
            // hyper answers 431 itself; a head it still accepted finds no verdict.
            self.stop();
        } else if complete {
            if matches!(&self.head[self.line_start..], b"\n" | b"\r\n") {
                self.head_complete();
            } else {
                self.line_start = self.head.len();
            }
        }
        line.len()
    }

    /// The fast path for a head that arrived whole in one read (a keep-alive request, almost
    /// always): judged where it lies instead of collected line by line. It takes only heads the
    /// line-by-line path would judge the same way, to the same end (httparse ends a complete
    /// head at its first empty line, as that path does); anything else (a partial head, one
    /// over the size cap, too many headers for the stack, one that stops the tracker, the
    /// connection's first head, which may be an HTTP/2 preface) goes the slow way.
    fn whole_head(&mut self, bytes: &[u8]) -> Option<usize> {
        if self.first {
            return None;
        }
        let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
        match judge_prefix(bytes, &mut stack) {
            Ok(Some((verdict, body, len))) if body != State::Off && len <= self.max_head_bytes => {
                self.verdicts.push(verdict);
                self.state = body;
                Some(len)
            }
            _ => None,
        }
    }

    fn head_complete(&mut self) {
        if self.first && self.head.starts_with(H2_PREFACE) {
            self.stop();
            return;
        }
        self.first = false;
        let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
        let mut parsed = judge(&self.head, &mut stack);
        if matches!(parsed, Err(httparse::Error::TooManyHeaders))
            && self.max_headers > STACK_HEADERS
        {
            let mut heap = vec![httparse::EMPTY_HEADER; self.max_headers];
            parsed = judge(&self.head, &mut heap);
        }
        match parsed {
            Ok(Some((verdict, body))) if body != State::Off => {
                self.verdicts.push(verdict);
                self.head.clear();
                self.line_start = 0;
                self.state = body;
            }
            // hyper refuses this head (and closes) or we misread it: stop either way.
            _ => self.stop(),
        }
    }

    fn stop(&mut self) {
        self.state = State::Off;
        self.head = Vec::new();
    }
}

/// Parses a complete head with httparse and reads its framing the way hyper's server does
/// (`proto/h1/role.rs`): a Content-Length after Transfer-Encoding is ignored, one before it is
/// dropped, identical repeats are folded, differing ones refused. `Ok(None)`: not a whole head.
fn judge<'h>(
    head: &'h [u8],
    headers: &mut [httparse::Header<'h>],
) -> Result<Option<(Verdict, State)>, httparse::Error> {
    Ok(judge_prefix(head, headers)?
        .and_then(|(verdict, body, len)| (len == head.len()).then_some((verdict, body))))
}

/// `judge` of the head `bytes` start with, whatever follows it; also returns the head's length.
fn judge_prefix<'h>(
    bytes: &'h [u8],
    headers: &mut [httparse::Header<'h>],
) -> Result<Option<(Verdict, State, usize)>, httparse::Error> {
    let mut req = httparse::Request::new(headers);
    let httparse::Status::Complete(len) = req.parse(bytes)? else {
        return Ok(None);
    };
    let http11 = req.version == Some(1);
    let mut lengths = 0usize;
    let mut length: Option<u64> = None;
    let mut te = false;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Ok(Some((Verdict::Pass, State::Off, len)));
            }
            te = true;
            chunked = is_chunked(h.value);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            if te {
                continue;
            }
            let Some(n) = digits(h.value) else {
                return Ok(Some((Verdict::Pass, State::Off, len)));
            };
            if length.is_some_and(|prev| prev != n) {
                return Ok(Some((Verdict::Pass, State::Off, len)));
            }
            length = Some(n);
        }
    }
    let verdict = if lengths > 1 || (lengths > 0 && te) {
        Verdict::Refuse(Reason::BadFraming)
    } else {
        Verdict::Pass
    };
    let body = match (te, chunked, length) {
        (true, true, _) => State::Chunked(Chunk::Start),
        (true, false, _) => State::Off,
        (false, _, Some(n)) if n > 0 => State::Length(n),
        (false, _, _) => State::Head,
    };
    Ok(Some((verdict, body, len)))
}

/// One byte of chunked framing outside chunk data.
fn chunk_step(chunk: Chunk, b: u8) -> State {
    let next = match (chunk, b, hex(b)) {
        (Chunk::Start, _, Some(d)) => Chunk::Size(u64::from(d)),
        (Chunk::Size(n), _, Some(d)) => {
            match n.checked_mul(16).and_then(|n| n.checked_add(d.into())) {
                Some(n) => Chunk::Size(n),
                None => return State::Off,
            }
        }
        (Chunk::Size(n) | Chunk::SizeLws(n), b'\t' | b' ', _) => Chunk::SizeLws(n),
        (Chunk::Size(n) | Chunk::SizeLws(n), b';', _) => Chunk::Extension(n),
        (Chunk::Size(n) | Chunk::SizeLws(n) | Chunk::Extension(n), b'\r', _) => Chunk::SizeLf(n),
        // hyper refuses a bare LF inside an extension.
        (Chunk::Extension(_), b'\n', _) => return State::Off,
        (Chunk::Extension(n), _, _) => Chunk::Extension(n),
        (Chunk::SizeLf(0), b'\n', _) => Chunk::EndCr,
        (Chunk::SizeLf(n), b'\n', _) => Chunk::Data(n),
        (Chunk::DataCr, b'\r', _) => Chunk::DataLf,
        (Chunk::DataLf, b'\n', _) => Chunk::Start,
        (Chunk::EndCr, b'\r', _) => Chunk::EndLf,
        (Chunk::EndLf, b'\n', _) => return State::Head,
        (Chunk::Trailer, b'\r', _) => Chunk::TrailerLf,
        // Like hyper, a trailer line runs to the next CR, whatever it holds.
        (Chunk::EndCr | Chunk::Trailer, _, _) => Chunk::Trailer,
        (Chunk::TrailerLf, b'\n', _) => Chunk::EndCr,
        _ => return State::Off,
    };
    State::Chunked(next)
}

/// A client connection whose reads feed a `Tracker`; writes pass straight through.
#[derive(Debug)]
pub struct FramingIo<I> {
    inner: I,
    tracker: Option<Tracker>,
    /// Bytes `sniff` read ahead, handed to the reader (and the tracker) before any new read.
    replay: bytes::Bytes,
}

impl<I> FramingIo<I> {
    /// Tracks HTTP/1 framing; the service pops the returned verdicts.
    pub fn tracked(inner: I, max_head_bytes: usize, max_headers: usize) -> (Self, Verdicts) {
        let verdicts = Verdicts::default();
        let tracker = Tracker::new(max_head_bytes, max_headers, verdicts.clone());
        let io = FramingIo {
            inner,
            tracker: Some(tracker),
            replay: bytes::Bytes::new(),
        };
        (io, verdicts)
    }

    /// The same connection, with `bytes` (read from it already) handed to the reader first.
    pub fn replaying(mut self, bytes: bytes::Bytes) -> Self {
        self.replay = bytes;
        self
    }

    /// The connection and the bytes `sniff` read ahead that nobody has read yet.
    pub fn into_parts(self) -> (I, bytes::Bytes) {
        (self.inner, self.replay)
    }

    /// A connection that is not HTTP/1 (TLS with ALPN h2): nothing to track.
    pub fn untracked(inner: I) -> Self {
        FramingIo {
            inner,
            tracker: None,
            replay: bytes::Bytes::new(),
        }
    }

    /// Reads until it is clear whether the client opens with the prior-knowledge HTTP/2
    /// preface (as hyper-util's `auto` server decides it), so the connection goes to hyper's
    /// HTTP/1 or HTTP/2 server directly. What was read is replayed first. A client that
    /// closes first is HTTP/1 (hyper then sees the end of the stream).
    pub async fn sniff(&mut self) -> io::Result<Protocol>
    where
        I: AsyncRead + Unpin,
    {
        use tokio::io::AsyncReadExt;
        let mut read = Vec::with_capacity(SNIFF_BYTES);
        let protocol = loop {
            let n = self.inner.read_buf(&mut read).await?;
            let common = read.len().min(H2_PRIOR_KNOWLEDGE.len());
            if n == 0 || read[..common] != H2_PRIOR_KNOWLEDGE[..common] {
                break Protocol::Http1;
            }
            if common == H2_PRIOR_KNOWLEDGE.len() {
                break Protocol::Http2;
            }
        };
        self.replay = bytes::Bytes::from(read);
        Ok(protocol)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for FramingIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            let bytes = &this.replay[..n];
            buf.put_slice(bytes);
            if let Some(tracker) = &mut this.tracker {
                tracker.observe(bytes);
            }
            bytes::Buf::advance(&mut this.replay, n);
            if this.replay.is_empty() {
                // Frees the sniff buffer: a keep-alive connection may stay open for long.
                this.replay = bytes::Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(tracker)) = (&polled, &mut this.tracker) {
            tracker.observe(&buf.filled()[before..]);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FramingIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: Verdict = Verdict::Refuse(Reason::BadFraming);
    const OK: Verdict = Verdict::Pass;

    fn tracker() -> Tracker {
        Tracker::new(8192, 100, Verdicts::default())
    }

    fn queued(t: &Tracker) -> Vec<Verdict> {
        t.verdicts.lock().iter().copied().collect()
    }

    /// Feeds `stream` in the given pieces; returns the verdicts and the final state.
    fn run(pieces: &[&[u8]]) -> (Vec<Verdict>, State) {
        let mut t = tracker();
        for p in pieces {
            t.observe(p);
        }
        (queued(&t), t.state)
    }

    /// The result of feeding `stream` whole, checked against every two-way split and a
    /// byte-at-a-time feed.
    fn run_all_splits(stream: &[u8]) -> (Vec<Verdict>, State) {
        let whole = run(&[stream]);
        for i in 0..=stream.len() {
            assert_eq!(run(&[&stream[..i], &stream[i..]]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&bytes), whole, "byte by byte");
        whole
    }

    /// Heads after the first that arrive whole in one read take `whole_head`; fed byte by
    /// byte they take the line-by-line path. Both must agree on every kind of head.
    #[test]
    fn a_head_judged_where_it_lies_gets_the_line_by_line_verdict() {
        let first: &[u8] = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n";
        let big = format!("GET /a HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(8192));
        let many: String = (0..STACK_HEADERS + 1)
            .map(|i| format!("h{i}: v\r\n"))
            .collect();
        let many = format!("GET /a HTTP/1.1\r\n{many}\r\n");
        let cases: Vec<&[u8]> = vec![
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a HTTP/1.1\nHost: x\n\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\n\nGET /b HTTP/1.1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"GET /a HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET /a HTTP/1.1\r\nX: a\r\r\n\r\n",
            b"GET /a\nb HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\n",
            big.as_bytes(),
            many.as_bytes(),
        ];
        for case in cases {
            let fast = run(&[first, case]);
            let mut pieces = vec![first];
            pieces.extend(case.chunks(1));
            assert_eq!(fast, run(&pieces), "{:?}", String::from_utf8_lossy(case));
        }
    }

    /// The same agreement over heads with one byte replaced by each byte that matters to
    /// line ends, header syntax or framing, at every position.
    #[test]
    fn the_fast_path_agrees_on_every_one_byte_mutation() {
        let first: &[u8] = b"GET /first HTTP/1.1\r\n\r\n";
        let heads: [&[u8]; 3] = [
            b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t.u.v\r\n\r\nGET /z HTTP/1.1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
            b"POST /a HTTP/1.1\nContent-Length: 1\n\nxGET / HTTP/1.0\n\n",
        ];
        let specials = b"\r\n \t:;,0a\x00\x7f";
        for head in heads {
            for i in 0..head.len() {
                for &b in specials {
                    let mut case = head.to_vec();
                    case[i] = b;
                    let mut pieces = vec![first];
                    pieces.extend(case.chunks(1));
                    assert_eq!(
                        run(&[first, &case]),
                        run(&pieces),
                        "{:?}",
                        String::from_utf8_lossy(&case)
                    );
                }
            }
        }
    }

    #[test]
    fn plain_get_is_clean() {
        let s = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(run_all_splits(s), (vec![OK], State::Head));
    }

    #[test]
    fn content_length_with_transfer_encoding_is_bad_in_either_order() {
        let cl_first = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let te_first = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n";
        // hyper reads the body as chunked, so do we: the stream ends exactly after it.
        assert_eq!(run_all_splits(cl_first), (vec![BAD], State::Head));
        assert_eq!(run_all_splits(te_first), (vec![BAD], State::Head));
        // Even an unparseable length after Transfer-Encoding (hyper skips it).
        let junk =
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: x\r\n\r\n0\r\n\r\n";
        assert_eq!(run_all_splits(junk), (vec![BAD], State::Head));
    }

    #[test]
    fn repeated_content_length_is_bad_even_when_identical() {
        let s = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n";
        assert_eq!(run_all_splits(s), (vec![BAD, OK], State::Head));
    }

    #[test]
    fn differing_or_invalid_content_length_stops_tracking() {
        // hyper refuses these heads and closes; any request after finds no verdict.
        for s in [
            &b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"[..],
            b"POST /a HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
            b"POST /a HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc",
            b"POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert_eq!(run_all_splits(s), (vec![], State::Off));
        }
        let mut t = tracker();
        t.observe(b"POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(t.verdicts.next(), BAD, "an empty queue fails closed");
    }

    #[test]
    fn length_body_holding_a_fake_head_is_skipped() {
        let fake = "GET /evil HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let s = format!(
            "POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{fake}GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            fake.len()
        );
        assert_eq!(run_all_splits(s.as_bytes()), (vec![OK, OK], State::Head));
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers_is_skipped() {
        let s = b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;name=value;x=\"q\"\r\nhello\r\n\
            A \t;ext\r\n0123456789\r\n\
            1a\r\nGET /x HTTP/1.1\r\nCL: 12\r\n\r\r\n\
            0;last\r\nTrailer-One: a\r\nTrailer-Two: b\n c\r\n\r\n\
            GET /b HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz";
        assert_eq!(run_all_splits(s), (vec![OK, BAD], State::Head));
    }

    #[test]
    fn malformed_chunked_framing_stops_tracking() {
        for body in [
            &b"g\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"5;ext\nhello\r\n",
            b"3\r\nabcX\r\n",
            b"0\r\n\rX",
            b"0\r\nTrailer: a\rX",
            b"10000000000000000\r\n",
        ] {
            let mut s = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            s.extend_from_slice(body);
            assert_eq!(run_all_splits(&s), (vec![OK], State::Off), "{body:?}");
        }
    }

    #[test]
    fn keep_alive_sequence_flags_only_the_bad_request() {
        let s = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok\
            POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(run_all_splits(s), (vec![OK, OK, BAD], State::Head));
    }

    #[test]
    fn pipelined_requests_with_blank_lines_between_and_bare_lf() {
        let s =
            b"\r\nGET /1 HTTP/1.1\r\n\r\n\r\n\nGET /2 HTTP/1.1\nHost: x\n\nGET /3 HTTP/1.0\r\n\r\n";
        assert_eq!(run_all_splits(s), (vec![OK, OK, OK], State::Head));
    }

    #[test]
    fn partial_head_waits() {
        assert_eq!(
            run(&[b"GET /a HTTP/1.1\r\nContent-Length: 1\r\n"]),
            (vec![], State::Head)
        );
        assert_eq!(
            run(&[b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"]),
            (vec![OK], State::Length(7))
        );
    }

    #[test]
    fn http2_preface_is_not_tracked() {
        let s = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00";
        assert_eq!(run_all_splits(s), (vec![], State::Off));
    }

    #[test]
    fn refused_encodings_and_garbage_stop_tracking() {
        for s in [
            &b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET /a HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            b"GET /a HTTP/1.1\r\n\rX\r\n\r\n",
        ] {
            assert_eq!(run_all_splits(s), (vec![], State::Off), "{s:?}");
        }
    }

    #[test]
    fn head_over_the_cap_stops_tracking() {
        let mut t = Tracker::new(64, 100, Verdicts::default());
        t.observe(b"GET /a HTTP/1.1\r\nX-Long: ");
        t.observe(&[b'a'; 64]);
        assert_eq!(t.state, State::Off);
        t.observe(b"\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
        assert!(queued(&t).is_empty());
        assert!(t.head.capacity() == 0, "buffer released");
    }

    #[test]
    fn many_headers_parse_up_to_the_configured_count() {
        let mut s = b"GET /a HTTP/1.1\r\n".to_vec();
        for i in 0..60 {
            s.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        s.extend_from_slice(b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx");
        assert_eq!(run(&[&s]), (vec![BAD], State::Head));
        let mut t = Tracker::new(8192, 40, Verdicts::default());
        t.observe(&s);
        assert_eq!((queued(&t), t.state), (vec![], State::Off));
    }

    #[test]
    fn head_buffer_is_reused() {
        let mut t = tracker();
        t.observe(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        let cap = t.head.capacity();
        t.observe(b"GET /b HTTP/1.1\r\nHost: y\r\n\r\n");
        assert_eq!(t.head.capacity(), cap);
        assert!(t.head.is_empty());
    }

    /// Whatever the first bytes are and however they are split, `sniff` names the protocol as
    /// hyper-util's `auto` server did, and the reader (and the tracker) then get every byte.
    #[tokio::test]
    async fn sniff_decides_on_the_preface_and_replays_every_byte() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let h2 = [H2_PRIOR_KNOWLEDGE, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"].concat();
        let h1 = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let big = [
            b"GET /a HTTP/1.1\r\nX: ".as_slice(),
            &[b'y'; 9000],
            b"\r\n\r\n",
        ]
        .concat();
        let cases: Vec<(&str, Vec<u8>, Protocol)> = vec![
            ("h2 preface and a frame", h2.clone(), Protocol::Http2),
            (
                "h2 preface only",
                H2_PRIOR_KNOWLEDGE.to_vec(),
                Protocol::Http2,
            ),
            ("HTTP/1 head", h1.clone(), Protocol::Http1),
            ("a head past the sniff buffer", big.clone(), Protocol::Http1),
            (
                "PRI as an HTTP/1 method",
                b"PRI * HTTP/1.1\r\n\r\n".to_vec(),
                Protocol::Http1,
            ),
            (
                "a preface that goes wrong late",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r!".to_vec(),
                Protocol::Http1,
            ),
            ("nothing, then closed", Vec::new(), Protocol::Http1),
        ];
        for (what, sent, expected) in cases {
            for piece in [1, 5, 23, 24, 4096] {
                let (mut client, server) = tokio::io::duplex(64 * 1024);
                let (mut io, verdicts) = FramingIo::tracked(server, 16 * 1024, 100);
                let bytes = sent.clone();
                let writer = tokio::spawn(async move {
                    for chunk in bytes.chunks(piece) {
                        client.write_all(chunk).await.unwrap();
                        client.flush().await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    client.shutdown().await.unwrap();
                });
                assert_eq!(
                    io.sniff().await.unwrap(),
                    expected,
                    "{what}, in pieces of {piece}"
                );
                let mut got = Vec::new();
                io.read_to_end(&mut got).await.unwrap();
                writer.await.unwrap();
                assert_eq!(got, sent, "{what}, in pieces of {piece}: bytes replayed");
                if sent == h1 {
                    assert_eq!(verdicts.next(), OK, "the tracker saw the replayed head");
                }
            }
        }
    }

    #[tokio::test]
    async fn framing_io_passes_bytes_through_unchanged() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(7);
        let (mut io, verdicts) = FramingIo::tracked(server, 8192, 100);
        let sent = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let writer = tokio::spawn(async move {
            client.write_all(sent).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        io.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, sent);
        io.write_all(b"reply").await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(writer.await.unwrap(), b"reply");
        assert_eq!(verdicts.next(), OK);
        assert_eq!(verdicts.next(), BAD);
        assert_eq!(verdicts.next(), BAD, "nothing left: fail closed");
    }
}
