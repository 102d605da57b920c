//! The distribution story end to end, all real processes' parts on loopback: the legacy system
//! drops a snapshot into `streetgate publish`'s directory, and a sidecar long-polling the
//! publisher with `?since=` enforces the change (a revoked grant) through a delta, without a
//! poll interval in between.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use streetgate::publish::{PublishArgs, start};

const V1: &str = include_str!("fixtures/grants/integrity.json");
const ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, Contractor]}
        access: {read_work: {path: workReferenceNumber}}
"#;

/// Writes under a dotfile name, then renames into place, as the legacy system must.
fn drop_file(dir: &Path, name: &str, bytes: &str) {
    let tmp = dir.join(format!(".{name}.partial"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[tokio::test]
async fn a_drop_reaches_a_long_polling_sidecar_as_a_delta_and_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    drop_file(dir.path(), "v1.json", V1);
    let publisher = start(PublishArgs {
        dir: dir.path().to_owned(),
        addr: "127.0.0.1:0".parse().unwrap(),
        path: "/grants".into(),
        retain: 3,
        max_wait: Duration::from_secs(30),
        scan_interval: Duration::from_millis(20),
    })
    .await
    .unwrap();
    assert!(
        eventually(PATIENCE, || {
            let ready = publisher.catalog.latest().is_some_and(|v| v.number == 1);
            async move { ready }
        })
        .await,
        "the publisher never published v1"
    );

    // A poll interval far longer than the test: only long-polling can deliver the change.
    let grants = format!(
        "grants:\n  source:\n    url:\n      url: http://{}/grants\n      poll_interval: 1h\n      long_poll: 20s\n  max_age: 2h\n",
        publisher.addr
    );
    let w = World::start(ROUTES, &grants).await;
    let planner = token(&claims("user-a", "7001", &["Planner"]));
    let before = send(w.gw.addr, get("/work/works/NW001", Some(&planner))).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(w.upstream.count(), 1);
    // The sidecar holds a long-poll open before the change is dropped.
    assert!(
        eventually(PATIENCE, || {
            let waiting = publisher.metrics.long_polls_waiting.get() >= 1;
            async move { waiting }
        })
        .await,
        "the sidecar never long-polled"
    );

    // v2 takes workstream 001 away from user-a.
    let v2 = V1.replace("\"version\": 1", "\"version\": 2").replace(
        r#"{"001": "full-write", "002": "full-write", "003": "read-only"}"#,
        r#"{"002": "full-write", "003": "read-only"}"#,
    );
    assert_ne!(v2, V1);
    let dropped = Instant::now();
    drop_file(dir.path(), "v2.json", &v2);
    let enforced = eventually(PATIENCE, || {
        let version = w.gw.gateway.grants.as_ref().and_then(|g| g.version());
        async move { version == Some(2) }
    })
    .await;
    assert!(enforced, "the sidecar never took v2");
    let took = dropped.elapsed();

    let after = send(w.gw.addr, get("/work/works/NW001", Some(&planner))).await;
    assert_eq!(after.status, StatusCode::FORBIDDEN);
    assert_eq!(after.reason(), "workstream_no_access");
    assert_eq!(
        w.upstream.count(),
        1,
        "the upstream never saw the revoked request"
    );
    // It came as a delta, not a full document.
    let scrape = metrics(&w.gw).await;
    assert!(
        sample(
            &scrape,
            "streetgate_snapshot_delta_total{result=\"applied\"}"
        ) >= 1.0,
        "no delta applied:\n{scrape}"
    );
    eprintln!("drop to enforcement: {took:?}");
    publisher.shutdown().await;
}
