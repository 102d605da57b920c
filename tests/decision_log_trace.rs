//! The decision log cross-references traces: a traced request's decision log line carries its
//! `trace_id` beside its `decision_id`. Alone in its binary: the decision log's output is
//! process-wide.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use streetgate::telemetry::decision_log;
use streetgate::telemetry::log_buffer::LogBuffer;

const GRANTS: &str = include_str!("fixtures/grants/integrity.json");
const ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, Contractor]}
        access: {read_work: {path: workReferenceNumber}}
"#;
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn request(path: &str, token: &str, traceparent: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::get(path)
        .header("host", "gw.test")
        .header("authorization", format!("Bearer {token}"));
    if let Some(tp) = traceparent {
        b = b.header("traceparent", tp);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

/// The decision log line of a traced request names its trace id beside its decision id.
#[tokio::test(flavor = "current_thread")]
async fn the_decision_log_cross_references_the_trace() {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let buffer = LogBuffer::to(Box::new(sink.clone()));
    assert!(decision_log::install(buffer.clone()));

    let mut grants = tempfile::NamedTempFile::new().unwrap();
    grants.write_all(GRANTS.as_bytes()).unwrap();
    // Nothing listens on the endpoint: the log does not depend on the export.
    let extra = format!(
        "grants:\n  source:\n    file:\n      path: {}\n      poll_interval: 1s\n  max_age: 1h\n\
         otel:\n  endpoint: http://127.0.0.1:9/v1/traces\n",
        grants.path().display()
    );
    let w = World::start(ROUTES, &extra).await;
    let t = token(&claims("user-a", "7001", &["Planner"]));
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let reply = send(
        w.gw.addr,
        request("/work/works/SG001", &t, Some(&traceparent)),
    )
    .await;
    assert_eq!(reply.status, 403);
    let decision_id = reply.headers["x-streetgate-decision-id"].to_str().unwrap();
    let logged = || String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let written = eventually(PATIENCE, || {
        buffer.flush();
        let found = logged().contains(decision_id);
        async move { found }
    })
    .await;
    assert!(written, "no log line for {decision_id}:\n{}", logged());
    let all = logged();
    let line = all.lines().find(|l| l.contains(decision_id)).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["fields"]["trace_id"], CALLER_TRACE);
    assert_eq!(v["fields"]["decision_id"], decision_id);
}
