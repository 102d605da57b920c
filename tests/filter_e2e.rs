//! Response filtering through the whole sidecar: a reporting route filtered by the caller's
//! workstreams, a redacted route, gzip and malformed upstream answers.
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
use http::StatusCode;
use http_body_util::Full;

const GRANTS: &str = r#"{"version": 1, "generated_at": "2026-11-23T07:00:00Z",
  "organisations": [
    {"swa_code": "7001", "name": "Northern Water", "kind": "promoter", "status": "active",
     "workstreams": ["000", "001", "002", "003"], "contractors": ["C901"]},
    {"swa_code": "4020", "name": "Leeds City Council", "kind": "highway_authority", "status": "active"},
    {"swa_code": "C901", "name": "Dig Ltd", "kind": "contractor", "status": "active"}],
  "users": [
    {"sub": "user-a", "organisation": "7001", "workstreams": {"7001": {"001": "full-write", "002": "read-only"}}},
    {"sub": "dig-1", "organisation": "C901", "workstreams": {"7001": {"003": "read-only"}}}],
  "works": [
    {"work_reference_number": "W1", "promoter": "7001", "highway_authority": "4020", "workstream": "001"},
    {"work_reference_number": "W2", "promoter": "7001", "highway_authority": "4020", "workstream": "002"},
    {"work_reference_number": "W3", "promoter": "7001", "highway_authority": "4020", "workstream": "003"}]}"#;

const ROUTES: &str = r#"
      - id: GetPermits
        route: GET /permits
        allow: {roles: [Planner, Contractor, HighwayAuthority]}
        access: filtered
        response:
          filter: {json: {rows: /rows, work_reference_field: work_reference_number}}
      - id: GetSection74
        route: GET /section74s/{ref}
        allow: {roles: [Planner, HighwayAuthority]}
        response:
          redact: {fields: [draft_invoice_amount, final_agreed_amount]}
"#;

fn report() -> String {
    let rows: Vec<String> = ["W1", "W2", "W3", "W9"]
        .iter()
        .map(|w| format!(r#"{{"work_reference_number":"{w}","permit_status":"granted"}}"#))
        .collect();
    format!(
        r#"{{"rows":[{}],"pagination":{{"page":1,"total_rows":4}}}}"#,
        rows.join(",")
    )
}

struct World {
    upstream: Upstream,
    _jwks: JwksServer,
    _grants: tempfile::NamedTempFile,
    gw: Running,
}

async fn world(responder: Responder) -> World {
    let mut grants = tempfile::NamedTempFile::new().unwrap();
    grants.write_all(GRANTS.as_bytes()).unwrap();
    let upstream = Upstream::with(responder).await;
    let jwks = JwksServer::start().await;
    let extra = format!(
        "grants:\n  source:\n    file:\n      path: {}\n      poll_interval: 1s\n  max_age: 1h\n",
        grants.path().display()
    );
    let gw = sidecar(&config_yaml(&upstream.url(), &jwks.url(), ROUTES, &extra)).await;
    World {
        upstream,
        _jwks: jwks,
        _grants: grants,
        gw,
    }
}

fn refs(reply: &Reply) -> Vec<String> {
    reply.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["work_reference_number"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn rows_are_filtered_to_the_callers_workstreams() {
    let w = world(Arc::new(|_: &Seen| {
        json_response(StatusCode::OK, &report())
    }))
    .await;
    let planner = token(&claims("user-a", "7001", &["Planner"]));
    let reply = send(w.gw.addr, get("/work/permits", Some(&planner))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        refs(&reply),
        ["W1", "W2"],
        "readable workstreams only, unknown work dropped"
    );
    assert_eq!(
        reply.json()["pagination"],
        serde_json::json!({"page": 1}),
        "the unfiltered count goes, other members pass through"
    );
    assert_eq!(
        reply.headers["content-length"],
        reply.body.len().to_string()
    );

    let contractor = token(&claims("dig-1", "C901", &["Contractor"]));
    let reply = send(
        w.gw.addr,
        get("/work/permits?swaCode=7001", Some(&contractor)),
    )
    .await;
    assert_eq!(refs(&reply), ["W3"]);

    let authority = token(&claims("ha-1", "4020", &["HighwayAuthority"]));
    let reply = send(w.gw.addr, get("/work/permits", Some(&authority))).await;
    assert_eq!(
        refs(&reply),
        ["W1", "W2", "W3", "W9"],
        "authorities are not workstream-filtered"
    );

    assert!(
        w.upstream
            .seen()
            .iter()
            .all(|s| s.headers["accept-encoding"] == "identity")
    );
    let scrape = metrics(&w.gw).await;
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_filtered_rows_total{outcome="kept",route="GetPermits"}"#
        ),
        7.0
    );
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_filtered_rows_total{outcome="dropped",route="GetPermits"}"#
        ),
        5.0
    );
}

#[tokio::test]
async fn gzip_upstreams_are_decoded_and_filtered() {
    let w = world(Arc::new(|_: &Seen| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(report().as_bytes()).unwrap();
        http::Response::builder()
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from(gz.finish().unwrap())))
            .unwrap()
    }))
    .await;
    let planner = token(&claims("user-a", "7001", &["Planner"]));
    let reply = send(w.gw.addr, get("/work/permits", Some(&planner))).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.headers.contains_key("content-encoding"));
    assert_eq!(refs(&reply), ["W1", "W2"]);
}

#[tokio::test]
async fn unparseable_upstream_bodies_are_502_never_the_unfiltered_body() {
    let w = world(Arc::new(|_: &Seen| {
        json_response(
            StatusCode::OK,
            r#"{"rows":[{"work_reference_number":"W1"},{"work_refer"#,
        )
    }))
    .await;
    let planner = token(&claims("user-a", "7001", &["Planner"]));
    let reply = send(w.gw.addr, get("/work/permits", Some(&planner))).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.reason(), "response_unfilterable");
    assert!(!String::from_utf8_lossy(&reply.body).contains("W1"));
}

#[tokio::test]
async fn section_74_amounts_are_redacted_unless_street_works_admin() {
    let w = world(Arc::new(|_: &Seen| {
        json_response(
            StatusCode::OK,
            r#"{"section74_reference_number":"S1","draft_invoice_amount":1200,"final_agreed_amount":900,"status":"issued"}"#,
        )
    }))
    .await;
    let planner = token(&claims("user-a", "7001", &["Planner"]));
    let reply = send(w.gw.addr, get("/work/section74s/S1", Some(&planner))).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert!(
        body.get("draft_invoice_amount").is_none() && body.get("final_agreed_amount").is_none(),
        "{body}"
    );
    assert_eq!(body["status"], "issued");

    let admin = token(&claims("swa-1", "7001", &["Planner", "StreetWorksAdmin"]));
    let body = send(w.gw.addr, get("/work/section74s/S1", Some(&admin)))
        .await
        .json();
    assert_eq!(body["draft_invoice_amount"], 1200);
    assert_eq!(body["final_agreed_amount"], 900);
}
