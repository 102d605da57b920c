//! The built binary, for operating it: `explain` and `check-snapshot` output and exit statuses,
//! and `serve` reloading on SIGHUP and draining on SIGTERM to exit 0.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use http::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_streetgate");

const ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, Contractor, HighwayAuthority]}
        access: {read_work: {path: workReferenceNumber}}
      - id: Status
        route: GET /status
        allow: public
"#;

/// A config whose keys are the JWKS fixture file and whose grants are the explain fixture.
fn explain_config(dir: &Path) -> PathBuf {
    let yaml = config_yaml(
        "http://127.0.0.1:9",
        "unused",
        ROUTES,
        &format!(
            "grants:\n  source:\n    file:\n      path: {}",
            fixture("explain/snapshot.json").display()
        ),
    )
    .replace(
        "  jwks:\n    url:\n      url: unused\n",
        &format!(
            "  jwks:\n    file: {}\n",
            fixture("keys/jwks.json").display()
        ),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn explain(config: &Path, args: &[&str]) -> Output {
    let snapshot = fixture("explain/snapshot.json");
    Command::new(BIN)
        .arg("explain")
        .arg("--config")
        .arg(config)
        .arg("--snapshot")
        .arg(&snapshot)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn explain_allow_prints_the_chain_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let config = explain_config(dir.path());
    let t = token(&claims("user-a", "7001", &["Planner", "API"]));
    let out = explain(&config, &["--token", &t, "--path", "/work/works/NW001"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "request: GET /work/works/NW001",
        "route: GetWork (GET /work/works/{workReferenceNumber}, api work",
        "rule: roles any of [Planner,HighwayAuthority,Contractor]; read the work named by the path parameter workReferenceNumber",
        "identity: user-a of organisation 7001, roles Planner,API (token verified with the configured keys)",
        "grants snapshot: version 3 (2 works, 1 users)",
        "acting organisation: 7001 (own organisation)",
        "work: promoter 7001, highway authority 4020, workstream 001",
        "workstream 001: full-write",
        "decision: ALLOW",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Not a terminal: no progress, no logs.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn explain_deny_names_the_workstream_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = explain_config(dir.path());
    let t = token(&claims("user-a", "7001", &["Planner", "API"]));
    let out = explain(
        &config,
        &[
            "--token",
            &t,
            "--path",
            "/work/works/NW003",
            "--swa-code",
            "7001",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("request: GET /work/works/NW003?swaCode=7001"),
        "{text}"
    );
    assert!(text.contains("workstream 003: no-access"), "{text}");
    assert!(
        text.contains("decision: DENY, reason workstream_no_access"),
        "{text}"
    );

    // No route: a denial too.
    let out = explain(&config, &["--token", &t, "--path", "/work/nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("decision: DENY, reason route_not_found"));
}

#[test]
fn explain_with_raw_claims_and_with_an_unverified_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = explain_config(dir.path());
    // A highway authority reads every work: raw claims, nothing signed.
    let out = explain(
        &config,
        &[
            "--claims",
            r#"{"sub":"hal","org":"4020","roles":["HighwayAuthority","API"]}"#,
            "--path",
            "/work/works/NW003",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("raw claims, not verified"), "{text}");
    assert!(text.contains("capacity: highway authority"), "{text}");

    // An expired token is a 401 when verified, and readable with --insecure-decode.
    let mut expired = claims("user-a", "7001", &["Planner", "API"]);
    expired["exp"] = serde_json::json!(now() - 3600);
    expired["iat"] = serde_json::json!(now() - 7200);
    expired["nbf"] = serde_json::json!(now() - 7200);
    let t = token(&expired);
    let out = explain(&config, &["--token", &t, "--path", "/work/works/NW001"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("decision: DENY, reason token_expired"),
        "{}",
        stdout(&out)
    );
    let out = explain(
        &config,
        &[
            "--token",
            &t,
            "--insecure-decode",
            "--path",
            "/work/works/NW001",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("WITHOUT verifying"), "{text}");
}

#[test]
fn explain_usage_and_config_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = explain_config(dir.path());
    // --token and --claims together.
    let out = explain(
        &config,
        &["--token", "x", "--claims", "{}", "--path", "/work/status"],
    );
    assert_eq!(out.status.code(), Some(2));
    // Claims that are not JSON.
    let out = explain(
        &config,
        &["--claims", "nope", "--path", "/work/works/NW001"],
    );
    assert_eq!(out.status.code(), Some(2));
    // An invalid config names its problem.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "listen: {addr: nowhere}\n").unwrap();
    let out = explain(&bad, &["--path", "/work/status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen.addr"));
    // A snapshot that does not validate.
    let out = Command::new(BIN)
        .args(["explain", "--config"])
        .arg(&config)
        .arg("--snapshot")
        .arg(fixture("explain/bad_snapshot.json"))
        .args(["--path", "/work/status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_snapshot_reports_size_or_every_problem() {
    let out = Command::new(BIN)
        .arg("check-snapshot")
        .arg(fixture("explain/snapshot.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("ok (version 3, 2 works, 1 users)"));
    assert!(out.stderr.is_empty(), "quiet when not on a terminal");

    let out = Command::new(BIN)
        .arg("check-snapshot")
        .arg(fixture("explain/bad_snapshot.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(err.contains("works[0].promoter"), "{err}");
}

// === serve: SIGHUP and SIGTERM ===

struct Served {
    child: Child,
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
}

/// Starts `streetgate serve` and reads the addresses it logged.
fn serve(config: &Path) -> Served {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    let mut served = Served {
        child,
        addr: ([0, 0, 0, 0], 0).into(),
        admin: ([0, 0, 0, 0], 0).into(),
    };
    // On panic here, dropping `served` stops the child.
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("serve logged its addresses");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let fields = &v["fields"];
        if fields["message"] == "streetgate listening" {
            served.addr = fields["addr"].as_str().unwrap().parse().unwrap();
            served.admin = fields["admin_addr"].as_str().unwrap().parse().unwrap();
            return served;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn serve_reloads_on_sighup_and_drains_on_sigterm_then_exits_0() {
    let upstream = Upstream::with_delay(
        Duration::from_millis(1500),
        Arc::new(|_: &Seen| json_response(StatusCode::OK, r#"{"slow":true}"#)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let routes = r#"
      - id: Status
        route: GET /status
        allow: public
"#;
    let write = |routes: &str| {
        let yaml = config_yaml(&upstream.url(), "unused", routes, "shutdown: {drain: 10s}")
            .replace(
                "  jwks:\n    url:\n      url: unused\n",
                &format!(
                    "  jwks:\n    file: {}\n",
                    fixture("keys/jwks.json").display()
                ),
            )
            .replace("request_timeout: 1s", "request_timeout: 10s");
        std::fs::write(dir.path().join("config.yaml"), yaml).unwrap();
    };
    write(routes);
    let mut served = serve(&dir.path().join("config.yaml"));
    let addr = served.addr;

    // SIGHUP: a new route appears.
    let ping = || get("/work/ping", None);
    assert_eq!(send(addr, ping()).await.status, 404);
    write(&format!(
        "{routes}      - id: Ping\n        route: GET /ping\n        allow: public\n"
    ));
    signal(&served.child, "HUP");
    let reloaded = eventually(PATIENCE, || async {
        send(addr, ping()).await.status == 200
    })
    .await;
    assert!(reloaded, "SIGHUP reloaded the config");
    let seen_before = upstream.count();

    // SIGTERM during a slow request: it completes, then the process exits 0.
    let in_flight = tokio::spawn(async move { send(addr, get("/work/status", None)).await });
    let admin = served.admin;
    let in_flight_now = eventually(PATIENCE, || async {
        let scrape = send(admin, get("/metrics", None)).await;
        sample(
            &String::from_utf8_lossy(&scrape.body),
            "streetgate_requests_in_flight",
        ) == 1.0
    })
    .await;
    assert!(in_flight_now, "the slow request never reached the sidecar");
    signal(&served.child, "TERM");
    let draining = eventually(PATIENCE, || async {
        send(admin, get("/readyz", None)).await.status == 503
    })
    .await;
    assert!(draining, "not ready while draining");
    let refused = eventually(PATIENCE, || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(refused, "no new connections while draining");
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["slow"], true);
    assert_eq!(upstream.count(), seen_before + 1);
    let mut exit = None;
    let exited = eventually(Duration::from_secs(15), || {
        exit = served.child.try_wait().unwrap();
        std::future::ready(exit.is_some())
    })
    .await;
    assert!(exited, "still running after the drain");
    assert_eq!(exit.and_then(|e| e.code()), Some(0));
}

#[tokio::test]
async fn explain_verifies_with_keys_from_a_jwks_url() {
    let jwks = JwksServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_yaml("http://127.0.0.1:9", &jwks.url(), DEFAULT_ROUTES, "");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    let good = token(&claims("user-a", "7001", &["Planner"]));
    let mut forged = good.clone();
    forged.truncate(good.len() - 4);
    forged.push_str("AAAA");
    for (t, code, expected) in [
        (good, 0, "token verified with the configured keys"),
        (forged, 1, "decision: DENY, reason token_signature"),
    ] {
        let out = tokio::process::Command::new(BIN)
            .arg("explain")
            .arg("--config")
            .arg(&config)
            .args(["--token", &t, "--path", "/work/status"])
            .output()
            .await
            .unwrap();
        // A public route needs no identity: the token is not even looked at.
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("identity: not needed (public route)"));
        // Without grants in the config, role-only GetWork decides on the token alone.
        let out = tokio::process::Command::new(BIN)
            .arg("explain")
            .arg("--config")
            .arg(&config)
            .args(["--token", &t, "--path", "/work/works/NW001"])
            .output()
            .await
            .unwrap();
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(code), "{text}");
        assert!(text.contains(expected), "{text}");
    }
    assert!(jwks.hits.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}
