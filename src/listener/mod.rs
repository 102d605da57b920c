//! The main listener: accept, optional TLS, HTTP/1.1 and HTTP/2 with limits on header size and
//! count, a header-read timeout for slow clients, an idle timeout for keep-alive connections,
//! and graceful shutdown.

pub mod framing;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::raw::RawListen;
use crate::proxy::{ConnInfo, Gateway};
use crate::reason::Reason;

use self::framing::{FramingIo, Verdicts};

/// Limits applied to every client connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Bytes of request bodies one connection may buffer at once.
    pub body_budget: usize,
}

impl Limits {
    /// The largest HTTP/1 head hyper buffers (it needs at least 8 KiB); the framing tracker
    /// follows heads up to the same size.
    fn head_cap(&self) -> usize {
        self.max_header_bytes.max(8192)
    }
}

impl From<&RawListen> for Limits {
    fn from(l: &RawListen) -> Self {
        Limits {
            max_header_bytes: l.max_header_bytes,
            max_headers: l.max_headers,
            header_read_timeout: l.header_read_timeout,
            idle_timeout: l.idle_timeout,
            body_budget: usize::try_from(l.buffered_body_budget())
                .unwrap_or(usize::MAX)
                .min(tokio::sync::Semaphore::MAX_PERMITS),
        }
    }
}

/// Accepts until `shutdown` flips, then lets in-flight requests finish for up to `drain`.
/// The TLS config sits behind an `ArcSwapOption` so certificates reload without re-binding.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ArcSwapOption<rustls::ServerConfig>>,
    gateway: Arc<Gateway>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.head_cap())
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    // Owned, so connections still open when the drain time is over are really closed.
    let mut conns = tokio::task::JoinSet::new();

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let builder = builder.clone();
        let tls = tls.load_full();
        let watcher = graceful.watcher();
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            let conn_shutdown = watcher;
            match tls {
                None => {
                    let info = ConnInfo::new(peer, false, &limits);
                    // Prior-knowledge HTTP/2 is recognised by the tracker from its preface.
                    let (io, verdicts) =
                        FramingIo::tracked(stream, limits.head_cap(), limits.max_headers);
                    serve_conn(
                        &builder,
                        TokioIo::new(io),
                        Some(verdicts),
                        info,
                        gateway,
                        limits,
                        conn_shutdown,
                    )
                    .await;
                }
                Some(config) => {
                    let accept = TlsAcceptor::from(config).accept(stream);
                    match tokio::time::timeout(limits.header_read_timeout, accept).await {
                        Ok(Ok(tls_stream)) => {
                            let info = ConnInfo::new(peer, true, &limits);
                            let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            let (io, verdicts) = if h2 {
                                (FramingIo::untracked(tls_stream), None)
                            } else {
                                let (io, verdicts) = FramingIo::tracked(
                                    tls_stream,
                                    limits.head_cap(),
                                    limits.max_headers,
                                );
                                (io, Some(verdicts))
                            };
                            serve_conn(
                                &builder,
                                TokioIo::new(io),
                                verdicts,
                                info,
                                gateway,
                                limits,
                                conn_shutdown,
                            )
                            .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(drain) => {
            tracing::warn!(?drain, open = conns.len(), "drain time over, closing remaining connections");
            conns.abort_all();
        }
    }
}

/// Per-connection activity, so an idle keep-alive connection can be closed.
struct Activity {
    in_flight: AtomicUsize,
    last: AtomicU64,
    epoch: Instant,
}

impl Activity {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }
}

/// `verdicts` is the framing guard's queue for HTTP/1 connections (None when the connection is
/// known to be HTTP/2).
async fn serve_conn<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    verdicts: Option<Verdicts>,
    info: ConnInfo,
    gateway: Arc<Gateway>,
    limits: Limits,
    shutdown: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        last: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let service_activity = activity.clone();
    let service_info = info.clone();
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let gateway = gateway.clone();
        let activity = service_activity.clone();
        let info = service_info.clone();
        // Popped here, not in the future: hyper calls the service in request order.
        let verdict = match &verdicts {
            Some(v) if request.version() < http::Version::HTTP_2 => v.next(),
            _ => None,
        };
        async move {
            if let Some(reason) = verdict {
                return Ok(reject_and_close(&gateway, request.method(), reason));
            }
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            let response = gateway.handle(info, request).await;
            activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            activity.touch();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let conn = builder.serve_connection(io, service);
    let conn = shutdown.watch(conn.into_owned());
    tokio::pin!(conn);
    let check_every =
        (limits.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %info.peer, error = %e, "connection ended with error");
                }
                return;
            }
            _ = tokio::time::sleep(check_every) => {
                if activity.idle_for().is_some_and(|idle| idle >= limits.idle_timeout) {
                    tracing::debug!(peer = %info.peer, "closing idle connection");
                    return;
                }
            }
        }
    }
}

impl ConnInfo {
    /// One budget per connection: the sum of bodies buffered by all its requests (HTTP/2
    /// streams in parallel) stays under `listen.max_buffered_body_bytes_per_connection`.
    fn new(peer: std::net::SocketAddr, tls: bool, limits: &Limits) -> ConnInfo {
        ConnInfo {
            peer,
            tls,
            body_budget: Arc::new(tokio::sync::Semaphore::new(limits.body_budget)),
        }
    }
}

/// A request the framing guard refused: never handled, and the connection ends after the
/// answer since the client and we may disagree about where the next request starts.
fn reject_and_close(
    gateway: &Gateway,
    method: &http::Method,
    reason: Reason,
) -> http::Response<crate::proxy::ProxyBody> {
    let mut response = gateway.reject_before_routing(method, reason);
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}
