//! Responses on policy routes through the whole sidecar: never cacheable by a shared cache,
//! nothing describing the unfiltered body, counts that do not reveal other organisations' rows,
//! error bodies passed unchanged, and section 74 financial details redacted.
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
use http::{Response, StatusCode};
use http_body_util::Full;

/// Promoter 7001 with works W1 (workstream 001) and W2 (002); user-a holds full-write on 001.
const GRANTS: &str = include_str!("fixtures/grants/small.json");

const ROUTES: &str = r#"
      - id: Report
        route: GET /report
        allow: {roles: [Planner, HighwayAuthority]}
        access: filtered
        response:
          filter: {json: {rows: /rows, work_reference_field: work_reference_number}}
      - id: ReportRecount
        route: GET /recount
        allow: {roles: [Planner, HighwayAuthority]}
        access: filtered
        response:
          filter: {json: {rows: /rows, work_reference_field: work_reference_number}}
          pagination: recompute
      - id: ReportCsv
        route: GET /csv
        allow: {roles: [Planner]}
        access: filtered
        response:
          filter: {csv: {work_reference_field: work_reference_number}}
      - id: GetSection74
        route: GET /works/{workReferenceNumber}/section-74s/{ref}
        allow: {roles: [Planner, HighwayAuthority]}
        response:
          redact:
            fields: [draft_invoice_reference, invoice_reference, draft_invoice_amount, final_agreed_amount]
            unless_role: StreetWorksAdmin
"#;

const REPORT: &str = r#"{"rows":[{"work_reference_number":"W1"},{"work_reference_number":"W2"},{"work_reference_number":"W9"}],"pagination":{"total_rows":3,"total_pages":1,"has_next_page":false}}"#;
const S74: &str = r#"{"section_74_reference_number":"S1","draft_invoice_reference":"INV-D-1","invoice_reference":"INV-1","draft_invoice_amount":120.5,"final_agreed_amount":99,"officer_name":"O"}"#;

/// Answers by path; `/error/...` paths answer that status with a JSON error body.
fn responder() -> Responder {
    Arc::new(|seen: &Seen| {
        let path = seen.uri.split('?').next().unwrap_or_default().to_owned();
        let status = seen
            .uri
            .split("status=")
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        let (body, ctype) = if status != 200 {
            (
                r#"{ "error": "nope", "message": "bad swa" }"#.to_owned(),
                "application/json",
            )
        } else if path.ends_with("/csv") {
            (
                "work_reference_number,x\nW1,a\nW2,b\n".to_owned(),
                "text/csv",
            )
        } else if path.contains("section-74s") {
            (S74.to_owned(), "application/json")
        } else {
            (REPORT.to_owned(), "application/json")
        };
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .header("cache-control", "public, max-age=3600, s-maxage=3600")
            .header("expires", "Thu, 01 Dec 2099 16:00:00 GMT")
            .header("surrogate-control", "max-age=3600")
            .header("cdn-cache-control", "max-age=3600")
            .header("etag", "\"unfiltered\"")
            .header("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT")
            .header("content-md5", "Q2hlY2sgSW50ZWdyaXR5IQ==")
            .header("digest", "sha-256=abc")
            .header("x-total-count", "3")
            .header("x-request-id", "kept")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    })
}

struct Env {
    upstream: Upstream,
    _jwks: JwksServer,
    _grants: tempfile::NamedTempFile,
    gw: Running,
}

async fn env() -> Env {
    let mut grants = tempfile::NamedTempFile::new().unwrap();
    grants.write_all(GRANTS.as_bytes()).unwrap();
    let upstream = Upstream::with(responder()).await;
    let jwks = JwksServer::start().await;
    let extra = format!(
        "grants:\n  source:\n    file:\n      path: {}\n      poll_interval: 1s\n  max_age: 1h\n",
        grants.path().display()
    );
    let gw = sidecar(&config_yaml(&upstream.url(), &jwks.url(), ROUTES, &extra)).await;
    Env {
        upstream,
        _jwks: jwks,
        _grants: grants,
        gw,
    }
}

fn planner() -> String {
    token(&claims("user-a", "7001", &["Planner"]))
}

fn assert_per_caller(reply: &Reply, what: &str) {
    let h = &reply.headers;
    assert_eq!(h.get_all("cache-control").iter().count(), 1, "{what}");
    assert_eq!(h["cache-control"], "private, no-store", "{what}");
    for gone in [
        "expires",
        "surrogate-control",
        "cdn-cache-control",
        "etag",
        "last-modified",
        "content-md5",
        "digest",
        "x-total-count",
    ] {
        assert!(!h.contains_key(gone), "{what}: {gone} passed");
    }
    assert_eq!(h["x-request-id"], "kept", "{what}");
}

#[tokio::test]
async fn filtered_and_redacted_responses_are_never_shared() {
    let e = env().await;
    let t = planner();
    for path in [
        "/work/report",
        "/work/recount",
        "/work/csv",
        "/work/works/W1/section-74s/S1",
        "/work/report?status=400",
        "/work/report?status=503",
    ] {
        let reply = send(e.gw.addr, get(path, Some(&t))).await;
        assert_per_caller(&reply, path);
    }
    let authority = token(&claims(
        "ha-1",
        "4020",
        &["HighwayAuthority", "StreetWorksAdmin"],
    ));
    let reply = send(
        e.gw.addr,
        get("/work/works/W1/section-74s/S1", Some(&authority)),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_per_caller(&reply, "unredacted for the admin, still per caller");
}

#[tokio::test]
async fn counts_describe_only_the_rows_shown() {
    let e = env().await;
    let t = planner();
    let reply = send(e.gw.addr, get("/work/report", Some(&t))).await;
    assert_eq!(reply.status, 200);
    let json = reply.json();
    assert_eq!(json["rows"].as_array().unwrap().len(), 1);
    assert_eq!(
        json["pagination"],
        serde_json::json!({"has_next_page": false}),
        "unfiltered counts removed by default"
    );
    let reply = send(e.gw.addr, get("/work/recount", Some(&t))).await;
    let json = reply.json();
    assert_eq!(
        json["pagination"]["total_rows"], 1,
        "recomputed: rows kept in this page"
    );
    assert!(json["pagination"].get("total_pages").is_some());
    assert_eq!(json["pagination"]["has_next_page"], false);
}

#[tokio::test]
async fn upstream_error_bodies_pass_unchanged() {
    let e = env().await;
    let t = planner();
    for status in [400u16, 401, 403, 404, 409, 422, 500, 502, 503] {
        for path in [
            "/work/report",
            "/work/recount",
            "/work/csv",
            "/work/works/W1/section-74s/S1",
        ] {
            let reply = send(e.gw.addr, get(&format!("{path}?status={status}"), Some(&t))).await;
            assert_eq!(
                reply.status,
                StatusCode::from_u16(status).unwrap(),
                "{path} {status}"
            );
            assert_eq!(
                reply.body, r#"{ "error": "nope", "message": "bad swa" }"#,
                "{path} {status}: byte for byte"
            );
        }
    }
    assert!(e.upstream.count() > 0);
}

#[tokio::test]
async fn section_74_financial_details_are_redacted_unless_street_works_admin() {
    let e = env().await;
    for t in [
        planner(),
        token(&claims("ha-1", "4020", &["HighwayAuthority"])),
    ] {
        let reply = send(e.gw.addr, get("/work/works/W1/section-74s/S1", Some(&t))).await;
        assert_eq!(reply.status, 200);
        let json = reply.json();
        for field in [
            "draft_invoice_reference",
            "invoice_reference",
            "draft_invoice_amount",
            "final_agreed_amount",
        ] {
            assert!(json.get(field).is_none(), "{field} shown");
        }
        assert_eq!(json["officer_name"], "O");
    }
    let admin = token(&claims(
        "ha-1",
        "4020",
        &["HighwayAuthority", "StreetWorksAdmin"],
    ));
    let json = send(
        e.gw.addr,
        get("/work/works/W1/section-74s/S1", Some(&admin)),
    )
    .await
    .json();
    assert_eq!(json["invoice_reference"], "INV-1");
    assert_eq!(json["draft_invoice_reference"], "INV-D-1");
}

/// The shipped config redacts every financial member of the work spec's Section74Response.
#[test]
fn shipped_config_redacts_all_section_74_financials() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/streetmanager.yaml"
    ))
    .unwrap();
    let raw = streetgate::config::parse(&text).unwrap();
    let route = raw
        .apis
        .iter()
        .flat_map(|a| a.routes.iter())
        .find(|r| r.id == "work.GetSection74")
        .unwrap();
    let fields = &route
        .response
        .as_ref()
        .unwrap()
        .redact
        .as_ref()
        .unwrap()
        .fields;
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("streetmanager/work-swagger.json")).unwrap())
            .unwrap();
    let props = spec["components"]["schemas"]["Section74Response"]["properties"]
        .as_object()
        .unwrap();
    let financial: Vec<&String> = props
        .keys()
        .filter(|k| k.contains("invoice") || k.contains("amount") || k.contains("cost"))
        .collect();
    assert!(financial.len() >= 4);
    for field in financial {
        assert!(fields.contains(field), "{field} is not redacted");
    }
}
