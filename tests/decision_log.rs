//! The decision log as the binary writes it: every decision, allowed or not, is one JSON line
//! with the documented fields, handed over from the workers' buffers; lines the output cannot
//! take are counted. The log output is process-wide, so this file has one test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use http::StatusCode;
use streetgate::telemetry::decision_log;
use streetgate::telemetry::log_buffer::LogBuffer;

/// Stdout stand-in: keeps what is written, or fails every write while `fail` is set.
#[derive(Clone, Default)]
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    fail: Arc<AtomicBool>,
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The decision lines written so far, by decision id (each id's lines).
fn lines_by_id(capture: &Capture) -> HashMap<String, Vec<serde_json::Value>> {
    let bytes = capture.bytes.lock().unwrap().clone();
    let mut by_id: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for line in String::from_utf8(bytes).unwrap().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["target"], "streetgate::decision", "{line}");
        let id = v["fields"]["decision_id"].as_str().unwrap().to_owned();
        by_id.entry(id).or_default().push(v);
    }
    by_id
}

#[tokio::test]
async fn every_decision_is_logged_once_with_its_fields_and_lost_lines_are_counted() {
    let capture = Capture::default();
    let buffer = LogBuffer::to(Box::new(capture.clone()));
    assert!(decision_log::install(buffer.clone()));
    let w = World::start(DEFAULT_ROUTES, "runtime: {workers: 2}").await;
    let planner = token(&claims("user-a", "7001", &["Planner"]));
    let contractor = token(&claims("user-c", "8001", &["Contractor"]));

    // (decision id, expected route, method, decision, reason, status, user)
    let mut expected = Vec::new();
    for i in 0..20 {
        let reply = send(w.gw.addr, get(&format!("/work/works/W{i}"), Some(&planner))).await;
        assert_eq!(reply.status, StatusCode::OK);
        let id = reply.headers["x-streetgate-decision-id"].to_str().unwrap();
        expected.push((
            id.to_owned(),
            "GetWork",
            "GET",
            "allow",
            "role_granted",
            200,
            Some("user-a"),
        ));
    }
    let reply = send(w.gw.addr, get("/work/works/W1", None)).await;
    expected.push((
        reply.json()["decision_id"].as_str().unwrap().to_owned(),
        "GetWork",
        "GET",
        "deny",
        "token_missing",
        401,
        None,
    ));
    let reply = send(w.gw.addr, get("/nowhere", Some(&planner))).await;
    expected.push((
        reply.json()["decision_id"].as_str().unwrap().to_owned(),
        "_unmatched",
        "GET",
        "deny",
        "route_not_found",
        404,
        None,
    ));
    let echo = http::Request::post("/work/echo")
        .header("host", "gw.test")
        .header("token", &contractor)
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let reply = send(w.gw.addr, echo).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    let reason = reply.reason();
    expected.push((
        reply.json()["decision_id"].as_str().unwrap().to_owned(),
        "Echo",
        "POST",
        "deny",
        Box::leak(reason.into_boxed_str()),
        403,
        Some("user-c"),
    ));
    // Refused by the framing guard before routing.
    let raw_reply = raw(
        w.gw.addr,
        b"POST /work/echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&raw_reply), 400, "{raw_reply}");
    let body = &raw_reply[raw_reply.find("\r\n\r\n").unwrap() + 4..];
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let framing = (
        body["decision_id"].as_str().unwrap().to_owned(),
        "_unmatched",
        "POST",
        "deny",
        "bad_framing",
        400,
        None,
    );
    expected.push(framing);

    let all_logged = eventually(PATIENCE, || {
        buffer.flush();
        let by_id = lines_by_id(&capture);
        let done = expected.iter().all(|e| by_id.contains_key(&e.0));
        async move { done }
    })
    .await;
    assert!(all_logged, "not every decision was logged");
    let by_id = lines_by_id(&capture);
    for (id, route, method, decision, reason, status, user) in &expected {
        let lines = &by_id[id];
        assert_eq!(lines.len(), 1, "{id} logged {} times", lines.len());
        let v = &lines[0];
        let f = &v["fields"];
        assert_eq!(v["level"], "INFO");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{v}");
        assert_eq!(f["route"], *route, "{v}");
        assert_eq!(f["method"], *method, "{v}");
        assert_eq!(f["decision"], *decision, "{v}");
        assert_eq!(f["reason"], *reason, "{v}");
        assert_eq!(f["status"], *status, "{v}");
        assert!(f["latency_us"].is_u64(), "{v}");
        match user {
            Some(user) => assert_eq!(f["user"], *user, "{v}"),
            None => assert!(f.get("user").is_none(), "{v}"),
        }
        let mut keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        for key in keys {
            assert!(
                [
                    "decision_id",
                    "route",
                    "method",
                    "user",
                    "organisation",
                    "acting_organisation",
                    "decision",
                    "reason",
                    "latency_us",
                    "status",
                    "filter_us",
                ]
                .contains(&key),
                "unexpected field {key}: {v}"
            );
        }
    }
    assert_eq!(
        by_id.len(),
        expected.len(),
        "lines for decisions never made"
    );

    // An output that fails: requests are still answered, and the lost lines are counted.
    capture.fail.store(true, Ordering::SeqCst);
    let before = sample(
        &metrics(&w.gw).await,
        "streetgate_decision_log_dropped_total",
    );
    for i in 0..5 {
        let reply = send(w.gw.addr, get(&format!("/work/works/X{i}"), Some(&planner))).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let counted = eventually(PATIENCE, || {
        buffer.flush();
        let gw = &w.gw;
        async move {
            sample(&metrics(gw).await, "streetgate_decision_log_dropped_total") >= before + 5.0
        }
    })
    .await;
    assert!(counted, "lost decision lines not counted");
}
