//! The listeners (main and admin share this code): accept, optional TLS, HTTP/1.1 and HTTP/2
//! with limits on header size and count, a header-read timeout for slow and silent clients, an
//! idle timeout for keep-alive connections, and graceful shutdown.

mod activity;
mod body;
pub mod config;
pub mod framing;
pub mod native;
pub mod tls;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::listener::config::ListenConfig;
use crate::reason::Reason;

pub use self::body::ClientBody;

use self::activity::{ActiveBody, Activity};
use self::framing::{FramingIo, Protocol, Verdict, Verdicts};
use self::native::Http1Server;
use self::workers::Connections;

/// A listening socket that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// The error of a body served or forwarded: any error, boxed (hyper's convention).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `peer`'s address as a header value (`X-Forwarded-For`), formatted once per connection
    /// rather than per request.
    pub peer_value: http::HeaderValue,
    pub tls: bool,
    /// Bytes of request bodies this connection may hold buffered at once, across its requests
    /// (`listen.max_buffered_body_bytes_per_connection`).
    pub body_budget: Arc<tokio::sync::Semaphore>,
}

/// Limits applied to every client connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Bytes of request bodies one connection may buffer at once.
    pub body_budget: usize,
    /// Which server reads HTTP/1 heads.
    pub http1: Http1Server,
}

impl Limits {
    /// The largest HTTP/1 head hyper buffers (it needs at least 8 KiB); the framing tracker
    /// follows heads up to the same size.
    fn head_cap(&self) -> usize {
        self.max_header_bytes.max(8192)
    }

    /// The longest the connection timer sleeps without looking at the connection: any new
    /// deadline is at least this far after the event that set it, so none is missed.
    fn recheck(&self) -> Duration {
        self.idle_timeout.min(self.header_read_timeout)
    }
}

impl From<&ListenConfig> for Limits {
    fn from(l: &ListenConfig) -> Self {
        Limits {
            max_header_bytes: l.max_header_bytes,
            max_headers: l.max_headers,
            header_read_timeout: l.header_read_timeout,
            idle_timeout: l.idle_timeout,
            body_budget: usize::try_from(l.buffered_body_budget())
                .unwrap_or(usize::MAX)
                .min(tokio::sync::Semaphore::MAX_PERMITS),
            http1: Http1Server::Hyper,
        }
    }
}

/// What a listener serves: the proxy (`proxy::Gateway`), the admin, check or publish endpoints. Both get the same
/// connection handling: limits, timeouts, the framing guard and graceful shutdown.
pub trait Handler: Send + Sync + 'static {
    type Body: http_body::Body<Data = Bytes, Error: Into<BoxError> + Send> + Send + Unpin + 'static;

    fn handle(
        &self,
        conn: ConnInfo,
        request: Request<ClientBody>,
    ) -> impl Future<Output = Response<Self::Body>> + Send;

    /// The answer to a request the framing guard refused (the listener closes the connection
    /// after it).
    fn refuse(&self, conn: &ConnInfo, method: &Method, reason: Reason) -> Response<Self::Body>;
}

/// Accepts until `shutdown` flips, then lets in-flight requests finish for up to `drain`.
/// The TLS config sits behind an `ArcSwapOption` so certificates reload without re-binding;
/// empty means plaintext.
/// `accepted` counts this listener's connections (the per-worker spread).
pub async fn serve<H: Handler>(
    mut listener: Connections,
    tls: Arc<ArcSwapOption<rustls::ServerConfig>>,
    handler: Arc<H>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    accepted: Option<prometheus::IntCounter>,
) {
    // One builder per protocol, not hyper-util's `auto` (which wraps every read of a
    // connection in its replay buffer): each connection's protocol is known before serving.
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        // The connection timer (`activity`) enforces it: hyper's would arm a timer per head.
        .header_read_timeout(None)
        .max_buf_size(limits.head_cap())
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(Builders { h1, h2 });
    let graceful = GracefulShutdown::new();
    // Owned, so connections still open when the drain time is over are really closed.
    let mut conns = tokio::task::JoinSet::new();

    loop {
        let (stream, peer) = tokio::select! {
            next = listener.accept() => match next {
                Some(Ok(pair)) => pair,
                // The hand-off acceptor stopped: shutdown.
                None => break,
                Some(Err(e)) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        if let Some(counter) = &accepted {
            counter.inc();
        }
        let accepted = Instant::now();
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let builder = builder.clone();
        let tls = tls.load_full();
        let watcher = graceful.watcher();
        let mut stopping = shutdown.clone();
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            let activity = Activity::new(accepted);
            let conn = Conn {
                builder: &builder,
                handler,
                limits,
                activity,
            };
            match tls {
                None => {
                    let info = ConnInfo::new(peer, false, &limits);
                    // Prior-knowledge HTTP/2 is recognised by the tracker from its preface.
                    let (mut io, verdicts) =
                        FramingIo::tracked(stream, limits.head_cap(), limits.max_headers);
                    let deadline = accepted + limits.header_read_timeout;
                    let Some(protocol) = sniff(&mut io, deadline, &mut stopping, peer).await else {
                        return;
                    };
                    if protocol == Protocol::Http1 && limits.http1 == Http1Server::Native {
                        let (io, read) = io.into_parts();
                        let read = bytes::BytesMut::from(&read[..]);
                        native::serve(conn, io, read, info, stopping, watcher).await;
                        return;
                    }
                    conn.serve(TokioIo::new(io), protocol, Some(verdicts), info, watcher)
                        .await;
                }
                Some(config) => {
                    // The handshake is part of the time a connection gets to send its first
                    // request head.
                    let handshake = TlsAcceptor::from(config).accept(stream);
                    let deadline = accepted + limits.header_read_timeout;
                    match tokio::time::timeout_at(deadline, handshake).await {
                        Ok(Ok(tls_stream)) => {
                            let info = ConnInfo::new(peer, true, &limits);
                            let alpn = tls_stream.get_ref().1.alpn_protocol();
                            if alpn == Some(b"h2") {
                                let io = TokioIo::new(FramingIo::untracked(tls_stream));
                                conn.serve(io, Protocol::Http2, None, info, watcher).await;
                                return;
                            }
                            let known = alpn.is_some().then_some(Protocol::Http1);
                            let (mut io, verdicts) = FramingIo::tracked(
                                tls_stream,
                                limits.head_cap(),
                                limits.max_headers,
                            );
                            // No ALPN: the client may still open with the HTTP/2 preface.
                            let protocol = match known {
                                Some(protocol) => protocol,
                                None => match sniff(&mut io, deadline, &mut stopping, peer).await {
                                    Some(protocol) => protocol,
                                    None => return,
                                },
                            };
                            if protocol == Protocol::Http1 && limits.http1 == Http1Server::Native {
                                let (io, read) = io.into_parts();
                                let read = bytes::BytesMut::from(&read[..]);
                                native::serve(conn, io, read, info, stopping, watcher).await;
                                return;
                            }
                            let io = TokioIo::new(io);
                            conn.serve(io, protocol, Some(verdicts), info, watcher)
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
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(drain) => {
            if !conns.is_empty() {
                tracing::warn!(?drain, open = conns.len(), "drain time over, closing remaining connections");
            }
            conns.abort_all();
        }
    }
}

/// hyper's servers, configured once per listener.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

/// Waits, up to the connection's header-read deadline or shutdown, to see whether it opens
/// with the prior-knowledge HTTP/2 preface. None: close it.
async fn sniff<I>(
    io: &mut FramingIo<I>,
    deadline: Instant,
    shutdown: &mut watch::Receiver<bool>,
    peer: SocketAddr,
) -> Option<Protocol>
where
    I: tokio::io::AsyncRead + Unpin,
{
    tokio::select! {
        sniffed = tokio::time::timeout_at(deadline, io.sniff()) => match sniffed {
            Ok(Ok(protocol)) => Some(protocol),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection failed before its first request");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection");
                None
            }
        },
        _ = shutdown.changed() => None,
    }
}

/// One accepted connection and what it is served with.
struct Conn<'a, H> {
    builder: &'a Builders,
    handler: Arc<H>,
    limits: Limits,
    activity: Arc<Activity>,
}

impl<H: Handler> Conn<'_, H> {
    /// Serves requests until the client closes, a timeout closes the connection, or shutdown.
    /// `verdicts` is the framing guard's queue for HTTP/1 connections (None when the connection
    /// is known to be HTTP/2).
    async fn serve<I>(
        self,
        io: TokioIo<I>,
        protocol: Protocol,
        verdicts: Option<Verdicts>,
        info: ConnInfo,
        shutdown: hyper_util::server::graceful::Watcher,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            builder,
            handler,
            limits,
            activity,
        } = self;
        let service_activity = activity.clone();
        let service_info = info.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let handler = handler.clone();
            let info = service_info.clone();
            let busy = service_activity.begin(request.version() < http::Version::HTTP_2);
            // Popped here, not in the future: hyper calls the service in request order.
            let verdict = match &verdicts {
                Some(v) if request.version() < http::Version::HTTP_2 => v.next(),
                _ => Verdict::Pass,
            };
            async move {
                let response = match verdict {
                    Verdict::Refuse(reason) => {
                        refuse_and_close(&*handler, &info, request.method(), reason)
                    }
                    Verdict::Pass => handler.handle(info, request.map(ClientBody::from)).await,
                };
                Ok::<_, std::convert::Infallible>(response.map(|b| ActiveBody::new(b, busy)))
            }
        });
        match protocol {
            Protocol::Http1 => {
                let conn = shutdown.watch(builder.h1.serve_connection(io, service));
                drive(conn, &activity, &limits, &info).await;
            }
            Protocol::Http2 => {
                let conn = shutdown.watch(builder.h2.serve_connection(io, service));
                drive(conn, &activity, &limits, &info).await;
            }
        }
    }
}

/// Runs a connection to its end, closing it when its activity deadline passes (one timer per
/// connection, re-armed when it fires: see `activity`).
async fn drive<C, E>(conn: C, activity: &Activity, limits: &Limits, info: &ConnInfo)
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let first = Instant::now() + limits.recheck();
    let timer = tokio::time::sleep_until(activity.deadline(limits).map_or(first, |d| d.min(first)));
    tokio::pin!(timer);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %info.peer, error = %e, "connection ended with error");
                }
                return;
            }
            () = timer.as_mut() => {
                let now = Instant::now();
                let recheck = now + limits.recheck();
                match activity.deadline(limits) {
                    Some(deadline) if deadline <= now => {
                        tracing::debug!(peer = %info.peer, "closing idle connection");
                        return;
                    }
                    // Idle: its deadline, or busy: look again later.
                    Some(deadline) => timer.as_mut().reset(deadline.min(recheck)),
                    None => timer.as_mut().reset(recheck),
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
            peer_value: peer_value(peer.ip()),
            tls,
            body_budget: Arc::new(tokio::sync::Semaphore::new(limits.body_budget)),
        }
    }
}

/// An IP address as a header value; a dual-stack socket's `::ffff:a.b.c.d` stays as it is,
/// as the per-request formatting wrote it.
fn peer_value(ip: std::net::IpAddr) -> http::HeaderValue {
    // Digits, dots, colons and hex only: always a valid header value.
    http::HeaderValue::from_maybe_shared(Bytes::from(ip.to_string()))
        .unwrap_or(http::HeaderValue::from_static("unknown"))
}

/// A request the framing guard refused: never handled, and the connection ends after the
/// answer since the client and we may disagree about where the next request starts.
fn refuse_and_close<H: Handler>(
    handler: &H,
    conn: &ConnInfo,
    method: &Method,
    reason: Reason,
) -> Response<H::Body> {
    let mut response = handler.refuse(conn, method, reason);
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}
