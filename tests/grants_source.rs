//! The grants store fed by its real sources: a loopback HTTP grants server whose answers each
//! test controls, and a file on disk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;
use common::{PATIENCE, eventually};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use streetgate::clock::Clock;
use streetgate::grants::codes::{SwaCode, Workstream};
use streetgate::grants::config::{GrantsSource, OnStale};
use streetgate::grants::overlay::Works;
use streetgate::grants::snapshot::WorkInfo;
use streetgate::grants::synthetic::{synthetic_document_version, work_reference};
use streetgate::grants::{ApplyError, GrantsStore, SnapshotError, spawn_source};
use streetgate::reason::Reason;
use streetgate::telemetry::metrics::Metrics;

const POLL: Duration = Duration::from_millis(20);

/// What the grants server answers, and what it was asked.
#[derive(Default)]
struct State {
    /// Answer this status with no body instead of the document.
    fail: Option<StatusCode>,
    body: Bytes,
    etag: Option<String>,
    /// The `If-None-Match` of every request, in order.
    if_none_match: Vec<Option<String>>,
}

struct GrantsServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl GrantsServer {
    async fn start() -> GrantsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        GrantsServer::serve(listener)
    }

    fn serve(listener: TcpListener) -> GrantsServer {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let answer = answer(&state, &req);
                        async move { Ok::<_, Infallible>(answer) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        GrantsServer { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/grants.json", self.addr)
    }

    fn publish(&self, body: impl Into<Bytes>, etag: &str) {
        let mut s = self.state.lock().unwrap();
        s.fail = None;
        s.body = body.into();
        s.etag = Some(format!("\"{etag}\""));
    }

    fn fail(&self, status: StatusCode) {
        self.state.lock().unwrap().fail = Some(status);
    }

    fn if_none_match(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().if_none_match.clone()
    }
}

fn answer(state: &Mutex<State>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut s = state.lock().unwrap();
    let inm = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .map(|v| v.to_str().unwrap().to_owned());
    s.if_none_match.push(inm.clone());
    let mut resp = Response::builder();
    if let Some(status) = s.fail {
        return resp.status(status).body(Full::default()).unwrap();
    }
    if let Some(etag) = &s.etag {
        if inm.as_ref() == Some(etag) {
            return resp
                .status(StatusCode::NOT_MODIFIED)
                .body(Full::default())
                .unwrap();
        }
        resp = resp.header(header::ETAG, etag);
    }
    resp.body(Full::new(s.body.clone())).unwrap()
}

fn doc(version: u64) -> Vec<u8> {
    synthetic_document_version(version, 8, 20, 50)
}

fn fetches(metrics: &Metrics, result: &str) -> u64 {
    metrics.snapshot_fetch.with_label_values(&[result]).get()
}

fn store(max_age: Duration, on_stale: OnStale) -> (Arc<GrantsStore>, Metrics) {
    let metrics = Metrics::new();
    let store = Arc::new(
        GrantsStore::new(max_age, on_stale, metrics.clone()).with_clock(Clock::adjustable()),
    );
    (store, metrics)
}

fn url_source(url: String) -> GrantsSource {
    GrantsSource::Url {
        url,
        poll_interval: POLL,
        max_backoff: Duration::from_millis(100),
        long_poll: None,
        max_document_bytes: 1 << 30,
    }
}

fn version(store: &GrantsStore) -> Option<u64> {
    store.current(SystemTime::now()).ok().map(|s| s.version)
}

#[tokio::test]
async fn etag_is_sent_and_304_keeps_the_snapshot_fresh() {
    let server = GrantsServer::start().await;
    server.publish(doc(1), "one");
    let (store, metrics) = store(Duration::from_secs(60), OnStale::Deny);
    let (tx, rx) = watch::channel(false);
    let task = spawn_source(Arc::clone(&store), url_source(server.url()), rx);

    assert!(
        eventually(PATIENCE, || async { version(&store) == Some(1) }).await,
        "timed out waiting for first snapshot"
    );
    let first = store.current(SystemTime::now()).unwrap();
    assert!(
        eventually(PATIENCE, || async {
            fetches(&metrics, "not_modified") >= 2
        })
        .await,
        "timed out waiting for two 304s"
    );

    let seen = server.if_none_match();
    assert_eq!(seen[0], None, "first request is unconditional");
    assert!(
        seen[1..].iter().all(|t| t.as_deref() == Some("\"one\"")),
        "{seen:?}"
    );
    assert_eq!(fetches(&metrics, "ok"), 1);
    assert!(store.ready(SystemTime::now()));
    // Not modified: the very same snapshot, not a rebuild.
    assert!(Arc::ptr_eq(
        &first,
        &store.current(SystemTime::now()).unwrap()
    ));
    assert_eq!(metrics.snapshot_version.get(), 1);

    server.publish(doc(2), "two");
    assert!(
        eventually(PATIENCE, || async { version(&store) == Some(2) }).await,
        "timed out waiting for second snapshot"
    );
    assert!(
        eventually(PATIENCE, || async {
            server.if_none_match().last().unwrap().as_deref() == Some("\"two\"")
        })
        .await,
        "timed out waiting for conditional on the new tag"
    );

    tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn failures_after_a_good_document_keep_it() {
    let server = GrantsServer::start().await;
    server.publish(doc(1), "one");
    let (store, metrics) = store(Duration::from_secs(60), OnStale::Deny);
    let (tx, rx) = watch::channel(false);
    let task = spawn_source(Arc::clone(&store), url_source(server.url()), rx);
    assert!(
        eventually(PATIENCE, || async { version(&store) == Some(1) }).await,
        "timed out waiting for first snapshot"
    );

    server.fail(StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        eventually(PATIENCE, || async { fetches(&metrics, "error") >= 1 }).await,
        "timed out waiting for a counted 500"
    );
    assert_eq!(version(&store), Some(1));

    server.publish(&b"{\"version\": 2, \"generated_at\": "[..], "corrupt");
    assert!(
        eventually(PATIENCE, || async { fetches(&metrics, "invalid") >= 1 }).await,
        "timed out waiting for a counted corrupt document"
    );
    assert_eq!(version(&store), Some(1));

    // Well-formed JSON that fails validation: a work in a workstream its promoter lacks.
    let bad = String::from_utf8(doc(3))
        .unwrap()
        .replace(r#""workstream":"001""#, r#""workstream":"077""#);
    server.publish(bad, "three");
    assert!(
        eventually(PATIENCE, || async { fetches(&metrics, "invalid") >= 2 }).await,
        "timed out waiting for a counted invalid document"
    );
    assert_eq!(version(&store), Some(1));
    // A rejected document's ETag is not sent back: it would turn into 304s that look fresh.
    let requests = server.if_none_match();
    assert!(
        !requests.contains(&Some("\"three\"".into())),
        "{requests:?}"
    );
    assert!(
        !requests.contains(&Some("\"corrupt\"".into())),
        "{requests:?}"
    );
    assert!(store.ready(SystemTime::now()));
    assert_eq!(fetches(&metrics, "ok"), 1);

    server.publish(doc(4), "four");
    assert!(
        eventually(PATIENCE, || async { version(&store) == Some(4) }).await,
        "timed out waiting for recovery"
    );
    assert_eq!(metrics.snapshot_version.get(), 4);

    tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_version_that_does_not_grow_is_ignored() {
    let (store, metrics) = store(Duration::from_secs(60), OnStale::Deny);
    let now = SystemTime::now();
    assert_eq!(store.apply(&doc(5), now).unwrap(), 5);
    let five = store.current(now).unwrap();

    // Same version, other content: ignored, the source still counts as answering.
    let other = synthetic_document_version(5, 8, 20, 60);
    assert_eq!(store.apply(&other, now).unwrap(), 5);
    assert!(Arc::ptr_eq(&five, &store.current(now).unwrap()));
    assert_eq!(five.work_count(), 50);
    assert_eq!(fetches(&metrics, "not_modified"), 1);

    // An older version is a rejected document.
    match store.apply(&doc(4), now) {
        Err(ApplyError::Rejected(SnapshotError::Invalid(p))) => {
            assert_eq!(p.iter().next().unwrap().location, "version")
        }
        other => panic!("{other:?}"),
    }
    assert!(Arc::ptr_eq(&five, &store.current(now).unwrap()));
    assert_eq!(fetches(&metrics, "invalid"), 1);
    assert_eq!(metrics.snapshot_version.get(), 5);
}

#[tokio::test]
async fn server_down_at_start_then_up() {
    // A port that was free a moment ago and nothing listens on now.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    let (store, metrics) = store(Duration::from_secs(60), OnStale::Deny);
    let (tx, rx) = watch::channel(false);
    let task = spawn_source(
        Arc::clone(&store),
        url_source(format!("http://{addr}/grants.json")),
        rx,
    );
    assert!(
        eventually(PATIENCE, || async { fetches(&metrics, "error") >= 2 }).await,
        "timed out waiting for failed fetches"
    );
    assert!(!store.ready(SystemTime::now()));
    assert_eq!(
        store.current(SystemTime::now()).unwrap_err(),
        Reason::SnapshotUnavailable
    );
    assert_eq!(metrics.snapshot_version.get(), 0);

    let server = GrantsServer::serve(TcpListener::bind(addr).await.unwrap());
    server.publish(doc(1), "one");
    assert!(
        eventually(PATIENCE, || async { version(&store) == Some(1) }).await,
        "timed out waiting for first snapshot"
    );
    assert!(store.ready(SystemTime::now()));

    tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn stale_past_max_age() {
    let max_age = Duration::from_secs(1);
    let server = GrantsServer::start().await;
    server.publish(doc(1), "one");
    let (deny, metrics) = store(max_age, OnStale::Deny);
    let (serve, _) = store(max_age, OnStale::ServeStale);
    let (tx, rx) = watch::channel(false);
    let task = spawn_source(Arc::clone(&deny), url_source(server.url()), rx);
    assert!(
        eventually(PATIENCE, || async { deny.ready(SystemTime::now()) }).await,
        "timed out waiting for first snapshot"
    );
    serve.apply(&doc(1), SystemTime::now()).unwrap();

    // 304s keep it fresh well past max_age: the clock moves 2 s, and a 304 comes after.
    let clock = deny.clock().clone();
    clock.advance(max_age * 2);
    let seen = fetches(&metrics, "not_modified");
    assert!(
        eventually(PATIENCE, || async {
            fetches(&metrics, "not_modified") > seen
        })
        .await,
        "the source stopped polling"
    );
    assert!(deny.ready(clock.now()));

    server.fail(StatusCode::SERVICE_UNAVAILABLE);
    let failed = fetches(&metrics, "error");
    assert!(
        eventually(PATIENCE, || async { fetches(&metrics, "error") > failed }).await,
        "the failing server was never asked"
    );
    clock.advance(max_age * 2);
    assert!(!deny.ready(clock.now()));
    assert_eq!(
        deny.current(clock.now()).unwrap_err(),
        Reason::SnapshotStale
    );
    let failed = fetches(&metrics, "error");
    assert!(
        eventually(PATIENCE, || async { fetches(&metrics, "error") > failed }).await,
        "the failing server was never asked again"
    );
    assert!(metrics.snapshot_age_seconds.get() > max_age.as_secs_f64());

    // Served stale per config, though not ready.
    let later = SystemTime::now() + max_age * 2;
    assert!(!serve.ready(later));
    assert_eq!(serve.current(later).unwrap().version, 1);

    server.publish(doc(2), "two");
    assert!(
        eventually(PATIENCE, || async { deny.ready(clock.now()) }).await,
        "timed out waiting for fresh again"
    );
    assert_eq!(version(&deny), Some(2));

    tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_a_gap_during_swaps() {
    let (store, metrics) = store(Duration::from_secs(60), OnStale::Deny);
    store.apply(&doc(1), SystemTime::now()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            tokio::spawn(async move {
                let (mut reads, mut last) = (0u64, 0);
                while !done.load(Ordering::Relaxed) {
                    let s = store
                        .current(SystemTime::now())
                        .expect("a snapshot, always");
                    assert!(s.version >= last, "went back from {last} to {}", s.version);
                    assert_eq!(s.work_count(), 50);
                    last = s.version;
                    reads += 1;
                    if reads % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                reads
            })
        })
        .collect();
    let writer = Arc::clone(&store);
    tokio::task::spawn_blocking(move || {
        for v in 2..=200 {
            writer.apply(&doc(v), SystemTime::now()).unwrap();
        }
    })
    .await
    .unwrap();
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    assert_eq!(version(&store), Some(200));
    assert_eq!(fetches(&metrics, "ok"), 200);
}

#[tokio::test]
async fn overlay_entries_leave_once_a_snapshot_has_them() {
    let (store, _) = store(Duration::from_secs(60), OnStale::Deny);
    store
        .apply(&synthetic_document_version(1, 8, 20, 10), SystemTime::now())
        .unwrap();
    let info = WorkInfo {
        promoter: SwaCode::parse("0000").unwrap(),
        highway_authority: SwaCode::parse("H000").unwrap(),
        workstream: Workstream::parse("001").unwrap(),
    };
    let (soon, later) = (work_reference(10), work_reference(500));
    store.created().insert(&soon, info);
    store.created().insert(&later, info);
    let s = store.current(SystemTime::now()).unwrap();
    let works = Works {
        snapshot: &s,
        created: store.created(),
    };
    assert_eq!(works.get(&soon), Some(info));
    assert_eq!(s.work(&soon), None);

    // Version 2 knows work 10 but not work 500.
    store
        .apply(&synthetic_document_version(2, 8, 20, 11), SystemTime::now())
        .unwrap();
    assert_eq!(store.created().get(&soon), None);
    assert_eq!(store.created().get(&later), Some(info));
    let s = store.current(SystemTime::now()).unwrap();
    let works = Works {
        snapshot: &s,
        created: store.created(),
    };
    assert!(works.get(&soon).is_some());
    assert_eq!(works.get(&later), Some(info));
    assert_eq!(store.created().len(), 1);

    // A rejected document prunes nothing.
    assert!(store.apply(b"[]", SystemTime::now()).is_err());
    assert_eq!(store.created().len(), 1);
}

#[tokio::test]
async fn file_source_picks_up_a_rewritten_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grants.json");
    std::fs::write(&path, doc(1)).unwrap();
    let (store, metrics) = store(Duration::from_secs(60), OnStale::Deny);
    let (tx, rx) = watch::channel(false);
    let source = GrantsSource::File {
        path: path.clone(),
        poll_interval: POLL,
    };
    let task = spawn_source(Arc::clone(&store), source, rx);
    assert!(
        eventually(PATIENCE, || async { version(&store) == Some(1) }).await,
        "timed out waiting for first snapshot"
    );
    assert!(
        eventually(PATIENCE, || async {
            fetches(&metrics, "not_modified") >= 2
        })
        .await,
        "timed out waiting for unchanged polls"
    );
    assert_eq!(
        fetches(&metrics, "ok"),
        1,
        "an unchanged file is not re-applied"
    );

    // Written elsewhere and renamed in, as a publisher should.
    let tmp = dir.path().join("grants.json.tmp");
    std::fs::write(&tmp, synthetic_document_version(2, 8, 20, 70)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(
        eventually(PATIENCE, || async { version(&store) == Some(2) }).await,
        "timed out waiting for second snapshot"
    );
    assert_eq!(store.current(SystemTime::now()).unwrap().work_count(), 70);

    std::fs::write(&path, b"{ not json").unwrap();
    assert!(
        eventually(PATIENCE, || async { fetches(&metrics, "invalid") >= 1 }).await,
        "timed out waiting for a counted corrupt file"
    );
    std::fs::remove_file(&path).unwrap();
    assert!(
        eventually(PATIENCE, || async { fetches(&metrics, "error") >= 1 }).await,
        "timed out waiting for a counted missing file"
    );
    assert_eq!(version(&store), Some(2));

    tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn source_stops_on_shutdown_even_mid_backoff() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (store, metrics) = store(Duration::from_secs(60), OnStale::Deny);
    let (tx, rx) = watch::channel(false);
    let source = GrantsSource::Url {
        url: format!("http://{addr}/"),
        poll_interval: Duration::from_secs(30),
        max_backoff: Duration::from_secs(600),
        long_poll: None,
        max_document_bytes: 1 << 30,
    };
    let task = spawn_source(store, source, rx);
    assert!(
        eventually(PATIENCE, || async { fetches(&metrics, "error") >= 1 }).await,
        "timed out waiting for a failed fetch"
    );
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("source stopped")
        .unwrap();
}
