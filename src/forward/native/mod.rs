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

mod body;
mod head;
mod request;

pub use self::body::NativeBody;
use self::body::Streaming;
#[cfg(any(test, feature = "testing"))]
pub(crate) use self::body::decode_chunked;
use self::head::{Framing, read_head};
pub use self::request::{encode, takes};

use std::io;

use bytes::{Bytes, BytesMut};
use http::{Method, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Response heads larger than this are refused (hyper's client buffers up to ~400 KiB; an API
/// behind a sidecar sends a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;

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
    // A body already read whole (or none at all) is handed over as it is, and the connection
    // goes home now; any other streams and gives it back when it ends.
    let whole = match framing {
        Framing::Empty => Some(0),
        Framing::Length(n) => usize::try_from(n).ok().filter(|&n| n <= conn.buf.len()),
        _ => None,
    };
    let body = match whole {
        Some(n) => {
            let bytes = conn.buf.split_to(n).freeze();
            if reusable && conn.buf.is_empty() {
                home(conn);
            }
            NativeBody::whole(bytes)
        }
        None => NativeBody::streaming(Streaming {
            conn,
            framing,
            reusable,
            home: Some(Box::new(home)),
        }),
    };
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::RequestBody;
    use http::{HeaderName, HeaderValue, Request};
    use http_body_util::Either;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

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
        Either::Left(crate::forward::body_timeout::TimedBody::new(
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
