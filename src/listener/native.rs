//! streetgate's own HTTP/1 server loop (`runtime.http1: native`), a prototype beside hyper's
//! (docs/performance.md). It serves the requests that make up the traffic: a well-formed head
//! with no body, no `Expect`, no upgrade. Everything else is handed, with every byte not yet
//! served, to hyper's server and the framing guard (`Conn::serve`) as if the connection had
//! just opened: a head httparse refuses or that is over the size cap, a body of any framing,
//! `Transfer-Encoding`, a repeated `Content-Length`, CONNECT, a header the `http` crate would
//! not take. So the native loop never judges an odd request; it serves only what hyper and the
//! guard would pass unchanged, and hyper keeps answering the rest (400, 431, the guard's
//! refusals, bodies, `100 Continue`). Once handed over, a connection stays with hyper.
//!
//! Why: one parse per head instead of two (hyper's and the guard's), no per-request service
//! future, head and body written in one `write` (`docs/performance.md` has the measurements).

use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use http_body::{Body, Frame};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::activity::Activity;
use super::framing::{FramingIo, Protocol};
use super::{BoxError, ClientBody, Conn, ConnInfo, Handler};

/// Which server reads HTTP/1 request heads (`runtime.http1`, `STREETGATE_HTTP1`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Http1Server {
    /// hyper's, for every request (the default).
    #[default]
    Hyper,
    /// The native loop for plain requests, hyper for the rest.
    Native,
}

/// Overrides `runtime.http1`.
pub const ENV: &str = "STREETGATE_HTTP1";

#[derive(Debug, thiserror::Error)]
#[error("{ENV}={value:?} is not an HTTP/1 server: hyper or native")]
pub struct Http1EnvError {
    value: String,
}

/// `STREETGATE_HTTP1` when set, else the configured server.
pub fn server(configured: Http1Server) -> Result<Http1Server, Http1EnvError> {
    server_from(std::env::var_os(ENV), configured)
}

fn server_from(
    env: Option<std::ffi::OsString>,
    configured: Http1Server,
) -> Result<Http1Server, Http1EnvError> {
    let Some(value) = env else {
        return Ok(configured);
    };
    let text = value.to_string_lossy();
    match text.trim() {
        "hyper" => Ok(Http1Server::Hyper),
        "native" => Ok(Http1Server::Native),
        _ => Err(Http1EnvError {
            value: text.into_owned(),
        }),
    }
}

/// Headers a native head may have; a head with more goes to hyper (which has the limit).
const STACK_HEADERS: usize = 32;
/// A data frame up to this size is copied behind the head (or the previous frame) so both
/// leave in one write; a larger one is written on its own.
const COALESCE: usize = 16 * 1024;
/// How long a closing connection may take to say goodbye (TLS close_notify).
const SHUTDOWN: Duration = Duration::from_secs(1);

/// Serves `io` natively until it closes or a request needs hyper. `buf` holds bytes already
/// read (the protocol sniff's).
pub(super) async fn serve<H, I>(
    conn: Conn<'_, H>,
    mut io: I,
    mut buf: BytesMut,
    info: ConnInfo,
    stopping: watch::Receiver<bool>,
    watcher: Watcher,
) where
    H: Handler,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = conn.limits;
    let cap = limits.head_cap();
    let mut out = Vec::with_capacity(1024);
    // The first head is due `header_read_timeout` after accept; later ones, after the
    // previous response, within the shorter of the idle and header timeouts (as `activity`).
    let mut deadline = conn.activity.deadline(&limits).unwrap_or_else(Instant::now);
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    // Shutdown is watched by one future for the connection's life: a new one per wait would
    // join and leave the watch's waiter list on every request.
    let mut watch = stopping.clone();
    let stop = watch.changed();
    tokio::pin!(stop);
    // Filled by `parse` in place: it is a kilobyte, not to be moved on every request.
    let mut plain = Plain::default();
    loop {
        loop {
            match parse(&buf, cap, limits.max_headers, &mut plain) {
                Parsed::Plain => break,
                Parsed::HandOff => {
                    return hand_off(conn, io, buf, info, watcher).await;
                }
                Parsed::Partial => {}
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            timer.as_mut().reset(deadline);
            let read = tokio::select! {
                biased;
                read = io.read_buf(&mut buf) => read,
                () = timer.as_mut() => return,
                _ = stop.as_mut() => return,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let Some(request) = plain.request(&mut buf) else {
            // Never seen: httparse's tokens and values are what `http` accepts.
            return hand_off(conn, io, buf, info, watcher).await;
        };
        let version = request.version();
        let is_head = request.method() == Method::HEAD;
        let response = conn.handler.handle(info.clone(), request).await;
        let close = !plain.keep_alive
            || *stopping.borrow()
            || response
                .headers()
                .get(CONNECTION)
                .is_some_and(|v| has_token(v.as_bytes(), b"close"));
        let ended = write_response(&mut io, &mut out, response, version, is_head, close).await;
        if !matches!(ended, Ok(true)) || close {
            let _ = tokio::time::timeout(SHUTDOWN, io.shutdown()).await;
            return;
        }
        deadline = Instant::now() + limits.recheck();
    }
}

/// Gives the connection, with the bytes not served yet, to hyper and the framing guard.
async fn hand_off<H, I>(conn: Conn<'_, H>, io: I, buf: BytesMut, info: ConnInfo, watcher: Watcher)
where
    H: Handler,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = conn.limits;
    let (io, verdicts) = FramingIo::tracked(io, limits.head_cap(), limits.max_headers);
    let io = io.replaying(buf.freeze());
    // A fresh clock: its next head is due `header_read_timeout` from now, as on a new connection.
    let conn = Conn {
        activity: Activity::new(Instant::now()),
        ..conn
    };
    conn.serve(
        TokioIo::new(io),
        Protocol::Http1,
        Some(verdicts),
        info,
        watcher,
    )
    .await;
}

enum Parsed {
    /// A complete plain head at the start of the buffer (in the `Plain` given).
    Plain,
    /// More bytes are needed.
    Partial,
    /// Not for the native loop.
    HandOff,
}

/// Where a plain head's parts lie in the buffer; converted once the head is split off.
#[derive(Default)]
struct Plain {
    len: usize,
    method: Method,
    target: (usize, usize),
    version: Version,
    headers: [(usize, usize, usize, usize); STACK_HEADERS],
    count: usize,
    keep_alive: bool,
}

/// Parses the head at the start of `buf` and says whether the native loop serves it.
fn parse(buf: &[u8], cap: usize, max_headers: usize, plain: &mut Plain) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut req = httparse::Request::new(&mut headers[..max_headers.min(STACK_HEADERS)]);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= cap => len,
        Ok(httparse::Status::Partial) if buf.len() < cap => return Parsed::Partial,
        _ => return Parsed::HandOff,
    };
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::HandOff;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::HandOff;
    };
    if method == Method::CONNECT {
        return Parsed::HandOff;
    }
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    plain.len = len;
    plain.method = method;
    plain.target = at(path.as_bytes());
    plain.version = version;
    plain.count = req.headers.len();
    plain.keep_alive = version == Version::HTTP_11;
    let mut length_seen = false;
    for (i, h) in req.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // One `Content-Length: 0` is no body; any other length goes to hyper and the guard.
            if length_seen || h.value != b"0" {
                return Parsed::HandOff;
            }
            length_seen = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Parsed::HandOff;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(h.value, b"upgrade") {
                return Parsed::HandOff;
            }
            if has_token(h.value, b"close") {
                plain.keep_alive = false;
            } else if version == Version::HTTP_10 && has_token(h.value, b"keep-alive") {
                plain.keep_alive = true;
            }
        }
        let (name_at, name_len) = at(name);
        let (value_at, value_len) = at(h.value);
        plain.headers[i] = (name_at, name_len, value_at, value_len);
    }
    Parsed::Plain
}

impl Plain {
    /// Splits the head off `buf` and builds the request on it: the target and the header
    /// values share the head's bytes. None (the buffer untouched) if `http` refuses a part.
    fn request(&self, buf: &mut BytesMut) -> Option<Request<ClientBody>> {
        let slice = |(at, len): (usize, usize)| &buf[at..at + len];
        // Names are checked before anything is split off, so a refusal leaves `buf` whole.
        let mut known: [Option<HeaderName>; STACK_HEADERS] = [const { None }; STACK_HEADERS];
        for (i, &(name_at, name_len, _, _)) in self.headers[..self.count].iter().enumerate() {
            known[i] = Some(HeaderName::from_bytes(slice((name_at, name_len))).ok()?);
        }
        let head = buf.split_to(self.len).freeze();
        let restore = |buf: &mut BytesMut, head: &Bytes| {
            let mut whole = BytesMut::with_capacity(head.len() + buf.len());
            whole.extend_from_slice(head);
            whole.extend_from_slice(buf);
            *buf = whole;
        };
        let Ok(uri) =
            Uri::from_maybe_shared(head.slice(self.target.0..self.target.0 + self.target.1))
        else {
            restore(buf, &head);
            return None;
        };
        let mut headers = crate::recycle::header_map();
        for (i, &(_, _, value_at, value_len)) in self.headers[..self.count].iter().enumerate() {
            let (Some(name), Ok(value)) = (
                known[i].take(),
                HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len)),
            ) else {
                restore(buf, &head);
                return None;
            };
            headers.append(name, value);
        }
        let mut request = Request::new(ClientBody::Empty);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = headers;
        Some(request)
    }
}

/// The request the native loop would build from the head `data` starts with, and the head's
/// length; None where it hands the connection to hyper or needs more bytes. For the fuzz
/// target that holds the native reading to the framing guard's.
pub(crate) fn plain_request(
    data: &[u8],
    cap: usize,
    max_headers: usize,
) -> Option<(usize, Request<ClientBody>)> {
    let mut plain = Plain::default();
    if !matches!(parse(data, cap, max_headers, &mut plain), Parsed::Plain) {
        return None;
    }
    let mut buf = BytesMut::from(data);
    let request = plain.request(&mut buf)?;
    Some((plain.len, request))
}

/// Whether a comma-separated header value lists `token` (any case).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body may follow (HEAD, 1xx, 204, 304).
    Bodiless,
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a known length: the body ends when the connection does.
    UntilClose,
}

/// Writes the response; Ok(true) when the connection may carry another request.
async fn write_response<I, B>(
    io: &mut I,
    out: &mut Vec<u8>,
    response: Response<B>,
    version: Version,
    is_head: bool,
    close: bool,
) -> io::Result<bool>
where
    I: AsyncWrite + Unpin,
    B: Body<Data = Bytes, Error: Into<BoxError> + Send> + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let framing = if is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Bodiless
    } else if let Some(n) = body.size_hint().exact() {
        Framing::Length(n)
    } else if let Some(n) = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok()?.parse::<u64>().ok())
    {
        Framing::Length(n)
    } else if version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        Framing::UntilClose
    };
    let close = close || framing == Framing::UntilClose;
    out.clear();
    encode_head(out, status, &parts.headers, framing, version, close);
    crate::recycle::give_map(parts.headers);
    let result = write_body(io, out, &mut body, framing).await;
    out.clear();
    if out.capacity() > 64 * 1024 {
        // One big response should not pin its buffer for the connection's life.
        *out = Vec::with_capacity(1024);
    }
    Ok(result? && !close)
}

fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    version: Version,
    close: bool,
) {
    // As hyper: an HTTP/1.0 client is answered in its own version.
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        let framed = name == TRANSFER_ENCODING
            || name == CONNECTION
            || (name == CONTENT_LENGTH && framing != Framing::Bodiless);
        if framed {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Bodiless | Framing::UntilClose => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !headers.contains_key(DATE) {
        out.extend_from_slice(b"date: ");
        date::write(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Streams the body after the head in `out`; Ok(false) when the body failed or did not match
/// its length (the connection must close: the client cannot find the next response).
async fn write_body<I, B>(
    io: &mut I,
    out: &mut Vec<u8>,
    body: &mut B,
    framing: Framing,
) -> io::Result<bool>
where
    I: AsyncWrite + Unpin,
    B: Body<Data = Bytes, Error: Into<BoxError> + Send> + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut whole = true;
    if framing != Framing::Bodiless {
        loop {
            // (`if let`: in edition 2024 its scrutinee is gone before `else`, so no frame is
            // held across the await there.)
            let frame = if let Ready(frame) = next_frame(body).await {
                frame
            } else {
                // What is ready leaves now: the client should not wait for a slow body.
                flush(io, out).await?;
                std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
            };
            let data = match frame {
                None => break,
                Some(Err(e)) => {
                    let e: BoxError = e.into();
                    tracing::debug!(error = %e, "response body failed; closing the connection");
                    whole = false;
                    break;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers are not sent on HTTP/1 (hyper's server drops them too unless
                    // the client asked with `TE: trailers`).
                    Err(_) => continue,
                },
            };
            if data.is_empty() {
                continue;
            }
            let mut data = data;
            if framing == Framing::Chunked {
                push_hex(out, data.len());
                out.extend_from_slice(b"\r\n");
            } else if (data.len() as u64) > left {
                // More than the length said: the rest is not sent.
                data.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                whole = false;
            }
            left -= data.len() as u64;
            if data.len() <= COALESCE {
                out.extend_from_slice(&data);
            } else {
                flush(io, out).await?;
                io.write_all(&data).await?;
            }
            if framing == Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
            if !whole {
                break;
            }
        }
        match framing {
            Framing::Chunked if whole => out.extend_from_slice(b"0\r\n\r\n"),
            Framing::Length(_) if left != 0 => whole = false,
            _ => {}
        }
    }
    flush(io, out).await?;
    io.flush().await?;
    Ok(whole)
}

use Polled::{Ready, Waiting};

enum Polled<T> {
    Ready(T),
    Waiting,
}

/// The body's next frame if it is ready now (the waker is registered either way).
async fn next_frame<B: Body + Unpin>(
    body: &mut B,
) -> Polled<Option<Result<Frame<B::Data>, B::Error>>> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(frame) => Ready(frame),
            Poll::Pending => Waiting,
        })
    })
    .await
}

async fn flush<I: AsyncWrite + Unpin>(io: &mut I, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// A chunk size line's number, in lowercase hex.
fn push_hex(out: &mut Vec<u8>, n: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(DIGITS[(n >> (i * 4)) & 0xf]);
    }
}

/// The `Date` header, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    pub(super) fn write(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs {
                *c = (secs, httpdate::fmt_http_date(now));
            }
            out.extend_from_slice(c.1.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    use http_body_util::Full;

    fn plain(head: &[u8]) -> Plain {
        let mut p = Plain::default();
        match parse(head, 8192, 100, &mut p) {
            Parsed::Plain => p,
            Parsed::Partial => panic!("partial: {:?}", String::from_utf8_lossy(head)),
            Parsed::HandOff => panic!("handed off: {:?}", String::from_utf8_lossy(head)),
        }
    }

    fn handed_off(head: &[u8]) -> bool {
        matches!(
            parse(head, 8192, 100, &mut Plain::default()),
            Parsed::HandOff
        )
    }

    #[test]
    fn only_plain_heads_stay_native() {
        for head in [
            &b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /a?b=%41 HTTP/1.0\r\n\r\n",
            b"DELETE /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"\r\nGET /a HTTP/1.1\nHost: x\n\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
        ] {
            plain(head);
        }
        for head in [
            // Bodies, in every framing, and anything the guard judges.
            &b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"[..],
            b"POST /a HTTP/1.1\r\nContent-Length: 00\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /a HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET /a HTTP/1.1\r\nConnection: keep-alive, upgrade\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\n",
            // What httparse refuses: hyper answers it.
            b"GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"GET /a\x01 HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/2.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"G@T /a HTTP/1.1\r\n\r\n",
        ] {
            assert!(handed_off(head), "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn heads_over_the_caps_go_to_hyper_which_answers_431() {
        let big = format!("GET /a HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(9000));
        assert!(matches!(
            parse(big.as_bytes(), 8192, 100, &mut Plain::default()),
            Parsed::HandOff
        ));
        // Unfinished but already over the cap: no more reading.
        assert!(matches!(
            parse(&big.as_bytes()[..8500], 8192, 100, &mut Plain::default()),
            Parsed::HandOff
        ));
        assert!(matches!(
            parse(&big.as_bytes()[..100], 8192, 100, &mut Plain::default()),
            Parsed::Partial
        ));
        let many: String = (0..5).map(|i| format!("h{i}: v\r\n")).collect();
        let many = format!("GET /a HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            parse(many.as_bytes(), 8192, 4, &mut Plain::default()),
            Parsed::HandOff
        ));
        assert!(matches!(
            parse(many.as_bytes(), 8192, 5, &mut Plain::default()),
            Parsed::Plain
        ));
        let more: String = (0..STACK_HEADERS + 1)
            .map(|i| format!("h{i}: v\r\n"))
            .collect();
        let more = format!("GET /a HTTP/1.1\r\n{more}\r\n");
        assert!(matches!(
            parse(more.as_bytes(), 8192, 100, &mut Plain::default()),
            Parsed::HandOff
        ));
    }

    #[test]
    fn the_request_shares_the_head_and_the_rest_stays_buffered() {
        let stream = b"GET /w/1?x=%20 HTTP/1.1\r\nHost: gw\r\nX-A: 1\r\nx-a: 2\r\nConnection: close\r\n\r\nGET /next";
        let mut buf = BytesMut::from(&stream[..]);
        let head = plain(&buf);
        assert!(!head.keep_alive);
        let request = head.request(&mut buf).expect("plain");
        assert_eq!(&buf[..], b"GET /next");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/w/1?x=%20");
        assert_eq!(request.version(), Version::HTTP_11);
        let values: Vec<_> = request.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(request.headers()["host"], "gw");
        assert!(request.body().is_end_stream());

        let keep = plain(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(keep.keep_alive);
        assert!(!plain(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(plain(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        for n in [0usize, 1, 9, 10, 15, 16, 255, 4096, 0xabcdef, usize::MAX] {
            let mut out = Vec::new();
            push_hex(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{n:x}"));
        }
    }

    type Frames = Vec<Result<Frame<Bytes>, BoxError>>;

    /// A body of given frames with no size hint, as a streamed upstream body.
    struct Streamed(VecDeque<Result<Frame<Bytes>, BoxError>>);

    impl Body for Streamed {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.get_mut().0.pop_front())
        }
    }

    fn streamed(frames: Frames) -> Streamed {
        Streamed(frames.into())
    }

    /// Writes `response` as the native loop does; returns the bytes and whether the
    /// connection may be reused.
    async fn written<B>(response: Response<B>, version: Version, is_head: bool) -> (String, bool)
    where
        B: Body<Data = Bytes, Error: Into<BoxError> + Send> + Unpin,
    {
        let mut wire = Vec::new();
        let mut out = Vec::new();
        let reusable = write_response(&mut wire, &mut out, response, version, is_head, false)
            .await
            .unwrap();
        (String::from_utf8(wire).unwrap(), reusable)
    }

    fn without_date(wire: &str) -> String {
        wire.lines()
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn a_known_length_goes_out_with_its_head_in_one_piece() {
        let mut response = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
        response
            .headers_mut()
            .insert("x-b", HeaderValue::from_static("1"));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        let (wire, reusable) = written(response, Version::HTTP_11, false).await;
        assert!(reusable);
        assert!(wire.contains("\r\ndate: "), "{wire}");
        assert_eq!(
            without_date(&wire),
            "HTTP/1.1 200 OK\nx-b: 1\ncontent-length: 11\n\n{\"ok\":true}"
        );
    }

    #[tokio::test]
    async fn an_unknown_length_is_chunked_on_1_1_and_ends_the_connection_on_1_0() {
        let frames = || -> Frames {
            vec![
                Ok(Frame::data(Bytes::from_static(b"hello "))),
                Ok(Frame::data(Bytes::new())),
                Ok(Frame::data(Bytes::from(vec![b'x'; 17]))),
                Ok(Frame::trailers(HeaderMap::new())),
            ]
        };
        let (wire, reusable) =
            written(Response::new(streamed(frames())), Version::HTTP_11, false).await;
        assert!(reusable);
        assert_eq!(
            without_date(&wire),
            format!(
                "HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n6\nhello \n11\n{}\n0\n",
                "x".repeat(17)
            )
        );
        assert!(wire.ends_with("\r\n0\r\n\r\n"));
        let (wire, reusable) =
            written(Response::new(streamed(frames())), Version::HTTP_10, false).await;
        assert!(!reusable);
        assert_eq!(
            without_date(&wire),
            format!(
                "HTTP/1.0 200 OK\nconnection: close\n\nhello {}",
                "x".repeat(17)
            )
        );
    }

    #[tokio::test]
    async fn a_large_frame_is_written_whole_after_the_head() {
        let big = Bytes::from(vec![b'z'; COALESCE * 3]);
        let (wire, reusable) =
            written(Response::new(Full::new(big)), Version::HTTP_11, false).await;
        assert!(reusable);
        let body = "z".repeat(COALESCE * 3);
        assert!(
            wire.ends_with(&format!("\r\n\r\n{body}")),
            "head, then the body"
        );
        assert!(wire.contains(&format!("content-length: {}\r\n", body.len())));
    }

    #[tokio::test]
    async fn bodiless_answers_keep_their_length_header_and_send_nothing() {
        let mut response = Response::new(Full::new(Bytes::new()));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("42"));
        let (wire, reusable) = written(response, Version::HTTP_11, true).await;
        assert!(reusable);
        assert_eq!(without_date(&wire), "HTTP/1.1 200 OK\ncontent-length: 42\n");
        for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
            let mut response = Response::new(Full::new(Bytes::from_static(b"ignored")));
            *response.status_mut() = status;
            let (wire, _) = written(response, Version::HTTP_11, false).await;
            assert!(!wire.contains("ignored"), "{wire}");
            assert!(wire.ends_with("\r\n\r\n"), "{wire}");
        }
    }

    #[tokio::test]
    async fn a_body_that_fails_or_misses_its_length_ends_the_connection() {
        let failing: Frames = vec![
            Ok(Frame::data(Bytes::from_static(b"part"))),
            Err("upstream went away".into()),
        ];
        let (wire, reusable) =
            written(Response::new(streamed(failing)), Version::HTTP_11, false).await;
        assert!(!reusable);
        assert!(wire.ends_with("4\r\npart\r\n"), "no last chunk: {wire:?}");

        let short: Frames = vec![Ok(Frame::data(Bytes::from_static(b"abc")))];
        let mut response = Response::new(streamed(short));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        let (wire, reusable) = written(response, Version::HTTP_11, false).await;
        assert!(!reusable);
        assert!(wire.contains("content-length: 5\r\n"), "{wire:?}");
        assert!(wire.ends_with("\r\n\r\nabc"), "{wire:?}");

        let long: Frames = vec![Ok(Frame::data(Bytes::from_static(b"abcdef")))];
        let mut response = Response::new(streamed(long));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("2"));
        let (wire, reusable) = written(response, Version::HTTP_11, false).await;
        assert!(!reusable);
        assert!(wire.ends_with("\r\n\r\nab"), "{wire:?}");
    }

    #[test]
    fn the_env_overrides_the_config_and_bad_values_are_errors() {
        assert_eq!(
            server_from(None, Http1Server::Native).unwrap(),
            Http1Server::Native
        );
        assert_eq!(
            server_from(Some("hyper".into()), Http1Server::Native).unwrap(),
            Http1Server::Hyper
        );
        assert_eq!(
            server_from(Some(" native ".into()), Http1Server::Hyper).unwrap(),
            Http1Server::Native
        );
        for bad in ["", "Native", "h2", "both"] {
            let err = server_from(Some(bad.into()), Http1Server::Hyper).unwrap_err();
            assert!(err.to_string().contains(&format!("{ENV}={bad:?}")), "{err}");
        }
    }
}
