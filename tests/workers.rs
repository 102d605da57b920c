//! Thread-per-core serving: `runtime.workers` threads share one port, each with its own
//! upstream connections; `STREETGATE_WORKERS` overrides the config; drain covers every worker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::StatusCode;

fn planner() -> String {
    token(&claims("user-a", "7001", &["Planner"]))
}

async fn world(workers: usize, upstream: Upstream, extra: &str) -> World {
    World::with(
        upstream,
        DEFAULT_ROUTES,
        &format!("runtime: {{workers: {workers}}}\n{extra}"),
    )
    .await
}

fn per_worker(scrape: &str, workers: usize) -> Vec<f64> {
    (0..workers)
        .map(|i| {
            sample(
                scrape,
                &format!("streetgate_worker_connections_total{{worker=\"{i}\"}}"),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_worker_accepts_on_the_one_port() {
    let w = world(3, Upstream::start().await, "").await;
    assert_eq!(w.gw.workers, 3);
    let token = planner();
    for i in 0..60 {
        let reply = send(w.gw.addr, get(&format!("/work/works/W{i}"), Some(&token))).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let scrape = metrics(&w.gw).await;
    let spread = per_worker(&scrape, 3);
    assert!(
        !scrape.contains("streetgate_worker_connections_total{worker=\"3\"}"),
        "no fourth worker"
    );
    assert_eq!(spread.iter().sum::<f64>(), 60.0, "{spread:?}");
    // Fresh connections hash over the three listeners; each misses all 60 with p < 1e-10.
    assert!(spread[..3].iter().all(|&n| n > 0.0), "{spread:?}");
    assert_eq!(w.upstream.count(), 60);
}

#[tokio::test]
async fn each_worker_reuses_its_upstream_connections() {
    let w = world(2, Upstream::start().await, "").await;
    let token = planner();
    for i in 0..40 {
        // A new client connection each time, so both workers serve some.
        let reply = send(w.gw.addr, get(&format!("/work/works/W{i}"), Some(&token))).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(w.upstream.count(), 40);
    let spread = per_worker(&metrics(&w.gw).await, 2);
    assert!(spread.iter().all(|&n| n > 0.0), "{spread:?}");
    // One at a time: a worker's connection is free again for its next request.
    assert!(
        w.upstream.connections() <= 2,
        "{} upstream connections for 40 sequential requests on 2 workers",
        w.upstream.connections()
    );
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_on_every_worker() {
    let upstream = Upstream::with_delay(
        Duration::from_millis(800),
        Arc::new(|_: &Seen| json_response(StatusCode::OK, r#"{"slow":true}"#)),
    )
    .await;
    let jwks = JwksServer::start().await;
    let yaml = config_yaml(
        &upstream.url(),
        &jwks.url(),
        DEFAULT_ROUTES,
        "runtime: {workers: 3}\nshutdown: {drain: 10s}",
    )
    .replace("request_timeout: 1s", "request_timeout: 10s");
    let gw = sidecar(&yaml).await;
    let addr = gw.addr;
    let token = planner();
    let in_flight: Vec<_> = (0..12)
        .map(|i| {
            let token = token.clone();
            tokio::spawn(async move {
                send(addr, get(&format!("/work/works/D{i}"), Some(&token))).await
            })
        })
        .collect();
    let all_in = eventually(PATIENCE, || async {
        gw.gateway.metrics.requests_in_flight.get() == 12
    })
    .await;
    assert!(all_in, "requests never all in flight");
    let spread = per_worker(&metrics(&gw).await, 3);
    assert!(
        spread.iter().filter(|&&n| n > 0.0).count() >= 2,
        "in flight on one worker only: {spread:?}"
    );

    let stopping = tokio::spawn(gw.shutdown());
    let refused = eventually(PATIENCE, || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(refused, "a worker still accepts during the drain");
    for request in in_flight {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["slow"], true);
    }
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown completes once every worker drained")
        .unwrap();
    assert_eq!(upstream.count(), 12);
}

/// A config the binary can start with on its own (JWKS from a file, free ports).
fn serve_config(dir: &std::path::Path) -> std::path::PathBuf {
    let yaml = format!(
        r#"
listen: {{addr: 127.0.0.1:0}}
admin: {{addr: 127.0.0.1:0}}
auth:
  jwks: {{file: {jwks}}}
  issuer: {ISSUER}
  audience: {AUDIENCE}
runtime: {{workers: 2}}
apis:
  - name: work
    prefix: /work
    upstream: http://127.0.0.1:9
    routes:
      - {{id: Status, route: GET /status, allow: public}}
"#,
        jwks = fixture("keys/jwks.json").display()
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs `serve` with `STREETGATE_WORKERS=value` until it logs that it listens (or exits);
/// returns its exit status (None if it was running) and its output.
fn serve_with_env(value: &str) -> (Option<i32>, String) {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streetgate"))
        .args(["serve", "--config"])
        .arg(serve_config(dir.path()))
        .env("STREETGATE_WORKERS", value)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut output = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        output.push_str(&line);
        output.push('\n');
        if line.contains("streetgate listening") {
            child.kill().unwrap();
            let _ = child.wait();
            return (None, output);
        }
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), output + &stderr)
}

#[test]
fn streetgate_workers_overrides_the_config() {
    let (status, output) = serve_with_env("3");
    assert_eq!(status, None, "{output}");
    let listening = output
        .lines()
        .find(|l| l.contains("streetgate listening"))
        .unwrap();
    let line: serde_json::Value = serde_json::from_str(listening).unwrap();
    assert_eq!(line["fields"]["workers"], 3, "{listening}");
}

#[test]
fn a_bad_streetgate_workers_is_a_start_up_error() {
    for bad in ["0", "many", "-2", "", "100000"] {
        let (status, output) = serve_with_env(bad);
        assert_eq!(status, Some(2), "STREETGATE_WORKERS={bad:?}: {output}");
        assert!(
            output.contains(&format!(
                "STREETGATE_WORKERS={bad:?} is not a number of workers"
            )),
            "{bad:?}: {output}"
        );
    }
}

#[test]
fn runtime_workers_is_validated_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = serve_config(dir.path());
    for bad in ["0", "2000", "two"] {
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("workers: 2", &format!("workers: {bad}"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_streetgate"))
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "workers: {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("runtime.workers"),
            "workers: {bad}: {stderr}"
        );
    }
}
