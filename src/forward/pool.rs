//! Upstream connections, pooled per worker (`listener::workers`): a request is sent on a
//! connection its own worker opened, so a connection's task, its sender and the request that
//! uses it stay on one thread. HTTP/1.1, or HTTP/2 when a TLS upstream picks `h2` by ALPN; one
//! HTTP/2 connection per worker carries every request to that upstream.
//!
//! The connector is built once per upstream and borrowed per request: nothing of it is cloned
//! on the request path.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use http_body_util::Either;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::native::{self, NativeBody};
use super::{RequestBody, ResponseBody};
use crate::listener::workers;

/// A pooled HTTP/1 connection unused for this long is closed rather than reused (its upstream
/// may have dropped it without a word).
const IDLE: Duration = Duration::from_secs(60);
/// Connections kept per worker and upstream; past it a finished connection is closed.
const MAX_PER_SLOT: usize = 1024;
/// A request body up to this size is copied behind its head for the native client.
const SMALL_BODY: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to {authority}")]
    Connect {
        authority: String,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {authority} took over {timeout:?}")]
    ConnectTimeout {
        authority: String,
        timeout: Duration,
    },
    #[error("TLS with {authority} failed")]
    Tls {
        authority: String,
        #[source]
        source: io::Error,
    },
    #[error("HTTP exchange with the upstream failed")]
    Http(#[source] hyper::Error),
    #[error("HTTP exchange with the upstream failed")]
    Native(#[source] native::ExchangeError),
}

pub struct Pool {
    host: String,
    port: u16,
    authority: String,
    /// For `https` upstreams.
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
    /// Whether HTTP/1 exchanges the native client can take go through it (plain TCP only).
    native: bool,
    /// Shared with native response bodies, which put their connection back when they end.
    slots: Arc<[Mutex<Slot>]>,
}

#[derive(Default)]
struct Slot {
    h1: Vec<Idle>,
    h2: Option<http2::SendRequest<RequestBody>>,
    native: Vec<NativeIdle>,
}

struct NativeIdle {
    conn: native::Conn,
    since: Instant,
}

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

enum Sender {
    H1(http1::SendRequest<RequestBody>),
    H2(http2::SendRequest<RequestBody>),
}

impl Pool {
    /// `upstream` is `scheme://authority` (validated by the config).
    pub fn new(upstream: &Uri, connect_timeout: Duration, native: bool) -> Pool {
        let https = upstream.scheme_str() == Some("https");
        let host = upstream.host().unwrap_or_default();
        // `[::1]` in a URI is `::1` to the resolver and to TLS.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = upstream.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = https.then(|| TlsConnector::from(client_tls()));
        Pool {
            authority: format!("{host}:{port}"),
            host,
            port,
            tls,
            connect_timeout,
            native: native && !https,
            slots: (0..workers::slots())
                .map(|_| Mutex::new(Slot::default()))
                .collect(),
        }
    }

    /// Sends on a pooled connection of this worker, or a new one. A pooled HTTP/1 connection
    /// that turns out closed before the request went out is replaced once. `now` (read by the
    /// caller) dates idleness: a connection put back counts as idle since the request was sent,
    /// a little early, which only closes it sooner.
    pub async fn send(
        &self,
        request: Request<RequestBody>,
        now: Instant,
    ) -> Result<Response<ResponseBody>, SendError> {
        let index = workers::current().unwrap_or(0) % self.slots.len();
        if self.native && native::takes(&request) {
            let response = self.send_native(index, request, now).await?;
            return Ok(response.map(Either::Right));
        }
        let response = self.send_hyper(&self.slots[index], request, now).await?;
        Ok(response.map(Either::Left))
    }

    /// The native client: a pooled connection of this worker, or a new one. A reused
    /// connection that answers nothing (the upstream closed it while idle) is replaced once
    /// for an idempotent request; any other request could have been acted on, so it fails.
    async fn send_native(
        &self,
        index: usize,
        request: Request<RequestBody>,
        now: Instant,
    ) -> Result<Response<NativeBody>, SendError> {
        let mut head = crate::recycle::buffer();
        let (method, mut body) = native::encode(request, &mut head).await;
        if body.len() <= SMALL_BODY {
            // One write for head and body.
            head.extend_from_slice(&body);
            body = bytes::Bytes::new();
        }
        let sent = self
            .exchange_native(index, &head, &body, &method, now)
            .await;
        crate::recycle::give_buffer(head);
        sent
    }

    async fn exchange_native(
        &self,
        index: usize,
        head: &[u8],
        body: &bytes::Bytes,
        method: &http::Method,
        now: Instant,
    ) -> Result<Response<NativeBody>, SendError> {
        let pooled = checkout_native(&mut lock(&self.slots[index]), now);
        if let Some(conn) = pooled {
            let home = self.home(index, now);
            match native::exchange(conn, head, body, method, home).await {
                Ok(response) => return Ok(response),
                Err(e) if method.is_idempotent() && e.nothing_received() => {}
                Err(e) => return Err(SendError::Native(e)),
            }
        }
        let tcp = Box::pin(self.connect_tcp()).await?;
        let home = self.home(index, now);
        native::exchange(native::Conn::new(tcp), head, body, method, home)
            .await
            .map_err(SendError::Native)
    }

    /// Puts a native connection back in worker `index`'s slot, idle since `since`.
    fn home(
        &self,
        index: usize,
        since: Instant,
    ) -> impl FnOnce(native::Conn) + Send + Sync + 'static {
        let slots = self.slots.clone();
        move |conn| {
            let mut slot = lock(&slots[index]);
            if slot.native.len() < MAX_PER_SLOT {
                slot.native.push(NativeIdle { conn, since });
            }
        }
    }

    async fn send_hyper(
        &self,
        slot: &Mutex<Slot>,
        mut request: Request<RequestBody>,
        now: Instant,
    ) -> Result<Response<hyper::body::Incoming>, SendError> {
        let pooled = checkout(&mut lock(slot), now);
        if let Some(sender) = pooled {
            match self.exchange(slot, sender, request, now).await {
                Ok(response) => return Ok(response),
                Err((Some(back), _)) => request = back,
                Err((None, e)) => return Err(e),
            }
        }
        // Boxed: connecting is rare, and its TLS and HTTP/2 handshakes would otherwise make
        // every request's future (moved by value on each await) kilobytes larger.
        let sender = Box::pin(self.connect(slot)).await?;
        self.exchange(slot, sender, request, now)
            .await
            .map_err(|(_, e)| e)
    }

    async fn exchange(
        &self,
        slot: &Mutex<Slot>,
        sender: Sender,
        mut request: Request<RequestBody>,
        now: Instant,
    ) -> Result<Response<hyper::body::Incoming>, (Option<Request<RequestBody>>, SendError)> {
        match sender {
            Sender::H1(mut sender) => {
                // HTTP/1 wants the origin form; the Host header is already set.
                // Moved out, not cloned: a path and query made for this request is not
                // shareable yet, and a clone would allocate to make it so.
                if request.uri().path_and_query().is_some()
                    && let Some(pq) = std::mem::take(request.uri_mut())
                        .into_parts()
                        .path_and_query
                {
                    *request.uri_mut() = Uri::from(pq);
                }
                match sender.try_send_request(request).await {
                    Ok(response) => {
                        // Reused once it is ready again: when this response has been read.
                        let mut slot = lock(slot);
                        if slot.h1.len() < MAX_PER_SLOT {
                            slot.h1.push(Idle { sender, since: now });
                        }
                        Ok(response)
                    }
                    Err(mut e) => {
                        let unsent = e.take_message();
                        Err((unsent, SendError::Http(e.into_error())))
                    }
                }
            }
            Sender::H2(mut sender) => match sender.try_send_request(request).await {
                Ok(response) => Ok(response),
                Err(mut e) => {
                    let unsent = e.take_message();
                    Err((unsent, SendError::Http(e.into_error())))
                }
            },
        }
    }

    async fn connect_tcp(&self) -> Result<TcpStream, SendError> {
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| self.timed_out())?
        .map_err(|source| SendError::Connect {
            authority: self.authority.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    async fn connect(&self, slot: &Mutex<Slot>) -> Result<Sender, SendError> {
        let tcp = self.connect_tcp().await?;
        let Some(connector) = &self.tls else {
            return h1(TokioIo::new(tcp)).await;
        };
        let name = ServerName::try_from(self.host.clone()).map_err(|e| SendError::Tls {
            authority: self.authority.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        let stream = tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|source| SendError::Tls {
                authority: self.authority.clone(),
                source,
            })?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return h1(TokioIo::new(stream)).await;
        }
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        lock(slot).h2 = Some(sender.clone());
        Ok(Sender::H2(sender))
    }

    fn timed_out(&self) -> SendError {
        SendError::ConnectTimeout {
            authority: self.authority.clone(),
            timeout: self.connect_timeout,
        }
    }
}

/// A connection ready for a request: the worker's HTTP/2 connection, else an HTTP/1 one that
/// has finished its last exchange. Closed and stale ones are dropped on the way.
fn checkout(slot: &mut Slot, now: Instant) -> Option<Sender> {
    if let Some(h2) = &slot.h2 {
        if !h2.is_closed() {
            return Some(Sender::H2(h2.clone()));
        }
        slot.h2 = None;
    }
    let mut i = slot.h1.len();
    while i > 0 {
        i -= 1;
        let idle = &slot.h1[i];
        if idle.sender.is_closed() || now.saturating_duration_since(idle.since) > IDLE {
            slot.h1.swap_remove(i);
        } else if idle.sender.is_ready() {
            return Some(Sender::H1(slot.h1.swap_remove(i).sender));
        }
    }
    None
}

/// A native connection of the slot that is still open and fresh; stale ones are dropped.
fn checkout_native(slot: &mut Slot, now: Instant) -> Option<native::Conn> {
    while let Some(idle) = slot.native.pop() {
        if now.saturating_duration_since(idle.since) <= IDLE && idle.conn.usable() {
            return Some(idle.conn);
        }
    }
    None
}

async fn h1<I>(io: TokioIo<I>) -> Result<Sender, SendError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io).await.map_err(SendError::Http)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(Sender::H1(sender))
}

/// One TLS client config for every upstream: the webpki roots, ALPN h2 then http/1.1.
fn client_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            #[allow(clippy::expect_used)] // built at start-up; aws-lc-rs supports its defaults
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("aws-lc-rs supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A slot holds senders only; a panic elsewhere cannot leave it inconsistent.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}
