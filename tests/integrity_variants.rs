//! Variants of the request-integrity classes beyond the examples each class was built from:
//! `swaCode` in the spellings qs and friends read, identity headers over HTTP/2, in trailers
//! and named in `Connection`, and organisation claims that are not SWA codes. Every rejection
//! checks the upstream never saw the request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn planner() -> String {
    token(&claims("user-a", "7001", &["Planner"]))
}

/// An identity header named in `Connection` goes with the hop, but ours are set after.
#[tokio::test]
async fn connection_naming_identity_or_forwarded_headers_cannot_drop_ours() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    let req = Request::get("/work/works/W1")
        .header("host", "gw.test")
        .header("token", planner())
        .header(
            "connection",
            "keep-alive, x-streetgate-user, X-Streetgate-Roles, x-forwarded-for, x-streetgate-decision-id, x-forwarded-proto",
        )
        .header("x-streetgate-user", "admin")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = send(w.gw.addr, req).await;
    assert_eq!(reply.status, 200);
    let seen = &w.upstream.seen()[0];
    assert_eq!(seen.headers["x-streetgate-user"], "user-a");
    assert_eq!(seen.headers["x-streetgate-roles"], "Planner");
    assert_eq!(seen.headers["x-streetgate-organisation"], "7001");
    assert!(seen.headers.contains_key("x-streetgate-decision-id"));
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
}

/// HTTP/2 carries only lowercase names; the identity family is stripped the same way.
#[tokio::test]
async fn identity_headers_over_http2_are_ours() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    let stream = tokio::net::TcpStream::connect(w.gw.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://gw.test/work/works/W1")
        .header("token", planner())
        .header("x-streetgate-user", "admin")
        .header("x-streetgate-roles", "StreetWorksAdmin")
        .header("x_streetgate_organisation", "9999")
        .header("x-streetgate-acting-organisation", "9999")
        .header("x-http-method-override", "DELETE")
        .header("x-forwarded-for", "10.9.9.9")
        .header("x_forwarded_for", "10.9.9.9")
        .header("forwarded", "for=10.9.9.9")
        .header("x-original-url", "/party/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = &w.upstream.seen()[0];
    let h = &seen.headers;
    assert_eq!(h["x-streetgate-user"], "user-a");
    assert_eq!(h["x-streetgate-roles"], "Planner");
    assert_eq!(h["x-streetgate-organisation"], "7001");
    assert_eq!(h.get_all("x-streetgate-user").iter().count(), 1);
    for gone in [
        "x_streetgate_organisation",
        "x-http-method-override",
        "x_forwarded_for",
        "forwarded",
        "x-original-url",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the upstream");
    }
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
}

/// A raw upstream recording the bytes it receives (trailers included), answering 200.
async fn raw_upstream() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // Read until the chunked body's end (`0\r\n...\r\n\r\n`) or a pause.
                loop {
                    match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf))
                        .await
                    {
                        Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                    let text = String::from_utf8_lossy(&got);
                    if text.contains("\r\n0\r\n") && text.ends_with("\r\n\r\n") {
                        break;
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tx.send(got);
            });
        }
    });
    (addr, rx)
}

/// Trailers of a streamed body are headers too: identity in them never reaches the upstream.
#[tokio::test]
async fn identity_in_request_trailers_never_reaches_the_upstream() {
    let (addr, mut rx) = raw_upstream().await;
    let jwks = JwksServer::start().await;
    let gw = sidecar(&config_yaml(
        &format!("http://{addr}"),
        &jwks.url(),
        DEFAULT_ROUTES,
        "",
    ))
    .await;
    let head = format!(
        "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\ntoken: {}\r\nTransfer-Encoding: chunked\r\nTrailer: x-streetgate-user, x-http-method-override\r\nTE: trailers\r\nConnection: close\r\n\r\n",
        planner()
    );
    let wire = format!(
        "{head}5\r\nhello\r\n0\r\nx-streetgate-user: admin\r\nX_Streetgate_Roles: StreetWorksAdmin\r\nx-http-method-override: DELETE\r\n\r\n"
    );
    let resp = raw(gw.addr, wire.as_bytes()).await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    let got = tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert_eq!(text.matches("x-streetgate-user:").count(), 1, "{text}");
    assert!(text.contains("x-streetgate-user: user-a"), "{text}");
    assert!(!text.contains("admin"), "{text}");
    assert!(!text.contains("streetworksadmin"), "{text}");
    assert!(!text.contains("delete"), "{text}");
}

/// The organisation claim names an organisation: one that is not a SWA code is refused at
/// authentication, on role-only routes too.
#[tokio::test]
async fn an_organisation_claim_that_is_not_a_swa_code_is_token_claims() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    for org in [
        "70 01",
        "7001 ",
        "70001",
        "700",
        "7001,7002",
        "7-01",
        "7001\t",
    ] {
        let t = token(&claims("user-a", org, &["Planner"]));
        let reply = send(w.gw.addr, get("/work/works/W1", Some(&t))).await;
        assert_eq!(reply.status, 401, "{org:?}");
        assert_eq!(reply.reason(), "token_claims", "{org:?}");
    }
    // A subject at exactly the limit passes, one byte over does not.
    let at = "a".repeat(256);
    let over = "a".repeat(257);
    let reply = send(
        w.gw.addr,
        get(
            "/work/works/W1",
            Some(&token(&claims(&over, "7001", &["Planner"]))),
        ),
    )
    .await;
    assert_eq!(reply.reason(), "token_claims");
    assert_eq!(w.upstream.count(), 0);
    let reply = send(
        w.gw.addr,
        get(
            "/work/works/W1",
            Some(&token(&claims(&at, "7001", &["Planner"]))),
        ),
    )
    .await;
    assert_eq!(reply.status, 200);
}

/// Escaped literal segments and other case: the router either matches what the upstream
/// decodes to, or refuses; an escape never moves a request between routes.
#[tokio::test]
async fn escaped_or_recased_literal_segments_never_reach_another_route() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    let contractor = token(&claims("dig-1", "C901", &["Contractor"]));
    for path in [
        "/work/wor%6Bs/W1",
        "/work/WORKS/W1",
        "/wor%6B/works/W1",
        "/work/%73tatus",
        "/work/Status",
        "/work/works/W1%2fx",
        "/work/works/W1%C0%AE",
        "/work/works/%C0%AE%C0%AE",
        "/work/works/W1%E0%80%AF",
        "/work/works/W1%ED%A0%80",
        "/work/works/%252E%252E",
    ] {
        let reply = send(w.gw.addr, get(path, Some(&contractor))).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 404),
            "{path}: {}",
            reply.status
        );
    }
    assert_eq!(w.upstream.count(), 0);
}

/// `trusted_proxies` with IPv6: a peer on ::1 is trusted by `::1/128` (or `::/0`), not by
/// another network, and a trusted peer whose client sent no X-Forwarded-For gets its own address.
#[tokio::test]
async fn trusted_proxies_over_ipv6() {
    // Needs an IPv6 loopback; a machine without one fails here rather than passing unseen.
    std::net::TcpListener::bind("[::1]:0").expect("an IPv6 loopback ([::1])");
    for (nets, client_xff, expected) in [
        ("['::1/128']", Some("203.0.113.7"), "203.0.113.7, ::1"),
        ("['::/0']", Some("2001:db8::7"), "2001:db8::7, ::1"),
        ("['::1/128']", None, "::1"),
        (
            "['2001:db8::/32', 127.0.0.1/32]",
            Some("203.0.113.7"),
            "::1",
        ),
        ("['::ffff:0:0/96']", Some("203.0.113.7"), "::1"),
    ] {
        let upstream = Upstream::start().await;
        let jwks = JwksServer::start().await;
        let yaml = config_yaml(&upstream.url(), &jwks.url(), DEFAULT_ROUTES, "")
            .replacen("addr: 127.0.0.1:0", "addr: '[::1]:0'", 1)
            .replace(
                "  idle_timeout: 2s\n",
                &format!("  idle_timeout: 2s\n  trusted_proxies: {nets}\n"),
            );
        let gw = sidecar(&yaml).await;
        assert!(gw.addr.is_ipv6());
        let mut req = Request::get("/work/works/W1")
            .header("host", "gw.test")
            .header("token", planner());
        if let Some(xff) = client_xff {
            req = req
                .header("x-forwarded-for", xff)
                .header("x-forwarded-proto", "https");
        }
        let reply = send(gw.addr, req.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(reply.status, 200, "{nets}");
        let seen = &upstream.seen()[0];
        assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(
            seen.headers["x-forwarded-for"], expected,
            "{nets} {client_xff:?}"
        );
    }
}
