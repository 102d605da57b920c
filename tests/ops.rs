//! Operating the sidecar: hot reload (also under traffic, also broken), graceful shutdown with
//! a slow upstream, rate limits, shadow mode, and metrics checked by exact deltas and promtool.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

fn planner() -> String {
    token(&claims("user-a", "7001", &["Planner", "API"]))
}

fn authority() -> String {
    token(&claims("user-h", "4020", &["HighwayAuthority", "API"]))
}

const EXTRA_ROUTE: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, HighwayAuthority, Contractor]}
      - id: Status
        route: GET /status
        allow: public
      - id: GetPermit
        route: GET /permits/{permitReferenceNumber}
        allow: {roles: [Planner]}
"#;

fn write(path: &Path, text: &str) {
    // Write then rename, as editors and ConfigMap updates do: a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn reload_count(gw: &Running, result: &str) -> f64 {
    sample(
        &metrics(gw).await,
        &format!(r#"streetgate_config_reload_total{{result="{result}"}}"#),
    )
}

// === hot reload ===

#[tokio::test]
async fn reload_swaps_routes_and_a_broken_reload_changes_nothing() {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let base = config_yaml(&upstream.url(), &jwks.url(), DEFAULT_ROUTES, "");
    write(&path, &base);
    let gw = sidecar_from_file(&path).await;
    assert_eq!(reload_count(&gw, "ok").await, 0.0);
    assert_eq!(reload_count(&gw, "invalid").await, 0.0, "pre-created at 0");

    let permit = || get("/work/permits/P1", Some(&planner()));
    assert_eq!(send(gw.addr, permit()).await.status, 404);

    write(
        &path,
        &config_yaml(&upstream.url(), &jwks.url(), EXTRA_ROUTE, ""),
    );
    gw.reload().await.unwrap();
    assert_eq!(send(gw.addr, permit()).await.status, 200);
    assert_eq!(reload_count(&gw, "ok").await, 1.0);

    // Every kind of bad file: syntax, validation, a fixed setting, a broken TLS pair.
    let good = config_yaml(&upstream.url(), &jwks.url(), EXTRA_ROUTE, "");
    let not_yaml = "listen: [\n";
    let invalid = good.replace("allow: {roles: [Planner]}", "allow: {roles: [Wizard]}");
    let moved = good.replace("admin:\n  addr: 127.0.0.1:0", "admin:\n  addr: 127.0.0.1:1");
    let other_issuer = good.replace(ISSUER, "https://elsewhere.test");
    for (i, bad) in [not_yaml, &invalid, &moved, &other_issuer]
        .iter()
        .enumerate()
    {
        write(&path, bad);
        let err = gw.reload().await.unwrap_err();
        assert_eq!(err.result().as_str(), "invalid", "{err}");
        assert_eq!(reload_count(&gw, "invalid").await, (i + 1) as f64);
        assert_eq!(
            send(gw.addr, permit()).await.status,
            200,
            "old config stays"
        );
    }
    let upstream_before = upstream.count();
    // The route the broken files dropped or changed still decides as before.
    let denied = send(gw.addr, get("/work/permits/P1", Some(&authority()))).await;
    assert_eq!(denied.status, 403);
    assert_eq!(upstream.count(), upstream_before, "denial not forwarded");

    // A missing file is an error, not a change.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(gw.reload().await.unwrap_err().result().as_str(), "error");
    assert_eq!(reload_count(&gw, "error").await, 1.0);
    assert_eq!(send(gw.addr, permit()).await.status, 200);
    assert_eq!(reload_count(&gw, "ok").await, 1.0);
}

#[tokio::test]
async fn watch_reloads_when_the_file_changes() {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    write(
        &path,
        &config_yaml(&upstream.url(), &jwks.url(), DEFAULT_ROUTES, "watch: true"),
    );
    let gw = sidecar_from_file(&path).await;
    let permit = || get("/work/permits/P1", Some(&planner()));
    assert_eq!(send(gw.addr, permit()).await.status, 404);
    watcher_started(&gw).await;

    write(
        &path,
        &config_yaml(&upstream.url(), &jwks.url(), EXTRA_ROUTE, "watch: true"),
    );
    let picked_up = eventually(PATIENCE, || async {
        send(gw.addr, permit()).await.status == 200
    })
    .await;
    assert!(picked_up, "file change picked up");
    assert_eq!(reload_count(&gw, "ok").await, 1.0);

    // An invalid edit is counted once (not every poll) and changes nothing.
    write(&path, "listen: [\n");
    let counted = eventually(PATIENCE, || async {
        reload_count(&gw, "invalid").await > 0.0
    })
    .await;
    assert!(counted, "invalid edit counted");
    // The watcher looks twice more at the unchanged invalid file.
    let checks = gw.reloader.watch_checks();
    let looked = eventually(PATIENCE, || async {
        gw.reloader.watch_checks() >= checks + 2
    })
    .await;
    assert!(looked, "the watcher kept polling");
    assert_eq!(reload_count(&gw, "invalid").await, 1.0);
    assert_eq!(send(gw.addr, permit()).await.status, 200);
}

#[tokio::test]
async fn reload_under_continuous_traffic_loses_no_request() {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let a = config_yaml(&upstream.url(), &jwks.url(), DEFAULT_ROUTES, "");
    let b = config_yaml(
        &upstream.url(),
        &jwks.url(),
        EXTRA_ROUTE,
        "decision_log: {allow_sample_rate: 0.5}\nrate_limit: {per_user: 100000}",
    );
    write(&path, &a);
    let gw = Arc::new(sidecar_from_file(&path).await);
    let token = planner();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (gw, token, stop, sent, ok) = (
            gw.clone(),
            token.clone(),
            stop.clone(),
            sent.clone(),
            ok.clone(),
        );
        clients.push(tokio::spawn(async move {
            // Half the clients keep one connection across every reload, half reconnect.
            let mut conn = None;
            while !stop.load(Ordering::Relaxed) {
                let req = get("/work/works/NW1", Some(&token));
                sent.fetch_add(1, Ordering::Relaxed);
                let status = if client % 2 == 0 {
                    send(gw.addr, req).await.status
                } else {
                    if conn.is_none() {
                        let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
                        let (sender, c) =
                            hyper::client::conn::http1::handshake(TokioIo::new(stream))
                                .await
                                .unwrap();
                        tokio::spawn(c);
                        conn = Some(sender);
                    }
                    let sender = conn.as_mut().unwrap();
                    let resp = sender.send_request(req).await.unwrap();
                    let status = resp.status();
                    resp.into_body().collect().await.unwrap();
                    status
                };
                if status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let not_ready = Arc::new(AtomicUsize::new(0));
    let readiness = {
        let (gw, stop, not_ready) = (gw.clone(), stop.clone(), not_ready.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(10));
            while !stop.load(Ordering::Relaxed) {
                if send(gw.admin_addr, get("/readyz", None)).await.status != 200 {
                    not_ready.fetch_add(1, Ordering::Relaxed);
                }
                every.tick().await;
            }
        })
    };

    // Each reload happens once more traffic has flowed, and traffic flows after the last.
    let traffic_flows = || {
        let before = sent.load(Ordering::Relaxed);
        let sent = sent.clone();
        async move {
            let flowed = eventually(PATIENCE, || async {
                sent.load(Ordering::Relaxed) >= before + 5
            })
            .await;
            assert!(flowed, "traffic stalled");
        }
    };
    let reloads = 6;
    for i in 0..reloads {
        traffic_flows().await;
        write(&path, if i % 2 == 0 { &b } else { &a });
        gw.reload().await.unwrap();
    }
    traffic_flows().await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    readiness.await.unwrap();

    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 20, "traffic flowed during the reloads: {sent}");
    assert_eq!(
        ok.load(Ordering::Relaxed),
        sent,
        "every request answered 200"
    );
    assert_eq!(upstream.count(), sent, "every request reached the upstream");
    assert_eq!(
        not_ready.load(Ordering::Relaxed),
        0,
        "readiness never flapped"
    );
    assert_eq!(reload_count(&gw, "ok").await, reloads as f64);
}

// === TLS reload ===

fn tls_yaml(upstream: &str, jwks: &str, cert: &Path, key: &Path) -> String {
    config_yaml(upstream, jwks, DEFAULT_ROUTES, "").replace(
        "  max_body_bytes: 1048576\n",
        &format!(
            "  max_body_bytes: 1048576\n  tls:\n    cert: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    )
}

/// The certificate the sidecar presents on a new TLS connection (the client trusts both CAs).
async fn presented_cert(addr: std::net::SocketAddr) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in ["tls/ca.pem", "tls/ca2.pem"] {
        for c in rustls_pki_types::CertificateDer::pem_file_iter(fixture(ca)).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn cert_der(name: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(fixture(name))
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn tls_certificate_reloads_and_a_bad_key_keeps_the_old_one() {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Fixed paths whose contents are replaced, as a cert-manager Secret mount does.
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(fixture("tls/cert.pem"), &cert).unwrap();
    std::fs::copy(fixture("tls/key.pem"), &key).unwrap();
    let path = dir.path().join("config.yaml");
    write(&path, &tls_yaml(&upstream.url(), &jwks.url(), &cert, &key));
    let gw = sidecar_from_file(&path).await;
    assert_eq!(presented_cert(gw.addr).await, cert_der("tls/cert.pem"));

    std::fs::copy(fixture("tls/cert2.pem"), &cert).unwrap();
    std::fs::copy(fixture("tls/key2.pem"), &key).unwrap();
    gw.reload().await.unwrap();
    assert_eq!(presented_cert(gw.addr).await, cert_der("tls/cert2.pem"));

    // A key that does not match the certificate: rejected, the working pair stays.
    std::fs::copy(fixture("tls/key.pem"), &key).unwrap();
    assert_eq!(gw.reload().await.unwrap_err().result().as_str(), "invalid");
    assert_eq!(presented_cert(gw.addr).await, cert_der("tls/cert2.pem"));

    // Turning TLS off needs a restart.
    write(
        &path,
        &config_yaml(&upstream.url(), &jwks.url(), DEFAULT_ROUTES, ""),
    );
    assert_eq!(gw.reload().await.unwrap_err().result().as_str(), "invalid");
    assert_eq!(presented_cert(gw.addr).await, cert_der("tls/cert2.pem"));
}

// === graceful shutdown ===

async fn slow_world(delay: Duration, drain: &str) -> (Upstream, JwksServer, Running) {
    let upstream = Upstream::with_delay(
        delay,
        Arc::new(|_: &Seen| json_response(StatusCode::OK, r#"{"slow":true}"#)),
    )
    .await;
    let jwks = JwksServer::start().await;
    let yaml = config_yaml(
        &upstream.url(),
        &jwks.url(),
        DEFAULT_ROUTES,
        &format!("shutdown: {{drain: {drain}}}"),
    )
    .replace("request_timeout: 1s", "request_timeout: 10s");
    let gw = sidecar(&yaml).await;
    (upstream, jwks, gw)
}

/// Waits for the `watch: true` watcher's first look at the files: it fingerprints them when it
/// starts, so a change written before that would be its starting point, not a change.
async fn watcher_started(gw: &Running) {
    let looked = eventually(PATIENCE, || async { gw.reloader.watch_checks() >= 1 }).await;
    assert!(looked, "the watcher never looked at the files");
}

async fn wait_in_flight(gw: &Running, n: i64) {
    let reached = eventually(PATIENCE, || async {
        gw.gateway.metrics.requests_in_flight.get() == n
    })
    .await;
    assert!(reached, "never reached {n} requests in flight");
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let (upstream, _jwks, gw) = slow_world(Duration::from_millis(1500), "10s").await;
    let (addr, admin) = (gw.addr, gw.admin_addr);
    let in_flight =
        tokio::spawn(async move { send(addr, get("/work/works/NW1", Some(&planner()))).await });
    wait_in_flight(&gw, 1).await;
    assert_eq!(send(admin, get("/readyz", None)).await.status, 200);

    let stopping = tokio::spawn(gw.shutdown());
    // Readiness fails at once, while the admin port still answers.
    let unready = eventually(PATIENCE, || async {
        send(admin, get("/readyz", None)).await.status != 200
    })
    .await;
    assert!(unready, "readiness still 200 during the drain");
    let ready = send(admin, get("/readyz", None)).await;
    assert_eq!(ready.status, 503);
    assert!(String::from_utf8_lossy(&ready.body).contains("shutting down"));
    // New connections are refused.
    let refused = eventually(PATIENCE, || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(refused, "listener still accepting during drain");
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the in-flight request"
    );

    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["slow"], true);
    assert_eq!(upstream.count(), 1);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown completes once drained")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "admin closed after the drain"
    );
}

/// A connection that has not finished its first bytes (nothing yet, half an HTTP/2 preface,
/// half a head) holds no request: shutdown closes it at once instead of waiting for the
/// header-read timeout or the drain time.
#[tokio::test]
async fn shutdown_does_not_wait_for_connections_still_opening() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_upstream, _jwks, gw) = slow_world(Duration::from_millis(10), "30s").await;
    let mut opening = Vec::new();
    for first in [
        &b""[..],
        b"PRI * HTTP/2",
        b"GET /work/works/NW1 HTTP/1.1\r\nHost: x\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        stream.write_all(first).await.unwrap();
        opening.push(stream);
    }
    let connections = &gw.gateway.metrics.worker_connections;
    let accepted = eventually(PATIENCE, || async {
        let per_worker = (0..8).map(|i| connections.with_label_values(&[&i.to_string()]).get());
        per_worker.sum::<u64>() >= 3
    })
    .await;
    assert!(accepted, "the connections were never accepted");
    tokio::time::timeout(Duration::from_secs(5), gw.shutdown())
        .await
        .expect("shutdown does not wait for the header-read timeout (10 s) or the drain (30 s)");
    for mut stream in opening {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "closed without an answer: {read:?} {rest:?}"
        );
    }
}

#[tokio::test]
async fn shutdown_gives_up_on_requests_slower_than_the_drain_time() {
    let (_upstream, _jwks, gw) = slow_world(Duration::from_secs(20), "300ms").await;
    let addr = gw.addr;
    let in_flight = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
            .send_request(get("/work/works/NW1", Some(&planner())))
            .await
            .map(|r| r.status())
    });
    wait_in_flight(&gw, 1).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), gw.shutdown())
        .await
        .expect("shutdown is bounded by the drain time, not the upstream");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The connection is closed under the client, long before the 20 s upstream would answer.
    let outcome = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("connection closed once the drain time is over")
        .unwrap();
    assert!(outcome.is_err(), "cut off, not answered: {outcome:?}");
}

// === rate limiting ===

#[tokio::test]
async fn per_ip_limit_answers_429_with_retry_after_and_forwards_nothing() {
    let World { upstream, gw, .. } = World::start(DEFAULT_ROUTES, "rate_limit: {per_ip: 3}").await;
    // Public route: the per-IP limit applies before (and without) authentication.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let reply = send(gw.addr, get("/work/status", None)).await;
        statuses.push(reply.status.as_u16());
        if reply.status == 429 {
            limited = Some(reply);
        }
    }
    // A burst of 3 in well under a second; at most one more token refills meanwhile.
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert!((3..=4).contains(&allowed), "{statuses:?}");
    let limited = limited.expect("over the limit");
    assert_eq!(limited.reason(), "rate_limited");
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(upstream.count(), allowed, "429s are never forwarded");
    let scrape = metrics(&gw).await;
    assert_eq!(
        sample(
            &scrape,
            // Limited before routing: the route is not looked up.
            r#"streetgate_decisions_total{decision="deny",reason="rate_limited",route="_unmatched"}"#
        ),
        (5 - allowed) as f64
    );
    // Retry-After is honest: after one second the client gets through again.
    gw.gateway.clock.advance(Duration::from_secs(1));
    assert_eq!(send(gw.addr, get("/work/status", None)).await.status, 200);
}

#[tokio::test]
async fn per_user_limit_counts_each_user_separately() {
    let World { upstream, gw, .. } =
        World::start(DEFAULT_ROUTES, "rate_limit: {per_user: 2}").await;
    let a = planner();
    let b = token(&claims("user-b", "7001", &["Planner"]));
    let mut a_limited = 0;
    for _ in 0..6 {
        if send(gw.addr, get("/work/works/NW1", Some(&a))).await.status == 429 {
            a_limited += 1;
        }
    }
    assert!(a_limited >= 3, "user a over its rate: {a_limited}");
    // Same IP, another user: its own budget.
    assert_eq!(
        send(gw.addr, get("/work/works/NW1", Some(&b))).await.status,
        200
    );
    // Public routes carry no user: only per-IP limits (none here) apply.
    for _ in 0..6 {
        assert_eq!(send(gw.addr, get("/work/status", None)).await.status, 200);
    }
    assert_eq!(upstream.count(), 6 - a_limited + 1 + 6);
}

// === shadow mode ===

#[tokio::test]
async fn global_shadow_forwards_denials_and_counts_them() {
    let World { upstream, gw, .. } = World::start(DEFAULT_ROUTES, "shadow: true").await;
    // An authority may not create works: denied by the rule, forwarded in shadow mode.
    let req = Request::post("/work/works")
        .header("host", "gw.test")
        .header("token", authority())
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let reply = send(gw.addr, req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.count(), 1);
    let scrape = metrics(&gw).await;
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_decisions_total{decision="shadow_deny",reason="role_not_permitted",route="CreateWork"}"#
        ),
        1.0,
        "{scrape}"
    );
    assert_eq!(
        count_or_zero(
            &scrape,
            r#"streetgate_decisions_total{decision="deny",reason="role_not_permitted",route="CreateWork"}"#
        ),
        0.0
    );
    // Shadow mode judges rules, not authentication: no token is still a 401.
    let reply = send(gw.addr, get("/work/works/NW1", None)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn per_route_shadow_forwards_only_that_route() {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let routes = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner]}
        shadow: true
      - id: CreateWork
        route: POST /works
        allow: {roles: [Planner]}
"#;
    let gw = sidecar(&config_yaml(&upstream.url(), &jwks.url(), routes, "")).await;
    let reply = send(gw.addr, get("/work/works/NW1", Some(&authority()))).await;
    assert_eq!(reply.status, 200, "shadowed route forwards");
    assert_eq!(upstream.count(), 1);
    let req = Request::post("/work/works")
        .header("host", "gw.test")
        .header("token", authority())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = send(gw.addr, req).await;
    assert_eq!(reply.status, 403, "other routes still enforce");
    assert_eq!(upstream.count(), 1);
    let scrape = metrics(&gw).await;
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_decisions_total{decision="shadow_deny",reason="role_not_permitted",route="GetWork"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_decisions_total{decision="deny",reason="role_not_permitted",route="CreateWork"}"#
        ),
        1.0
    );
}

// === metrics ===

#[tokio::test]
async fn metrics_change_by_exactly_what_the_requests_did() {
    let World { upstream, gw, .. } = World::start(DEFAULT_ROUTES, "").await;
    let before = metrics(&gw).await;
    let (t, h) = (planner(), authority());
    for _ in 0..3 {
        assert_eq!(
            send(gw.addr, get("/work/works/NW1", Some(&t))).await.status,
            200
        );
    }
    assert_eq!(
        send(gw.addr, get("/work/works/NW1", Some(&h))).await.status,
        200
    );
    assert_eq!(
        send(gw.addr, get("/work/works/NW1", None)).await.status,
        401
    );
    let post = Request::post("/work/echo")
        .header("host", "gw.test")
        .header("token", &h)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(gw.addr, post).await.status, 403);
    assert_eq!(send(gw.addr, get("/work/status", None)).await.status, 200);
    assert_eq!(send(gw.addr, get("/nowhere", None)).await.status, 404);
    let after = metrics(&gw).await;

    let delta = |name: &str| sample(&after, name) - count_or_zero(&before, name);
    let decisions = |route: &str, decision: &str, reason: &str| {
        delta(&format!(
            r#"streetgate_decisions_total{{decision="{decision}",reason="{reason}",route="{route}"}}"#
        ))
    };
    assert_eq!(
        decisions("GetWork", "allow", "role_granted"),
        4.0,
        "{after}"
    );
    assert_eq!(decisions("GetWork", "deny", "token_missing"), 1.0);
    assert_eq!(decisions("Echo", "deny", "role_not_permitted"), 1.0);
    assert_eq!(decisions("Status", "allow", "public"), 1.0);
    assert_eq!(decisions("_unmatched", "deny", "route_not_found"), 1.0);
    // Two distinct tokens: each verified once, then cached.
    assert_eq!(delta(r#"streetgate_token_cache_total{result="miss"}"#), 2.0);
    assert_eq!(delta(r#"streetgate_token_cache_total{result="hit"}"#), 3.0);
    // Only requests that reached a decision are timed (not the 401 or the 404).
    assert_eq!(delta("streetgate_decision_duration_seconds_count"), 6.0);
    assert_eq!(
        delta(r#"streetgate_upstream_duration_seconds_count{route="GetWork",status_class="2xx"}"#),
        4.0
    );
    assert_eq!(
        delta(r#"streetgate_upstream_duration_seconds_count{route="Status",status_class="2xx"}"#),
        1.0
    );
    assert_eq!(sample(&after, "streetgate_requests_in_flight"), 0.0);
    assert_eq!(upstream.count(), 5);
    // Fixed-enum series exist before anything happened to them.
    for series in [
        r#"streetgate_config_reload_total{result="invalid"}"#,
        r#"streetgate_jwks_refresh_total{result="error"}"#,
        r#"streetgate_snapshot_fetch_total{result="invalid"}"#,
    ] {
        assert!(
            after.lines().any(|l| l == format!("{series} 0")),
            "{series} missing:\n{after}"
        );
    }
}

/// Ignored by a plain `cargo test`, so a machine without promtool shows it as skipped; the
/// README's test command (and CI) runs it with `--include-ignored`, where a missing promtool fails.
#[tokio::test]
#[ignore = "needs promtool (Debian's prometheus package); run with --include-ignored"]
async fn live_scrape_passes_promtool() {
    let promtool = which("promtool").expect(
        "promtool on PATH: install Debian's prometheus package, or run without --include-ignored",
    );
    let World { gw, .. } = World::start(DEFAULT_ROUTES, "rate_limit: {per_ip: 1000}").await;
    send(gw.addr, get("/work/works/NW1", Some(&planner()))).await;
    send(gw.addr, get("/work/works/NW1", None)).await;
    send(gw.addr, get("/nowhere", None)).await;
    let scrape = metrics(&gw).await;
    assert!(scrape.contains("streetgate_decisions_total"));

    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape ---\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[tokio::test]
async fn reload_keeps_buckets_for_the_same_rates_and_applies_new_ones() {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let yaml = |extra: &str| config_yaml(&upstream.url(), &jwks.url(), DEFAULT_ROUTES, extra);
    write(&path, &yaml("rate_limit: {per_ip: 2}"));
    let gw = sidecar_from_file(&path).await;
    let status = || async { send(gw.addr, get("/work/status", None)).await.status };
    let mut limited = false;
    for _ in 0..10 {
        if status().await == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "per_ip: 2 limits within 10 requests");

    // Same rates (another setting changed): still over the limit, no free burst.
    write(&path, &yaml("rate_limit: {per_ip: 2}\nshadow: true"));
    gw.reload().await.unwrap();
    assert_eq!(status().await, 429);

    // A higher rate takes effect at once.
    write(&path, &yaml("rate_limit: {per_ip: 1000}"));
    gw.reload().await.unwrap();
    for _ in 0..20 {
        assert_eq!(status().await, 200);
    }
    // And no limit at all.
    write(&path, &yaml(""));
    gw.reload().await.unwrap();
    assert!(gw.gateway.runtime.load().limiter.is_none());
}

#[tokio::test]
async fn an_in_flight_request_finishes_under_the_config_it_started_with() {
    let upstream = Upstream::with_delay(
        Duration::from_millis(800),
        Arc::new(|_: &Seen| json_response(StatusCode::OK, r#"{"slow":true}"#)),
    )
    .await;
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    write(
        &path,
        &config_yaml(&upstream.url(), &jwks.url(), EXTRA_ROUTE, "")
            .replace("request_timeout: 1s", "request_timeout: 5s"),
    );
    let gw = sidecar_from_file(&path).await;
    let addr = gw.addr;
    let in_flight =
        tokio::spawn(async move { send(addr, get("/work/permits/P1", Some(&planner()))).await });
    wait_in_flight(&gw, 1).await;
    // The route disappears while the request waits on the upstream.
    write(
        &path,
        &config_yaml(&upstream.url(), &jwks.url(), DEFAULT_ROUTES, "")
            .replace("request_timeout: 1s", "request_timeout: 5s"),
    );
    gw.reload().await.unwrap();
    assert_eq!(
        send(gw.addr, get("/work/permits/P1", Some(&planner())))
            .await
            .status,
        404
    );
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["slow"], true);
}

#[tokio::test]
async fn watch_picks_up_a_renewed_certificate() {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(fixture("tls/cert.pem"), &cert).unwrap();
    std::fs::copy(fixture("tls/key.pem"), &key).unwrap();
    let path = dir.path().join("config.yaml");
    let yaml = tls_yaml(&upstream.url(), &jwks.url(), &cert, &key) + "watch: true\n";
    write(&path, &yaml);
    let gw = sidecar_from_file(&path).await;
    assert_eq!(presented_cert(gw.addr).await, cert_der("tls/cert.pem"));
    watcher_started(&gw).await;

    // Only the certificate files change (as cert-manager renews a Secret), not the config.
    write(
        &key,
        &std::fs::read_to_string(fixture("tls/key2.pem")).unwrap(),
    );
    write(
        &cert,
        &std::fs::read_to_string(fixture("tls/cert2.pem")).unwrap(),
    );
    let renewed = eventually(PATIENCE, || async {
        presented_cert(gw.addr).await == cert_der("tls/cert2.pem")
    })
    .await;
    assert!(renewed, "renewed certificate served");
}
