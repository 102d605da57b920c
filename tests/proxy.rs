//! End-to-end: a real upstream, a real JWKS server and the sidecar on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

async fn world() -> World {
    World::start(DEFAULT_ROUTES, "").await
}

fn planner() -> String {
    token(&claims("user-a", "7001", &["Planner", "API"]))
}

#[tokio::test]
async fn allowed_request_is_forwarded_with_our_identity_only() {
    let w = world().await;
    let req = Request::get("/work/works/NW001%2D1?swaCode=7001&x=1")
        .header("host", "gw.test")
        .header("token", planner())
        .header("x-streetgate-user", "admin")
        .header("X-Streetgate-Roles", "Admin")
        .header("x-streetgate-decision-id", "forged")
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "secret")
        .header("keep-alive", "timeout=5")
        .header("x-forwarded-for", "10.1.1.1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = send(w.gw.addr, req).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let seen = w.upstream.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(
        s.uri, "/work/works/NW001%2D1?swaCode=7001&x=1",
        "exact path and query"
    );
    assert_eq!(s.headers["x-streetgate-user"], "user-a");
    assert_eq!(s.headers["x-streetgate-organisation"], "7001");
    assert_eq!(s.headers["x-streetgate-roles"], "Planner,API");
    assert_eq!(s.headers.get_all("x-streetgate-user").iter().count(), 1);
    let id = s.headers["x-streetgate-decision-id"].to_str().unwrap();
    assert_ne!(id, "forged");
    assert_eq!(reply.headers["x-streetgate-decision-id"], id);
    assert!(!s.headers.contains_key("x-drop-me"));
    assert!(!s.headers.contains_key("keep-alive"));
    // Set, not appended: the peer is not a trusted proxy (header_integrity.rs has the rest).
    assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    assert_eq!(s.headers["host"], "gw.test");
}

#[tokio::test]
async fn missing_token_is_401_and_not_forwarded() {
    let w = world().await;
    let reply = send(w.gw.addr, get("/work/works/NW1", None)).await;
    assert_eq!(reply.status, 401);
    let body = reply.json();
    assert_eq!(body["reason"], "token_missing");
    assert_eq!(body["error"], "Unauthorized");
    assert_eq!(
        body["decision_id"].as_str().unwrap(),
        reply.headers["x-streetgate-decision-id"]
    );
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn bearer_token_is_accepted_too() {
    let w = world().await;
    let req = Request::get("/work/works/NW1")
        .header("host", "gw.test")
        .header("authorization", format!("Bearer {}", planner()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(w.gw.addr, req).await.status, 200);
    assert_eq!(w.upstream.count(), 1);
}

fn sign_with(header: &Header, claims: &serde_json::Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).unwrap()
}

/// Changes one character in the middle of a base64url string.
fn flip(s: &str) -> String {
    let mut bytes = s.as_bytes().to_vec();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

#[tokio::test]
async fn every_bad_token_is_401_with_its_reason_and_never_forwarded() {
    let w = world().await;
    let good = claims("user-a", "7001", &["Planner"]);
    let now = now();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good.clone();
        f(&mut c);
        token(&c)
    };
    let valid = token(&good);
    let (h, p, s) = {
        let mut parts = valid.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    let rsa_pub = std::fs::read(fixture("keys/rsa1.pub.pem")).unwrap();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("rsa1".into());
    let mut unknown_kid = Header::new(Algorithm::RS256);
    unknown_kid.kid = Some("nobody".into());
    let rsa1 =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("keys/rsa1.pem")).unwrap()).unwrap();
    let mut tampered_payload = good.clone();
    tampered_payload["roles"] = serde_json::json!(["HighwayAuthority"]);
    let mut crit = Header::new(Algorithm::RS256);
    crit.kid = Some("rsa1".into());
    let crit_token = {
        let header = serde_json::json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT", "crit": ["exp-ext"], "exp-ext": 1});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(good.to_string().as_bytes())
        );
        let sig =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &rsa1, Algorithm::RS256).unwrap();
        format!("{signing_input}.{sig}")
    };

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), p),
            "token_algorithm",
        ),
        (
            "HS/RS confusion",
            sign_with(&hs_header, &good, &EncodingKey::from_secret(&rsa_pub)),
            "token_algorithm",
        ),
        (
            "expired",
            with(&|c| {
                c["exp"] = (now - 60).into();
                c["iat"] = (now - 600).into();
                c["nbf"] = (now - 600).into();
            }),
            "token_expired",
        ),
        (
            "nbf in future",
            with(&|c| c["nbf"] = (now + 120).into()),
            "token_not_yet_valid",
        ),
        (
            "wrong iss",
            with(&|c| c["iss"] = "https://evil.test".into()),
            "token_issuer",
        ),
        (
            "wrong aud",
            with(&|c| c["aud"] = "other-api".into()),
            "token_audience",
        ),
        (
            "unknown kid",
            sign_with(&unknown_kid, &good, &rsa1),
            "token_unknown_key",
        ),
        (
            "tampered payload",
            format!("{h}.{}.{s}", b64(tampered_payload.to_string().as_bytes())),
            "token_signature",
        ),
        (
            "tampered signature",
            format!("{h}.{p}.{}", flip(&s)),
            "token_signature",
        ),
        (
            "oversized",
            with(&|c| c["pad"] = "x".repeat(10_000).into()),
            "token_too_large",
        ),
        ("garbage", "not.a.jwt".to_owned(), "token_malformed"),
        (
            "missing exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "token_claims",
        ),
        (
            "missing org",
            with(&|c| {
                c.as_object_mut().unwrap().remove("org");
            }),
            "token_claims",
        ),
        (
            "exclusive roles",
            with(&|c| c["roles"] = serde_json::json!(["Planner", "Contractor"])),
            "token_roles",
        ),
        ("unknown crit", crit_token, "token_claims"),
    ];
    for (name, tok, reason) in cases {
        let reply = send(w.gw.addr, get("/work/works/NW1", Some(&tok))).await;
        assert_eq!(reply.status, 401, "{name}: {:?}", reply.body);
        assert_eq!(reply.reason(), reason, "{name}");
    }
    assert_eq!(
        w.upstream.count(),
        0,
        "no rejected request reached the upstream"
    );
}

#[tokio::test]
async fn role_not_permitted_is_403() {
    let w = world().await;
    let tok = token(&claims("ha-1", "4020", &["HighwayAuthority"]));
    let req = Request::post("/work/works")
        .header("host", "gw.test")
        .header("token", tok)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let reply = send(w.gw.addr, req).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.reason(), "role_not_permitted");
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn unknown_route_is_404_and_public_route_needs_no_token() {
    let w = world().await;
    let reply = send(w.gw.addr, get("/work/nothing-here", Some(&planner()))).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.reason(), "route_not_found");
    let reply = send(w.gw.addr, get("/work/works/NW1/extra", Some(&planner()))).await;
    assert_eq!(reply.status, 404);
    let reply = send(
        w.gw.addr,
        Request::delete("/work/works/NW1")
            .header("host", "h")
            .header("token", planner())
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(w.upstream.count(), 0);
    let reply = send(w.gw.addr, get("/work/status", None)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(w.upstream.count(), 1);
}

#[tokio::test]
async fn ambiguous_targets_are_400_and_never_forwarded() {
    let w = world().await;
    let tok = planner();
    for path in [
        "/work/works/../works/NW1",
        "/work/works/./NW1",
        "/work/works/%2e%2e/NW1",
        "/work/works/%2E/NW1",
        "/work/works/NW1%2f..",
        "/work/works/NW1%2F",
        "/work/works/NW1%5cx",
        "/work/works/NW1\\x",
        "/work/works/NW1%00",
        "/work/works/NW1%zz",
        "/work/works/%C3%28",
        "/work//works/NW1",
        "/work/works/NW1;v=1",
    ] {
        let resp = raw(
            w.gw.addr,
            format!(
                "GET {path} HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        let status = raw_status(&resp);
        assert!(status == 400, "{path}: {resp}");
        if status == 400 && resp.contains("\"reason\"") {
            assert!(
                resp.contains("bad_path") || resp.contains("bad_target"),
                "{path}: {resp}"
            );
        }
    }
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn smuggling_and_host_tricks_are_400_and_never_forwarded() {
    let w = world().await;
    let tok = planner();
    let cases = [
        (
            "CL+TE",
            format!(
                "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
            ),
            "bad_framing",
        ),
        (
            "no Host",
            format!("GET /work/works/NW1 HTTP/1.1\r\ntoken: {tok}\r\nConnection: close\r\n\r\n"),
            "bad_host",
        ),
        (
            "two Hosts",
            format!(
                "GET /work/works/NW1 HTTP/1.1\r\nHost: gw.test\r\nHost: evil.test\r\ntoken: {tok}\r\nConnection: close\r\n\r\n"
            ),
            "bad_host",
        ),
        (
            "absolute-form other host",
            format!(
                "GET http://evil.test/work/works/NW1 HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\nConnection: close\r\n\r\n"
            ),
            "bad_target",
        ),
    ];
    for (name, req, reason) in cases {
        let resp = raw(w.gw.addr, req.as_bytes()).await;
        assert_eq!(raw_status(&resp), 400, "{name}: {resp}");
        assert!(resp.contains(reason), "{name}: {resp}");
    }
    // Raw non-ASCII bytes in the path.
    let mut req = b"GET /work/works/NW\xc3\xa91 HTTP/1.1\r\nHost: gw.test\r\n".to_vec();
    req.extend_from_slice(format!("token: {tok}\r\nConnection: close\r\n\r\n").as_bytes());
    let resp = raw(w.gw.addr, &req).await;
    assert_eq!(raw_status(&resp), 400, "non-ASCII: {resp}");
    assert_eq!(w.upstream.count(), 0);

    // The same-host absolute form is accepted and forwarded as origin-form.
    let resp = raw(w.gw.addr, format!("GET http://gw.test/work/works/NW1 HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\nConnection: close\r\n\r\n").as_bytes()).await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    assert_eq!(w.upstream.seen()[0].uri, "/work/works/NW1");
}

#[tokio::test]
async fn bodies_stream_both_ways_and_oversized_bodies_are_413() {
    let upstream = Upstream::with(Arc::new(|seen: &Seen| {
        http::Response::new(Full::new(seen.body.clone()))
    }))
    .await;
    let World { upstream, gw, .. } = World::with(upstream, DEFAULT_ROUTES, "").await;
    let payload: Vec<u8> = (0..900_000u32).map(|i| (i % 251) as u8).collect();
    let req = Request::post("/work/echo")
        .header("host", "gw.test")
        .header("token", planner())
        .body(Full::new(Bytes::from(payload.clone())))
        .unwrap();
    let reply = send(gw.addr, req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), payload.len());
    assert!(reply.body == payload);

    let big = vec![b'x'; 2 * 1024 * 1024];
    let req = Request::post("/work/echo")
        .header("host", "gw.test")
        .header("token", planner())
        .body(Full::new(Bytes::from(big)))
        .unwrap();
    let reply = send(gw.addr, req).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.reason(), "body_too_large");
    assert_eq!(upstream.count(), 1);
}

/// A body refused unread (no token: 401; too large by Content-Length: 413) is drained, not
/// cut off: the client sends all of it, reads the answer, and the HTTP/1 connection stays
/// usable. Closing on unread bytes would reset it and could destroy the answer.
#[tokio::test]
async fn bodies_refused_unread_are_drained_and_the_connection_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::with(Arc::new(|seen: &Seen| {
        http::Response::new(Full::new(seen.body.clone()))
    }))
    .await;
    let World { upstream, gw, .. } = World::with(upstream, DEFAULT_ROUTES, "").await;
    let token = planner();
    for (auth, len, status) in [
        ("", 3 * 1024 * 1024, "401"),
        (token.as_str(), 3 * 1024 * 1024, "413"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let token_line = if auth.is_empty() {
            String::new()
        } else {
            format!("token: {auth}\r\n")
        };
        let head = format!(
            "POST /work/echo HTTP/1.1\r\nhost: gw.test\r\n{token_line}content-length: {len}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The whole body, while the answer may already be on its way.
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..len / chunk.len() {
            stream.write_all(&chunk).await.unwrap();
        }
        // A second request on the same connection: answered only if the first body was drained.
        stream
            .write_all(b"GET /not-routed HTTP/1.1\r\nhost: gw.test\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let answered = tokio::time::timeout(PATIENCE, async {
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed after: {}", String::from_utf8_lossy(&seen));
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).matches("HTTP/1.1 ").count() == 2 {
                    break;
                }
            }
        })
        .await;
        let text = String::from_utf8_lossy(&seen).into_owned();
        assert!(answered.is_ok(), "two answers expected, got: {text}");
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
    }
    assert_eq!(
        upstream.count(),
        0,
        "refused bodies never reach the upstream"
    );
}

/// A client waiting for `100 Continue` gets its refusal at once and sends no body: nothing is
/// drained, and the connection does not sit waiting for a body that will never come.
#[tokio::test]
async fn a_refused_expect_continue_request_is_answered_and_not_held() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::with(Arc::new(|seen: &Seen| {
        http::Response::new(Full::new(seen.body.clone()))
    }))
    .await;
    let World { upstream, gw, .. } = World::with(upstream, DEFAULT_ROUTES, "").await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(
            b"POST /work/echo HTTP/1.1\r\nhost: gw.test\r\nexpect: 100-continue\r\ncontent-length: 1048576\r\n\r\n",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(closed.is_ok(), "the connection was held: {text}");
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    // Closed well before `listen.body_read_timeout` (10 s) would end a drain.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn upstream_refusing_is_502_and_slow_upstream_is_504() {
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let jwks = JwksServer::start().await;
    // One sidecar per broken upstream; the reply to a planner's GET.
    let through = |upstream: std::net::SocketAddr| {
        let yaml = config_yaml(
            &format!("http://{upstream}"),
            &jwks.url(),
            DEFAULT_ROUTES,
            "",
        );
        async move {
            let gw = sidecar(&yaml).await;
            send(gw.addr, get("/work/works/NW1", Some(&planner()))).await
        }
    };
    let reply = through(closed).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.reason(), "upstream_unavailable");

    // An upstream that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let reply = through(silent_addr).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.reason(), "upstream_timeout");

    // An upstream that resets the connection.
    let resetter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reset_addr = resetter.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = resetter.accept().await {
            // Zero linger makes the close a TCP reset; it cannot block here.
            #[allow(deprecated)]
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s);
        }
    });
    let reply = through(reset_addr).await;
    assert_eq!(reply.status, 502);
}

#[tokio::test]
async fn header_limits_are_enforced() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    let mut many = String::from("GET /work/status HTTP/1.1\r\nHost: gw.test\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    let resp = raw(w.gw.addr, many.as_bytes()).await;
    assert_eq!(raw_status(&resp), 431, "{resp}");
    let huge = format!(
        "GET /work/status HTTP/1.1\r\nHost: gw.test\r\nx-big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(40_000)
    );
    let resp = raw(w.gw.addr, huge.as_bytes()).await;
    assert_eq!(raw_status(&resp), 431, "{resp}");
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = world().await;
    // Slow client: half a request line, then nothing. The 2 s header timeout closes it.
    let mut s = tokio::net::TcpStream::connect(w.gw.addr).await.unwrap();
    s.write_all(b"GET /work/status HTTP/1.1\r\nHost: gw")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "slow client still connected after 6 s");

    // Idle keep-alive: one request, then silence; closed after the 2 s idle timeout.
    let mut s = tokio::net::TcpStream::connect(w.gw.addr).await.unwrap();
    s.write_all(b"GET /work/status HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "idle connection still open after 6 s");
}

#[tokio::test]
async fn tls_serves_http1_and_h2_by_alpn_or_by_preface_without_alpn() {
    let cert = fixture("tls/cert.pem");
    let key = fixture("tls/key.pem");
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let yaml = config_yaml(&upstream.url(), &jwks.url(), DEFAULT_ROUTES, "").replace(
        "  max_body_bytes: 1048576\n",
        &format!(
            "  max_body_bytes: 1048576\n  tls:\n    cert: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    );
    let gw = sidecar(&yaml).await;

    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(fixture("tls/ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    use rustls_pki_types::pem::PemObject;
    // No ALPN: the listener tells HTTP/2 from HTTP/1 by the prior-knowledge preface.
    for (alpn, version) in [
        (Some(b"h2".to_vec()), http::Version::HTTP_2),
        (Some(b"http/1.1".to_vec()), http::Version::HTTP_11),
        (None, http::Version::HTTP_2),
        (None, http::Version::HTTP_11),
    ] {
        let mut client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        client_config.alpn_protocols = alpn.into_iter().collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let tls = connector
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let io = hyper_util::rt::TokioIo::new(tls);
        let resp = if version == http::Version::HTTP_2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let req = Request::get(format!(
                "https://localhost:{}/work/works/NW1",
                gw.addr.port()
            ))
            .header("token", planner())
            .body(Full::new(Bytes::new()))
            .unwrap();
            sender.send_request(req).await.unwrap()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            sender
                .send_request(get("/work/works/NW1", Some(&planner())))
                .await
                .unwrap()
        };
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), version);
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|s| s.headers["x-forwarded-proto"] == "https")
    );
    assert_eq!(
        seen[0].headers["host"],
        format!("localhost:{}", gw.addr.port())
    );
}

#[tokio::test]
async fn admin_reports_health_readiness_and_decisions() {
    let w = world().await;
    let health = send(w.gw.admin_addr, get("/healthz", None)).await;
    assert_eq!(health.status, 200);
    let ready = send(w.gw.admin_addr, get("/readyz", None)).await;
    assert_eq!(ready.status, 200);

    send(w.gw.addr, get("/work/works/NW1", Some(&planner()))).await;
    send(w.gw.addr, get("/work/works/NW1", None)).await;
    send(w.gw.addr, get("/nowhere", None)).await;
    let scrape = metrics(&w.gw).await;
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_decisions_total{decision="allow",reason="role_granted",route="GetWork"}"#
        ),
        1.0,
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_decisions_total{decision="deny",reason="token_missing",route="GetWork"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_decisions_total{decision="deny",reason="route_not_found",route="_unmatched"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn not_ready_until_keys_load_and_then_503_nothing_forwarded() {
    // JWKS URL that refuses connections: keys never load.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let upstream = Upstream::start().await;
    let yaml = config_yaml(
        &upstream.url(),
        &format!("http://{closed}/jwks"),
        DEFAULT_ROUTES,
        "",
    );
    let config = streetgate::config::Config::from_yaml(&yaml).unwrap();
    let gw = streetgate::app::start(config, streetgate::telemetry::metrics::Metrics::new())
        .await
        .unwrap();
    let ready = send(gw.admin_addr, get("/readyz", None)).await;
    assert_eq!(ready.status, 503);
    let reply = send(gw.addr, get("/work/works/NW1", Some(&planner()))).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.reason(), "keys_unavailable");
    assert_eq!(upstream.count(), 0);
    // Public routes don't need keys.
    assert_eq!(send(gw.addr, get("/work/status", None)).await.status, 200);
}

// === Framing guard (hyper hides Content-Length when Transfer-Encoding is present) ===

/// Splits a raw keep-alive exchange into (status, body) per response; every response here
/// carries a Content-Length.
fn raw_responses(raw: &str) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = &rest[..end];
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("response with content-length");
        let body = &rest[end + 4..end + 4 + len];
        out.push((raw_status(head), body.to_owned()));
        rest = &rest[end + 4 + len..];
    }
    out
}

fn assert_bad_framing(name: &str, resp: &str) {
    assert_eq!(raw_status(resp), 400, "{name}: {resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{name}: {resp}"
    );
    let (_, body) = &raw_responses(resp)[0];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["reason"], "bad_framing", "{name}");
    assert_eq!(v["error"], "Bad Request", "{name}");
    assert!(v["decision_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn content_length_with_transfer_encoding_or_repeated_is_bad_framing() {
    let w = world().await;
    let tok = planner();
    let cases = [
        (
            "CL then TE",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "TE then CL",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        ),
        (
            "TE then invalid CL",
            "Transfer-Encoding: chunked\r\nContent-Length: five\r\n",
        ),
    ];
    for (name, framing) in cases {
        let req = format!(
            "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\n{framing}\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        assert_bad_framing(name, &raw(w.gw.addr, req.as_bytes()).await);
    }
    for (name, lengths) in [
        ("repeated CL", "Content-Length: 5\r\nContent-Length: 5\r\n"),
        (
            "repeated CL, apart",
            "Content-Length: 5\r\nX-Other: 1\r\ncontent-length: 5\r\n",
        ),
    ] {
        let req = format!(
            "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\n{lengths}\r\nhello"
        );
        assert_bad_framing(name, &raw(w.gw.addr, req.as_bytes()).await);
    }
    assert_eq!(w.upstream.count(), 0);
    let scrape = metrics(&w.gw).await;
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_decisions_total{decision="deny",reason="bad_framing",route="_unmatched"}"#
        ),
        5.0,
        "{scrape}"
    );
}

#[tokio::test]
async fn bad_second_request_on_a_keep_alive_connection_is_rejected() {
    let w = world().await;
    let tok = planner();
    let good = format!("GET /work/works/NW1 HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\n\r\n");
    let bad = format!(
        "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    let after = format!("GET /work/works/NW3 HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\n\r\n");

    // Pipelined in one write: the good one is answered, the bad one is not forwarded and
    // ends the connection, so the third is never read.
    let resp = raw(w.gw.addr, format!("{good}{bad}{after}").as_bytes()).await;
    let statuses: Vec<u16> = raw_responses(&resp).iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 400], "{resp}");
    assert!(resp.contains("bad_framing"), "{resp}");
    let seen = w.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/work/works/NW1");

    // One after the other on the same connection.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(w.gw.addr).await.unwrap();
    stream.write_all(good.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = stream.read(&mut first).await.unwrap();
    assert_eq!(raw_status(&String::from_utf8_lossy(&first[..n])), 200);
    assert_eq!(w.upstream.count(), 2);
    stream.write_all(bad.as_bytes()).await.unwrap();
    let mut second = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut second))
        .await
        .expect("connection closed after the rejection")
        .unwrap();
    assert_bad_framing("second on keep-alive", &String::from_utf8_lossy(&second));
    assert_eq!(
        w.upstream.count(),
        2,
        "the bad request never reached the upstream"
    );
}

#[tokio::test]
async fn chunked_and_length_bodies_are_forwarded_intact_and_followed() {
    let upstream = Upstream::with(Arc::new(|seen: &Seen| {
        http::Response::new(Full::new(seen.body.clone()))
    }))
    .await;
    let World { upstream, gw, .. } = World::with(upstream, DEFAULT_ROUTES, "").await;
    let tok = planner();
    // A body that looks like a smuggled request must stay a body.
    let fake = "GET /work/works/EVIL HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let stream = format!(
        "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\nTransfer-Encoding: chunked\r\n\r\n\
         6;name=\"v\"\r\nhello \r\n\
         {:x}\r\n{fake}\r\n\
         0\r\nX-Trailer: t\r\n\r\n\
         POST /work/echo HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\nContent-Length: {}\r\n\r\n{fake}\
         GET /work/status HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
        fake.len(),
        fake.len(),
    );
    let resp = raw(gw.addr, stream.as_bytes()).await;
    let answers = raw_responses(&resp);
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 200, 200], "{resp}");
    assert_eq!(answers[0].1, format!("hello {fake}"));
    assert_eq!(answers[1].1, fake);
    let seen = upstream.seen();
    let uris: Vec<&str> = seen.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["/work/echo", "/work/echo", "/work/status"]);
    assert_eq!(seen[0].body, format!("hello {fake}").as_bytes());
    assert_eq!(seen[1].body, fake.as_bytes());
}

#[tokio::test]
async fn prior_knowledge_http2_is_not_held_to_http1_framing() {
    let w = world().await;
    let tcp = tokio::net::TcpStream::connect(w.gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = Request::get(format!("http://{}/work/status", w.gw.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
    }
    assert_eq!(w.upstream.count(), 3);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_and_never_reaches_the_upstream_whole() {
    let w = world().await;
    let tok = planner();
    let chunk = vec![b'x'; 1024 * 1024];
    let mut req = format!(
        "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\ntoken: {tok}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..2 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let resp = raw(w.gw.addr, &req).await;
    assert_eq!(raw_status(&resp), 413, "{}", &resp[..resp.len().min(300)]);
    assert!(resp.contains("body_too_large"));
    assert!(
        w.upstream
            .seen()
            .iter()
            .all(|s| s.body.len() < 2 * chunk.len()),
        "the upstream never received the whole oversized body"
    );
}
