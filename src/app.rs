//! Starting and stopping a sidecar: bind both listeners, start the control-plane tasks, and
//! shut everything down gracefully. Used by `serve`, `demo` and the integration tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::authn::{AuthSetupError, Authenticator};
use crate::clock::Clock;
use crate::config::Config;
use crate::grants::spawn_source;
use crate::grants::store::GrantsStore;
use crate::guard::Guard;
use crate::listener::workers::{self, Worker, WorkersError};
use crate::listener::{self, BindError, Limits, tls::TlsError};
use crate::proxy::{Gateway, Runtime};
use crate::ratelimit;
use crate::reload::{self, ReloadError, Reloader};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::otel::Tracer;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error(transparent)]
    Workers(#[from] WorkersError),
    #[error(transparent)]
    Http1(#[from] listener::native::Http1EnvError),
    #[error(transparent)]
    AcceptToken(#[from] crate::guard::AcceptTokenError),
}

/// A started sidecar.
pub struct Running {
    /// Where the main listener actually bound (port 0 resolved).
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Worker threads serving the main listener.
    pub workers: usize,
    pub gateway: Arc<Gateway>,
    /// Reloads the config file the sidecar was started from (SIGHUP, `watch: true`, tests).
    pub reloader: Arc<Reloader>,
    /// The decision API listeners (`check`), when configured.
    pub check: Option<crate::check::Listening>,
    shutdown: watch::Sender<bool>,
    /// The admin listener outlives the drain, so `/readyz` can answer 503 during it.
    admin_shutdown: watch::Sender<bool>,
    main: Vec<Worker>,
    admin: JoinHandle<()>,
}

pub async fn start(config: Config, metrics: Metrics) -> Result<Running, StartError> {
    start_with_clock(config, metrics, Clock::system()).await
}

/// `start`, judging time by `clock` (tests pass an adjustable one and move it).
pub async fn start_with_clock(
    config: Config,
    metrics: Metrics,
    clock: Clock,
) -> Result<Running, StartError> {
    let listen = config.listen.clone();
    let admin_addr = config.admin.addr;
    let drain = config.shutdown.drain;
    let source = config.source.clone();
    let worker_count = workers::count(config.runtime.workers)?;
    let tls = match &listen.tls {
        Some(t) => Some(listener::tls::server_config(&t.cert, &t.key)?),
        None => None,
    };
    let auth = Authenticator::new(&config.auth, metrics.clone())?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    auth.spawn_refresh(shutdown_rx.clone());

    let main_listener =
        workers::bind(listen.addr, worker_count, true).map_err(|source| BindError {
            addr: listen.addr,
            source,
        })?;
    let admin_listener = bind(admin_addr).await?;
    let addr = main_listener.addr;
    let admin_addr = admin_listener.local_addr().map_err(|source| BindError {
        addr: admin_addr,
        source,
    })?;

    let guard = match &config.grants {
        Some(g) => Guard::from_config(g, &metrics)?.map(Arc::new),
        None => None,
    };
    let grants = config.grants.as_ref().map(|g| {
        let mut store =
            GrantsStore::new(g.max_age, g.on_stale, metrics.clone()).with_clock(clock.clone());
        if let Some(guard) = &guard {
            store = store.with_admission(guard.clone());
        }
        let store = Arc::new(store);
        spawn_source(store.clone(), g.source.clone(), shutdown_rx.clone());
        store
    });
    let gateway = Arc::new(
        Gateway::new(Runtime::new(config, &metrics), auth, grants, metrics)
            .with_clock(clock)
            .with_guard(guard),
    );
    let tls = Arc::new(ArcSwapOption::new(tls));
    let mut limits = Limits::from(&listen);
    limits.http1 = listener::native::server(gateway.runtime.load().config.runtime.http1)?;
    let http1 = limits.http1;
    let reloader = Arc::new(Reloader::new(gateway.clone(), tls.clone(), source));
    reload::spawn_watch(reloader.clone(), shutdown_rx.clone());
    spawn_evict(gateway.clone(), shutdown_rx.clone());
    let (admin_shutdown, admin_shutdown_rx) = watch::channel(false);
    // Spans are exported until the drain is over (the admin listener's stop).
    if let Some(otel) = &gateway.runtime.load().config.otel {
        let tracer = Tracer::start(otel, &gateway.metrics, admin_shutdown_rx.clone());
        let _ = gateway.tracer.set(tracer);
    }
    let check = match gateway.runtime.load().config.check.clone() {
        Some(c) => {
            Some(crate::check::start(&c, &gateway, limits, shutdown_rx.clone(), drain).await?)
        }
        None => None,
    };
    if let Some((shared, senders)) = main_listener.shared {
        tracing::warn!("SO_REUSEPORT unavailable: one listener hands connections to the workers");
        workers::spawn_handoff(shared, senders, shutdown_rx.clone())
            .map_err(|source| BindError { addr, source })?;
    }
    let mut main = Vec::with_capacity(worker_count);
    for (index, source) in main_listener.sources.into_iter().enumerate() {
        let (tls, gateway, shutdown) = (tls.clone(), gateway.clone(), shutdown_rx.clone());
        let accepted = gateway
            .metrics
            .worker_connections
            .with_label_values(&[&index.to_string()]);
        main.push(workers::spawn(index, source, move |connections| {
            listener::serve(
                connections,
                tls,
                gateway,
                limits,
                shutdown,
                drain,
                Some(accepted),
            )
        })?);
    }
    // The admin port gets the main listener's limits and timeouts, never TLS, and no drain:
    // it is stopped after the main listener has drained.
    let admin = tokio::spawn(listener::serve(
        workers::Connections::Listener(admin_listener),
        Arc::new(ArcSwapOption::empty()),
        Arc::new(Admin(gateway.clone())),
        limits,
        admin_shutdown_rx,
        Duration::ZERO,
        None,
    ));
    tracing::info!(
        %addr,
        %admin_addr,
        workers = worker_count,
        http1 = http1.as_str(),
        "streetgate listening"
    );
    Ok(Running {
        addr,
        admin_addr,
        workers: worker_count,
        gateway,
        reloader,
        check,
        shutdown,
        admin_shutdown,
        main,
        admin,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Drops rate-limit buckets that have refilled, so the maps stay as small as the set of
/// recently active clients.
fn spawn_evict(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ratelimit::EVICT_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            if let Some(limiter) = &gateway.runtime.load().limiter {
                limiter.evict(gateway.clock.instant());
            }
        }
    });
}

impl Running {
    /// Re-reads the config file; see `reload::Reloader::reload`.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        self.reloader.reload().await
    }

    /// Fails readiness, stops accepting and waits for in-flight requests (up to the configured
    /// drain time); the admin port answers until the drain is over.
    pub async fn shutdown(self) {
        self.gateway.start_draining();
        let _ = self.shutdown.send(true);
        for worker in self.main {
            worker.join().await;
        }
        if let Some(check) = self.check {
            check.stopped().await;
        }
        let _ = self.admin_shutdown.send(true);
        let _ = self.admin.await;
    }
}
