//! Deltas, long-poll and compression against a real loopback grants server that speaks the
//! contract in docs/configuration.md: `?since=`, 304/410, `Prefer: wait=N` answered with
//! `Preference-Applied`, ETags `"N"` and `"A-B"`, gzip and zstd.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use streetgate::grants::config::{GrantsSource, OnStale};
use streetgate::grants::{GrantsStore, spawn_source};
use streetgate::telemetry::metrics::Metrics;

/// One request as the grants server saw it.
#[derive(Debug, Clone)]
struct Asked {
    since: Option<u64>,
    if_none_match: Option<String>,
    prefer: Option<String>,
    accept_encoding: Option<String>,
    status: u16,
}

#[derive(Default)]
struct State {
    version: u64,
    full: String,
    /// Delta bodies from `since` to `version`.
    deltas: HashMap<u64, String>,
    /// Compress answers with this encoding when the client accepts it.
    encoding: Option<&'static str>,
    /// Honour `Prefer: wait=N`.
    long_poll: bool,
    /// Send these bytes with this Content-Encoding as every 200 body instead.
    raw: Option<(Bytes, &'static str)>,
    asked: Vec<Asked>,
    /// Requests being held now.
    holding: usize,
}

struct GrantsServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
}

impl GrantsServer {
    async fn start(version: u64, full: String) -> GrantsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            version,
            full,
            ..State::default()
        }));
        let (changed, _) = watch::channel(version);
        let server = GrantsServer {
            addr,
            state: Arc::clone(&state),
            changed: changed.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&state);
                let changed = changed.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let state = Arc::clone(&state);
                        let changed = changed.subscribe();
                        async move { Ok::<_, Infallible>(answer(&state, changed, &req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("http://{}/grants", self.addr)
    }

    /// Publishes `version` as `full`, with deltas to it from the versions given.
    fn publish(&self, version: u64, full: String, deltas: &[(u64, String)]) {
        let mut s = self.state.lock().unwrap();
        s.version = version;
        s.full = full;
        s.deltas = deltas.iter().cloned().collect();
        drop(s);
        self.changed.send_replace(version);
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }

    fn asked(&self) -> Vec<Asked> {
        self.state.lock().unwrap().asked.clone()
    }

    fn holding(&self) -> usize {
        self.state.lock().unwrap().holding
    }
}

async fn answer(
    state: &Mutex<State>,
    mut changed: watch::Receiver<u64>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let header_of = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let since = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("since=")))
        .map(|v| v.parse::<u64>().unwrap());
    let inm = header_of(header::IF_NONE_MATCH);
    let prefer = header_of(header::HeaderName::from_static("prefer"));
    let accept = header_of(header::ACCEPT_ENCODING);
    let wait = prefer
        .as_deref()
        .and_then(|p| p.strip_prefix("wait="))
        .map(|n| Duration::from_secs(n.parse().unwrap()));
    let mut held = false;
    loop {
        let hold = {
            let s = state.lock().unwrap();
            let nothing_newer = match since {
                Some(v) => v >= s.version,
                None => inm.as_deref() == Some(&*format!("\"{}\"", s.version)),
            };
            nothing_newer && s.long_poll && wait.is_some() && !held
        };
        if !hold {
            break;
        }
        state.lock().unwrap().holding += 1;
        let _ = tokio::time::timeout(wait.unwrap(), changed.changed()).await;
        state.lock().unwrap().holding -= 1;
        held = true;
    }
    let mut s = state.lock().unwrap();
    let mut resp = Response::builder();
    if s.long_poll && wait.is_some() {
        resp = resp.header("preference-applied", prefer.clone().unwrap());
    }
    let (status, body): (u16, Option<(String, String)>) = match since {
        Some(v) if v >= s.version => (304, None),
        Some(v) => match s.deltas.get(&v) {
            Some(d) => (200, Some((d.clone(), format!("\"{v}-{}\"", s.version)))),
            None => (410, None),
        },
        None if inm.as_deref() == Some(&*format!("\"{}\"", s.version)) => (304, None),
        None => (200, Some((s.full.clone(), format!("\"{}\"", s.version)))),
    };
    s.asked.push(Asked {
        since,
        if_none_match: inm.clone(),
        prefer: prefer.clone(),
        accept_encoding: accept.clone(),
        status,
    });
    resp = resp.status(status);
    let Some((body, etag)) = body else {
        return resp.body(Full::default()).unwrap();
    };
    resp = resp.header(header::ETAG, etag);
    if let Some((raw, encoding)) = &s.raw {
        return resp
            .header(header::CONTENT_ENCODING, *encoding)
            .body(Full::new(raw.clone()))
            .unwrap();
    }
    let accepted = |e: &str| accept.as_deref().is_some_and(|a| a.contains(e));
    let body = match s.encoding {
        Some(e @ "gzip") if accepted(e) => {
            resp = resp.header(header::CONTENT_ENCODING, e);
            gzip(body.as_bytes())
        }
        Some(e @ "zstd") if accepted(e) => {
            resp = resp.header(header::CONTENT_ENCODING, e);
            Bytes::from(zstd::encode_all(body.as_bytes(), 3).unwrap())
        }
        _ => Bytes::from(body),
    };
    resp.body(Full::new(body)).unwrap()
}

fn gzip(data: &[u8]) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    Bytes::from(e.finish().unwrap())
}

// === documents ===

const ORGS: &str = r#"[
    {"swa_code": "7001", "name": "Northern Water", "kind": "promoter", "status": "active",
     "workstreams": ["000", "001", "002"]},
    {"swa_code": "4020", "name": "Leeds City Council", "kind": "highway_authority", "status": "active"}]"#;

fn user(sub: &str, level: &str) -> String {
    format!(
        r#"{{"sub": "{sub}", "organisation": "7001", "workstreams": {{"7001": {{"001": "{level}", "002": "{level}"}}}}}}"#
    )
}

fn work(wrn: &str, promoter: &str) -> String {
    format!(
        r#"{{"work_reference_number": "{wrn}", "promoter": "{promoter}", "highway_authority": "4020", "workstream": "001"}}"#
    )
}

/// A full document: user-a with `level`, and the works named.
fn full(version: u64, level: &str, works: &[&str]) -> String {
    let works: Vec<String> = works.iter().map(|w| work(w, "7001")).collect();
    format!(
        r#"{{"version": {version}, "generated_at": "2026-11-30T12:00:00Z", "organisations": {ORGS},
  "users": [{}], "works": [{}]}}"#,
        user("user-a", level),
        works.join(",")
    )
}

fn delta(since: u64, version: u64, upsert: &str, delete: &str) -> String {
    format!(
        r#"{{"version": {version}, "since": {since}, "generated_at": "2026-11-30T12:00:01Z",
  "upsert": {{{upsert}}}, "delete": {{{delete}}}}}"#
    )
}

// === the source under test ===

struct Fed {
    store: Arc<GrantsStore>,
    metrics: Metrics,
    _stop: watch::Sender<bool>,
}

fn url_source(url: String, poll: Duration, long_poll: Option<Duration>, max: u64) -> GrantsSource {
    GrantsSource::Url {
        url,
        poll_interval: poll,
        max_backoff: poll,
        long_poll,
        max_document_bytes: max,
    }
}

fn feed(source: GrantsSource) -> Fed {
    let metrics = Metrics::new();
    let store = Arc::new(GrantsStore::new(
        Duration::from_secs(600),
        OnStale::Deny,
        metrics.clone(),
    ));
    let (stop, rx) = watch::channel(false);
    spawn_source(Arc::clone(&store), source, rx);
    Fed {
        store,
        metrics,
        _stop: stop,
    }
}

impl Fed {
    fn version(&self) -> Option<u64> {
        self.store.version()
    }

    fn has_work(&self, wrn: &str) -> bool {
        self.store
            .current(SystemTime::now())
            .is_ok_and(|s| s.work(wrn).is_some())
    }

    fn deltas(&self, result: &str) -> u64 {
        self.metrics
            .snapshot_delta
            .with_label_values(&[result])
            .get()
    }

    fn fetches(&self, result: &str) -> u64 {
        self.metrics
            .snapshot_fetch
            .with_label_values(&[result])
            .get()
    }

    async fn reaches(&self, version: u64) {
        assert!(
            eventually(Duration::from_secs(10), || async {
                self.version() == Some(version)
            })
            .await,
            "version {version} never in force (now {:?})",
            self.version()
        );
    }
}

const FAST: Duration = Duration::from_millis(20);

#[tokio::test]
async fn a_delta_is_asked_for_since_the_version_in_force_and_applied() {
    let server = GrantsServer::start(1, full(1, "full-write", &["NW1", "NW2"])).await;
    let fed = feed(url_source(server.url(), FAST, None, 1 << 20));
    fed.reaches(1).await;
    server.publish(
        2,
        full(2, "full-write", &["NW1", "NW3"]),
        &[(
            1,
            delta(
                1,
                2,
                &format!(r#""works": [{}]"#, work("NW3", "7001")),
                r#""works": ["NW2"]"#,
            ),
        )],
    );
    fed.reaches(2).await;
    assert!(fed.has_work("NW1") && fed.has_work("NW3") && !fed.has_work("NW2"));
    assert_eq!(fed.deltas("applied"), 1);
    let asked = server.asked();
    assert_eq!((asked[0].since, asked[0].status), (None, 200));
    let delta_answer = asked.iter().find(|a| a.status == 200 && a.since == Some(1));
    assert!(delta_answer.is_some(), "{asked:?}");
    // Then the sidecar asks since 2, naming the full document of 2 as what it holds.
    assert!(
        eventually(Duration::from_secs(5), || async {
            server.asked().iter().any(|a| {
                a.since == Some(2) && a.if_none_match.as_deref() == Some("\"2\"") && a.status == 304
            })
        })
        .await,
        "{:?}",
        server.asked()
    );
    assert!(
        asked.iter().all(|a| a.prefer.is_none()),
        "long-poll is off by default"
    );
}

#[tokio::test]
async fn a_version_too_old_for_a_delta_gets_410_then_the_full_document() {
    let server = GrantsServer::start(1, full(1, "full-write", &["NW1"])).await;
    let fed = feed(url_source(server.url(), FAST, None, 1 << 20));
    fed.reaches(1).await;
    // Deltas only from 2: version 1 is too old.
    server.publish(
        3,
        full(3, "full-write", &["NW9"]),
        &[(2, delta(2, 3, "", ""))],
    );
    fed.reaches(3).await;
    assert!(fed.has_work("NW9") && !fed.has_work("NW1"));
    let asked = server.asked();
    let gone = asked
        .iter()
        .position(|a| a.since == Some(1) && a.status == 410)
        .expect("410 for since=1");
    let next = &asked[gone + 1];
    assert_eq!((next.since, next.status), (None, 200), "{asked:?}");
    assert_eq!(fed.deltas("applied"), 0);
}

#[tokio::test]
async fn a_bad_delta_is_refused_whole_and_the_full_document_fetched() {
    let server = GrantsServer::start(1, full(1, "full-write", &["NW1"])).await;
    let fed = feed(url_source(server.url(), FAST, None, 1 << 20));
    fed.reaches(1).await;
    // A good upsert beside one naming an unknown promoter: neither may land.
    let bad = delta(
        1,
        2,
        &format!(
            r#""works": [{}, {}]"#,
            work("GOOD1", "7001"),
            work("BAD1", "9999")
        ),
        "",
    );
    server.publish(2, full(2, "full-write", &["NW1", "FULL2"]), &[(1, bad)]);
    fed.reaches(2).await;
    assert!(fed.has_work("FULL2"), "the full document is in force");
    assert!(!fed.has_work("GOOD1") && !fed.has_work("BAD1"));
    assert_eq!((fed.deltas("refused"), fed.deltas("applied")), (1, 0));
    let asked = server.asked();
    let refused = asked
        .iter()
        .position(|a| a.since == Some(1) && a.status == 200)
        .unwrap();
    assert_eq!(asked[refused + 1].since, None, "{asked:?}");
}

#[tokio::test]
async fn a_delta_on_another_base_is_not_applied() {
    let server = GrantsServer::start(1, full(1, "full-write", &["NW1"])).await;
    let fed = feed(url_source(server.url(), FAST, None, 1 << 20));
    fed.reaches(1).await;
    // The source answers since=1 with a delta from 5: it must not be applied on 1.
    server.publish(
        6,
        full(6, "full-write", &["SIX"]),
        &[(
            1,
            delta(
                5,
                6,
                &format!(r#""works": [{}]"#, work("WRONG", "7001")),
                "",
            ),
        )],
    );
    fed.reaches(6).await;
    assert!(fed.has_work("SIX") && !fed.has_work("WRONG"));
    assert_eq!(fed.deltas("mismatched"), 1);
}

#[tokio::test]
async fn long_poll_delivers_a_change_without_waiting_for_the_poll_interval() {
    let server = GrantsServer::start(1, full(1, "full-write", &["NW1"])).await;
    server.set(|s| s.long_poll = true);
    // A poll interval of a minute: only the held request can bring the change in time.
    let fed = feed(url_source(
        server.url(),
        Duration::from_secs(60),
        Some(Duration::from_secs(20)),
        1 << 20,
    ));
    fed.reaches(1).await;
    assert!(eventually(Duration::from_secs(5), || async { server.holding() == 1 }).await);
    server.publish(
        2,
        full(2, "full-write", &["NW1", "NW2"]),
        &[(
            1,
            delta(1, 2, &format!(r#""works": [{}]"#, work("NW2", "7001")), ""),
        )],
    );
    assert!(
        eventually(Duration::from_secs(2), || async { fed.has_work("NW2") }).await,
        "the change did not arrive through the held request"
    );
    // And the next long-poll is issued at once.
    assert!(eventually(Duration::from_secs(5), || async { server.holding() == 1 }).await);
    let asked = server.asked();
    assert!(
        asked
            .iter()
            .skip(1)
            .all(|a| a.prefer.as_deref() == Some("wait=20")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn a_source_that_ignores_prefer_is_polled_at_the_interval() {
    let server = GrantsServer::start(1, full(1, "full-write", &["NW1"])).await;
    // The source does not hold requests and answers without Preference-Applied.
    let fed = feed(url_source(
        server.url(),
        Duration::from_secs(60),
        Some(Duration::from_secs(20)),
        1 << 20,
    ));
    fed.reaches(1).await;
    // A new version is followed by one long-poll at once (news answered at once is not a
    // refusal to hold). That one comes back at once without Preference-Applied: the sidecar
    // must then wait out the 60 s interval, not loop.
    assert!(
        eventually(PATIENCE, || async { server.asked().len() >= 2 }).await,
        "no long-poll after the new version: {:?}",
        server.asked()
    );
    let looped = eventually(Duration::from_millis(500), || async {
        server.asked().len() > 2
    })
    .await;
    assert!(
        !looped,
        "re-asked without a held answer: {:?}",
        server.asked()
    );
}

#[tokio::test]
async fn gzip_and_zstd_answers_are_decoded() {
    for encoding in ["gzip", "zstd"] {
        let server = GrantsServer::start(1, full(1, "full-write", &["NW1"])).await;
        server.set(|s| s.encoding = Some(encoding));
        let fed = feed(url_source(server.url(), FAST, None, 1 << 20));
        fed.reaches(1).await;
        server.publish(
            2,
            full(2, "full-write", &["NW1", "NW2"]),
            &[(
                1,
                delta(1, 2, &format!(r#""works": [{}]"#, work("NW2", "7001")), ""),
            )],
        );
        fed.reaches(2).await;
        assert!(fed.has_work("NW2"), "{encoding}");
        assert_eq!(fed.deltas("applied"), 1, "{encoding}");
        let asked = server.asked();
        assert!(
            asked
                .iter()
                .all(|a| a.accept_encoding.as_deref() == Some("gzip, zstd")),
            "{asked:?}"
        );
    }
}

#[tokio::test]
async fn a_compressed_body_over_the_limit_once_decoded_is_refused() {
    const LIMIT: u64 = 64 * 1024;
    // A valid document padded with whitespace to 16 MiB: tiny compressed, far over the limit.
    let mut padded = full(2, "full-write", &["NW1", "BOMB"]).into_bytes();
    padded.resize(16 << 20, b' ');
    let bombs = [
        (gzip(&padded), "gzip"),
        (
            Bytes::from(zstd::encode_all(&padded[..], 3).unwrap()),
            "zstd",
        ),
    ];
    for (bomb, encoding) in bombs {
        assert!(bomb.len() < LIMIT as usize, "{encoding}: {}", bomb.len());
        let server = GrantsServer::start(1, full(1, "full-write", &["NW1"])).await;
        let fed = feed(url_source(server.url(), FAST, None, LIMIT));
        fed.reaches(1).await;
        server.set(|s| s.raw = Some((bomb.clone(), encoding)));
        server.publish(2, String::new(), &[]);
        assert!(
            eventually(Duration::from_secs(10), || async {
                fed.fetches("error") >= 2
            })
            .await,
            "{encoding}"
        );
        assert_eq!(fed.version(), Some(1), "{encoding}");
        assert!(!fed.has_work("BOMB"));
    }
}

// === through the whole sidecar ===

const ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner]}
        access: {read_work: {path: workReferenceNumber}}
"#;

#[tokio::test]
async fn a_revocation_by_delta_takes_effect_through_long_poll() {
    let server = GrantsServer::start(1, full(1, "full-write", &["NW1"])).await;
    server.set(|s| {
        s.long_poll = true;
        s.encoding = Some("zstd");
    });
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let grants = format!(
        "grants:\n  source:\n    url:\n      url: {}\n      poll_interval: 60s\n      long_poll: 20s\n",
        server.url()
    );
    let gw = sidecar(&config_yaml(&upstream.url(), &jwks.url(), ROUTES, &grants)).await;
    let token = token(&claims("user-a", "7001", &["Planner"]));
    let status = || async {
        send(gw.addr, get("/work/works/NW1", Some(&token)))
            .await
            .status
    };
    assert_eq!(status().await, StatusCode::OK);
    assert_eq!(upstream.count(), 1);
    assert!(eventually(Duration::from_secs(5), || async { server.holding() == 1 }).await);

    // user-a loses workstream 001: a one-user delta, delivered to the held request.
    server.publish(
        2,
        full(2, "no-access", &["NW1"]),
        &[(
            1,
            delta(
                1,
                2,
                &format!(r#""users": [{}]"#, user("user-a", "no-access")),
                "",
            ),
        )],
    );
    assert!(
        eventually(Duration::from_secs(2), || async {
            status().await == StatusCode::FORBIDDEN
        })
        .await,
        "still allowed after the revocation"
    );
    let forwarded = upstream.count();
    assert_eq!(status().await, StatusCode::FORBIDDEN);
    assert_eq!(
        upstream.count(),
        forwarded,
        "a denied request reached the upstream"
    );
    let scrape = metrics(&gw).await;
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_snapshot_delta_total{result="applied"}"#
        ),
        1.0
    );
}

#[test]
fn long_poll_and_the_size_limit_are_checked_in_the_config() {
    let yaml = |extra: &str| {
        let grants =
            format!("grants:\n  source:\n    url:\n      url: http://127.0.0.1:1/g\n{extra}");
        config_yaml(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1/jwks",
            ROUTES,
            &grants,
        )
    };
    for (extra, bad) in [
        (
            "      long_poll: 500ms\n",
            Some("grants.source.url.long_poll"),
        ),
        (
            "      long_poll: 301s\n",
            Some("grants.source.url.long_poll"),
        ),
        (
            "      max_document_bytes: 0\n",
            Some("grants.source.url.max_document_bytes"),
        ),
        ("      long_poll: 1s\n      max_document_bytes: 1\n", None),
        ("      long_poll: 300s\n", None),
    ] {
        match (streetgate::config::Config::from_yaml(&yaml(extra)), bad) {
            (Ok(_), None) => {}
            (Err(p), Some(at)) => {
                let at_all: Vec<_> = p.iter().map(|p| p.location.as_str()).collect();
                assert_eq!(at_all, [at], "{extra}");
            }
            (Ok(_), Some(at)) => panic!("{extra}: accepted, expected a problem at {at}"),
            (Err(p), None) => panic!("{extra}: refused: {p}"),
        }
    }
}
