//! streetgate's own HTTP/1 server loop (`runtime.http1: native`), a prototype beside hyper's
//! (docs/performance.md). It serves the requests that make up the traffic: a well-formed head
//! with no body, no `Expect`, no upgrade. Everything else is handed, with every byte not yet
//! served, to hyper's server and the framing guard (`Conn::serve`) as if the connection had
//! just opened: a head httparse refuses or that is over the size cap, a body of any framing,
//! `Transfer-Encoding`, a repeated `Content-Length`, CONNECT, a header the `http` crate would
//! not take. So the native loop never judges an odd request; it serves only what hyper and the
//! guard would pass unchanged, and hyper keeps answering the rest (400, 431, the guard's
//! refusals, bodies, `100 Continue`). Once handed over, a connection stays with hyper.
//!
//! Why: one parse per head instead of two (hyper's and the guard's), no per-request service
//! future, head and body written in one `write` (`docs/performance.md` has the measurements).

mod head;
mod respond;

#[cfg(any(test, feature = "testing"))]
pub(crate) use self::head::plain_request;
use self::head::{Parsed, Plain, parse};
use self::respond::write_response;

use std::time::Duration;

use bytes::BytesMut;
use http::Method;
use http::header::CONNECTION;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::activity::Activity;
use super::framing::{FramingIo, Protocol};
use super::{Conn, ConnInfo, Handler};
use crate::http1::has_token;

/// Which server reads HTTP/1 request heads (`runtime.http1`, `STREETGATE_HTTP1`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Http1Server {
    /// hyper's, for every request (the default).
    #[default]
    Hyper,
    /// The native loop for plain requests, hyper for the rest.
    Native,
}

impl Http1Server {
    /// The name the config and the environment use.
    pub fn as_str(self) -> &'static str {
        match self {
            Http1Server::Hyper => "hyper",
            Http1Server::Native => "native",
        }
    }
}

/// Overrides `runtime.http1`.
pub const ENV: &str = "STREETGATE_HTTP1";

#[derive(Debug, thiserror::Error)]
#[error("{ENV}={value:?} is not an HTTP/1 server: hyper or native")]
pub struct Http1EnvError {
    value: String,
}

/// `STREETGATE_HTTP1` when set, else the configured server.
pub fn server(configured: Http1Server) -> Result<Http1Server, Http1EnvError> {
    server_from(std::env::var_os(ENV), configured)
}

fn server_from(
    env: Option<std::ffi::OsString>,
    configured: Http1Server,
) -> Result<Http1Server, Http1EnvError> {
    let Some(value) = env else {
        return Ok(configured);
    };
    let text = value.to_string_lossy();
    match text.trim() {
        "hyper" => Ok(Http1Server::Hyper),
        "native" => Ok(Http1Server::Native),
        _ => Err(Http1EnvError {
            value: text.into_owned(),
        }),
    }
}

/// How long a closing connection may take to say goodbye (TLS close_notify).
const SHUTDOWN: Duration = Duration::from_secs(1);

/// Serves `io` natively until it closes or a request needs hyper. `buf` holds bytes already
/// read (the protocol sniff's).
pub(super) async fn serve<H, I>(
    conn: Conn<'_, H>,
    mut io: I,
    mut buf: BytesMut,
    info: ConnInfo,
    stopping: watch::Receiver<bool>,
    watcher: Watcher,
) where
    H: Handler,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = conn.limits;
    let cap = limits.head_cap();
    let mut out = Vec::with_capacity(1024);
    // The first head is due `header_read_timeout` after accept; later ones, after the
    // previous response, within the shorter of the idle and header timeouts (as `activity`).
    let mut deadline = conn.activity.deadline(&limits).unwrap_or_else(Instant::now);
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    // Shutdown is watched by one future for the connection's life: a new one per wait would
    // join and leave the watch's waiter list on every request.
    let mut watch = stopping.clone();
    let stop = watch.changed();
    tokio::pin!(stop);
    // Filled by `parse` in place: it is a kilobyte, not to be moved on every request.
    let mut plain = Plain::default();
    loop {
        loop {
            match parse(&buf, cap, limits.max_headers, &mut plain) {
                Parsed::Plain => break,
                Parsed::HandOff => {
                    return hand_off(conn, io, buf, info, watcher).await;
                }
                Parsed::Partial => {}
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            timer.as_mut().reset(deadline);
            let read = tokio::select! {
                biased;
                read = io.read_buf(&mut buf) => read,
                () = timer.as_mut() => return,
                _ = stop.as_mut() => return,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let Some(request) = plain.request(&mut buf) else {
            // Never seen: httparse's tokens and values are what `http` accepts.
            return hand_off(conn, io, buf, info, watcher).await;
        };
        let version = request.version();
        let is_head = request.method() == Method::HEAD;
        let response = conn.handler.handle(info.clone(), request).await;
        let close = !plain.keep_alive
            || *stopping.borrow()
            || response
                .headers()
                .get(CONNECTION)
                .is_some_and(|v| has_token(v.as_bytes(), b"close"));
        let ended = write_response(&mut io, &mut out, response, version, is_head, close).await;
        if !matches!(ended, Ok(true)) || close {
            let _ = tokio::time::timeout(SHUTDOWN, io.shutdown()).await;
            return;
        }
        deadline = Instant::now() + limits.recheck();
    }
}

/// Gives the connection, with the bytes not served yet, to hyper and the framing guard.
async fn hand_off<H, I>(conn: Conn<'_, H>, io: I, buf: BytesMut, info: ConnInfo, watcher: Watcher)
where
    H: Handler,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = conn.limits;
    let (io, verdicts) = FramingIo::tracked(io, limits.head_cap(), limits.max_headers);
    let io = io.replaying(buf.freeze());
    // A fresh clock: its next head is due `header_read_timeout` from now, as on a new connection.
    let conn = Conn {
        activity: Activity::new(Instant::now()),
        ..conn
    };
    conn.serve(
        TokioIo::new(io),
        Protocol::Http1,
        Some(verdicts),
        info,
        watcher,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_overrides_the_config_and_bad_values_are_errors() {
        assert_eq!(
            server_from(None, Http1Server::Native).unwrap(),
            Http1Server::Native
        );
        assert_eq!(
            server_from(Some("hyper".into()), Http1Server::Native).unwrap(),
            Http1Server::Hyper
        );
        assert_eq!(
            server_from(Some(" native ".into()), Http1Server::Hyper).unwrap(),
            Http1Server::Native
        );
        for bad in ["", "Native", "h2", "both"] {
            let err = server_from(Some(bad.into()), Http1Server::Hyper).unwrap_err();
            assert!(err.to_string().contains(&format!("{ENV}={bad:?}")), "{err}");
        }
    }
}
