//! Request and response integrity with the SHIPPED `config/streetmanager.yaml` (its upstream
//! URLs, keys and grants patched to test servers): the create routes and the permits route
//! enforce their body fields, strict bodies apply, and every filtered reporting route removes
//! the unfiltered counts and is never shared. Every rejection checks the upstream saw nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;

/// Shared with the other integrity tests: promoters 7001/7002, authorities 4020/4021, contractor
/// C901 and their users.
const GRANTS: &str = include_str!("fixtures/grants/integrity.json");

struct Shipped {
    upstream: Upstream,
    _jwks: JwksServer,
    _grants: tempfile::NamedTempFile,
    gw: Running,
}

/// The shipped config, pointed at one test upstream (for every API), the test JWKS and a
/// grants file.
async fn shipped(responder: Responder) -> Shipped {
    let mut grants = tempfile::NamedTempFile::new().unwrap();
    grants.write_all(GRANTS.as_bytes()).unwrap();
    let upstream = Upstream::with(responder).await;
    let jwks = JwksServer::start().await;
    let mut yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/streetmanager.yaml"
    ))
    .unwrap();
    for port in 8081..=8086 {
        yaml = yaml.replace(&format!("http://127.0.0.1:{port}"), &upstream.url());
    }
    let yaml = yaml
        .replace("0.0.0.0:8080", "127.0.0.1:0")
        .replace("0.0.0.0:9901", "127.0.0.1:0")
        .replace("http://127.0.0.1:8090/.well-known/jwks.json", &jwks.url())
        .replace("https://auth.example.invalid/", ISSUER)
        .replace("audience: street-manager", &format!("audience: {AUDIENCE}"))
        .replace(
            "/etc/streetgate/grants.json",
            &grants.path().display().to_string(),
        );
    let gw = sidecar(&yaml).await;
    Shipped {
        upstream,
        _jwks: jwks,
        _grants: grants,
        gw,
    }
}

fn ok_responder() -> Responder {
    Arc::new(|_: &Seen| json_response(StatusCode::OK, r#"{"ok":true}"#))
}

fn tok(sub: &str, org: &str, role: &str) -> String {
    token(&claims(sub, org, &[role]))
}

fn post(path: &str, token: &str, content_type: Option<&str>, body: &str) -> Request<Full<Bytes>> {
    let mut b = Request::post(path)
        .header("host", "gw.test")
        .header("token", token);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

async fn status(s: &Shipped, req: Request<Full<Bytes>>) -> (u16, String) {
    let reply = send(s.gw.addr, req).await;
    let reason = if reply.status.is_success() {
        String::new()
    } else {
        reply.reason()
    };
    (reply.status.as_u16(), reason)
}

const CREATES: [&str; 3] = [
    "/work/works",
    "/work/forward-plans",
    "/work/non-notifiable-works/sites",
];

#[tokio::test]
async fn shipped_create_routes_check_the_promoter_authority_and_workstream() {
    let s = shipped(ok_responder()).await;
    let planner = tok("user-a", "7001", "Planner");
    let ha = tok("ha-planner", "4020", "Planner");
    let dig = tok("dig-1", "C901", "Contractor");
    for path in CREATES {
        let refused: Vec<(String, &str, String, (u16, &str))> = vec![
            // another promoter
            (path.to_owned(), &planner, r#"{"workstream_prefix": "001", "promoter_swa_code": "7002"}"#.into(), (403, "other_organisation")),
            // the default workstream
            (path.to_owned(), &planner, r#"{"workstream_prefix": "000", "promoter_swa_code": "7001"}"#.into(), (400, "default_workstream")),
            // read-only workstream
            (path.to_owned(), &planner, r#"{"workstream_prefix": "003", "promoter_swa_code": "7001"}"#.into(), (403, "workstream_read_only")),
            // a duplicate promoter spelt with an escape
            (path.to_owned(), &planner, r#"{"workstream_prefix": "001", "promoter_swa_code": "7001", "promoter\u005fswa_code": "7002"}"#.into(), (400, "bad_body")),
            // another spelling a case-insensitive binder (Newtonsoft, ASP.NET) reads as the promoter
            (path.to_owned(), &planner, r#"{"workstream_prefix": "001", "Promoter_Swa_Code": "7002"}"#.into(), (400, "bad_body")),
            (path.to_owned(), &planner, r#"{"workstream_prefix": "001", "promoter_swa_code": "7001", "PROMOTER_SWA_CODE": "7002"}"#.into(), (400, "bad_body")),
            (path.to_owned(), &planner, r#"{"workstream_prefix": "001", "Workstream_Prefix": "003", "promoter_swa_code": "7001"}"#.into(), (400, "bad_body")),
            (path.to_owned(), &ha, r#"{"workstream_prefix": "001", "promoter_swa_code": "4020", "Highway_Authority_Swa_Code": "4021"}"#.into(), (400, "bad_body")),
            // a number where a code is expected
            (path.to_owned(), &planner, r#"{"workstream_prefix": "001", "promoter_swa_code": 7002}"#.into(), (400, "bad_body")),
            (path.to_owned(), &planner, r#"{"workstream_prefix": "001", "promoter_swa_code": ["7002"]}"#.into(), (400, "bad_body")),
            // a highway authority promoting its own works names another authority
            (path.to_owned(), &ha, r#"{"workstream_prefix": "001", "promoter_swa_code": "4020", "highway_authority_swa_code": "4021"}"#.into(), (403, "other_organisation")),
            // a contractor acting for 7001 naming another promoter
            (format!("{path}?swaCode=7001"), &dig, r#"{"workstream_prefix": "001", "promoter_swa_code": "7002"}"#.into(), (403, "other_organisation")),
            (format!("{path}?swaCode=7001"), &dig, r#"{"workstream_prefix": "001", "promoter_swa_code": "C901"}"#.into(), (403, "other_organisation")),
        ];
        for (target, t, body, expected) in refused {
            let got = status(&s, post(&target, t, Some("application/json"), &body)).await;
            assert_eq!(got, (expected.0, expected.1.to_owned()), "{target} {body}");
        }
        assert_eq!(
            s.upstream.count(),
            0,
            "{path}: nothing refused was forwarded"
        );
    }
    // The acting organisation as promoter passes, on every create route.
    for path in CREATES {
        let body = r#"{"workstream_prefix": "001", "promoter_swa_code": "7001", "highway_authority_swa_code": "4020"}"#;
        assert_eq!(
            status(&s, post(path, &planner, Some("application/json"), body))
                .await
                .0,
            200,
            "{path}"
        );
        let body = r#"{"workstream_prefix": "001", "promoter_swa_code": "4020", "highway_authority_swa_code": "4020"}"#;
        assert_eq!(
            status(&s, post(path, &ha, Some("application/json"), body))
                .await
                .0,
            200,
            "{path}"
        );
    }
    assert_eq!(s.upstream.count(), 6);
}

#[tokio::test]
async fn shipped_permit_route_checks_the_workstream_it_moves_the_work_to() {
    let s = shipped(ok_responder()).await;
    let planner = tok("user-a", "7001", "Planner");
    let path = "/work/works/NW001/permits";
    for (body, expected) in [
        (
            r#"{"workstream_prefix": "000"}"#,
            (400, "default_workstream"),
        ),
        (
            r#"{"workstream_prefix": "003"}"#,
            (403, "workstream_read_only"),
        ),
        (
            r#"{"workstream_prefix": "004"}"#,
            (403, "workstream_no_access"),
        ),
        (r#"{"workstream_prefix": 1}"#, (400, "bad_body")),
        (
            r#"{"workstream_prefix": "002", "WORKSTREAM_PREFIX": "003"}"#,
            (400, "bad_body"),
        ),
        (r#"{"Workstream_Prefix": "004"}"#, (400, "bad_body")),
        (
            r#"{"workstream_prefix": "002", "workstream\u005fprefix": "003"}"#,
            (400, "bad_body"),
        ),
    ] {
        assert_eq!(
            status(&s, post(path, &planner, Some("application/json"), body)).await,
            (expected.0, expected.1.to_owned()),
            "{body}"
        );
    }
    // The work's own workstream must be writable too.
    assert_eq!(
        status(
            &s,
            post(
                "/work/works/NW003/permits",
                &planner,
                Some("application/json"),
                r#"{"workstream_prefix": "001"}"#
            )
        )
        .await,
        (403, "workstream_read_only".to_owned())
    );
    assert_eq!(s.upstream.count(), 0);
    assert_eq!(
        status(
            &s,
            post(
                path,
                &planner,
                Some("application/json"),
                r#"{"workstream_prefix": "002"}"#
            )
        )
        .await
        .0,
        200
    );
    assert_eq!(s.upstream.seen()[0].uri, "/works/NW001/permits");
}

#[tokio::test]
async fn shipped_create_routes_read_bodies_strictly() {
    let s = shipped(ok_responder()).await;
    let planner = tok("user-a", "7001", "Planner");
    let good = r#"{"workstream_prefix": "001", "promoter_swa_code": "7001"}"#;
    for path in CREATES {
        for ct in [
            None,
            Some("text/json"),
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/json;charset=latin1"),
            Some("application/json; charset=utf-16"),
            Some("application/json; charset=iso-8859-1"),
            Some("application/xml"),
        ] {
            assert_eq!(
                status(&s, post(path, &planner, ct, good)).await,
                (415, "unsupported_media_type".to_owned()),
                "{path} {ct:?}"
            );
        }
        let deep = format!("{}{}", r#"{"a":"#.repeat(5000), "}".repeat(5000));
        let deep_arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for body in [
            deep.as_str(),
            deep_arrays.as_str(),
            "",
            "{",
            "null",
            r#"["7001"]"#,
            r#"{"workstream_prefix": "001", "promoter_swa_code": "7001"} {}"#,
            "\u{feff}{\"workstream_prefix\": \"001\"}",
            r#"{"workstream_prefix": "001", "x": {"y": 1, "y": 2}}"#,
        ] {
            let got = status(&s, post(path, &planner, Some("application/json"), body)).await;
            assert_eq!(got.0, 400, "{path} {}", &body[..body.len().min(40)]);
            assert_eq!(got.1, "bad_body", "{path} {}", &body[..body.len().min(40)]);
        }
        // gzip: the sidecar cannot read what the upstream would decode.
        let req = Request::post(path)
            .header("host", "gw.test")
            .header("token", &planner)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from_static(b"\x1f\x8b\x08\x00")))
            .unwrap();
        assert_eq!(
            status(&s, req).await,
            (415, "unsupported_media_type".to_owned())
        );
    }
    assert_eq!(s.upstream.count(), 0);
    // Media type names are case-insensitive.
    assert_eq!(
        status(
            &s,
            post(
                "/work/works",
                &planner,
                Some("APPLICATION/JSON; Charset=UTF-8"),
                good
            )
        )
        .await
        .0,
        200
    );
    // The sidecar is still serving.
    assert_eq!(s.upstream.count(), 1);
}

/// A chunked body over `listen.max_body_bytes` (none set: the default) on a create route is
/// refused before the upstream sees it.
#[tokio::test]
async fn shipped_create_route_refuses_an_oversized_chunked_body() {
    let s = shipped(ok_responder()).await;
    let planner = tok("user-a", "7001", "Planner");
    let chunk = vec![b' '; 1 << 20];
    let mut wire = format!(
        "POST /work/works HTTP/1.1\r\nHost: gw.test\r\ntoken: {planner}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..40 {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(&chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let resp = raw_lossy(s.gw.addr, wire).await;
    assert_eq!(raw_status(&resp), 413, "{}", &resp[..resp.len().min(300)]);
    assert_eq!(s.upstream.count(), 0);
}

/// Like `raw`, but writes while reading, so an answer sent (and the connection closed) before
/// the whole request went out is still read.
async fn raw_lossy(addr: std::net::SocketAddr, bytes: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        wr
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers every request as a reporting page holding one row of 7001's workstream 001 and one
/// of another promoter, with shared-cache headers and counts, or an error for `/fail`.
fn reporting_responder() -> Responder {
    Arc::new(|seen: &Seen| {
        let path = seen.uri.split('?').next().unwrap_or_default().to_owned();
        let rows = r#"[{"work_reference_number": "NW001", "x": 1}, {"work_reference_number": "SG001", "x": 2}]"#;
        let (status, body) = if seen.uri.contains("fail=400") {
            (
                400,
                r#"{"message": "bad request", "error": {"status": 400, "total_rows": 9}}"#
                    .to_owned(),
            )
        } else if seen.uri.contains("fail=500") {
            (500, r#"{"message":"boom"}"#.to_owned())
        } else if path == "/permits/search" || path == "/works/updates" {
            (200, rows.to_owned())
        } else if path.starts_with("/works/NW001/section-74s/") {
            (
                200,
                r#"{"section_74_reference_number": "S1", "draft_invoice_reference": "D-1", "invoice_reference": "I-1", "draft_invoice_amount": 10.5, "final_agreed_amount": 11, "officer_name": "x"}"#.to_owned(),
            )
        } else {
            (
                200,
                format!(
                    r#"{{"rows": {rows}, "pagination": {{"total_rows": 2, "total_pages": 1, "has_next_page": false}}}}"#
                ),
            )
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "public, max-age=600, s-maxage=600")
            .header("vary", "Accept-Encoding")
            .header("etag", "\"abc\"")
            .header("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")
            .header("expires", "Mon, 01 Jan 2124 00:00:00 GMT")
            .header("x-total-count", "2")
            .header("x-pagination-total-rows", "2")
            .header("surrogate-control", "max-age=600")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap()
    })
}

/// The shipped reporting routes that filter JSON: (method, path, rows is a top-level array).
fn filtered_json_routes() -> Vec<(String, String, bool)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/streetmanager.yaml"
    ))
    .unwrap();
    let raw = streetgate::config::parse(&text).unwrap();
    let mut out = Vec::new();
    for api in &raw.apis {
        for route in &api.routes {
            let Some(streetgate::filter::config::RawFilter::Json { rows, .. }) =
                route.response.as_ref().and_then(|r| r.filter.as_ref())
            else {
                continue;
            };
            let (method, template) = route.route.split_once(' ').unwrap();
            assert!(!template.contains('{'), "{}: a parameter to fill", route.id);
            out.push((
                method.to_owned(),
                format!("{}{template}", api.prefix.as_deref().unwrap_or_default()),
                rows.is_empty(),
            ));
        }
    }
    assert!(out.len() >= 10, "{out:?}");
    out
}

fn assert_private(reply: &Reply, what: &str) {
    let h = &reply.headers;
    assert_eq!(h.get_all("cache-control").iter().count(), 1, "{what}");
    assert_eq!(h["cache-control"], "private, no-store", "{what}");
    for gone in [
        "etag",
        "last-modified",
        "expires",
        "x-total-count",
        "x-pagination-total-rows",
        "surrogate-control",
    ] {
        assert!(!h.contains_key(gone), "{what}: {gone} passed");
    }
}

fn request(method: &str, path: &str, token: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "gw.test")
        .header("token", token);
    let body = if method == "POST" {
        b = b.header("content-type", "application/json");
        Bytes::from_static(b"{}")
    } else {
        Bytes::new()
    };
    b.body(Full::new(body)).unwrap()
}

#[tokio::test]
async fn every_shipped_filtered_route_hides_other_rows_counts_and_is_never_shared() {
    let s = shipped(reporting_responder()).await;
    let planner = tok("user-a", "7001", "Planner");
    for (method, path, top_level) in filtered_json_routes() {
        let what = format!("{method} {path}");
        let reply = send(s.gw.addr, request(&method, &path, &planner)).await;
        assert_eq!(reply.status, 200, "{what}: {:?}", reply.body);
        assert_private(&reply, &what);
        let json = reply.json();
        let rows = if top_level { &json } else { &json["rows"] };
        let refs: Vec<&str> = rows
            .as_array()
            .unwrap_or_else(|| panic!("{what}: {json}"))
            .iter()
            .map(|r| r["work_reference_number"].as_str().unwrap())
            .collect();
        assert_eq!(refs, ["NW001"], "{what}");
        if !top_level {
            let pagination = json["pagination"].as_object().unwrap();
            assert!(!pagination.contains_key("total_rows"), "{what}: {json}");
            assert!(!pagination.contains_key("total_pages"), "{what}: {json}");
            assert_eq!(pagination["has_next_page"], false, "{what}");
        }
        // Upstream errors: no rows, passed byte for byte with their status, still private.
        for (fail, status) in [("fail=400", 400), ("fail=500", 500)] {
            let reply = send(
                s.gw.addr,
                request(&method, &format!("{path}?{fail}"), &planner),
            )
            .await;
            assert_eq!(reply.status.as_u16(), status, "{what} {fail}");
            let expected = if status == 400 {
                r#"{"message": "bad request", "error": {"status": 400, "total_rows": 9}}"#
            } else {
                r#"{"message":"boom"}"#
            };
            assert_eq!(reply.body, expected.as_bytes(), "{what} {fail}");
            assert_private(&reply, &format!("{what} {fail}"));
        }
        // HEAD: no body, but the headers are the caller's alone too.
        if method == "GET" {
            let reply = send(s.gw.addr, request("HEAD", &path, &planner)).await;
            if reply.status.is_success() {
                assert_private(&reply, &format!("HEAD {path}"));
            } else {
                assert!(!reply.headers.contains_key("x-total-count"), "HEAD {path}");
            }
        }
    }
}

#[tokio::test]
async fn shipped_section_74_details_lose_every_financial_member() {
    let s = shipped(reporting_responder()).await;
    for t in [
        tok("user-a", "7001", "Planner"),
        tok("ha-planner", "4020", "HighwayAuthority"),
    ] {
        let reply = send(
            s.gw.addr,
            request("GET", "/work/works/NW001/section-74s/S1", &t),
        )
        .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_private(&reply, "section 74");
        let json = reply.json();
        for gone in [
            "draft_invoice_reference",
            "invoice_reference",
            "draft_invoice_amount",
            "final_agreed_amount",
        ] {
            assert!(json.get(gone).is_none(), "{gone} passed: {json}");
        }
        assert_eq!(json["officer_name"], "x");
    }
}
