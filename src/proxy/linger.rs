//! A client body refused unread on an HTTP/1 connection is read to its end in the background
//! and discarded (nginx calls it a lingering close). Without it the connection closes with the
//! client still sending; the kernel then resets it, and the reset can destroy the answer the
//! client has not read yet: an uploader sees "connection reset" instead of its 401 or 413.
//! Bounded by `listen.body_read_timeout`: past it the body is dropped and the connection
//! closes as before. HTTP/2 needs none of this (dropping the body ends only its stream), nor
//! does a client that sent `Expect: 100-continue` (refused before `100 Continue`, it sends no
//! body).

use std::time::Duration;

use crate::listener::ClientBody;
use http_body_util::BodyExt;
use hyper::body::Body;

/// The client's body until a phase takes it; dropped untaken, it is drained (HTTP/1 only).
pub(super) struct Lingering {
    body: Option<ClientBody>,
    drain_for: Option<Duration>,
}

impl Lingering {
    /// `drain_for`: how long an unread body may be drained (None: never, e.g. HTTP/2).
    pub fn new(body: ClientBody, drain_for: Option<Duration>) -> Lingering {
        Lingering {
            body: Some(body),
            drain_for,
        }
    }

    /// The body, for a phase that reads or forwards it; no draining after this.
    #[allow(
        clippy::expect_used,
        reason = "the body is Some from `new` until `take` or `drop`, and each runs once"
    )]
    pub fn take(mut self) -> ClientBody {
        self.body.take().expect("a lingering body is taken once")
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(body), Some(limit)) = (self.body.take(), self.drain_for) else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        // Off a runtime (never on the request path) there is nothing to drain on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(limit, drain(body)).await;
            });
        }
    }
}

async fn drain(mut body: ClientBody) {
    while let Some(Ok(_)) = body.frame().await {}
}
