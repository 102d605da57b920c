//! Check mode: the decision API a fronting proxy calls instead of sending traffic through us
//! (Envoy / Istio ext_authz over HTTP and gRPC, ingress-nginx `auth-url`, nginx
//! `auth_request`, Traefik `forwardAuth`). The same pipeline runs up to the decision
//! (`Gateway::check`); nothing is forwarded and no response is filtered. Its config section is
//! `config::check`.

pub mod grpc;
pub mod http;
mod original;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::check::CheckConfig;
use crate::listener::{self, BindError, Limits};
use crate::proxy::Gateway;

/// The running check listeners.
pub struct Listening {
    /// Where the HTTP decision API bound (port 0 resolved).
    pub addr: SocketAddr,
    /// Where the gRPC ext_authz service bound, when configured.
    pub grpc_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Listening {
    /// Waits for both listeners to finish their drain (after shutdown was signalled).
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds and serves `check.addr` (with the main listener's limits, never TLS: it is meant for
/// the pod or the mesh) and `check.grpc_addr`.
pub async fn start(
    check: &CheckConfig,
    gateway: &Arc<Gateway>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) -> Result<Listening, BindError> {
    let (http_listener, addr) = bind(check.addr).await?;
    let mut tasks = vec![tokio::spawn(listener::serve(
        listener::workers::Connections::Listener(http_listener),
        Arc::new(ArcSwapOption::empty()),
        Arc::new(http::CheckHttp(gateway.clone())),
        limits,
        shutdown.clone(),
        drain,
        None,
    ))];
    let grpc_addr = match check.grpc_addr {
        Some(grpc_addr) => {
            let (grpc_listener, bound) = bind(grpc_addr).await?;
            tasks.push(tokio::spawn(grpc::serve(
                grpc_listener,
                gateway.clone(),
                shutdown,
            )));
            Some(bound)
        }
        None => None,
    };
    tracing::info!(%addr, grpc_addr = ?grpc_addr, "check listening");
    Ok(Listening {
        addr,
        grpc_addr,
        tasks,
    })
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    Ok((listener, bound))
}
