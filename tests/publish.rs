//! `streetgate publish` over real sockets: drops in a real directory, answers over HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Reply, eventually, send};
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use streetgate::grants::synthetic::synthetic_document_version;
use streetgate::publish::{PublishArgs, RunningPublisher, start};

const WITHIN: Duration = Duration::from_secs(20);

async fn publisher(dir: &Path, max_wait: Duration) -> RunningPublisher {
    start(PublishArgs {
        dir: dir.to_owned(),
        addr: "127.0.0.1:0".parse().unwrap(),
        path: "/grants".into(),
        retain: 3,
        max_wait,
        scan_interval: Duration::from_millis(20),
    })
    .await
    .unwrap()
}

/// Writes under a dotfile name, then renames into place, as the legacy system must.
fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.partial"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn doc(version: u64, works: usize) -> Value {
    serde_json::from_slice(&synthetic_document_version(version, 8, 20, works)).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

async fn get(p: &RunningPublisher, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::get(target).header("host", "publisher.test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(p.addr, b.body(Full::new(Bytes::new())).unwrap()).await
}

async fn wait_version(p: &RunningPublisher, version: u64) {
    assert!(
        eventually(WITHIN, || async {
            p.catalog.latest().is_some_and(|v| v.number == version)
        })
        .await,
        "version {version} never published"
    );
}

fn metric(p: &RunningPublisher, name: &str) -> f64 {
    common::sample(&p.metrics.render(), name)
}

fn decode(reply: &Reply) -> Value {
    let raw = match reply
        .headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap())
    {
        None => reply.body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&reply.body[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Some("zstd") => zstd::stream::decode_all(&reply.body[..]).unwrap(),
        Some(other) => panic!("unexpected encoding {other}"),
    };
    serde_json::from_slice(&raw).unwrap()
}

/// A document's entries by the contract's keys, order-insensitive.
fn keyed(doc: &Value) -> BTreeMap<(&'static str, String), Value> {
    let mut out = BTreeMap::new();
    for (kind, key) in [
        ("organisations", "swa_code"),
        ("users", "sub"),
        ("works", "work_reference_number"),
    ] {
        for e in doc[kind].as_array().cloned().unwrap_or_default() {
            out.insert((kind, e[key].as_str().unwrap().to_owned()), e);
        }
    }
    out
}

/// Applies a delta document to a full one, as a sidecar would.
fn apply(old: &Value, delta: &Value) -> Value {
    assert_eq!(delta["since"], old["version"]);
    let mut entries = keyed(old);
    for (kind, key) in [
        ("organisations", "swa_code"),
        ("users", "sub"),
        ("works", "work_reference_number"),
    ] {
        for k in delta["delete"][kind]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            assert!(
                entries
                    .remove(&(kind, k.as_str().unwrap().to_owned()))
                    .is_some()
            );
        }
        for e in delta["upsert"][kind]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            entries.insert((kind, e[key].as_str().unwrap().to_owned()), e);
        }
    }
    let mut out = json!({"version": delta["version"], "generated_at": delta["generated_at"],
        "organisations": [], "users": [], "works": []});
    for ((kind, _), e) in entries {
        out[kind].as_array_mut().unwrap().push(e);
    }
    out
}

fn same_document(a: &Value, b: &Value) {
    assert_eq!(a["version"], b["version"]);
    assert_eq!(a["generated_at"], b["generated_at"]);
    assert_eq!(keyed(a), keyed(b));
}

#[tokio::test]
async fn a_drop_is_served_and_a_bad_drop_is_rejected_with_the_previous_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = publisher(dir.path(), Duration::from_secs(1)).await;
    assert_eq!(
        get(&p, "/readyz", &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&p, "/grants", &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let v1 = doc(1, 10);
    drop_file(dir.path(), "v1.json", &bytes(&v1));
    wait_version(&p, 1).await;
    let r = get(&p, "/grants", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["etag"], "\"1\"");
    assert_eq!(r.headers["cache-control"], "no-cache");
    same_document(&decode(&r), &v1);
    assert_eq!(get(&p, "/readyz", &[]).await.status, StatusCode::OK);

    // Each class of bad drop: broken JSON, referential integrity, not newer, and a partial
    // write under a name that is not *.json (ignored, not even counted).
    let mut dangling = doc(2, 10);
    dangling["works"][0]["promoter"] = json!("9999");
    drop_file(dir.path(), "v2-dangling.json", &bytes(&dangling));
    drop_file(
        dir.path(),
        "v2-broken.json",
        b"{\"version\": 2, \"generated_at\"",
    );
    drop_file(dir.path(), "v1-again.json", &bytes(&doc(1, 11)));
    std::fs::write(dir.path().join("v9.json.tmp"), bytes(&doc(9, 10))).unwrap();
    assert!(
        eventually(WITHIN, || async {
            metric(
                &p,
                "streetgate_publish_drops_rejected_total{reason=\"invalid\"}",
            ) == 2.0
                && metric(
                    &p,
                    "streetgate_publish_drops_rejected_total{reason=\"not_newer\"}",
                ) == 1.0
        })
        .await,
        "{}",
        p.metrics.render()
    );
    let r = get(&p, "/grants", &[]).await;
    assert_eq!(r.headers["etag"], "\"1\"");
    same_document(&decode(&r), &v1);
    assert_eq!(metric(&p, "streetgate_publish_versions_total"), 1.0);

    // A file first read half-written is read again once complete.
    let v2 = doc(2, 12);
    let full = bytes(&v2);
    std::fs::write(dir.path().join("v2.json"), &full[..full.len() / 2]).unwrap();
    assert!(
        eventually(WITHIN, || async {
            metric(
                &p,
                "streetgate_publish_drops_rejected_total{reason=\"invalid\"}",
            ) == 3.0
        })
        .await
    );
    std::fs::write(dir.path().join("v2.json"), &full).unwrap();
    wait_version(&p, 2).await;
    same_document(&decode(&get(&p, "/grants", &[]).await), &v2);
    p.shutdown().await;
}

#[tokio::test]
async fn etags_answer_304_and_every_encoding_decodes_to_the_same_document() {
    let dir = tempfile::tempdir().unwrap();
    let p = publisher(dir.path(), Duration::from_secs(1)).await;
    let v1 = doc(1, 200);
    drop_file(dir.path(), "a.json", &bytes(&v1));
    wait_version(&p, 1).await;

    let plain = get(&p, "/grants", &[]).await;
    assert!(plain.headers.get("content-encoding").is_none());
    let gzip = get(&p, "/grants", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzip.headers["content-encoding"], "gzip");
    let zstd = get(&p, "/grants", &[("accept-encoding", "gzip, zstd")]).await;
    assert_eq!(zstd.headers["content-encoding"], "zstd");
    let refused = get(&p, "/grants", &[("accept-encoding", "zstd;q=0, gzip;q=0")]).await;
    assert!(refused.headers.get("content-encoding").is_none());
    for r in [&plain, &gzip, &zstd, &refused] {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["vary"], "accept-encoding");
        same_document(&decode(r), &v1);
    }
    assert!(zstd.body.len() < plain.body.len() / 3 && gzip.body.len() < plain.body.len() / 3);

    let r = get(&p, "/grants", &[("if-none-match", "\"1\"")]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(r.headers["etag"], "\"1\"");
    // Another tag is not a match.
    let r = get(&p, "/grants", &[("if-none-match", "\"0\"")]).await;
    assert_eq!(r.status, StatusCode::OK);

    // The immutable per-version URL.
    let r = get(&p, "/grants/versions/1", &[("accept-encoding", "zstd")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    same_document(&decode(&r), &v1);
    for missing in [
        "/grants/versions/2",
        "/grants/versions/x",
        "/grants/versions/",
        "/grants/deltas/1-1",
        "/grants/other",
        "/elsewhere",
    ] {
        assert_eq!(
            get(&p, missing, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
    let post = Request::post("/grants")
        .header("host", "p")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        send(p.addr, post).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert!(
        metric(
            &p,
            "streetgate_publish_requests_total{encoding=\"zstd\",kind=\"full\",status=\"200\"}"
        ) >= 1.0
    );
    assert!(metric(&p, "streetgate_publish_bytes_sent_total{kind=\"full\"}") > 0.0);
    p.shutdown().await;
}

/// v2 from v1: one work moved, one deleted, one added, one user's grants changed, one
/// organisation renamed.
fn changed(v1: &Value, version: u64) -> Value {
    let mut v2 = v1.clone();
    v2["version"] = json!(version);
    v2["generated_at"] = json!("2026-11-30T12:00:00Z");
    let works = v2["works"].as_array_mut().unwrap();
    let moved = works[3]["workstream"].as_str().unwrap().to_owned();
    works[3]["workstream"] = json!(if moved == "001" { "002" } else { "001" });
    works.remove(5);
    let mut added = works[0].clone();
    added["work_reference_number"] = json!(format!("NEW-WORK-{version}"));
    works.push(added);
    v2["users"][2]["tokens_valid_after"] = json!("2026-11-30T11:00:00Z");
    v2["organisations"][0]["name"] = json!("Renamed");
    v2
}

#[tokio::test]
async fn a_delta_has_exactly_the_changed_entries_and_applies_to_the_new_document() {
    let dir = tempfile::tempdir().unwrap();
    let p = publisher(dir.path(), Duration::from_secs(1)).await;
    let v1 = doc(1, 50);
    drop_file(dir.path(), "1.json", &bytes(&v1));
    wait_version(&p, 1).await;
    let v2 = changed(&v1, 2);
    drop_file(dir.path(), "2.json", &bytes(&v2));
    wait_version(&p, 2).await;

    let r = get(&p, "/grants?since=1", &[("accept-encoding", "gzip, zstd")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["etag"], "\"1-2\"");
    assert_eq!(r.headers["cache-control"], "no-cache");
    let delta = decode(&r);
    assert_eq!(delta["version"], 2);
    assert_eq!(delta["since"], 1);
    let keys = |kind: &str, part: &str, key: &str| -> Vec<String> {
        let mut v: Vec<String> = delta[part][kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                if key.is_empty() {
                    e.as_str().unwrap().to_owned()
                } else {
                    e[key].as_str().unwrap().to_owned()
                }
            })
            .collect();
        v.sort();
        v
    };
    let w = |i: usize| {
        v1["works"][i]["work_reference_number"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut upserted_works = vec![w(3), "NEW-WORK-2".to_owned()];
    upserted_works.sort();
    assert_eq!(
        keys("works", "upsert", "work_reference_number"),
        upserted_works
    );
    assert_eq!(keys("works", "delete", ""), vec![w(5)]);
    assert_eq!(
        keys("users", "upsert", "sub"),
        vec![v1["users"][2]["sub"].as_str().unwrap().to_owned()]
    );
    assert!(keys("users", "delete", "").is_empty());
    assert_eq!(
        keys("organisations", "upsert", "swa_code"),
        vec![
            v1["organisations"][0]["swa_code"]
                .as_str()
                .unwrap()
                .to_owned()
        ]
    );
    same_document(&apply(&v1, &delta), &v2);

    // The same delta at its immutable URL, and a delta between two older retained versions.
    let v3 = changed(&v2, 3);
    drop_file(dir.path(), "3.json", &bytes(&v3));
    wait_version(&p, 3).await;
    let r = get(&p, "/grants/deltas/1-2", &[]).await;
    assert_eq!(
        r.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.headers["etag"], "\"1-2\"");
    same_document(&apply(&v1, &decode(&r)), &v2);
    let r = get(&p, "/grants?since=1", &[]).await;
    same_document(&apply(&v1, &decode(&r)), &v3);
    let r = get(&p, "/grants?since=2", &[("if-none-match", "\"2-3\"")]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    // Unknown and too old (retain 3: v1 leaves when v4 arrives) are 410; malformed is 400.
    drop_file(dir.path(), "4.json", &bytes(&changed(&v3, 4)));
    wait_version(&p, 4).await;
    for gone in ["/grants?since=1", "/grants?since=77", "/grants?since=0"] {
        assert_eq!(get(&p, gone, &[]).await.status, StatusCode::GONE, "{gone}");
    }
    assert_eq!(
        get(&p, "/grants/deltas/1-2", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    for bad in [
        "/grants?since=x",
        "/grants?since=",
        "/grants?since=1&since=2",
        "/grants?since=-3",
    ] {
        assert_eq!(
            get(&p, bad, &[]).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    assert_eq!(
        get(&p, "/grants?since=4", &[]).await.status,
        StatusCode::NOT_MODIFIED
    );
    p.shutdown().await;
}

#[tokio::test]
async fn long_poll_answers_on_a_new_drop_and_304_after_the_capped_wait() {
    let dir = tempfile::tempdir().unwrap();
    let p = publisher(dir.path(), Duration::from_secs(1)).await;
    let v1 = doc(1, 20);
    drop_file(dir.path(), "1.json", &bytes(&v1));
    wait_version(&p, 1).await;

    // Nothing new: held for the wait (capped at --max-wait 1s, not the 600 asked), then 304.
    let started = Instant::now();
    let r = get(&p, "/grants?since=1", &[("prefer", "wait=600")]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers["preference-applied"], "wait=1");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(60));
    // Without Prefer the answer is immediate and says nothing was applied.
    let r = get(&p, "/grants?since=1", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.headers.get("preference-applied").is_none());

    // A held delta poll and a held full poll both answer once a new version lands.
    let p2 = publisher(dir.path(), Duration::from_secs(120)).await;
    wait_version(&p2, 1).await;
    let addr = p2.addr;
    let held = |target: &'static str, extra: (&'static str, &'static str)| {
        tokio::spawn(async move {
            let req = Request::get(target)
                .header("host", "p")
                .header("prefer", "wait=120")
                .header(extra.0, extra.1)
                .body(Full::new(Bytes::new()))
                .unwrap();
            send(addr, req).await
        })
    };
    let delta = held("/grants?since=1", ("accept-encoding", "zstd"));
    let full = held("/grants", ("if-none-match", "\"1\""));
    assert!(
        eventually(WITHIN, || async {
            common::sample(
                &p2.metrics.render(),
                "streetgate_publish_long_polls_waiting",
            ) == 2.0
        })
        .await
    );
    let started = Instant::now();
    let v2 = changed(&v1, 2);
    drop_file(dir.path(), "2.json", &bytes(&v2));
    let delta = delta.await.unwrap();
    let full = full.await.unwrap();
    // Well before the 120 s wait: the drop ended it.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(delta.status, StatusCode::OK);
    assert_eq!(delta.headers["preference-applied"], "wait=120");
    same_document(&apply(&v1, &decode(&delta)), &v2);
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.headers["etag"], "\"2\"");
    same_document(&decode(&full), &v2);
    assert_eq!(
        common::sample(
            &p2.metrics.render(),
            "streetgate_publish_long_polls_waiting"
        ),
        0.0
    );
    p.shutdown().await;
    p2.shutdown().await;
}

#[tokio::test]
async fn bytes_per_change_follow_the_change_not_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let p = publisher(dir.path(), Duration::from_secs(1)).await;
    let v1 = doc(1, 5000);
    drop_file(dir.path(), "1.json", &bytes(&v1));
    wait_version(&p, 1).await;
    let mut v = v1.clone();
    let mut sizes = Vec::new();
    for (version, changes) in [(2u64, 1usize), (3, 10), (4, 100)] {
        v["version"] = json!(version);
        for i in 0..changes {
            v["works"][i * 7]["highway_authority"] =
                v["works"][i * 7 + 1]["highway_authority"].clone();
            v["works"][i * 7]["workstream"] =
                json!(format!("{:03}", 1 + (version as usize + i) % 4));
        }
        drop_file(dir.path(), &format!("{version}.json"), &bytes(&v));
        wait_version(&p, version).await;
        let r = get(&p, &format!("/grants?since={}", version - 1), &[]).await;
        let d = decode(&r);
        assert!(d["upsert"]["works"].as_array().unwrap().len() <= changes);
        sizes.push(r.body.len());
    }
    let full = get(&p, "/grants", &[]).await.body.len();
    // One change costs a few hundred bytes of a ~600 kB document; a hundred cost about a
    // hundred times that.
    assert!(sizes[0] < 1000, "{sizes:?}");
    assert!(sizes[0] * 200 < full, "{sizes:?} vs {full}");
    assert!(
        sizes[1] > sizes[0] * 4 && sizes[2] > sizes[1] * 4,
        "{sizes:?}"
    );
    p.shutdown().await;
}

#[test]
fn bad_options_are_all_reported_with_their_flags() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streetgate"))
        .args([
            "publish",
            "--dir",
            "/nonexistent/drops",
            "--retain",
            "1",
            "--path",
            "grants/",
            "--max-wait",
            "1h",
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for flag in ["--dir", "--retain", "--path", "--max-wait"] {
        assert!(err.contains(flag), "{flag} missing from {err}");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_streetgate"))
        .args(["publish", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--max-wait"));
}

/// The fleet case: many sidecars long-polling the same version all get the change from one
/// delta built once and compressed once per encoding, and the full document is not
/// compressed for them at all. A poller further behind gets a delta built on first demand,
/// once, however many ask for it at the same time.
#[tokio::test]
async fn many_long_pollers_get_one_change_from_one_delta_built_once() {
    const POLLERS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let p = publisher(dir.path(), Duration::from_secs(120)).await;
    let v1 = doc(1, 2000);
    drop_file(dir.path(), "1.json", &bytes(&v1));
    wait_version(&p, 1).await;
    assert_eq!(metric(&p, "streetgate_publish_deltas_built_total"), 0.0);

    let addr = p.addr;
    let held: Vec<_> = (0..POLLERS)
        .map(|i| {
            let coding = if i % 2 == 0 { "zstd" } else { "gzip" };
            tokio::spawn(async move {
                let req = Request::get("/grants?since=1")
                    .header("host", "p")
                    .header("prefer", "wait=120")
                    .header("accept-encoding", coding)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                send(addr, req).await
            })
        })
        .collect();
    assert!(
        eventually(WITHIN, || async {
            metric(&p, "streetgate_publish_long_polls_waiting") == POLLERS as f64
        })
        .await
    );
    let v2 = changed(&v1, 2);
    drop_file(dir.path(), "2.json", &bytes(&v2));
    let mut bodies = std::collections::HashSet::new();
    for h in held {
        let r = h.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["etag"], "\"1-2\"");
        same_document(&apply(&v1, &decode(&r)), &v2);
        bodies.insert(r.body.clone());
    }
    // One body per encoding, byte for byte: each was made once.
    assert_eq!(bodies.len(), 2);
    assert_eq!(metric(&p, "streetgate_publish_deltas_built_total"), 1.0);
    for coding in ["zstd", "gzip"] {
        assert_eq!(
            metric(
                &p,
                &format!("streetgate_publish_compressions_total{{encoding=\"{coding}\"}}")
            ),
            1.0,
            "{coding}"
        );
    }

    // v3 lands: 2→3 is built as it lands; 1→3 only when asked, once for all who ask.
    let v3 = changed(&v2, 3);
    drop_file(dir.path(), "3.json", &bytes(&v3));
    wait_version(&p, 3).await;
    assert_eq!(metric(&p, "streetgate_publish_deltas_built_total"), 2.0);
    let behind: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                let req = Request::get("/grants?since=1")
                    .header("host", "p")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                send(addr, req).await
            })
        })
        .collect();
    for h in behind {
        let r = h.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["etag"], "\"1-3\"");
        same_document(&apply(&v1, &decode(&r)), &v3);
    }
    assert_eq!(metric(&p, "streetgate_publish_deltas_built_total"), 3.0);
    // Nobody asked for a full document: it was never compressed.
    assert_eq!(
        metric(
            &p,
            "streetgate_publish_compressions_total{encoding=\"zstd\"}"
        ),
        1.0
    );
    p.shutdown().await;
}

/// Deltas are built from the keys each version changed: a drop re-indented and re-ordered is
/// no change, a change undone later is no change across both, and a delta spanning several
/// versions has exactly what differs between its ends.
#[tokio::test]
async fn deltas_across_versions_carry_what_differs_between_their_ends() {
    let dir = tempfile::tempdir().unwrap();
    let p = publisher(dir.path(), Duration::from_secs(1)).await;
    let v1 = doc(1, 40);
    drop_file(dir.path(), "1.json", &bytes(&v1));
    wait_version(&p, 1).await;

    // v2: the same entries, pretty-printed and listed in reverse order.
    let mut v2 = v1.clone();
    v2["version"] = json!(2);
    for kind in ["organisations", "users", "works"] {
        v2[kind].as_array_mut().unwrap().reverse();
    }
    drop_file(
        dir.path(),
        "2.json",
        serde_json::to_string_pretty(&v2).unwrap().as_bytes(),
    );
    wait_version(&p, 2).await;
    let d = decode(&get(&p, "/grants?since=1", &[]).await);
    for part in ["upsert", "delete"] {
        for kind in ["organisations", "users", "works"] {
            assert_eq!(d[part][kind], json!([]), "{part} {kind}");
        }
    }

    // v3 changes one work; v4 (the same pretty bytes as v2 but for the version) undoes it.
    let mut v3 = v2.clone();
    v3["version"] = json!(3);
    let ws = v3["works"][0]["workstream"].as_str().unwrap().to_owned();
    v3["works"][0]["workstream"] = json!(if ws == "001" { "002" } else { "001" });
    drop_file(dir.path(), "3.json", &bytes(&v3));
    wait_version(&p, 3).await;
    let d = decode(&get(&p, "/grants?since=1", &[]).await);
    assert_eq!(d["upsert"]["works"].as_array().unwrap().len(), 1);
    same_document(&apply(&v1, &d), &v3);

    let mut v4 = v2.clone();
    v4["version"] = json!(4);
    drop_file(
        dir.path(),
        "4.json",
        serde_json::to_string_pretty(&v4).unwrap().as_bytes(),
    );
    wait_version(&p, 4).await;
    let d = decode(&get(&p, "/grants?since=2", &[]).await);
    assert_eq!(d["upsert"]["works"], json!([]), "changed and changed back");
    same_document(&apply(&v2, &d), &v4);
    let d = decode(&get(&p, "/grants?since=3", &[]).await);
    assert_eq!(d["upsert"]["works"].as_array().unwrap().len(), 1);
    same_document(&apply(&v3, &d), &v4);
    p.shutdown().await;
}
