//! The snapshot guard through the whole sidecar: a grants file the test rewrites, a real
//! upstream, real tokens, and the admin accept endpoint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;

const WITHIN: Duration = Duration::from_secs(20);
const TOKEN: &str = "accept-token-0123456789";

const ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, Contractor, HighwayAuthority]}
        access: {read_work: {path: workReferenceNumber}}
"#;

/// user-a (promoter 7001) has full-write on 001 and 002; `works` lists (reference, workstream).
fn document(version: u64, users: bool, works: &[(&str, &str)]) -> String {
    let works: Vec<String> = works
        .iter()
        .map(|(r, ws)| format!(r#"{{"work_reference_number": "{r}", "promoter": "7001", "highway_authority": "4020", "workstream": "{ws}"}}"#))
        .collect();
    let users = if users {
        r#"{"sub": "user-a", "organisation": "7001", "workstreams": {"7001": {"001": "full-write", "002": "full-write"}}}"#
    } else {
        ""
    };
    format!(
        r#"{{"version": {version}, "generated_at": "2026-11-23T07:00:00Z",
  "organisations": [
    {{"swa_code": "7001", "name": "Northern Water", "kind": "promoter", "status": "active", "workstreams": ["000", "001", "002"]}},
    {{"swa_code": "4020", "name": "Leeds City Council", "kind": "highway_authority", "status": "active"}}],
  "users": [{users}],
  "works": [{}]}}"#,
        works.join(",")
    )
}

const FOUR: [(&str, &str); 4] = [
    ("NW1", "001"),
    ("NW2", "001"),
    ("NW3", "002"),
    ("NW4", "002"),
];

fn write(path: &Path, body: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Setup {
    _dir: tempfile::TempDir,
    grants: std::path::PathBuf,
    w: World,
    token: String,
}

async fn setup(guard: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.json");
    write(&grants, &document(1, true, &FOUR));
    let token_file = dir.path().join("accept-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let extra = format!(
        "grants:\n  source: {{file: {{path: {}, poll_interval: 20ms}}}}\n  accept_token_file: {}\n{guard}",
        grants.display(),
        token_file.display()
    );
    let w = World::start(ROUTES, &extra).await;
    let token = common::token(&claims("user-a", "7001", &["Planner"]));
    Setup {
        _dir: dir,
        grants,
        w,
        token,
    }
}

impl Setup {
    async fn read(&self, work: &str) -> StatusCode {
        send(
            self.w.gw.addr,
            get(&format!("/work/works/{work}"), Some(&self.token)),
        )
        .await
        .status
    }

    fn store(&self) -> &streetgate::grants::GrantsStore {
        self.w.gw.gateway.grants.as_deref().unwrap()
    }

    async fn accept(&self, query: &str, auth: Option<&str>) -> StatusCode {
        let mut b = Request::post(format!("/grants/accept{query}")).header("host", "admin");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        send(
            self.w.gw.admin_addr,
            b.body(Full::new(Bytes::new())).unwrap(),
        )
        .await
        .status
    }

    async fn scrape(&self, series: &str) -> f64 {
        sample(&metrics(&self.w.gw).await, series)
    }
}

#[tokio::test]
async fn an_emptied_snapshot_is_refused_the_old_keeps_allowing_and_accept_puts_it_in_force() {
    let s = setup("  max_revocation_ratio: 0.3\n").await;
    for work in ["NW1", "NW2", "NW3", "NW4"] {
        assert_eq!(s.read(work).await, StatusCode::OK);
    }
    assert_eq!(s.w.upstream.count(), 4);

    // The publisher bug: users and works gone.
    write(&s.grants, &document(2, false, &[]));
    assert!(eventually(WITHIN, || async { s.store().pending_version() == Some(2) }).await);
    assert_eq!(s.store().version(), Some(1));
    assert_eq!(
        s.scrape("streetgate_grants_guard_refused_version").await,
        2.0
    );
    assert_eq!(
        s.scrape("streetgate_grants_guard_flips_total{direction=\"allow_to_deny\"}")
            .await,
        4.0
    );
    // The snapshot in force still decides, and the upstream sees the allowed requests.
    assert_eq!(s.read("NW1").await, StatusCode::OK);
    assert_eq!(s.w.upstream.count(), 5);
    assert!(
        s.w.gw.gateway.not_ready().is_empty(),
        "a refusal is not staleness"
    );

    // Accept: authenticated, for the pending version only.
    assert_eq!(s.accept("?version=2", None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.accept("?version=2", Some("Bearer wrong-token-0123456789"))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.accept("?version=2", Some(TOKEN)).await,
        StatusCode::UNAUTHORIZED
    );
    let bearer = format!("Bearer {TOKEN}");
    for wrong in ["?version=1", "?version=3"] {
        assert_eq!(
            s.accept(wrong, Some(&bearer)).await,
            StatusCode::CONFLICT,
            "{wrong}"
        );
    }
    for bad in [
        "",
        "?version=",
        "?version=x",
        "?version=2&version=2",
        "?version=-2",
    ] {
        assert_eq!(
            s.accept(bad, Some(&bearer)).await,
            StatusCode::BAD_REQUEST,
            "{bad:?}"
        );
    }
    let get_accept = Request::get("/grants/accept?version=2")
        .header("host", "admin")
        .header("authorization", &bearer)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        send(s.w.gw.admin_addr, get_accept).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(s.store().version(), Some(1));

    assert_eq!(s.accept("?version=2", Some(&bearer)).await, StatusCode::OK);
    assert_eq!(s.store().version(), Some(2));
    assert_eq!(s.store().pending_version(), None);
    assert_eq!(
        s.scrape("streetgate_grants_guard_refused_version").await,
        0.0
    );
    assert_eq!(s.read("NW1").await, StatusCode::FORBIDDEN);
    assert_eq!(
        s.w.upstream.count(),
        5,
        "the denial never reached the upstream"
    );
    // Accepting again: nothing pending.
    assert_eq!(
        s.accept("?version=2", Some(&bearer)).await,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn a_revocation_share_below_the_threshold_passes_and_flips_are_counted_both_ways() {
    let s = setup("  max_revocation_ratio: 0.3\n").await;
    for work in ["NW1", "NW2", "NW3", "NW4", "NW9"] {
        s.read(work).await;
    }
    assert_eq!(s.read("NW9").await, StatusCode::FORBIDDEN);
    // v2: NW4 gone (1 of 4 allowed, 25% ≤ 30%), NW9 added (the denied one now allowed).
    write(
        &s.grants,
        &document(
            2,
            true,
            &[
                ("NW1", "001"),
                ("NW2", "001"),
                ("NW3", "002"),
                ("NW9", "001"),
            ],
        ),
    );
    assert!(eventually(WITHIN, || async { s.store().version() == Some(2) }).await);
    assert_eq!(s.store().pending_version(), None);
    assert_eq!(
        s.scrape("streetgate_grants_guard_flips_total{direction=\"allow_to_deny\"}")
            .await,
        1.0
    );
    assert_eq!(
        s.scrape("streetgate_grants_guard_flips_total{direction=\"deny_to_allow\"}")
            .await,
        2.0
    );
    assert_eq!(s.read("NW9").await, StatusCode::OK);

    // A later good snapshot replaces a refused one: v3 empties (refused), v4 is fine.
    for work in ["NW1", "NW2", "NW3"] {
        s.read(work).await;
    }
    write(&s.grants, &document(3, false, &[]));
    assert!(eventually(WITHIN, || async { s.store().pending_version() == Some(3) }).await);
    let mut five = FOUR.to_vec();
    five.push(("NW9", "001"));
    write(&s.grants, &document(4, true, &five));
    assert!(eventually(WITHIN, || async { s.store().version() == Some(4) }).await);
    assert_eq!(s.store().pending_version(), None);
    assert_eq!(
        s.scrape("streetgate_grants_guard_refused_version").await,
        0.0
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        s.accept("?version=3", Some(&bearer)).await,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn without_a_ratio_flips_are_counted_but_nothing_is_refused() {
    let s = setup("").await;
    assert_eq!(s.read("NW1").await, StatusCode::OK);
    write(&s.grants, &document(2, false, &[]));
    assert!(eventually(WITHIN, || async { s.store().version() == Some(2) }).await);
    assert_eq!(
        s.scrape("streetgate_grants_guard_flips_total{direction=\"allow_to_deny\"}")
            .await,
        1.0
    );
    assert_eq!(s.read("NW1").await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn accept_is_off_unless_a_token_file_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.json");
    write(&grants, &document(1, true, &FOUR));
    let extra = format!(
        "grants:\n  source: {{file: {{path: {}, poll_interval: 20ms}}}}\n  max_revocation_ratio: 0.3\n",
        grants.display()
    );
    let w = World::start(ROUTES, &extra).await;
    let req = Request::post("/grants/accept?version=2")
        .header("host", "admin")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        send(w.gw.admin_addr, req).await.status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn bad_guard_keys_are_reported_with_their_locations() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    for (keys, location) in [
        ("  max_revocation_ratio: 0\n", "grants.max_revocation_ratio"),
        (
            "  max_revocation_ratio: 1.5\n",
            "grants.max_revocation_ratio",
        ),
        (
            "  max_revocation_ratio: .nan\n",
            "grants.max_revocation_ratio",
        ),
        (
            "  max_revocation_ratio: 0.3\n  guard_window: 0\n",
            "grants.guard_window",
        ),
        (
            "  accept_token_file: /nonexistent/token\n",
            "grants.accept_token_file",
        ),
        (
            &format!("  accept_token_file: {}\n", short.display()),
            "grants.accept_token_file",
        ),
    ] {
        let extra = format!("grants:\n  source: {{file: {{path: /tmp/g.json}}}}\n{keys}");
        let yaml = config_yaml(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1/jwks",
            ROUTES,
            &extra,
        );
        let problems = streetgate::config::Config::from_yaml(&yaml).unwrap_err();
        assert!(
            problems.iter().any(|p| p.location == location),
            "{keys}: {problems}"
        );
    }
}
