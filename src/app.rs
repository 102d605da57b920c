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
use crate::config::Config;
use crate::grants::spawn_source;
use crate::grants::store::GrantsStore;
use crate::listener::{self, Limits, tls::TlsError};
use crate::proxy::{Gateway, Runtime};
use crate::ratelimit;
use crate::reload::{self, ReloadError, Reloader};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::otel::Tracer;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
}

/// A started sidecar.
pub struct Running {
    /// Where the main listener actually bound (port 0 resolved).
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    /// Reloads the config file the sidecar was started from (SIGHUP, `watch: true`, tests).
    pub reloader: Arc<Reloader>,
    /// The decision API listeners (`check`), when configured.
    pub check: Option<crate::check::Listening>,
    shutdown: watch::Sender<bool>,
    /// The admin listener outlives the drain, so `/readyz` can answer 503 during it.
    admin_shutdown: watch::Sender<bool>,
    main: JoinHandle<()>,
    admin: JoinHandle<()>,
}

pub async fn start(config: Config, metrics: Metrics) -> Result<Running, StartError> {
    let listen = config.listen.clone();
    let admin_addr = config.admin.addr;
    let drain = config.shutdown.drain;
    let source = config.source.clone();
    let tls = match &listen.tls {
        Some(t) => Some(listener::tls::server_config(&t.cert, &t.key)?),
        None => None,
    };
    let auth = Authenticator::new(&config.auth, metrics.clone())?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    auth.spawn_refresh(shutdown_rx.clone());

    let main_listener = bind(listen.addr).await?;
    let admin_listener = bind(admin_addr).await?;
    let addr = main_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: listen.addr,
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: admin_addr,
            source,
        })?;

    let grants = config.grants.as_ref().map(|g| {
        let store = Arc::new(GrantsStore::new(g.max_age, g.on_stale, metrics.clone()));
        spawn_source(store.clone(), g.source.clone(), shutdown_rx.clone());
        store
    });
    let gateway = Arc::new(Gateway::new(
        Runtime::new(config, &metrics),
        auth,
        grants,
        metrics,
    ));
    let tls = Arc::new(ArcSwapOption::new(tls));
    let limits = Limits::from(&listen);
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
    let main = tokio::spawn(listener::serve(
        main_listener,
        tls,
        gateway.clone(),
        limits,
        shutdown_rx.clone(),
        drain,
    ));
    // The admin port gets the main listener's limits and timeouts, never TLS, and no drain:
    // it is stopped after the main listener has drained.
    let admin = tokio::spawn(listener::serve(
        admin_listener,
        Arc::new(ArcSwapOption::empty()),
        Arc::new(Admin(gateway.clone())),
        limits,
        admin_shutdown_rx,
        Duration::ZERO,
    ));
    tracing::info!(%addr, %admin_addr, "streetgate listening");
    Ok(Running {
        addr,
        admin_addr,
        gateway,
        reloader,
        check,
        shutdown,
        admin_shutdown,
        main,
        admin,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
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
                limiter.evict(std::time::Instant::now());
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
        let _ = self.main.await;
        if let Some(check) = self.check {
            check.stopped().await;
        }
        let _ = self.admin_shutdown.send(true);
        let _ = self.admin.await;
    }
}
