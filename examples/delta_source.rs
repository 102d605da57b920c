//! A grants source that serves 1,000-change deltas at a fixed rate, for `benches/load/run.sh
//! deltas` (p99 during 1 Hz deltas against steady). Every delta is built and checked before
//! serving starts, so during the measurement this process only answers held requests: on a
//! two-core machine a publisher validating a million-work document every second beside the
//! sidecar would be measuring itself, not the sidecar.
//!
//! It speaks the source contract (docs/configuration.md): `GET /grants` is the full document
//! (version 1); `GET /grants?since=V` is the next delta V → V+1 once it is published, held up
//! to `Prefer: wait=N` until then (304 after), and 410 for a version it never served.
//! `POST /run?count=N` publishes N more versions, one every `--every`; `GET /stats` prints
//! `version full_fetches delta_answers`.
//!
//! ```text
//! cargo run --release --example bench_fixture -- snapshot /tmp/g.json --orgs 10000 --users 100000 --works 1000000
//! cargo run --release --example delta_source -- /tmp/g.json --works 1000000 --users 100000 \
//!     --addr 127.0.0.1:18191 --deltas 60
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "a measuring tool: a panic stops the run where it went wrong"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use streetgate::grants::synthetic::synthetic_delta;
use streetgate::grants::{Snapshot, load_delta};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Parser)]
struct Cli {
    /// A version-1 document written by `bench_fixture snapshot` with --orgs 10000 (the
    /// synthetic deltas name its organisations).
    file: std::path::PathBuf,
    #[arg(long)]
    works: usize,
    #[arg(long)]
    users: usize,
    #[arg(long, default_value = "127.0.0.1:18191")]
    addr: SocketAddr,
    /// Deltas prepared (the most versions `POST /run` can publish in all).
    #[arg(long, default_value_t = 60)]
    deltas: usize,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    every: Duration,
    /// A sub and a work reference the deltas must leave alone (the load's token and path).
    #[arg(long, default_value = "user-0")]
    keep_sub: String,
    #[arg(long, default_value = "SW00000000100")]
    keep_work: String,
}

struct Source {
    full: Bytes,
    /// deltas[i] takes version i + 1 to i + 2.
    deltas: Vec<Bytes>,
    /// The newest version published.
    latest: watch::Sender<u64>,
    full_fetches: AtomicU64,
    delta_answers: AtomicU64,
    every: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let full = Bytes::from(std::fs::read(&cli.file).context("snapshot file")?);
    let t = Instant::now();
    let mut current = Snapshot::from_json(&full, None).context("snapshot")?;
    anyhow::ensure!(current.version == 1, "the document must be version 1");
    let keep_sub = format!("\"{}\"", cli.keep_sub);
    let keep_work = format!("\"{}\"", cli.keep_work);
    let mut deltas = Vec::with_capacity(cli.deltas);
    let mut round = 1;
    while deltas.len() < cli.deltas {
        anyhow::ensure!(round < cli.deltas * 10, "too few synthetic deltas apply");
        let text = synthetic_delta(current.version, round, cli.works, cli.users);
        round += 1;
        if text.contains(&keep_sub) || text.contains(&keep_work) {
            continue;
        }
        let Ok(next) = load_delta(text.as_bytes()).map(|d| current.apply_delta(&d)) else {
            continue;
        };
        let Ok(next) = next else { continue };
        current = next;
        deltas.push(Bytes::from(text));
    }
    drop(current);
    eprintln!(
        "{} deltas of 1,000 changes prepared and checked in {:.1?}; listening on {}",
        deltas.len(),
        t.elapsed(),
        cli.addr
    );
    let source = Arc::new(Source {
        full,
        deltas,
        latest: watch::Sender::new(1),
        full_fetches: AtomicU64::new(0),
        delta_answers: AtomicU64::new(0),
        every: cli.every,
    });
    let listener = TcpListener::bind(cli.addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let source = Arc::clone(&source);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let source = Arc::clone(&source);
                async move { Ok::<_, Infallible>(source.answer(req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Source {
    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = req.uri().query().unwrap_or("");
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
        };
        match (req.method(), req.uri().path()) {
            (&Method::POST, "/run") => {
                let count = param("count").unwrap_or(1);
                tokio::spawn(Arc::clone(&self).run(count));
                reply(StatusCode::OK, "running\n")
            }
            (&Method::GET, "/stats") => reply(
                StatusCode::OK,
                &format!(
                    "{} {} {}\n",
                    *self.latest.borrow(),
                    self.full_fetches.load(Ordering::Relaxed),
                    self.delta_answers.load(Ordering::Relaxed)
                ),
            ),
            (&Method::GET, "/grants") => match param("since") {
                None => {
                    self.full_fetches.fetch_add(1, Ordering::Relaxed);
                    document(self.full.clone(), "\"1\"")
                }
                Some(since) => self.delta(since, prefer_wait(&req)).await,
            },
            _ => reply(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// The delta `since` → `since + 1`, held until it is published.
    async fn delta(&self, since: u64, wait: Duration) -> Response<Full<Bytes>> {
        let Some(delta) = usize::try_from(since)
            .ok()
            .and_then(|s| self.deltas.get(s.checked_sub(1)?))
        else {
            return reply(StatusCode::GONE, "not a version this source served\n");
        };
        let mut latest = self.latest.subscribe();
        let published = tokio::time::timeout(wait, latest.wait_for(|v| *v > since)).await;
        if !matches!(published, Ok(Ok(_))) {
            return reply(StatusCode::NOT_MODIFIED, "");
        }
        self.delta_answers.fetch_add(1, Ordering::Relaxed);
        document(delta.clone(), &format!("\"{since}-{}\"", since + 1))
    }

    /// Publishes `count` more versions, one every `every` (never past the prepared deltas).
    async fn run(self: Arc<Self>, count: u64) {
        let mut tick = tokio::time::interval(self.every);
        tick.tick().await;
        for _ in 0..count {
            tick.tick().await;
            let prepared = self.deltas.len() as u64 + 1;
            self.latest.send_if_modified(|v| {
                let next = (*v + 1).min(prepared);
                std::mem::replace(v, next) != next
            });
        }
    }
}

fn prefer_wait(req: &Request<Incoming>) -> Duration {
    let secs = req
        .headers()
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(|p| p.trim().strip_prefix("wait=")))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Duration::from_secs(secs)
}

fn document(body: Bytes, etag: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json")
        .header("etag", etag)
        .header("cache-control", "no-cache")
        .body(Full::new(body))
        .unwrap()
}

fn reply(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::copy_from_slice(text.as_bytes())))
        .unwrap()
}
