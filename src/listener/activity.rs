//! What a connection is doing, so the listener can close one that is not doing anything: a
//! connection with no request yet gets `header_read_timeout` from accept (the TLS handshake and
//! the protocol sniffing have the same deadline in `listener`; this covers an HTTP/2 preface
//! with no request after it, which hyper's own HTTP/1 header timer would not see either), and
//! one between requests gets `idle_timeout`.
//! On HTTP/1 the time between requests is also the time to send the next head, so there it is
//! the shorter of the two timeouts. This is the only header-read timer: hyper's own (off, see
//! `listener::serve`) would create, insert and remove a timer for every request head.
//!
//! A request counts as busy until its response body has been sent, not just until the service
//! returns, so a long download is never mistaken for an idle connection.
//!
//! The listener's timer is lazy: a request ending only stores a time, it wakes nothing. The
//! timer checks `deadline` when it fires and sleeps again until the new deadline (at most
//! `Limits::recheck` later), so a busy keep-alive connection costs no timer or wake-up per
//! request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::Limits;

pub(super) struct Activity {
    /// Requests whose response has not been sent completely.
    busy: AtomicUsize,
    /// Whether any request has arrived on this connection.
    started: AtomicBool,
    /// Whether its requests are HTTP/1 (the next head is awaited between requests).
    h1: AtomicBool,
    /// Milliseconds after `epoch` when the connection last became idle.
    idle_since_ms: AtomicU64,
    /// When the connection was accepted.
    epoch: Instant,
}

impl Activity {
    pub(super) fn new(accepted: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            busy: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            h1: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            epoch: accepted,
        })
    }

    /// A request arrived; the returned guard marks it done when dropped (with its body).
    pub(super) fn begin(self: &Arc<Self>, h1: bool) -> Busy {
        self.h1.store(h1, Ordering::Relaxed);
        self.started.store(true, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// When the connection may be closed if nothing happens meanwhile; None while busy.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let allowed = if !self.started.load(Ordering::Relaxed) {
            limits.header_read_timeout
        } else if self.h1.load(Ordering::Relaxed) {
            limits.idle_timeout.min(limits.header_read_timeout)
        } else {
            limits.idle_timeout
        };
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        Some(self.epoch + since + allowed)
    }
}

/// One request in progress on a connection.
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since_ms
            .store(millis(a.epoch.elapsed()), Ordering::Relaxed);
        a.busy.fetch_sub(1, Ordering::Release);
    }
}

/// A response body that keeps its request counted as busy until it is sent or dropped.
pub struct ActiveBody<B> {
    inner: B,
    _busy: Busy,
}

impl<B> ActiveBody<B> {
    pub(super) fn new(inner: B, busy: Busy) -> Self {
        ActiveBody { inner, _busy: busy }
    }
}

impl<B: Body + Unpin> Body for ActiveBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Milliseconds since the connection's epoch; saturates (after half a billion years).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
