//! Faults and stalls with fixed outcomes, over real sockets: peers that say nothing, half-sent
//! heads, upstreams that stall, reset or overrun their bodies, control-plane servers that
//! redirect or announce absurd bodies, a full disk under the log, and rate limits that come
//! before any work. Misbehaving upstreams are raw TCP servers scripted byte by byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Timeouts short enough to keep the suite fast, far enough apart to tell which one fired.
const HEADER_READ: Duration = Duration::from_millis(400);
const LONG: &str = "30s";
const BODY_TIMEOUT: Duration = Duration::from_millis(300);

const ROUTES: &str = r#"
      - id: Stream
        route: GET /stream
        allow: public
      - id: Redacted
        route: GET /redacted
        allow: public
        response:
          redact: {fields: [secret]}
      - id: Status
        route: GET /status
        allow: public
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner]}
"#;

/// The common test config with the listener's timeouts and the upstream body timeout set.
fn yaml(upstream: &str, jwks: &str, header_read: &str, idle: &str, extra: &str) -> String {
    config_yaml(upstream, jwks, ROUTES, extra)
        .replace(
            "  header_read_timeout: 2s\n  idle_timeout: 2s\n",
            &format!("  header_read_timeout: {header_read}\n  idle_timeout: {idle}\n"),
        )
        .replace(
            "    request_timeout: 1s\n",
            &format!("    request_timeout: 1s\n    body_timeout: {BODY_TIMEOUT:?}\n"),
        )
}

/// A sidecar whose connections must send their head within `HEADER_READ`, idle for long.
async fn impatient_sidecar(extra: &str) -> (Running, JwksServer, Upstream) {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let gw = sidecar(&yaml(&upstream.url(), &jwks.url(), "400ms", LONG, extra)).await;
    (gw, jwks, upstream)
}

/// Reads until the peer closes; how long that took, or None if it is still open after `max`.
async fn closed_within(stream: &mut TcpStream, max: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(max.saturating_sub(start.elapsed()), stream.read(&mut buf)).await
        {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// Closed by the header-read timeout: not at once, and long before the 30 s idle timeout.
fn assert_header_timeout(closed: Option<Duration>, what: &str) {
    let after = closed.unwrap_or_else(|| panic!("{what}: still open after 5 s"));
    assert!(
        after >= HEADER_READ.mul_f32(0.75),
        "{what}: closed after {after:?}, before the header-read timeout"
    );
}

// === silent and slow clients ===

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_read_timeout() {
    let (gw, _jwks, _upstream) = impatient_sidecar("").await;
    for (addr, what) in [(gw.addr, "main"), (gw.admin_addr, "admin")] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
        assert_header_timeout(closed, what);
    }
}

#[tokio::test]
async fn half_sent_heads_and_http2_prefaces_are_closed_at_the_header_read_timeout() {
    let (gw, _jwks, _upstream) = impatient_sidecar("").await;
    let partials: [&[u8]; 4] = [
        b"GET /metrics HTTP/1.1\r\nHost: admin\r\n",
        b"G",
        b"PRI * HTTP/2.0\r\n",
        // A whole preface, then nothing: no SETTINGS, no request.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ];
    for addr in [gw.addr, gw.admin_addr] {
        for partial in partials {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(partial).await.unwrap();
            let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
            let what = format!("{addr} after {:?}", String::from_utf8_lossy(partial));
            assert_header_timeout(closed, &what);
        }
    }
}

#[tokio::test]
async fn the_admin_listener_has_the_main_listeners_header_limits() {
    let (gw, _jwks, _upstream) = impatient_sidecar("").await;
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: admin\r\nx-big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let reply = raw(gw.admin_addr, big.as_bytes()).await;
    assert_eq!(raw_status(&reply), 431, "{reply}");
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let reply = raw(
        gw.admin_addr,
        format!("GET /metrics HTTP/1.1\r\nHost: admin\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&reply), 431, "{reply}");
    // Still serving.
    assert_eq!(send(gw.admin_addr, get("/healthz", None)).await.status, 200);
}

fn tls_client() -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(fixture("tls/ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_connections_that_stall_in_or_after_the_handshake_are_closed_at_the_header_read_timeout()
 {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let tls = format!(
        "  max_body_bytes: 1048576\n  tls:\n    cert: {}\n    key: {}\n",
        fixture("tls/cert.pem").display(),
        fixture("tls/key.pem").display()
    );
    let gw = sidecar(
        &yaml(&upstream.url(), &jwks.url(), "400ms", LONG, "")
            .replace("  max_body_bytes: 1048576\n", &tls),
    )
    .await;

    // No ClientHello at all.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    assert_header_timeout(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "no handshake",
    );
    // Half a ClientHello record header.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert_header_timeout(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "half a handshake",
    );
    // A complete handshake, then silence.
    let started = Instant::now();
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let mut tls = tls_client()
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "closed, not answered: {read:?}"
    );
    assert!(started.elapsed() >= HEADER_READ.mul_f32(0.75));
    // A real request over TLS still works.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = tls_client()
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(get("/work/status", None))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_at_the_idle_timeout_but_long_downloads_are_not() {
    // A download that takes three idle timeouts, a chunk every 100 ms.
    let upstream = RawUpstream::start(|_, mut s| async move {
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // The slow peer under test: a chunk per 100 ms tick, never a gap the size of the
        // 400 ms idle timeout (a late tick is caught up at once, not skipped).
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.tick().await;
        for _ in 0..12 {
            tick.tick().await;
            let _ = s.write_all(b"5\r\nchunk\r\n").await;
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let jwks = JwksServer::start().await;
    let gw = sidecar(&yaml(&upstream.url(), &jwks.url(), "10s", "400ms", "")).await;

    for h2 in [false, true] {
        let stream = TcpStream::connect(gw.addr).await.unwrap();
        // The sender is kept: dropping it would let the client end the connection itself.
        let (reply, conn, _sender): (_, _, Box<dyn std::any::Any + Send>) = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            let conn = tokio::spawn(conn);
            let reply = sender.send_request(get("/work/stream", None)).await;
            (reply, conn, Box::new(sender))
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            let conn = tokio::spawn(conn);
            let reply = sender.send_request(get("/work/stream", None)).await;
            (reply, conn, Box::new(sender))
        };
        let body = reply.unwrap().into_body().collect().await;
        assert_eq!(body.unwrap().to_bytes(), "chunk".repeat(12), "h2: {h2}");
        // Then idle: the sidecar closes the connection after the idle timeout, not the 10 s
        // header-read timeout.
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .unwrap_or_else(|_| panic!("h2: {h2}: idle connection still open after 5 s"))
            .unwrap()
            .ok();
        assert!(started.elapsed() >= Duration::from_millis(300), "h2: {h2}");
    }
}

/// The connection timer only looks at a connection when it fires: a keep-alive connection in
/// steady use outlives both timeouts many times over, and once idle it is closed at the idle
/// timeout: with the idle timeout shorter than the header-read timeout, and (HTTP/2 only:
/// on HTTP/1 the header-read timeout runs between requests too and closes first) longer.
#[tokio::test]
async fn busy_keep_alive_connections_outlive_both_timeouts_and_close_once_idle() {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let cases: [(&str, &str, &[bool], Duration); 2] = [
        ("1s", "300ms", &[false, true], Duration::from_millis(225)),
        ("200ms", "500ms", &[true], Duration::from_millis(400)),
    ];
    for (header_read, idle, protocols, at_least) in cases {
        let gw = sidecar(&yaml(&upstream.url(), &jwks.url(), header_read, idle, "")).await;
        for &h2 in protocols {
            keep_busy_then_idle(&gw, h2, at_least).await;
        }
    }
}

async fn keep_busy_then_idle(gw: &Running, h2: bool, at_least: Duration) {
    {
        let stream = TcpStream::connect(gw.addr).await.unwrap();
        type Sent = Pin<Box<dyn Future<Output = Result<StatusCode, hyper::Error>> + Send>>;
        // Each request's body is read whole, so it is over before the next one.
        let (mut send, conn): (Box<dyn FnMut() -> Sent>, _) = if h2 {
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            let send = move || {
                let mut s = sender.clone();
                Box::pin(async move {
                    let response = s.send_request(get("/work/status", None)).await?;
                    let status = response.status();
                    response.into_body().collect().await?;
                    Ok(status)
                }) as Sent
            };
            (
                Box::new(send) as Box<dyn FnMut() -> Sent>,
                tokio::spawn(conn),
            )
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            let sender = Arc::new(tokio::sync::Mutex::new(sender));
            let send = move || {
                let sender = sender.clone();
                Box::pin(async move {
                    let mut s = sender.lock().await;
                    s.ready().await?;
                    let response = s.send_request(get("/work/status", None)).await?;
                    let status = response.status();
                    response.into_body().collect().await?;
                    Ok(status)
                }) as Sent
            };
            (
                Box::new(send) as Box<dyn FnMut() -> Sent>,
                tokio::spawn(conn),
            )
        };
        // A request every 50 ms for 1.5 s: several times both timeouts.
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let busy_until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < busy_until {
            tick.tick().await;
            let status = send().await.unwrap_or_else(|e| panic!("h2: {h2}: {e}"));
            assert_eq!(status, 200, "h2: {h2}");
        }
        assert!(!conn.is_finished(), "h2: {h2}: closed while in use");
        let idle_from = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .unwrap_or_else(|_| panic!("h2: {h2}: idle connection still open after 5 s"))
            .unwrap()
            .ok();
        let after = idle_from.elapsed();
        assert!(
            after >= at_least && after < Duration::from_millis(1000),
            "h2: {h2}: closed after {after:?}, not at the idle timeout"
        );
    }
}

// === misbehaving upstreams ===

type Script =
    Arc<dyn Fn(usize, TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// An upstream that reads each request head and then runs a script on the raw socket.
struct RawUpstream {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start<F, Fut>(script: F) -> RawUpstream
    where
        F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let script: Script = Arc::new(move |n, s| Box::pin(script(n, s)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                tokio::spawn(async move {
                    if read_head(&mut stream).await {
                        script(n, stream).await;
                    }
                });
            }
        });
        RawUpstream { addr, connections }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads up to the end of a request head; false if the peer closed first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// Keeps a socket open (without answering) until the peer closes it.
async fn hold(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Closes with a TCP RST instead of a FIN. (A zero linger never blocks on drop, which is what
/// the deprecation warns about.)
#[allow(deprecated)]
fn reset(s: TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

/// Sends the head and 10 of the 100 bytes a body announces; then resets the connection once
/// `reset_when` is notified, or holds it open without one.
async fn partial_body(mut s: TcpStream, reset_when: Option<Arc<tokio::sync::Notify>>) {
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"rows\":[")
        .await;
    match reset_when {
        Some(go) => {
            go.notified().await;
            reset(s);
        }
        None => hold(s).await,
    }
}

/// A GET over a fresh HTTP/1.1 or prior-knowledge HTTP/2 connection: the status, and the
/// body or the error that cut it short (bounded, so a hang fails the test).
async fn fetch(
    addr: std::net::SocketAddr,
    path: &str,
    h2: bool,
    after_head: impl FnOnce(),
) -> (StatusCode, Result<Bytes, String>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let response = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        sender.send_request(get(path, None)).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(get(path, None)).await.unwrap()
    };
    let status = response.status();
    after_head();
    let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("the body ends or fails; it does not hang");
    (
        status,
        body.map(|b| b.to_bytes()).map_err(|e| e.to_string()),
    )
}

#[tokio::test]
async fn an_upstream_body_that_stalls_is_cut_off_or_504_when_buffered() {
    let upstream = RawUpstream::start(|_, s| partial_body(s, None)).await;
    let jwks = JwksServer::start().await;
    let gw = sidecar(&yaml(&upstream.url(), &jwks.url(), "2s", "2s", "")).await;

    for h2 in [false, true] {
        // Streamed: the head went out, so the body is aborted (HTTP/2: the stream is reset).
        let started = Instant::now();
        let (status, body) = fetch(gw.addr, "/work/stream", h2, || {}).await;
        assert_eq!(status, 200);
        assert!(body.is_err(), "h2 {h2}: aborted, not completed: {body:?}");
        assert!(started.elapsed() >= BODY_TIMEOUT, "h2 {h2}");
        // Buffered for redaction: nothing was sent yet, so a 504.
        let reply = send(gw.addr, get("/work/redacted", None)).await;
        assert_eq!(reply.status, 504, "h2 {h2}");
        assert_eq!(reply.reason(), "upstream_timeout");
    }
}

#[tokio::test]
async fn an_upstream_reset_mid_body_aborts_the_stream_or_502_when_buffered() {
    // The upstream resets only once the client has the head: the reset then lands mid-body.
    let go = Arc::new(tokio::sync::Notify::new());
    let reset_when = go.clone();
    let upstream = RawUpstream::start(move |_, s| partial_body(s, Some(reset_when.clone()))).await;
    let jwks = JwksServer::start().await;
    // A long body timeout: the reset, not the timer, must end these.
    let gw = sidecar(&yaml(&upstream.url(), &jwks.url(), "2s", "2s", "").replace(
        &format!("body_timeout: {BODY_TIMEOUT:?}"),
        "body_timeout: 30s",
    ))
    .await;
    for h2 in [false, true] {
        let (status, body) = fetch(gw.addr, "/work/stream", h2, || go.notify_one()).await;
        assert_eq!(status, 200);
        assert!(body.is_err(), "h2 {h2}: aborted, not completed: {body:?}");
    }
    // Buffered: the client sees nothing before the body ends, so the reset may come at once.
    go.notify_one();
    let reply = send(gw.addr, get("/work/redacted", None)).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.reason(), "upstream_unavailable");
}

#[tokio::test]
async fn bytes_past_the_content_length_never_reach_the_client_and_the_connection_is_dropped() {
    // Each connection answers its first request with a correct 5-byte body, then smuggles a
    // second response after it.
    let dropped = Arc::new(AtomicUsize::new(0));
    let closed = dropped.clone();
    let upstream = RawUpstream::start(move |n, mut s| {
        let closed = closed.clone();
        async move {
            let body = format!("conn{n}");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
            hold(s).await;
            // The sidecar's pool closed the connection it cannot trust.
            closed.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    let jwks = JwksServer::start().await;
    let gw = sidecar(&yaml(&upstream.url(), &jwks.url(), "2s", "2s", "")).await;

    // One client connection, two requests.
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let resp = sender
            .send_request(get("/work/stream", None))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        bodies.push(resp.into_body().collect().await.unwrap().to_bytes());
        // The pool sees the stray bytes on the idle connection and drops it.
        let seen = bodies.len();
        let gone = eventually(Duration::from_secs(5), || async {
            dropped.load(Ordering::SeqCst) >= seen
        })
        .await;
        assert!(gone, "the polluted connection stayed open");
    }
    assert_eq!(
        bodies,
        ["conn0", "conn1"],
        "each answer from its own connection"
    );
    assert_eq!(
        upstream.connections(),
        2,
        "the polluted connection was not reused"
    );
}

// === created-work collection ===

#[tokio::test]
async fn collecting_a_created_work_response_that_stalls_is_a_504() {
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.json");
    std::fs::write(&grants, GRANTS_V1).unwrap();
    let upstream = RawUpstream::start(|_, mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{\"work_reference_number\":")
            .await;
        hold(s).await;
    })
    .await;
    let jwks = JwksServer::start().await;
    let routes = r#"
      - id: CreateWork
        route: POST /works
        allow: {roles: [Planner]}
        access: {create_in_workstream: {body: /workstream_prefix}}
        creates_work:
          reference: /work_reference_number
          highway_authority: /highway_authority_swa_code
          workstream: /workstream_prefix
"#;
    let extra = format!(
        "grants:\n  source:\n    file:\n      path: {}\n      poll_interval: 100ms\n",
        grants.display()
    );
    let yaml = config_yaml(&upstream.url(), &jwks.url(), routes, &extra).replace(
        "    request_timeout: 1s\n",
        &format!("    request_timeout: 1s\n    body_timeout: {BODY_TIMEOUT:?}\n"),
    );
    let gw = sidecar(&yaml).await;
    let create = Request::post("/work/works")
        .header("host", "gw.test")
        .header("token", token(&claims("user-a", "7001", &["Planner"])))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"workstream_prefix":"001","highway_authority_swa_code":"4020"}"#,
        )))
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), send(gw.addr, create))
        .await
        .expect("answered, not hung");
    assert_eq!(reply.status, 504);
    assert_eq!(reply.reason(), "upstream_timeout");
}

const GRANTS_V1: &str = r#"{"version": 1, "generated_at": "2026-11-23T07:00:00Z",
  "organisations": [
    {"swa_code": "7001", "name": "Northern Water", "kind": "promoter", "status": "active",
      "workstreams": ["000", "001"]},
    {"swa_code": "4020", "name": "Leeds City Council", "kind": "highway_authority", "status": "active"}
  ],
  "users": [{"sub": "user-a", "organisation": "7001", "workstreams": {"7001": {"001": "full-write"}}}],
  "works": [{"work_reference_number": "NW001", "promoter": "7001", "highway_authority": "4020", "workstream": "001"}]}"#;

// === control-plane servers ===

#[tokio::test]
async fn a_grants_url_that_redirects_is_not_followed_and_the_old_snapshot_stays() {
    let elsewhere = Upstream::with(Arc::new(|_: &Seen| {
        json_response(
            StatusCode::OK,
            &GRANTS_V1.replace("\"version\": 1", "\"version\": 2"),
        )
    }))
    .await;
    let redirect = Arc::new(AtomicBool::new(false));
    let target = format!("{}/grants.json", elsewhere.url());
    let flag = redirect.clone();
    let grants = Upstream::with(Arc::new(move |_: &Seen| {
        if flag.load(Ordering::SeqCst) {
            http::Response::builder()
                .status(302)
                .header("location", target.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap()
        } else {
            json_response(StatusCode::OK, GRANTS_V1)
        }
    }))
    .await;
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let extra = format!(
        "grants:\n  source:\n    url:\n      url: {}/grants.json\n      poll_interval: 50ms\n      max_backoff: 100ms\n  max_age: 1h\n",
        grants.url()
    );
    let gw = sidecar(&yaml(&upstream.url(), &jwks.url(), "2s", "2s", &extra)).await;
    let errors =
        |scrape: &str| sample(scrape, r#"streetgate_snapshot_fetch_total{result="error"}"#);
    assert_eq!(errors(&metrics(&gw).await), 0.0);

    redirect.store(true, Ordering::SeqCst);
    let counted = eventually(Duration::from_secs(5), || async {
        errors(&metrics(&gw).await) >= 2.0
    })
    .await;
    assert!(counted, "redirects not counted as failed fetches");
    let scrape = metrics(&gw).await;
    assert_eq!(sample(&scrape, "streetgate_snapshot_version"), 1.0);
    assert_eq!(elsewhere.count(), 0, "the redirect target was never asked");
    let planner = token(&claims("user-a", "7001", &["Planner"]));
    let reply = send(gw.addr, get("/work/works/NW001", Some(&planner))).await;
    assert_eq!(reply.status, 200, "still deciding from the old snapshot");
}

/// Signs a token with `rsa1` under another key id.
fn token_with_kid(kid: &str) -> String {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(fixture("keys/rsa1.pem")).unwrap())
            .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims("user-a", "7001", &["Planner"]), &key).unwrap()
}

#[tokio::test]
async fn a_jwks_announcing_two_gigabytes_is_refused_at_once_and_the_old_keys_stay() {
    let jwks = std::fs::read(fixture("keys/jwks.json")).unwrap();
    let huge = Arc::new(AtomicBool::new(false));
    let flag = huge.clone();
    let server = RawUpstream::start(move |_, mut s| {
        let jwks = jwks.clone();
        let huge = flag.load(Ordering::SeqCst);
        async move {
            if huge {
                // A head promising 2 GB, a first byte, then nothing.
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n{")
                    .await;
                hold(s).await;
            } else {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    jwks.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&jwks).await;
            }
        }
    })
    .await;
    let upstream = Upstream::start().await;
    let jwks_url = format!("{}/jwks.json", server.url());
    let gw = sidecar(&yaml(&upstream.url(), &jwks_url, "2s", "2s", "").replace(
        &format!("      url: {jwks_url}\n"),
        &format!("      url: {jwks_url}\n      min_refresh_interval: 1ms\n"),
    ))
    .await;
    huge.store(true, Ordering::SeqCst);

    // An unknown kid makes the sidecar fetch the keys again, while the request waits.
    let started = Instant::now();
    let reply = send(
        gw.addr,
        get("/work/works/NW001", Some(&token_with_kid("rotated"))),
    )
    .await;
    assert_eq!(reply.reason(), "token_unknown_key");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused on its Content-Length, not after the 5 s fetch timeout: {:?}",
        started.elapsed()
    );
    let scrape = metrics(&gw).await;
    assert_eq!(
        sample(&scrape, r#"streetgate_jwks_refresh_total{result="error"}"#),
        1.0
    );
    let planner = token(&claims("user-a", "7001", &["Planner"]));
    let reply = send(gw.addr, get("/work/works/NW001", Some(&planner))).await;
    assert_eq!(reply.status, 200, "the old keys still verify");
}

// === the decision log on a full disk ===

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops the child even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn with_stdout_on_a_full_disk_requests_are_answered_and_the_lost_log_is_counted() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    // The template binds both listeners to port 0 and fetches keys from a URL; the child
    // gets fixed ports (its log, which would name them, goes nowhere) and a JWKS file.
    let config = config_yaml(&upstream.url(), "unused", ROUTES, "")
        .replacen("addr: 127.0.0.1:0", &format!("addr: 127.0.0.1:{port}"), 1)
        .replacen(
            "addr: 127.0.0.1:0",
            &format!("addr: 127.0.0.1:{admin_port}"),
            1,
        )
        .replace(
            "  jwks:\n    url:\n      url: unused\n",
            &format!(
                "  jwks:\n    file: {}\n",
                fixture("keys/jwks.json").display()
            ),
        );
    let path = dir.path().join("streetgate.yaml");
    std::fs::write(&path, &config).unwrap();

    let child = Child(
        Command::new(env!("CARGO_BIN_EXE_streetgate"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let admin: std::net::SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let started = eventually(Duration::from_secs(10), || async {
        TcpStream::connect(admin).await.is_ok()
    })
    .await;
    assert!(started, "serve did not start: {config}");

    for _ in 0..20 {
        assert_eq!(send(addr, get("/work/status", None)).await.status, 200);
    }
    // Denials are always logged; the log cannot be written, the answers still come.
    assert_eq!(send(addr, get("/work/nowhere", None)).await.status, 404);
    let losses = || async {
        let reply = send(admin, get("/metrics", None)).await;
        let scrape = String::from_utf8(reply.body.to_vec()).unwrap();
        (
            sample(&scrape, "streetgate_decision_log_write_errors_total"),
            sample(&scrape, "streetgate_decision_log_dropped_total"),
        )
    };
    let counted = eventually(Duration::from_secs(5), || async {
        let (errors, dropped) = losses().await;
        errors >= 1.0 && dropped >= 21.0
    })
    .await;
    assert!(counted, "loss not counted: {:?}", losses().await);
    drop(child);
}

// === limits before work ===

#[tokio::test]
async fn the_per_ip_limit_comes_before_routing_and_checks() {
    let (gw, _jwks, upstream) = impatient_sidecar("rate_limit: {per_ip: 2}").await;
    let mut statuses = Vec::new();
    for path in [
        "/work/nowhere",
        "/work/a/../b",
        "/work/status",
        "/work/nowhere",
    ] {
        statuses.push(send(gw.addr, get(path, None)).await.status.as_u16());
    }
    assert_eq!(statuses[..2], [404, 400]);
    assert_eq!(statuses[2..], [429, 429], "404s and 400s spent the tokens");
    assert_eq!(upstream.count(), 0);
    // The framing guard's refusals spend tokens too.
    let smuggle = b"POST /work/status HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let reply = raw(gw.addr, smuggle).await;
    assert_eq!(raw_status(&reply), 429, "{reply}");
    let scrape = metrics(&gw).await;
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_decisions_total{decision="deny",reason="rate_limited",route="_unmatched"}"#
        ),
        3.0
    );
}

#[tokio::test]
async fn retry_after_is_the_buckets_wait_in_whole_seconds() {
    // One request per 4 s per IP; one per 2.5 s per user.
    for (extra, token, want) in [
        ("rate_limit: {per_ip: 0.25}", None, "4"),
        (
            "rate_limit: {per_user: 0.4}",
            Some(token(&claims("user-a", "7001", &["Planner"]))),
            "3",
        ),
    ] {
        let (gw, _jwks, _upstream) = impatient_sidecar(extra).await;
        let path = if token.is_some() {
            "/work/works/W1"
        } else {
            "/work/status"
        };
        let first = send(gw.addr, get(path, token.as_deref())).await;
        assert_eq!(first.status, 200, "{extra}");
        let limited = send(gw.addr, get(path, token.as_deref())).await;
        assert_eq!(limited.status, 429, "{extra}");
        assert_eq!(limited.reason(), "rate_limited");
        assert_eq!(limited.headers["retry-after"], want, "{extra}");
    }
}
