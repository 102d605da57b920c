//! streetgate's own HTTP/1 client (`runtime.http1: native`), for plain-TCP upstreams and
//! requests whose body is whole in hand (none, or the one a rule read). The request head and
//! body leave in one write; the response head is parsed with httparse on the connection's own
//! buffer, and a body that arrived with its head is handed over whole while the connection
//! goes straight back to the worker's pool. Larger bodies stream from the connection (length,
//! chunked or until close) and give it back when they end.
//!
//! What it leaves to hyper's client (`pool`): TLS upstreams (and with them HTTP/2), and request
//! bodies still streaming from the client. It frames requests and reads responses as hyper's
//! client does (`proto/h1/role.rs`): no length for an empty body, `Content-Length` for a whole
//! one unless the head has a valid one, 1xx heads skipped, a response's length from
//! `Transfer-Encoding` before `Content-Length`, differing or malformed lengths refused.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Either};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::RequestBody;

/// Response heads larger than this are refused (hyper's client buffers up to ~400 KiB; an API
/// behind a sidecar sends a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;
/// Response headers parsed at most.
const MAX_HEADERS: usize = 100;
/// A chunk-size or trailer line longer than this is refused.
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("upstream I/O failed")]
    Io(#[from] io::Error),
    #[error("upstream closed the connection before answering")]
    ClosedEarly,
    #[error("upstream closed the connection mid-body")]
    ClosedMidBody,
    #[error("upstream response head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("malformed upstream response: {0}")]
    Malformed(&'static str),
}

impl ExchangeError {
    /// Nothing of a response arrived: on a reused connection the upstream had probably closed
    /// it while idle, so an idempotent request may be sent again on a new one.
    pub fn nothing_received(&self) -> bool {
        match self {
            ExchangeError::ClosedEarly => true,
            ExchangeError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

/// An upstream connection and the bytes read from it not yet used.
pub struct Conn {
    io: TcpStream,
    buf: BytesMut,
}

impl Conn {
    pub fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// Whether an idle connection may carry a request: not closed by the upstream, and with
    /// nothing unasked-for to read. No syscall unless the reactor has seen it readable.
    pub fn usable(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Whether the native client takes this request: its body is whole, and nothing in the head
/// asks for a framing of its own.
pub fn takes(request: &Request<RequestBody>) -> bool {
    let whole = match request.body() {
        Either::Right(_) => true,
        Either::Left(streamed) => streamed.is_end_stream(),
    };
    whole && !request.headers().contains_key(TRANSFER_ENCODING)
}

/// The request's head and body as they go on the wire, in `out`.
pub async fn encode(request: Request<RequestBody>, out: &mut Vec<u8>) -> (Method, Bytes) {
    let (parts, body) = request.into_parts();
    let body = match body {
        // A `Full` has its one frame ready.
        Either::Right(mut full) => match full.frame().await {
            Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
            _ => Bytes::new(),
        },
        Either::Left(_) => Bytes::new(),
    };
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(if parts.version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // hyper: a body's own length unless the head has a valid one; none for an empty body.
    if !body.is_empty() && content_length(&parts.headers) != Ok(Some(body.len() as u64)) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    crate::recycle::give_map(parts.headers);
    (parts.method, body)
}

/// Sends `head` and then `body` (a small body is best sent as part of `head`: one write) on
/// `conn` and reads the response head. The connection is given to
/// `home` (its pool) when the response body has been read: at once when it came with the
/// head, else by the body when it ends. A connection that cannot carry another request is
/// dropped instead.
pub async fn exchange<H>(
    mut conn: Conn,
    head: &[u8],
    body: &Bytes,
    method: &Method,
    home: H,
) -> Result<Response<NativeBody>, ExchangeError>
where
    H: FnOnce(Conn) + Send + Sync + 'static,
{
    conn.io.write_all(head).await?;
    if !body.is_empty() {
        conn.io.write_all(body).await?;
    }
    let (parts, framing, reusable) = read_head(&mut conn, method).await?;
    let body = match framing {
        Framing::Length(n) if conn.buf.len() as u64 >= n => {
            let bytes = conn
                .buf
                .split_to(usize::try_from(n).unwrap_or(usize::MAX))
                .freeze();
            if reusable && conn.buf.is_empty() {
                home(conn);
            }
            NativeBody::whole(bytes)
        }
        Framing::Empty => {
            if reusable && conn.buf.is_empty() {
                home(conn);
            }
            NativeBody::whole(Bytes::new())
        }
        framing => NativeBody::streaming(Streaming {
            conn,
            framing,
            reusable,
            home: Some(Box::new(home)),
        }),
    };
    Ok(Response::from_parts(parts, body))
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of chunk data are left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to the empty one.
    Trailers,
}

async fn read_head(
    conn: &mut Conn,
    method: &Method,
) -> Result<(http::response::Parts, Framing, bool), ExchangeError> {
    let mut received = false;
    loop {
        match head_len(&conn.buf)? {
            // 100 Continue and the like: the real answer follows.
            Some((len, true)) => {
                conn.buf.advance(len);
                continue;
            }
            Some((len, false)) => return head(conn, len, method),
            None => {}
        }
        conn.buf.reserve(4096);
        if conn.io.read_buf(&mut conn.buf).await? == 0 {
            return Err(if received || !conn.buf.is_empty() {
                ExchangeError::Malformed("response head cut short")
            } else {
                ExchangeError::ClosedEarly
            });
        }
        received = true;
    }
}

/// The length of the complete response head at the start of `buf`, and whether it is an
/// informational one to skip; None until it is all there. (Not inlined into `read_head`: the
/// header array would then live in its future, kilobytes moved with it on every request.)
fn head_len(buf: &[u8]) -> Result<Option<(usize, bool)>, ExchangeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let code = response.code.unwrap_or(0);
            Ok(Some((len, (100..200).contains(&code) && code != 101)))
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Ok(None),
        Ok(httparse::Status::Partial) => Err(ExchangeError::HeadTooLarge),
        Err(_) => Err(ExchangeError::Malformed("response head")),
    }
}

/// Builds the response head of `len` bytes at the start of the buffer (parsed again from the
/// frozen head, so header values share its bytes rather than being copied).
fn head(
    conn: &mut Conn,
    len: usize,
    method: &Method,
) -> Result<(http::response::Parts, Framing, bool), ExchangeError> {
    let bytes = conn.buf.split_to(len).freeze();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed
        .parse(&bytes)
        .map_err(|_| ExchangeError::Malformed("response head"))?;
    let status = StatusCode::from_u16(parsed.code.unwrap_or(0))
        .map_err(|_| ExchangeError::Malformed("status code"))?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut map = crate::recycle::header_map();
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| ExchangeError::Malformed("header name"))?;
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(h.value))
            .map_err(|_| ExchangeError::Malformed("header value"))?;
        map.append(name, value);
    }
    let framing = framing(status, method, version, &map)?;
    let close = map
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"close"));
    let keep_alive = map
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"keep-alive"));
    let reusable = !close
        && (version == Version::HTTP_11 || keep_alive)
        && framing != Framing::UntilClose
        && status != StatusCode::SWITCHING_PROTOCOLS;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = map;
    let (parts, ()) = response.into_parts();
    Ok((parts, framing, reusable))
}

/// hyper's `Client::decoder`, RFC 9112 §6.3 in order.
fn framing(
    status: StatusCode,
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<Framing, ExchangeError> {
    if matches!(status.as_u16(), 101 | 204 | 304) || method == Method::HEAD {
        return Ok(Framing::Empty);
    }
    if let Some(te) = headers.get_all(TRANSFER_ENCODING).iter().next_back() {
        if version == Version::HTTP_10 {
            return Err(ExchangeError::Malformed("transfer-encoding on HTTP/1.0"));
        }
        let chunked = te
            .as_bytes()
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::UntilClose
        });
    }
    match content_length(headers) {
        Ok(Some(n)) => Ok(Framing::Length(n)),
        Ok(None) => Ok(Framing::UntilClose),
        Err(()) => Err(ExchangeError::Malformed("content-length")),
    }
}

/// Every `Content-Length` value (comma lists included) must be the same number.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = digits(part.trim_ascii()).ok_or(())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    Ok(length)
}

fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')))?
    })
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A response body read by the native client.
pub struct NativeBody {
    /// What is ready to hand out: the whole body when it came with the head.
    ready: Option<Bytes>,
    streaming: Option<Box<Streaming>>,
}

/// A body still coming from its connection.
struct Streaming {
    conn: Conn,
    framing: Framing,
    reusable: bool,
    home: Option<Box<dyn FnOnce(Conn) + Send + Sync>>,
}

impl NativeBody {
    fn whole(bytes: Bytes) -> NativeBody {
        NativeBody {
            ready: (!bytes.is_empty()).then_some(bytes),
            streaming: None,
        }
    }

    fn streaming(streaming: Streaming) -> NativeBody {
        NativeBody {
            ready: None,
            streaming: Some(Box::new(streaming)),
        }
    }
}

/// One step of decoding what is buffered.
enum Step {
    Data(Bytes),
    More,
    End,
}

impl Streaming {
    fn step(&mut self) -> Result<Step, ExchangeError> {
        decode(&mut self.conn.buf, &mut self.framing)
    }
}

/// Takes the next piece of body out of `buf`, following `framing` (updated as it goes).
fn decode(buf: &mut BytesMut, framing: &mut Framing) -> Result<Step, ExchangeError> {
    loop {
        match *framing {
            Framing::Empty | Framing::Length(0) => return Ok(Step::End),
            Framing::Length(n) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                *framing = Framing::Length(n - take as u64);
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            Framing::UntilClose => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                return Ok(Step::Data(buf.split().freeze()));
            }
            Framing::Chunked(Chunk::Data(n)) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                let left = n - take as u64;
                *framing = Framing::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            Framing::Chunked(Chunk::DataEnd) => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(ExchangeError::Malformed("chunk end"));
                }
                buf.advance(2);
                *framing = Framing::Chunked(Chunk::Size);
            }
            Framing::Chunked(chunk @ (Chunk::Size | Chunk::Trailers)) => {
                let Some(line) = line(buf)? else {
                    return Ok(Step::More);
                };
                if chunk == Chunk::Trailers {
                    // Trailers are not passed on (hyper's server sends none on HTTP/1 unless
                    // asked); the empty line ends the body.
                    if line.is_empty() {
                        *framing = Framing::Empty;
                    }
                    continue;
                }
                let size = chunk_size(&line)?;
                *framing = Framing::Chunked(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                });
            }
        }
    }
}

/// A chunked response body read the way an exchange reads it, `stream` arriving `piece` bytes
/// at a time: the data it passes on and how many bytes of `stream` the body took, or None
/// where it refuses the framing or the body has not ended. For the fuzz target.
pub(crate) fn decode_chunked(stream: &[u8], piece: usize) -> Option<(Vec<u8>, usize)> {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut pieces = stream.chunks(piece.max(1));
    let mut fed = 0;
    loop {
        match decode(&mut buf, &mut framing).ok()? {
            Step::Data(bytes) => data.extend_from_slice(&bytes),
            Step::End => return Some((data, fed - buf.len())),
            Step::More => {
                let next = pieces.next()?;
                fed += next.len();
                buf.extend_from_slice(next);
            }
        }
    }
}

/// The next CRLF-terminated line, without its CRLF; None until it is all buffered.
fn line(buf: &mut BytesMut) -> Result<Option<BytesMut>, ExchangeError> {
    let Some(end) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_LINE {
            Err(ExchangeError::Malformed("chunk line too long"))
        } else {
            Ok(None)
        };
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(ExchangeError::Malformed("chunk line without CRLF"));
    }
    let mut line = buf.split_to(end + 1);
    line.truncate(end - 1);
    if line.contains(&b'\r') {
        return Err(ExchangeError::Malformed("CR inside a chunk line"));
    }
    Ok(Some(line))
}

/// A chunk-size line: hex digits, then optional whitespace and `;extensions` (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits_end == 0 {
        return Err(ExchangeError::Malformed("chunk size"));
    }
    // Only spaces and tabs may follow the digits (hyper's decoder): `trim_ascii_start` would also
    // pass a form feed, which hyper refuses, and the two would end the body apart.
    let lws = line[digits_end..]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &line[digits_end + lws..];
    if !rest.is_empty() && rest[0] != b';' {
        return Err(ExchangeError::Malformed("chunk size"));
    }
    line[..digits_end].iter().try_fold(0u64, |acc, &b| {
        let d = crate::normalize::hex(b).ok_or(ExchangeError::Malformed("chunk size"))?;
        acc.checked_mul(16)
            .and_then(|a| a.checked_add(u64::from(d)))
            .ok_or(ExchangeError::Malformed("chunk size overflow"))
    })
}

impl Body for NativeBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = self.get_mut();
        if let Some(bytes) = this.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        let Some(s) = this.streaming.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match s.step() {
                Ok(Step::Data(bytes)) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Ok(Step::End) => {
                    if let Some(mut s) = this.streaming.take()
                        && s.reusable
                        && s.conn.buf.is_empty()
                        && let Some(home) = s.home.take()
                    {
                        home(s.conn);
                    }
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(e) => {
                    this.streaming = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            s.conn.buf.reserve(8192);
            match s.conn.io.try_read_buf(&mut s.conn.buf) {
                Ok(0) if s.framing == Framing::UntilClose => {
                    this.streaming = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.streaming = None;
                    return Poll::Ready(Some(Err(ExchangeError::ClosedMidBody)));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(s.conn.io.poll_read_ready(cx)) {
                        this.streaming = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
                Err(e) => {
                    this.streaming = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_none() && self.streaming.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let ready = self.ready.as_ref().map_or(0, |b| b.len() as u64);
        match self.streaming.as_deref() {
            None => SizeHint::with_exact(ready),
            Some(Streaming {
                framing: Framing::Length(n),
                ..
            }) => SizeHint::with_exact(ready + n),
            Some(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use http_body_util::{BodyExt, Full};
    use tokio::net::TcpListener;

    use crate::listener::ClientBody;

    /// An upstream that reads one request head (and `body_len` body bytes), records it, and
    /// answers with `pieces`, pausing between them; then closes if `close`.
    async fn upstream(pieces: Vec<&'static [u8]>, close: bool) -> (TcpStream, Arc<Mutex<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
            }
            *record.lock().unwrap() = got;
            for p in pieces {
                s.write_all(p).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if !close {
                // Held open until the client is done.
                let _ = s.read(&mut chunk).await;
            }
        });
        (TcpStream::connect(addr).await.unwrap(), seen)
    }

    type Back = Arc<Mutex<Vec<Conn>>>;

    fn home(back: &Back) -> impl FnOnce(Conn) + Send + Sync + 'static {
        let back = back.clone();
        move |conn| back.lock().unwrap().push(conn)
    }

    async fn run(
        method: Method,
        pieces: Vec<&'static [u8]>,
        close: bool,
    ) -> (
        Result<(http::response::Parts, Result<Bytes, String>), String>,
        usize,
    ) {
        let (tcp, _) = upstream(pieces, close).await;
        let back: Back = Arc::default();
        let head = format!("{method} /a HTTP/1.1\r\nhost: up\r\n\r\n");
        let result = exchange(
            Conn::new(tcp),
            head.as_bytes(),
            &Bytes::new(),
            &method,
            home(&back),
        )
        .await;
        let out = match result {
            Err(e) => Err(e.to_string()),
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .map_err(|e| e.to_string());
                Ok((parts, body))
            }
        };
        let returned = back.lock().unwrap().len();
        (out, returned)
    }

    #[tokio::test]
    async fn a_body_that_came_with_its_head_is_whole_and_the_connection_goes_back_at_once() {
        let (out, returned) = run(
            Method::GET,
            vec![b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}"],
            false,
        )
        .await;
        let (parts, body) = out.unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(parts.headers["content-length"], "11");
        assert_eq!(body.unwrap(), &b"{\"ok\":true}"[..]);
        assert_eq!(returned, 1);
    }

    #[tokio::test]
    async fn bodies_in_pieces_are_streamed_by_length_chunks_or_until_close() {
        let (out, returned) = run(
            Method::GET,
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello",
                b" worl",
                b"d",
            ],
            false,
        )
        .await;
        assert_eq!(out.unwrap().1.unwrap(), &b"hello world"[..10]);
        assert_eq!(returned, 1);

        let (out, returned) = run(
            Method::GET,
            vec![
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhel",
                b"lo\r\n",
                b"6 \r\n world\r\n0\r\nx-trailer: 1\r\n",
                b"\r\n",
            ],
            false,
        )
        .await;
        let (parts, body) = out.unwrap();
        assert_eq!(parts.headers["transfer-encoding"], "chunked");
        assert_eq!(body.unwrap(), &b"hello world"[..]);
        assert_eq!(returned, 1);

        let (out, returned) = run(
            Method::GET,
            vec![b"HTTP/1.1 200 OK\r\n\r\nuntil", b" close"],
            true,
        )
        .await;
        assert_eq!(out.unwrap().1.unwrap(), &b"until close"[..]);
        assert_eq!(returned, 0, "a close-delimited body ends its connection");
    }

    #[tokio::test]
    async fn informational_heads_are_skipped_and_bodiless_answers_are_empty() {
        let (out, returned) = run(
            Method::POST,
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
            ],
            false,
        )
        .await;
        let (parts, body) = out.unwrap();
        assert_eq!(parts.status, 201);
        assert_eq!(body.unwrap(), &b"ok"[..]);
        assert_eq!(returned, 1);
        for (method, answer) in [
            (
                Method::HEAD,
                &b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n"[..],
            ),
            (Method::GET, b"HTTP/1.1 204 No Content\r\n\r\n"),
            (
                Method::GET,
                b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
            ),
        ] {
            let (out, returned) = run(method.clone(), vec![answer], false).await;
            assert_eq!(out.unwrap().1.unwrap(), &b""[..], "{method}");
            assert_eq!(returned, 1, "{method}");
        }
    }

    #[tokio::test]
    async fn connections_that_cannot_carry_another_request_are_not_kept() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"[..],
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
            // More than the length said: the connection's stream is not where it should be.
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA",
        ] {
            let (out, returned) = run(Method::GET, vec![answer], false).await;
            assert_eq!(out.unwrap().1.unwrap(), &b"ok"[..]);
            assert_eq!(returned, 0, "{:?}", String::from_utf8_lossy(answer));
        }
        let (out, returned) = run(
            Method::GET,
            vec![b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok"],
            false,
        )
        .await;
        assert_eq!(out.unwrap().1.unwrap(), &b"ok"[..]);
        assert_eq!(returned, 1);
    }

    #[tokio::test]
    async fn malformed_answers_fail_and_are_never_passed_on() {
        for head in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\ncontent-length: -2\r\n\r\nok",
            b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx: a\r\n folded\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            let (out, returned) = run(Method::GET, vec![head], false).await;
            assert!(out.is_err(), "{:?}", String::from_utf8_lossy(head));
            assert_eq!(returned, 0);
        }
        for body in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        ] {
            let (out, returned) = run(Method::GET, vec![body], false).await;
            let (_, body_result) = out.expect("the head is fine");
            assert!(body_result.is_err(), "{:?}", String::from_utf8_lossy(body));
            assert_eq!(returned, 0);
        }
        // The body ends before its length.
        let (out, returned) = run(
            Method::GET,
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"],
            true,
        )
        .await;
        assert!(out.unwrap().1.unwrap_err().contains("mid-body"));
        assert_eq!(returned, 0);
    }

    #[tokio::test]
    async fn an_upstream_that_closes_without_a_word_can_be_retried() {
        let (out, _) = run(Method::GET, vec![], true).await;
        assert!(out.unwrap_err().contains("before answering"));
        assert!(ExchangeError::ClosedEarly.nothing_received());
        assert!(!ExchangeError::ClosedMidBody.nothing_received());
        let (out, _) = run(Method::GET, vec![b"HTTP/1.1 200"], true).await;
        assert!(out.unwrap_err().contains("cut short"));
    }

    fn request(
        method: Method,
        headers: &[(&str, &str)],
        body: RequestBody,
    ) -> Request<RequestBody> {
        let mut r = Request::new(body);
        *r.method_mut() = method;
        *r.uri_mut() = "/w/1?a=b".parse().unwrap();
        for (n, v) in headers {
            r.headers_mut().append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    fn empty() -> RequestBody {
        Either::Left(super::super::body_timeout::TimedBody::new(
            http_body_util::Limited::new(ClientBody::Empty, 10),
            Duration::from_secs(1),
        ))
    }

    #[tokio::test]
    async fn requests_are_framed_as_hyper_frames_them() {
        let encoded = |r: Request<RequestBody>| async move {
            let mut out = Vec::new();
            let (_, body) = encode(r, &mut out).await;
            (String::from_utf8(out).unwrap(), body)
        };
        let (head, body) = encoded(request(
            Method::GET,
            &[("host", "up"), ("a", "1"), ("a", "2")],
            empty(),
        ))
        .await;
        assert_eq!(
            head,
            "GET /w/1?a=b HTTP/1.1\r\nhost: up\r\na: 1\r\na: 2\r\n\r\n"
        );
        assert!(body.is_empty());
        let whole = || Either::Right(Full::new(Bytes::from_static(b"{\"x\":1}")));
        let (head, body) = encoded(request(Method::POST, &[("host", "up")], whole())).await;
        assert_eq!(
            head,
            "POST /w/1?a=b HTTP/1.1\r\nhost: up\r\ncontent-length: 7\r\n\r\n"
        );
        assert_eq!(body, &b"{\"x\":1}"[..]);
        let (head, _) = encoded(request(Method::POST, &[("content-length", "7")], whole())).await;
        assert_eq!(head, "POST /w/1?a=b HTTP/1.1\r\ncontent-length: 7\r\n\r\n");
        // An empty body adds no length; one the client sent stays as it was.
        let (head, _) = encoded(request(Method::DELETE, &[("content-length", "0")], empty())).await;
        assert_eq!(
            head,
            "DELETE /w/1?a=b HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        );
        assert!(takes(&request(Method::GET, &[], empty())));
        assert!(takes(&request(Method::POST, &[], whole())));
        assert!(!takes(&request(
            Method::POST,
            &[("transfer-encoding", "chunked")],
            whole()
        )));
    }
}
