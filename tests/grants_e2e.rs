//! Grants through the whole sidecar: a real grants server on loopback whose answers the test
//! controls, a real upstream, real tokens.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;

const ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, Contractor, HighwayAuthority]}
        access: {read_work: {path: workReferenceNumber}}
      - id: CreateWork
        route: POST /works
        allow: {roles: [Planner, Contractor]}
        access: {create_in_workstream: {body: /workstream_prefix}}
        creates_work:
          reference: /work_reference_number
          highway_authority: /highway_authority_swa_code
          workstream: /workstream_prefix
      - id: Status
        route: GET /status
        allow: public
"#;

fn document(version: u64, suspended: bool, valid_after: Option<&str>) -> String {
    let status = if suspended { "suspended" } else { "active" };
    let valid_after = valid_after
        .map(|t| format!(r#", "tokens_valid_after": "{t}""#))
        .unwrap_or_default();
    format!(
        r#"{{"version": {version}, "generated_at": "2026-11-23T07:00:00Z",
  "organisations": [
    {{"swa_code": "7001", "name": "Northern Water", "kind": "promoter", "status": "{status}",
      "workstreams": ["000", "001", "002", "003"], "contractors": ["C901"]}},
    {{"swa_code": "4020", "name": "Leeds City Council", "kind": "highway_authority", "status": "active"}},
    {{"swa_code": "C901", "name": "Dig Ltd", "kind": "contractor", "status": "active"}}
  ],
  "users": [
    {{"sub": "user-a", "organisation": "7001"{valid_after},
      "workstreams": {{"7001": {{"001": "full-write", "002": "full-write", "003": "no-access"}}}}}}
  ],
  "works": [
    {{"work_reference_number": "NW001", "promoter": "7001", "highway_authority": "4020", "workstream": "001"}},
    {{"work_reference_number": "NW003", "promoter": "7001", "highway_authority": "4020", "workstream": "003"}}
  ]}}"#
    )
}

/// What the grants server answers: a status and a body, with an ETag per version.
#[derive(Clone)]
struct GrantsAnswer {
    status: u16,
    body: String,
    etag: String,
}

struct GrantsServer {
    server: Upstream,
    answer: Arc<Mutex<GrantsAnswer>>,
}

impl GrantsServer {
    async fn start(first: GrantsAnswer) -> GrantsServer {
        let answer = Arc::new(Mutex::new(first));
        let current = answer.clone();
        let server = Upstream::with(Arc::new(move |seen: &Seen| {
            let a = current.lock().unwrap().clone();
            if a.status == 200
                && seen
                    .headers
                    .get("if-none-match")
                    .is_some_and(|v| v == a.etag.as_str())
            {
                return http::Response::builder()
                    .status(304)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
            }
            http::Response::builder()
                .status(a.status)
                .header("etag", a.etag.as_str())
                .body(Full::new(Bytes::from(a.body)))
                .unwrap()
        }))
        .await;
        GrantsServer { server, answer }
    }

    fn set(&self, answer: GrantsAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn url(&self) -> String {
        format!("{}/grants.json", self.server.url())
    }
}

fn ok(version: u64, doc: String) -> GrantsAnswer {
    GrantsAnswer {
        status: 200,
        body: doc,
        etag: format!("\"v{version}\""),
    }
}

fn grants_section(url: &str, max_age: &str, on_stale: &str) -> String {
    format!(
        "grants:\n  source:\n    url:\n      url: {url}\n      poll_interval: 100ms\n      max_backoff: 200ms\n  max_age: {max_age}\n  on_stale: {on_stale}\n"
    )
}

fn user_a() -> String {
    token(&claims("user-a", "7001", &["Planner"]))
}

struct World {
    grants: GrantsServer,
    upstream: Upstream,
    _jwks: JwksServer,
    gw: Running,
}

/// A grants server with the version 1 document, a plain upstream, keys, and the sidecar.
async fn world(max_age: &str, on_stale: &str) -> World {
    let grants = GrantsServer::start(ok(1, document(1, false, None))).await;
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let grants_config = grants_section(&grants.url(), max_age, on_stale);
    let gw = sidecar(&config_yaml(
        &upstream.url(),
        &jwks.url(),
        ROUTES,
        &grants_config,
    ))
    .await;
    World {
        grants,
        upstream,
        _jwks: jwks,
        gw,
    }
}

/// How many grants fetches ended with `result`, read from the sidecar's own counter.
fn fetched(gw: &Running, result: &str) -> u64 {
    gw.gateway
        .metrics
        .snapshot_fetch
        .with_label_values(&[result])
        .get()
}

async fn readyz(gw: &Running) -> StatusCode {
    send(gw.admin_addr, get("/readyz", None)).await.status
}

/// The status the sidecar answers a GET with this token.
async fn status_of(gw: &Running, path: &str, token: &str) -> StatusCode {
    send(gw.addr, get(path, Some(token))).await.status
}

#[tokio::test]
async fn workstream_decisions_through_the_proxy() {
    let World {
        grants: _grants,
        upstream,
        _jwks,
        gw,
    } = world("1h", "deny").await;

    let reply = send(gw.addr, get("/work/works/NW001", Some(&user_a()))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        upstream.seen()[0].headers["x-streetgate-acting-organisation"],
        "7001"
    );
    for (path, reason) in [
        ("/work/works/NW003", "workstream_no_access"),
        ("/work/works/NW999", "work_unknown"),
    ] {
        let reply = send(gw.addr, get(path, Some(&user_a()))).await;
        assert_eq!(reply.status, 403, "{path}");
        assert_eq!(reply.reason(), reason);
    }
    assert_eq!(
        upstream.count(),
        1,
        "denied requests never reached the upstream"
    );
}

#[tokio::test]
async fn created_work_is_usable_before_the_next_snapshot() {
    let grants = GrantsServer::start(ok(1, document(1, false, None))).await;
    let upstream = Upstream::with(Arc::new(|seen: &Seen| {
        if seen.method == http::Method::POST {
            json_response(
                StatusCode::CREATED,
                r#"{"work_reference_number":"NW002NEW"}"#,
            )
        } else {
            json_response(StatusCode::OK, r#"{"ok":true}"#)
        }
    }))
    .await;
    let jwks = JwksServer::start().await;
    let gw = sidecar(&config_yaml(
        &upstream.url(),
        &jwks.url(),
        ROUTES,
        &grants_section(&grants.url(), "1h", "deny"),
    ))
    .await;

    let reply = send(gw.addr, get("/work/works/NW002NEW", Some(&user_a()))).await;
    assert_eq!(reply.reason(), "work_unknown");
    let create = |ws: &str| {
        Request::post("/work/works")
            .header("host", "gw.test")
            .header("token", user_a())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(
                r#"{{"workstream_prefix":"{ws}","highway_authority_swa_code":"4020"}}"#
            ))))
            .unwrap()
    };
    let reply = send(gw.addr, create("003")).await;
    assert_eq!(reply.status, 403, "no full-write on 003");
    let reply = send(gw.addr, create("000")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.reason(), "default_workstream");
    assert_eq!(upstream.count(), 0);

    let reply = send(gw.addr, create("002")).await;
    assert_eq!(reply.status, 201);
    assert_eq!(
        reply.json()["work_reference_number"],
        "NW002NEW",
        "the response body passes through"
    );
    let reply = send(gw.addr, get("/work/works/NW002NEW", Some(&user_a()))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn grants_server_down_at_start_means_503_and_nothing_forwarded_until_it_answers() {
    let grants = GrantsServer::start(GrantsAnswer {
        status: 500,
        body: String::new(),
        etag: String::new(),
    })
    .await;
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let yaml = config_yaml(
        &upstream.url(),
        &jwks.url(),
        ROUTES,
        &grants_section(&grants.url(), "1h", "deny"),
    );
    let config = streetgate::config::Config::from_yaml(&yaml).unwrap();
    let gw = streetgate::app::start(config, streetgate::telemetry::metrics::Metrics::new())
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || async { fetched(&gw, "error") >= 1 }).await,
        "the grants server was never asked"
    );

    let reply = send(gw.addr, get("/work/works/NW001", Some(&user_a()))).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.reason(), "snapshot_unavailable");
    assert_eq!(send(gw.admin_addr, get("/readyz", None)).await.status, 503);
    assert_eq!(upstream.count(), 0);
    assert_eq!(
        send(gw.addr, get("/work/status", None)).await.status,
        200,
        "public routes still work"
    );

    grants.set(ok(1, document(1, false, None)));
    let gateway = gw.gateway.clone();
    assert!(
        eventually(PATIENCE, || async { gateway.not_ready().is_empty() }).await,
        "timed out waiting for gateway.not_ready().is_empty()"
    );
    let reply = send(gw.addr, get("/work/works/NW001", Some(&user_a()))).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn bad_documents_keep_the_last_good_snapshot_and_stale_snapshots_deny() {
    let World {
        grants,
        upstream,
        _jwks,
        gw,
    } = world("1500ms", "deny").await;
    assert_eq!(status_of(&gw, "/work/works/NW001", &user_a()).await, 200);

    // A corrupt document: counted invalid, last good stays.
    grants.set(ok(2, "{\"version\": 2, \"organisations\": [".into()));
    assert!(
        eventually(PATIENCE, || async { fetched(&gw, "invalid") >= 1 }).await,
        "the corrupt document was never fetched"
    );
    assert_eq!(status_of(&gw, "/work/works/NW001", &user_a()).await, 200);
    let scrape = metrics(&gw).await;
    assert!(
        sample(
            &scrape,
            r#"streetgate_snapshot_fetch_total{result="invalid"}"#
        ) >= 1.0,
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "streetgate_snapshot_version"), 1.0);

    // 304s keep it fresh.
    grants.set(ok(1, document(1, false, None)));
    // Twice a second ahead, each time answered 304: 2 s in all, past max_age (1500ms).
    for _ in 0..2 {
        gw.gateway.clock.advance(Duration::from_secs(1));
        let before = fetched(&gw, "not_modified");
        assert!(
            eventually(PATIENCE, || async { fetched(&gw, "not_modified") > before }).await,
            "the grants server stopped being polled"
        );
    }
    assert_eq!(status_of(&gw, "/work/works/NW001", &user_a()).await, 200);
    let scrape = metrics(&gw).await;
    assert!(
        sample(
            &scrape,
            r#"streetgate_snapshot_fetch_total{result="not_modified"}"#
        ) >= 1.0,
        "{scrape}"
    );

    // A 500 for longer than max_age: stale, 503, nothing forwarded.
    grants.set(GrantsAnswer {
        status: 500,
        body: String::new(),
        etag: String::new(),
    });
    let before = upstream.count();
    let failed = fetched(&gw, "error");
    assert!(
        eventually(PATIENCE, || async { fetched(&gw, "error") > failed }).await,
        "the failing grants server was never asked"
    );
    gw.gateway.clock.advance(Duration::from_secs(2));
    let reply = send(gw.addr, get("/work/works/NW001", Some(&user_a()))).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.reason(), "snapshot_stale");
    assert_eq!(send(gw.admin_addr, get("/readyz", None)).await.status, 503);
    assert_eq!(upstream.count(), before);
}

#[tokio::test]
async fn serve_stale_keeps_deciding_from_the_old_snapshot() {
    let World {
        grants,
        upstream,
        _jwks,
        gw,
    } = world("500ms", "serve_stale").await;
    grants.set(GrantsAnswer {
        status: 500,
        body: String::new(),
        etag: String::new(),
    });
    let failed = fetched(&gw, "error");
    assert!(
        eventually(PATIENCE, || async { fetched(&gw, "error") > failed }).await,
        "the failing grants server was never asked"
    );
    gw.gateway.clock.advance(Duration::from_secs(1));
    assert_eq!(readyz(&gw).await, 503, "readiness reports staleness");
    assert_eq!(status_of(&gw, "/work/works/NW001", &user_a()).await, 200);
    assert_eq!(status_of(&gw, "/work/works/NW003", &user_a()).await, 403);
    assert_eq!(upstream.count(), 1, "the denied request was not forwarded");
}

#[tokio::test]
async fn revoked_tokens_and_suspended_organisations_are_401() {
    let World {
        grants,
        upstream,
        _jwks,
        gw,
    } = world("1h", "deny").await;
    let old_token = user_a();
    assert_eq!(
        send(gw.addr, get("/work/works/NW001", Some(&old_token)))
            .await
            .status,
        200
    );

    // Revoke every token issued before now + 60 s.
    let later =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(60))
            .to_string();
    grants.set(ok(2, document(2, false, Some(&later))));
    let store = gw.gateway.grants.clone().unwrap();
    assert!(
        eventually(PATIENCE, || async { store.version() == Some(2) }).await,
        "timed out waiting for store.version() == Some(2)"
    );
    let reply = send(gw.addr, get("/work/works/NW001", Some(&old_token))).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.reason(), "token_revoked");

    grants.set(ok(3, document(3, true, None)));
    assert!(
        eventually(PATIENCE, || async { store.version() == Some(3) }).await,
        "timed out waiting for store.version() == Some(3)"
    );
    let reply = send(gw.addr, get("/work/works/NW001", Some(&old_token))).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.reason(), "organisation_suspended");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn swaps_under_traffic_never_fail_a_request() {
    let World {
        grants,
        upstream,
        _jwks,
        gw,
    } = world("1h", "deny").await;
    let addr = gw.addr;
    let token = user_a();
    let traffic: Vec<_> = (0..4)
        .map(|_| {
            let token = token.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..60 {
                    statuses.push(
                        send(addr, get("/work/works/NW001", Some(&token)))
                            .await
                            .status,
                    );
                }
                statuses
            })
        })
        .collect();
    let store = gw.gateway.grants.clone().unwrap();
    for v in 2..=6 {
        grants.set(ok(v, document(v, false, None)));
        assert!(
            eventually(PATIENCE, || async { store.version() == Some(v) }).await,
            "timed out waiting for store.version() == Some(v)"
        );
    }
    let mut total = 0;
    for t in traffic {
        let statuses = t.await.unwrap();
        total += statuses.len();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    assert_eq!(upstream.count(), total);
}
