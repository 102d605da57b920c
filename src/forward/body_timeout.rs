//! The upstream response body's idle timeout (`apis[].body_timeout`): once the response head
//! is in, the upstream may still stall mid-body. `TimedBody` fails the body when no frame
//! arrives for the configured time. Streamed to a client, the failure aborts the response
//! (HTTP/1: the connection is closed short of the body's end; HTTP/2: the stream is reset);
//! where the body is buffered first (filtering, created-work collection) it becomes a 504.
//!
//! The same wrapper bounds a client's request body streamed to the upstream
//! (`listen.body_read_timeout`): a client that stops sending mid-body fails the upstream
//! request, and the client gets 408 `body_timeout`.
//!
//! The clock runs only while the body is polled and has nothing ready: a client reading slowly
//! holds back our reads, and that is not the upstream stalling.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::listener::BoxError;
use crate::reason::Reason;

/// No body bytes arrived from the upstream for the configured time.
#[derive(Debug, thiserror::Error)]
#[error("upstream body stalled: nothing for {0:?}")]
pub struct BodyTimeout(pub Duration);

pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    /// Created on the first wait, reused after; `armed` says whether its deadline belongs to
    /// the current wait (a frame since then makes it stale).
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            sleep: None,
            armed: false,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.armed {
                    sleep.as_mut().reset(deadline);
                    this.armed = true;
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(this.timeout).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a body error (or anything in its source chain) is a stall.
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// The reason for a failed read of an upstream body we buffer.
pub fn reason_for(error: &(dyn std::error::Error + 'static)) -> Reason {
    if is_timeout(error) {
        Reason::UpstreamTimeout
    } else {
        Reason::UpstreamUnavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    /// A body fed chunk by chunk by the test; ends when the sender is dropped.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn chunks_closer_than_the_timeout_pass_whatever_the_total_time() {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                tx.send(Bytes::from_static(b"ab")).await.unwrap();
            }
        });
        let body = TimedBody::new(Fed(rx), TIMEOUT).collect().await.unwrap();
        assert_eq!(body.to_bytes(), "abababab");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_after_some_bytes_fails_with_a_timeout() {
        let (tx, rx) = mpsc::channel(1);
        let mut body = TimedBody::new(Fed(rx), TIMEOUT);
        tx.send(Bytes::from_static(b"first")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), TIMEOUT);
        assert!(is_timeout(err.as_ref()));
        assert_eq!(reason_for(err.as_ref()), Reason::UpstreamTimeout);
        drop(tx);
    }

    #[test]
    fn other_body_errors_are_upstream_failures() {
        let err: BoxError = std::io::Error::other("reset").into();
        assert_eq!(reason_for(err.as_ref()), Reason::UpstreamUnavailable);
    }
}
