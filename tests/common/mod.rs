//! Test harness: real servers on loopback (a recording upstream, a JWKS server, the sidecar
//! itself) and clients that speak real HTTP, including raw bytes for malformed requests.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use streetgate::app::Running;
use streetgate::clock::Clock;
use streetgate::config::Config;
use streetgate::telemetry::metrics::Metrics;

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// === upstream ===

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type Responder = Arc<dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync>;

pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    /// An upstream answering `{"ok":true}` to everything.
    pub async fn start() -> Upstream {
        Upstream::with(Arc::new(|_: &Seen| {
            json_response(StatusCode::OK, r#"{"ok":true}"#)
        }))
        .await
    }

    pub async fn with(responder: Responder) -> Upstream {
        Upstream::with_delay(Duration::ZERO, responder).await
    }

    /// Like `with`, answering only after `delay` (a slow upstream).
    pub async fn with_delay(delay: Duration, responder: Responder) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let log = log.clone();
                let responder = responder.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        let responder = responder.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let seen = Seen {
                                method: parts.method,
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            };
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let resp = responder(&seen);
                            log.lock().unwrap().push(seen);
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            connections,
        }
    }

    /// Connections the upstream has accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub fn json_response(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

// === JWKS ===

pub struct JwksServer {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start() -> JwksServer {
        let jwks = Bytes::from(std::fs::read(fixture("keys/jwks.json")).unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let upstream = Upstream::with(Arc::new(move |_: &Seen| {
            counter.fetch_add(1, Ordering::SeqCst);
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(jwks.clone()))
                .unwrap()
        }))
        .await;
        JwksServer {
            addr: upstream.addr,
            hits,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }
}

// === tokens ===

pub const ISSUER: &str = "https://auth.test";
pub const AUDIENCE: &str = "street-manager";

pub fn claims(sub: &str, org: &str, roles: &[&str]) -> serde_json::Value {
    let now = now();
    serde_json::json!({
        "sub": sub, "org": org, "roles": roles,
        "iss": ISSUER, "aud": AUDIENCE,
        "iat": now, "nbf": now, "exp": now + 300,
    })
}

/// Signs `claims` with the test RSA key `rsa1` (RS256).
pub fn token(claims: &serde_json::Value) -> String {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(fixture("keys/rsa1.pem")).unwrap())
            .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa1".into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

// === sidecar ===

/// Config with one `work` API in front of `upstream`, keys from `jwks_url`. `extra` is appended
/// to the top level; `routes` replaces the default route list.
pub fn config_yaml(upstream: &str, jwks_url: &str, routes: &str, extra: &str) -> String {
    format!(
        r#"
listen:
  addr: 127.0.0.1:0
  max_body_bytes: 1048576
  header_read_timeout: 2s
  idle_timeout: 2s
admin:
  addr: 127.0.0.1:0
auth:
  jwks:
    url:
      url: {jwks_url}
  issuer: {ISSUER}
  audience: {AUDIENCE}
{extra}
apis:
  - name: work
    prefix: /work
    upstream: {upstream}
    request_timeout: 1s
    routes:
{routes}
"#
    )
}

pub const DEFAULT_ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, HighwayAuthority, Contractor]}
      - id: CreateWork
        route: POST /works
        allow: {roles: [Planner, Contractor]}
      - id: Echo
        route: POST /echo
        allow: {roles: [Planner]}
      - id: Status
        route: GET /status
        allow: public
"#;

/// A sidecar on an adjustable clock: a test moves `running.gateway.clock` ahead instead of
/// sleeping past a rate-limit refill or a snapshot's `max_age`.
pub async fn sidecar(yaml: &str) -> Running {
    let config = Config::from_yaml(yaml).unwrap_or_else(|p| panic!("test config invalid:\n{p}"));
    let running = streetgate::app::start_with_clock(config, Metrics::new(), Clock::adjustable())
        .await
        .unwrap();
    wait_ready(&running).await;
    running
}

/// A sidecar started from a config file (so it can be reloaded).
pub async fn sidecar_from_file(path: &std::path::Path) -> Running {
    let config = Config::load(path).unwrap_or_else(|e| panic!("test config invalid: {e}"));
    let running = streetgate::app::start_with_clock(config, Metrics::new(), Clock::adjustable())
        .await
        .unwrap();
    wait_ready(&running).await;
    running
}

/// Waits until /readyz says ready (keys fetched), at most 5 s.
pub async fn wait_ready(running: &Running) {
    let ready = eventually(Duration::from_secs(5), || async {
        running.gateway.not_ready().is_empty()
    })
    .await;
    assert!(
        ready,
        "sidecar not ready: {:?}",
        running.gateway.not_ready()
    );
}

/// A recording upstream, a JWKS server and a sidecar in front of the upstream.
pub struct World {
    pub upstream: Upstream,
    pub jwks: JwksServer,
    pub gw: Running,
}

impl World {
    /// A plain upstream answering `{"ok":true}`.
    pub async fn start(routes: &str, extra: &str) -> World {
        World::with(Upstream::start().await, routes, extra).await
    }

    pub async fn with(upstream: Upstream, routes: &str, extra: &str) -> World {
        let jwks = JwksServer::start().await;
        let gw = sidecar(&config_yaml(&upstream.url(), &jwks.url(), routes, extra)).await;
        World { upstream, jwks, gw }
    }
}

// === clients ===

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    pub fn reason(&self) -> String {
        self.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(request).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn get(path: &str, token: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::get(path).header("host", "gw.test");
    if let Some(t) = token {
        b = b.header("token", t);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

/// Sends raw bytes and reads the response head and whatever body follows until close/timeout.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Scrapes the admin /metrics.
pub async fn metrics(running: &Running) -> String {
    let reply = send(running.admin_addr, get("/metrics", None)).await;
    String::from_utf8(reply.body.to_vec()).unwrap()
}

/// The value of one sample line (`name{labels} value`) in a scrape. A missing series fails the
/// test: reading it as 0 would let an assertion on a series that was never exported pass.
pub fn sample(scrape: &str, name_and_labels: &str) -> f64 {
    let line = scrape
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("series {name_and_labels} missing from the scrape:\n{scrape}"));
    let value = line.rsplit(' ').next().unwrap_or_default();
    value
        .parse()
        .unwrap_or_else(|_| panic!("series {name_and_labels} has no number: {line:?}"))
}

/// Moves tokio's clock `by` forward at once, then lets it run on: what the code under test
/// measures with `tokio::time::Instant` (rate-limit windows, refresh intervals) sees the time
/// pass without the test sleeping. Needs the default current-thread test runtime.
pub async fn skip_ahead(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// How long a test waits for something that should happen at once on an idle machine.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A labelled counter's value, 0 while the series does not exist yet (it appears on first
/// use). Only for a value before the requests under test, or one that must have stayed 0; read
/// what the requests should have counted with `sample`, which fails on a missing series.
pub fn count_or_zero(scrape: &str, name_and_labels: &str) -> f64 {
    let present = scrape
        .lines()
        .any(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '));
    if present {
        sample(scrape, name_and_labels)
    } else {
        0.0
    }
}

/// Polls `condition` until it holds, for at most `within`; says whether it did. The one way a
/// test waits: on the condition it needs, never on a fixed margin that a loaded 2-core machine
/// can stretch. Sync conditions are written `|| async { cond }`.
#[must_use = "assert on the result: a condition that never held is a failure"]
pub async fn eventually<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    // A poll, not a margin: the condition is asked again every 10 ms until the deadline.
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    loop {
        poll.tick().await;
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
    }
}
