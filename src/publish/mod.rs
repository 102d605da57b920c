//! `streetgate publish`: watches a directory where a legacy system drops full v1 snapshots,
//! validates each exactly as the sidecar does, keeps the last K versions and serves them over
//! HTTP with ETags, gzip/zstd, deltas, long-poll and immutable per-version URLs
//! (docs/publish.md).

mod catalog;
mod encoded;
mod metrics;
mod serve;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::listener::{self, Limits};
use crate::problems::Problems;

pub use catalog::{Catalog, PublishError};
pub use metrics::PublishMetrics;

/// Longest `--max-wait` accepted: a held request must end well before proxies and CDNs give
/// up on it (many cut idle requests at 60–120 s).
const MAX_WAIT_LIMIT: Duration = Duration::from_secs(300);

/// Options of `streetgate publish`.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// Directory the legacy system drops full v1 snapshots into, as `*.json` renamed into
    /// place when complete (dotfiles and other names are ignored).
    #[arg(long)]
    pub dir: PathBuf,
    /// Address to serve on.
    #[arg(long, default_value = "0.0.0.0:8090")]
    pub addr: SocketAddr,
    /// Path of the moving endpoint; versions and deltas are served under it.
    #[arg(long, default_value = "/grants")]
    pub path: String,
    /// Versions kept for deltas and per-version URLs (a sidecar further behind gets 410 and
    /// fetches the full document).
    #[arg(long, default_value_t = 10)]
    pub retain: usize,
    /// Longest `Prefer: wait` honoured (e.g. 30s, 1m; at most 5m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub max_wait: Duration,
    /// How often the directory is scanned for new drops.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub scan_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishStartError {
    #[error("invalid options:\n{0}")]
    Invalid(Problems),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl PublishArgs {
    /// Every problem with the options at once, named by flag.
    pub fn validate(&self) -> Problems {
        let mut p = Problems::default();
        if !self.dir.is_dir() {
            p.push(
                "--dir",
                format!("{} is not a readable directory", self.dir.display()),
            );
        }
        let path_ok = self.path.starts_with('/')
            && !self.path.ends_with('/')
            && self
                .path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
            && !self.path.split('/').any(|s| s == "." || s == "..")
            && !matches!(self.path.as_str(), "/healthz" | "/readyz" | "/metrics");
        if !path_ok {
            p.push(
                "--path",
                format!(
                    "{:?} must start with '/', not end with one, have no query, dot segments or spaces, and not be /healthz, /readyz or /metrics",
                    self.path
                ),
            );
        }
        if self.retain < 2 {
            p.push(
                "--retain",
                "at least 2, or there is nothing to diff against",
            );
        }
        if self.max_wait > MAX_WAIT_LIMIT {
            p.push(
                "--max-wait",
                format!("at most {}", humantime::format_duration(MAX_WAIT_LIMIT)),
            );
        }
        if self.scan_interval < Duration::from_millis(10)
            || self.scan_interval > Duration::from_secs(60)
        {
            p.push("--scan-interval", "between 10ms and 60s");
        }
        p
    }
}

/// A started publisher (also used by the tests and the poller simulation).
pub struct RunningPublisher {
    pub addr: SocketAddr,
    pub catalog: Arc<Catalog>,
    pub metrics: PublishMetrics,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

/// Validates the options, binds and starts watching and serving.
pub async fn start(args: PublishArgs) -> Result<RunningPublisher, PublishStartError> {
    let problems = args.validate();
    if !problems.is_empty() {
        return Err(PublishStartError::Invalid(problems));
    }
    let metrics = PublishMetrics::new()?;
    let catalog = Arc::new(Catalog::new(args.retain, metrics.clone()));
    let tcp = TcpListener::bind(args.addr)
        .await
        .map_err(|source| PublishStartError::Bind {
            addr: args.addr,
            source,
        })?;
    let addr = tcp.local_addr().map_err(|source| PublishStartError::Bind {
        addr: args.addr,
        source,
    })?;
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch::run(
        args.dir.clone(),
        args.scan_interval,
        Arc::clone(&catalog),
        metrics.clone(),
        shutdown_rx.clone(),
    ));
    let handler = serve::Publisher {
        catalog: Arc::clone(&catalog),
        metrics: metrics.clone(),
        base: args.path.clone(),
        max_wait: args.max_wait,
    };
    // Long-polls are idle by design: the idle timeout must outlast the longest wait.
    let limits = Limits {
        max_header_bytes: 16 * 1024,
        max_headers: 64,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: args.max_wait + Duration::from_secs(30),
        body_budget: 0,
        http1: crate::listener::native::Http1Server::Hyper,
    };
    let server = tokio::spawn(listener::serve(
        listener::workers::Connections::Listener(tcp),
        Arc::new(ArcSwapOption::empty()),
        Arc::new(handler),
        limits,
        shutdown_rx,
        Duration::from_secs(1),
        None,
    ));
    tracing::info!(%addr, dir = %args.dir.display(), path = %args.path, "streetgate publish listening");
    Ok(RunningPublisher {
        addr,
        catalog,
        metrics,
        shutdown,
        server,
        watcher,
    })
}

impl RunningPublisher {
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.watcher.await;
        let _ = self.server.await;
    }
}
