//! Request bodies through the whole sidecar (real upstream, JWKS, grants file, sockets): the
//! body fields that decide (promoter, authority, workstream), strict parsing, JSON media types,
//! deciding before reading, the body read timeout and the per-connection body budget, on
//! HTTP/1 and HTTP/2. Every rejection also checks that the upstream never saw the request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Shared with the other integrity tests: promoters 7001/7002, authorities 4020/4021, contractor
/// C901 and their users.
const GRANTS: &str = include_str!("fixtures/grants/integrity.json");

/// The shipped rules of the routes whose bodies decide something, plus two that read nothing.
const ROUTES: &str = r#"
      - id: CreateWork
        route: POST /works
        allow: {roles: [Planner, Contractor]}
        access: {create_in_workstream: {body: /workstream_prefix}}
        body_organisation: [/promoter_swa_code]
        body_authority: [/highway_authority_swa_code]
        creates_work:
          reference: /work_reference_number
          highway_authority: /highway_authority_swa_code
          workstream: /workstream_prefix
      - id: CreateForwardPlan
        route: POST /forward-plans
        allow: {roles: [Planner, Contractor]}
        access: {create_in_workstream: {body: /workstream_prefix}}
        body_organisation: [/promoter_swa_code]
        body_authority: [/highway_authority_swa_code]
      - id: CreateNonNotifiableSite
        route: POST /non-notifiable-works/sites
        allow: {roles: [Planner, Contractor]}
        access: {create_in_workstream: {body: /workstream_prefix}}
        body_organisation: [/promoter_swa_code]
        body_authority: [/highway_authority_swa_code]
      - id: CreatePermit
        route: POST /works/{workReferenceNumber}/permits
        allow: {roles: [Planner, Contractor]}
        access: {write_work: {path: workReferenceNumber}}
        organisation_member: true
        body_workstreams: [/workstream_prefix]
      - id: CreateSection81
        route: POST /section-81-works/section-81s
        allow: {roles: [HighwayAuthority]}
        body_organisation: [/highway_authority_swa_code]
      - id: GeneratePermitsCSV
        route: POST /permits/csv
        allow: {roles: [Planner, Contractor, HighwayAuthority]}
        body_organisation: [/swa_code]
      - id: Echo
        route: POST /echo
        allow: {roles: [Planner]}
"#;

const CREATES: [&str; 3] = [
    "/work/works",
    "/work/forward-plans",
    "/work/non-notifiable-works/sites",
];

/// A World with a grants file and `listen` extras (e.g. `body_read_timeout: 300ms`).
async fn world(listen: &str) -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.json");
    std::fs::write(&grants, GRANTS).unwrap();
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let extra = format!(
        "grants:\n  source:\n    file:\n      path: {}\n",
        grants.display()
    );
    let yaml = config_yaml(&upstream.url(), &jwks.url(), ROUTES, &extra).replacen(
        "  idle_timeout: 2s\n",
        &format!("  idle_timeout: 2s\n{listen}"),
        1,
    );
    let gw = sidecar(&yaml).await;
    let ready = eventually(Duration::from_secs(5), || async {
        gw.gateway.not_ready().is_empty()
    })
    .await;
    assert!(ready, "sidecar not ready: {:?}", gw.gateway.not_ready());
    (World { upstream, jwks, gw }, dir)
}

fn tok(sub: &str, org: &str, role: &str) -> String {
    token(&claims(sub, org, &[role]))
}

fn user_a() -> String {
    tok("user-a", "7001", "Planner")
}

fn post(path: &str, token: &str, content_type: Option<&str>, body: &[u8]) -> Request<Full<Bytes>> {
    let mut b = Request::post(path)
        .header("host", "gw.test")
        .header("token", token);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(Full::new(Bytes::copy_from_slice(body))).unwrap()
}

fn json_post(path: &str, token: &str, body: &str) -> Request<Full<Bytes>> {
    post(path, token, Some("application/json"), body.as_bytes())
}

/// Sends and checks status and reason; for a rejection, that nothing reached the upstream.
async fn expect(w: &World, request: Request<Full<Bytes>>, status: u16, reason: &str, case: &str) {
    let before = w.upstream.count();
    let reply = send(w.gw.addr, request).await;
    assert_eq!(reply.status.as_u16(), status, "{case}: {:?}", reply.body);
    if status >= 400 {
        assert_eq!(reply.reason(), reason, "{case}");
        assert_eq!(
            w.upstream.count(),
            before,
            "{case}: the upstream saw a rejected request"
        );
    } else {
        assert_eq!(w.upstream.count(), before + 1, "{case}: not forwarded");
    }
}

#[tokio::test]
async fn the_promoter_named_on_every_create_route_must_be_the_acting_organisation() {
    let (w, _dir) = world("").await;
    let dig = tok("dig-1", "C901", "Contractor");
    for path in CREATES {
        for other in ["7002", "4020", "C901", "0000"] {
            let body = format!(
                r#"{{"workstream_prefix":"001","promoter_swa_code":"{other}","highway_authority_swa_code":"4020"}}"#
            );
            let case = format!("{path} promoter {other}");
            expect(
                &w,
                json_post(path, &user_a(), &body),
                403,
                "other_organisation",
                &case,
            )
            .await;
        }
        // A contractor acts for the promoter its swaCode names: that one and no other.
        let body = r#"{"workstream_prefix":"001","promoter_swa_code":"C901","highway_authority_swa_code":"4020"}"#;
        let with_code = format!("{path}?swaCode=7001");
        expect(
            &w,
            json_post(&with_code, &dig, body),
            403,
            "other_organisation",
            "contractor",
        )
        .await;
        let body = r#"{"workstream_prefix":"001","promoter_swa_code":"7001","highway_authority_swa_code":"4020"}"#;
        expect(
            &w,
            json_post(&with_code, &dig, body),
            200,
            "",
            "contractor for 7001",
        )
        .await;
        expect(
            &w,
            json_post(path, &user_a(), body),
            200,
            "",
            "own promoter",
        )
        .await;
        // A promoter names the authority of the street, whichever it is.
        let body = r#"{"workstream_prefix":"002","promoter_swa_code":"7001","highway_authority_swa_code":"4021"}"#;
        expect(
            &w,
            json_post(path, &user_a(), body),
            200,
            "",
            "any authority",
        )
        .await;
    }
    let seen = w.upstream.seen();
    assert!(
        seen.iter()
            .all(|s| !s.body.windows(4).any(|x| x == b"7002"))
    );
}

#[tokio::test]
async fn a_highway_authority_acting_as_promoter_names_itself_as_the_authority() {
    let (w, _dir) = world("").await;
    let ha_planner = tok("ha-planner", "4020", "Planner");
    for path in CREATES {
        for (promoter, authority, status, reason) in [
            ("4020", "4021", 403, "other_organisation"),
            ("4020", "7001", 403, "other_organisation"),
            ("7001", "4020", 403, "other_organisation"),
            ("4020", "4020", 200, ""),
        ] {
            let body = format!(
                r#"{{"workstream_prefix":"001","promoter_swa_code":"{promoter}","highway_authority_swa_code":"{authority}"}}"#
            );
            let case = format!("{path} promoter {promoter} authority {authority}");
            expect(
                &w,
                json_post(path, &ha_planner, &body),
                status,
                reason,
                &case,
            )
            .await;
        }
    }
    // An authority's own record (section 81): its authority code is the caller's.
    let leeds = tok("ha-leeds", "4020", "HighwayAuthority");
    let s81 = "/work/section-81-works/section-81s";
    let body =
        |ha: &str| format!(r#"{{"highway_authority_swa_code":"{ha}","promoter_swa_code":"7001"}}"#);
    expect(
        &w,
        json_post(s81, &leeds, &body("4021")),
        403,
        "other_organisation",
        "s81 other",
    )
    .await;
    expect(
        &w,
        json_post(s81, &leeds, &body("4020")),
        200,
        "",
        "s81 own",
    )
    .await;
    // The export request's swa_code is the acting organisation too.
    let csv = "/work/permits/csv";
    expect(
        &w,
        json_post(csv, &user_a(), r#"{"swa_code":"7002"}"#),
        403,
        "other_organisation",
        "csv",
    )
    .await;
    expect(
        &w,
        json_post(csv, &user_a(), r#"{"swa_code":"7001"}"#),
        200,
        "",
        "csv own",
    )
    .await;
}

#[tokio::test]
async fn a_permit_naming_a_workstream_needs_full_write_there_and_never_000() {
    let (w, _dir) = world("").await;
    let permits = "/work/works/NW001/permits";
    let body = |ws: &str| format!(r#"{{"workstream_prefix":{ws}}}"#);
    for (ws, status, reason) in [
        (r#""000""#, 400, "default_workstream"),
        (r#""003""#, 403, "workstream_read_only"),
        (r#""004""#, 403, "workstream_no_access"),
        (r#""009""#, 403, "workstream_no_access"),
        (r#""00""#, 400, "bad_body"),
        ("1", 400, "bad_body"),
        (r#"["002"]"#, 400, "bad_body"),
        (r#""002""#, 200, ""),
        ("null", 200, ""),
    ] {
        expect(
            &w,
            json_post(permits, &user_a(), &body(ws)),
            status,
            reason,
            ws,
        )
        .await;
    }
    expect(
        &w,
        json_post(permits, &user_a(), "{}"),
        200,
        "",
        "no workstream named",
    )
    .await;
    // The work's own workstream still decides first: read-only on 003's work.
    expect(
        &w,
        json_post("/work/works/NW003/permits", &user_a(), &body(r#""002""#)),
        403,
        "workstream_read_only",
        "NW003",
    )
    .await;
    // A contractor acting for 7001 holds only 7001's grants to it.
    let dig = tok("dig-1", "C901", "Contractor");
    let with_code = format!("{permits}?swaCode=7001");
    expect(
        &w,
        json_post(&with_code, &dig, &body(r#""002""#)),
        403,
        "workstream_no_access",
        "dig 002",
    )
    .await;
    expect(
        &w,
        json_post(&with_code, &dig, &body(r#""001""#)),
        200,
        "",
        "dig 001",
    )
    .await;
}

#[tokio::test]
async fn duplicate_keys_anywhere_are_refused() {
    let (w, _dir) = world("").await;
    let docs = [
        r#"{"workstream_prefix":"001","workstream_prefix":"003","promoter_swa_code":"7001"}"#,
        r#"{"workstream_prefix":"001","promoter_swa_code":"7002","promoter_swa_code":"7001"}"#,
        r#"{"promoter_swa_code":"7001","workstream_prefix":"001","promoter_swa_code":"7002"}"#,
        r#"{"workstream_prefix":"001","promoter\u005fswa_code":"7002","promoter_swa_code":"7001"}"#,
        r#"{"workstream_prefix":"001","site":{"usrn":1,"usrn":2}}"#,
        r#"{"workstream_prefix":"001","locations":[{"a":1},{"b":1,"b":2}]}"#,
        r#"{"workstream_prefix":"001","a":{"b":{"c":{"d":1,"d":1}}}}"#,
    ];
    for path in CREATES {
        for doc in docs {
            expect(&w, json_post(path, &user_a(), doc), 400, "bad_body", doc).await;
        }
    }
    let permit = r#"{"workstream_prefix":"002","workstream_prefix":"000"}"#;
    expect(
        &w,
        json_post("/work/works/NW001/permits", &user_a(), permit),
        400,
        "bad_body",
        "permit",
    )
    .await;
}

#[tokio::test]
async fn only_json_bodies_are_read() {
    let (w, _dir) = world("").await;
    let body = br#"{"workstream_prefix":"001","promoter_swa_code":"7001"}"#;
    for ct in [
        Some("text/plain"),
        Some("text/json"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=xyz"),
        Some("application/json; charset=utf-16"),
        Some("application/jsonp"),
        Some("application/xml"),
        None,
    ] {
        let case = format!("{ct:?}");
        expect(
            &w,
            post("/work/works", &user_a(), ct, body),
            415,
            "unsupported_media_type",
            &case,
        )
        .await;
    }
    // Two Content-Types, or an encoded body, cannot be read the way the upstream reads them.
    let mut two = post("/work/works", &user_a(), Some("application/json"), body);
    two.headers_mut()
        .append("content-type", "text/plain".parse().unwrap());
    expect(&w, two, 415, "unsupported_media_type", "two content types").await;
    let mut gz = post("/work/works", &user_a(), Some("application/json"), body);
    gz.headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    expect(&w, gz, 415, "unsupported_media_type", "gzip").await;
    for ct in [
        "application/json; charset=utf-8",
        "Application/JSON;charset=\"UTF-8\"",
        "application/vnd.streetmanager+json",
    ] {
        expect(
            &w,
            post("/work/works", &user_a(), Some(ct), body),
            200,
            "",
            ct,
        )
        .await;
    }
    // A route that reads no body still streams any media type.
    expect(
        &w,
        post("/work/echo", &user_a(), Some("text/plain"), b"hi"),
        200,
        "",
        "echo",
    )
    .await;
}

#[tokio::test]
async fn wrong_types_and_malformed_documents_are_bad_bodies() {
    let (w, _dir) = world("").await;
    let ha_planner = tok("ha-planner", "4020", "Planner");
    let cases: [(&str, &[u8]); 14] = [
        (
            "prefix number",
            br#"{"workstream_prefix":1,"promoter_swa_code":"7001"}"#,
        ),
        ("prefix object", br#"{"workstream_prefix":{"v":"001"}}"#),
        ("prefix missing", br#"{"promoter_swa_code":"7001"}"#),
        (
            "promoter array",
            br#"{"workstream_prefix":"001","promoter_swa_code":["7001"]}"#,
        ),
        (
            "promoter number",
            br#"{"workstream_prefix":"001","promoter_swa_code":7001}"#,
        ),
        (
            "promoter bool",
            br#"{"workstream_prefix":"001","promoter_swa_code":true}"#,
        ),
        (
            "promoter object",
            br#"{"workstream_prefix":"001","promoter_swa_code":{}}"#,
        ),
        ("top-level array", br#"[{"workstream_prefix":"001"}]"#),
        ("bom", b"\xEF\xBB\xBF{\"workstream_prefix\":\"001\"}"),
        ("trailing garbage", br#"{"workstream_prefix":"001"}x"#),
        (
            "two documents",
            br#"{"workstream_prefix":"001"}{"workstream_prefix":"003"}"#,
        ),
        (
            "not utf-8",
            b"{\"workstream_prefix\":\"001\",\"x\":\"\xff\"}",
        ),
        ("empty", b""),
        ("truncated", br#"{"workstream_prefix":"001""#),
    ];
    for (case, body) in cases {
        let request = post("/work/works", &user_a(), Some("application/json"), body);
        expect(&w, request, 400, "bad_body", case).await;
    }
    // The authority field is type-checked for everyone, and compared for authorities.
    let body = br#"{"workstream_prefix":"001","promoter_swa_code":"7001","highway_authority_swa_code":4020}"#;
    expect(
        &w,
        post("/work/works", &user_a(), Some("application/json"), body),
        400,
        "bad_body",
        "ha number",
    )
    .await;
    let body = br#"{"workstream_prefix":"001","promoter_swa_code":"4020","highway_authority_swa_code":[]}"#;
    expect(
        &w,
        post("/work/works", &ha_planner, Some("application/json"), body),
        400,
        "bad_body",
        "ha array",
    )
    .await;
}

/// Sends a head announcing a body, then only `partial` of it, and returns what comes back
/// and how long it took.
async fn stalled(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
    partial: &str,
) -> (String, Duration) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: gw.test\r\ntoken: {token}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{partial}"
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn callers_refused_without_the_body_are_answered_before_it_arrives() {
    let (w, _dir) = world("  body_read_timeout: 4s\n").await;
    let leeds = tok("ha-leeds", "4020", "HighwayAuthority");
    let mut expired = claims("user-a", "7001", &["Planner"]);
    expired["exp"] = serde_json::json!(now() - 600);
    let expired = token(&expired);
    let cases = [
        ("/work/works", leeds.as_str(), 403, "role_not_permitted"),
        ("/work/works", "not-a-token", 401, "token_malformed"),
        ("/work/works", expired.as_str(), 401, "token_expired"),
        // The work's own workstream is decided from the path, before the body.
        (
            "/work/works/NW003/permits",
            &user_a(),
            403,
            "workstream_read_only",
        ),
    ];
    for (path, token, status, reason) in cases {
        let (resp, took) = stalled(w.gw.addr, path, token, "{\"workstream_").await;
        assert_eq!(raw_status(&resp), status, "{path} {reason}: {resp}");
        assert!(resp.contains(reason), "{resp}");
        assert!(
            took < Duration::from_secs(3),
            "{reason}: waited {took:?} for a body"
        );
    }
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn a_stalled_body_is_408_and_the_http1_connection_closes() {
    let (w, _dir) = world("  body_read_timeout: 300ms\n").await;
    for path in ["/work/works", "/work/works/NW001/permits"] {
        let (resp, took) = stalled(w.gw.addr, path, &user_a(), "{\"workstream_prefix\":").await;
        assert_eq!(raw_status(&resp), 408, "{resp}");
        assert!(resp.contains("body_timeout"), "{resp}");
        assert!(
            resp.to_ascii_lowercase().contains("connection: close"),
            "{resp}"
        );
        // read_to_end returned: the sidecar closed the connection (well before the 5 s cap).
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    assert_eq!(w.upstream.count(), 0);
    // A route that reads no body streams it on, and is held to the same timeout: a client
    // that stops mid-body fails the upstream request and gets 408, not a wait for the
    // upstream's own timeout.
    for partial in ["", "x", "{\"a\":"] {
        let (resp, took) = stalled(w.gw.addr, "/work/echo", &user_a(), partial).await;
        assert_eq!(raw_status(&resp), 408, "streamed {partial:?}: {resp}");
        assert!(resp.contains("body_timeout"), "{resp}");
        assert!(
            resp.to_ascii_lowercase().contains("connection: close"),
            "{resp}"
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    // (Streaming means the upstream may have seen the head of these; its body read failed.)
    // A body that keeps arriving is streamed whole.
    let reply = send(w.gw.addr, post("/work/echo", &user_a(), None, b"x")).await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// A request body that sends `first` and then never ends.
struct Stall {
    first: Option<Bytes>,
}

impl http_body::Body for Stall {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.first.take() {
            Some(data) => Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
            None => Poll::Pending,
        }
    }
}

type H2Body = http_body_util::Either<Full<Bytes>, Stall>;

fn h2_request(path: &str, token: &str, body: H2Body) -> Request<H2Body> {
    Request::post(format!("http://gw.test{path}"))
        .header("token", token)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

async fn h2_connect(addr: std::net::SocketAddr) -> hyper::client::conn::http2::SendRequest<H2Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn h2_reply(
    sender: &mut hyper::client::conn::http2::SendRequest<H2Body>,
    request: Request<H2Body>,
) -> (u16, String) {
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn on_http2_a_stalled_stream_times_out_alone() {
    let (w, _dir) = world("  body_read_timeout: 300ms\n").await;
    let mut sender = h2_connect(w.gw.addr).await;
    let stalled = h2_request(
        "/work/works",
        &user_a(),
        H2Body::Right(Stall {
            first: Some(Bytes::from_static(b"{\"workstream_prefix\":")),
        }),
    );
    let mut other = sender.clone();
    let stalled = tokio::spawn(async move { h2_reply(&mut other, stalled).await });
    let ok_body = r#"{"workstream_prefix":"001","promoter_swa_code":"7001"}"#;
    let ok = h2_request(
        "/work/works",
        &user_a(),
        H2Body::Left(Full::new(Bytes::from(ok_body))),
    );
    let (status, body) = h2_reply(&mut sender, ok).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = stalled.await.unwrap();
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("body_timeout"), "{body}");
    // The connection still serves new streams.
    let ok = h2_request(
        "/work/works",
        &user_a(),
        H2Body::Left(Full::new(Bytes::from(ok_body))),
    );
    assert_eq!(h2_reply(&mut sender, ok).await.0, 200);
    assert_eq!(w.upstream.count(), 2);
}

#[tokio::test]
async fn the_bodies_buffered_on_one_connection_are_bounded() {
    let listen = "  body_read_timeout: 1s\n  max_buffered_body_bytes_per_connection: 1048576\n";
    let (w, _dir) = world(listen).await;
    let mut sender = h2_connect(w.gw.addr).await;
    // Two streams each holding 600 KiB buffered (under max_body_bytes, 1 MiB) exceed the
    // connection's 1 MiB: the second is refused at once while the first still waits.
    let chunk = Bytes::from(format!("{{\"x\":\"{}", "a".repeat(600 * 1024)));
    let mut first = sender.clone();
    let held = h2_request(
        "/work/works",
        &user_a(),
        H2Body::Right(Stall {
            first: Some(chunk.clone()),
        }),
    );
    let held = tokio::spawn(async move { h2_reply(&mut first, held).await });
    // The first stream is in the pipeline (and reading its body) before the second starts.
    let in_flight = eventually(Duration::from_secs(5), || async {
        w.gw.gateway.metrics.requests_in_flight.get() >= 1
    })
    .await;
    assert!(in_flight, "the first stream never reached the sidecar");
    let started = Instant::now();
    let over = h2_request(
        "/work/works",
        &user_a(),
        H2Body::Right(Stall { first: Some(chunk) }),
    );
    let (status, body) = h2_reply(&mut sender, over).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("body_too_large"), "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "refused without waiting"
    );
    assert_eq!(held.await.unwrap().0, 408);
    // Budget returns when a request is done: a fresh body fits again.
    let ok_body = r#"{"workstream_prefix":"001","promoter_swa_code":"7001"}"#;
    let ok = h2_request(
        "/work/works",
        &user_a(),
        H2Body::Left(Full::new(Bytes::from(ok_body))),
    );
    assert_eq!(h2_reply(&mut sender, ok).await.0, 200);
    assert_eq!(w.upstream.count(), 1);
}

#[tokio::test]
async fn an_accepted_body_is_forwarded_byte_for_byte() {
    let (w, _dir) = world("").await;
    let body =
        " {\"workstream_prefix\" : \"001\",\n \"promoter_swa_code\":\"7001\", \"n\": 1.50} \n";
    let reply = send(w.gw.addr, json_post("/work/works", &user_a(), body)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(w.upstream.seen()[0].body, body.as_bytes());
}
