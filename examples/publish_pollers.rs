//! Figures for docs/publish.md: a release `streetgate publish` child process, and N simulated
//! sidecars in this process, each long-polling `GET /grants?since=V` (`Prefer: wait`,
//! `Accept-Encoding: gzip, zstd`) on its own keep-alive connection, decoding and applying
//! nothing but the version (a sidecar's apply cost is #13 A's figure). The driver drops a new
//! snapshot version into the watched directory every `--every`, each changing `--changes`
//! works, and reports per version: the time from the drop (the rename) until every poller has
//! it; the publisher's CPU from /proc; and the bytes it sent (its own metric).
//!
//! cargo build --release --bin streetgate --example publish_pollers
//! target/release/examples/publish_pollers --pollers 100 --works 300000 --versions 20
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use streetgate::grants::synthetic::synthetic_document_version;
use tokio::net::TcpStream;
use tokio::sync::watch;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/streetgate"))]
    bin: PathBuf,
    #[arg(long, default_value_t = 100)]
    pollers: usize,
    #[arg(long, default_value_t = 300_000)]
    works: usize,
    #[arg(long, default_value_t = 30_000)]
    users: usize,
    #[arg(long, default_value_t = 400)]
    orgs: usize,
    /// Versions dropped after the first.
    #[arg(long, default_value_t = 20)]
    versions: u64,
    /// Works changed per version.
    #[arg(long, default_value_t = 10)]
    changes: usize,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    every: Duration,
    /// Idle period measured (pollers held, nothing dropped).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    idle: Duration,
    #[arg(long, default_value_t = 18190)]
    port: u16,
}

/// Per poller: the newest version it holds.
struct Poller {
    version: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut doc: Value = serde_json::from_slice(&synthetic_document_version(
        1, args.orgs, args.users, args.works,
    ))?;
    drop_version(dir.path(), &doc)?;
    let full_len = serde_json::to_vec(&doc)?.len();

    let addr = format!("127.0.0.1:{}", args.port);
    let mut child = tokio::process::Command::new(&args.bin)
        .args(["publish", "--dir"])
        .arg(dir.path())
        .args(["--addr", &addr, "--max-wait", "30s", "--retain", "10"])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .context("starting streetgate publish")?;
    let pid = child.id().context("pid")?;
    let base = format!("http://{addr}");
    let ready = Instant::now();
    while get(&addr, "/grants/versions/1").await.map(|r| r.0) != Some(StatusCode::OK) {
        if ready.elapsed() > Duration::from_secs(120) {
            bail!("publisher not ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "publisher pid {pid} ready in {:.1?}: {} works, {} users, {} orgs, full document {:.1} MB; {} pollers",
        ready.elapsed(),
        args.works,
        args.users,
        args.orgs,
        full_len as f64 / 1e6,
        args.pollers
    );

    // Pollers start from version 1, as sidecars that fetched the full document once.
    let (stop, stopped) = watch::channel(false);
    let pollers: Vec<Arc<Poller>> = (0..args.pollers)
        .map(|_| {
            Arc::new(Poller {
                version: AtomicU64::new(1),
            })
        })
        .collect();
    for p in &pollers {
        tokio::spawn(poll(addr.clone(), Arc::clone(p), stopped.clone()));
    }
    let _ = base;
    // Let every poller park its first long-poll.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (cpu0, sent0) = (cpu_ticks(pid)?, bytes_sent(&addr).await);
    tokio::time::sleep(args.idle).await;
    let (cpu1, sent1) = (cpu_ticks(pid)?, bytes_sent(&addr).await);
    println!(
        "idle {:?} with {} long-polls held: publisher CPU {:.0} ms, {} bytes sent",
        args.idle,
        args.pollers,
        (cpu1 - cpu0) as f64 * 10.0,
        sent1 - sent0
    );

    let mut fleet_ms = Vec::new();
    let mut per_version_cpu = Vec::new();
    let mut per_version_bytes = Vec::new();
    for v in 2..=args.versions + 1 {
        mutate(&mut doc, v, args.changes);
        let (c0, b0) = (cpu_ticks(pid)?, bytes_sent(&addr).await);
        let dropped = Instant::now();
        drop_version(dir.path(), &doc)?;
        loop {
            if pollers
                .iter()
                .all(|p| p.version.load(Ordering::Acquire) >= v)
            {
                break;
            }
            if dropped.elapsed() > Duration::from_secs(60) {
                bail!("version {v} not seen by every poller in 60 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let fleet = dropped.elapsed();
        // Let the last answers' bytes be counted.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (c1, b1) = (cpu_ticks(pid)?, bytes_sent(&addr).await);
        fleet_ms.push(fleet.as_secs_f64() * 1000.0);
        per_version_cpu.push((c1 - c0) as f64 * 10.0);
        per_version_bytes.push(b1 - b0);
        println!(
            "version {v}: every poller had it {:.0} ms after the drop; publisher CPU {:.0} ms; {} bytes sent ({} per poller)",
            fleet.as_secs_f64() * 1000.0,
            (c1 - c0) as f64 * 10.0,
            b1 - b0,
            (b1 - b0) / args.pollers as u64
        );
        tokio::time::sleep(args.every.saturating_sub(dropped.elapsed())).await;
    }
    let _ = stop.send(true);
    fleet_ms.sort_by(f64::total_cmp);
    let n = fleet_ms.len();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let full_zstd = get_encoded(&addr, "/grants").await.unwrap_or(0);
    let bytes: Vec<f64> = per_version_bytes.iter().map(|b| *b as f64).collect();
    println!();
    println!(
        "summary over {n} versions, {} changes each, {} pollers:",
        args.changes, args.pollers
    );
    println!(
        "  drop → every poller: median {:.0} ms, max {:.0} ms",
        fleet_ms[n / 2],
        fleet_ms[n - 1]
    );
    println!(
        "  publisher CPU per version: mean {:.0} ms (validate, key the entries, build and compress the delta)",
        mean(&per_version_cpu)
    );
    println!(
        "  bytes sent per version: mean {:.0} ({:.0} per poller); full document zstd {} bytes, ×{} pollers = {}",
        mean(&bytes),
        mean(&bytes) / args.pollers as f64,
        full_zstd,
        args.pollers,
        full_zstd * args.pollers as u64
    );
    let _ = child.kill().await;
    Ok(())
}

/// Moves `changes` works to another workstream of their promoter (always a valid document).
fn mutate(doc: &mut Value, version: u64, changes: usize) {
    doc["version"] = json!(version);
    let works = doc["works"].as_array_mut().expect("works");
    let len = works.len();
    let stride = (len / changes.max(1)).max(1);
    for i in 0..changes {
        let w = &mut works[(i * stride + version as usize) % len];
        let ws = 1 + (version as usize + i) % 5;
        w["workstream"] = json!(format!("{ws:03}"));
    }
}

fn drop_version(dir: &Path, doc: &Value) -> anyhow::Result<()> {
    let v = doc["version"].as_u64().unwrap_or(0);
    let tmp = dir.join(format!(".v{v}.partial"));
    std::fs::write(&tmp, serde_json::to_vec(doc)?)?;
    std::fs::rename(&tmp, dir.join(format!("v{v}.json")))?;
    Ok(())
}

/// One simulated sidecar: long-polls with `since`, applies (here: records) each version.
async fn poll(addr: String, me: Arc<Poller>, stop: watch::Receiver<bool>) {
    let mut sender = None;
    while !*stop.borrow() {
        if sender.is_none() {
            let Ok(stream) = TcpStream::connect(&addr).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok((s, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
            else {
                continue;
            };
            tokio::spawn(conn);
            sender = Some(s);
        }
        let Some(s) = sender.as_mut() else { continue };
        let since = me.version.load(Ordering::Acquire);
        let req = Request::get(format!("/grants?since={since}"))
            .header("host", "publisher")
            .header("accept-encoding", "gzip, zstd")
            .header("prefer", "wait=30")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let Ok(resp) = s.send_request(req).await else {
            sender = None;
            continue;
        };
        let status = resp.status();
        let zstd = resp
            .headers()
            .get("content-encoding")
            .is_some_and(|v| v == "zstd");
        let Ok(body) = resp.into_body().collect().await.map(|b| b.to_bytes()) else {
            sender = None;
            continue;
        };
        if status == StatusCode::OK {
            let raw = if zstd {
                zstd::stream::decode_all(&body[..]).unwrap_or_default()
            } else {
                body.to_vec()
            };
            if let Some(v) = serde_json::from_slice::<Value>(&raw)
                .ok()
                .and_then(|d| d["version"].as_u64())
            {
                me.version.store(v, Ordering::Release);
            }
        }
    }
}

async fn get(addr: &str, path: &str) -> Option<(StatusCode, Bytes)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "publisher")
        .header("accept-encoding", "zstd")
        .body(Empty::<Bytes>::new())
        .ok()?;
    let resp = s.send_request(req).await.ok()?;
    let status = resp.status();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

async fn get_encoded(addr: &str, path: &str) -> Option<u64> {
    get(addr, path).await.map(|(_, b)| b.len() as u64)
}

/// Total body bytes the publisher reports sent.
async fn bytes_sent(addr: &str) -> u64 {
    let Some((_, body)) = get(addr, "/metrics").await else {
        return 0;
    };
    let mut text = String::new();
    let _ = (&body[..]).read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with("streetgate_publish_bytes_sent_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// utime + stime of `pid`, in clock ticks (10 ms on Linux).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}
