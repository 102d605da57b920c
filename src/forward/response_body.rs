//! The upstream's response body, whichever client read it: hyper's (TLS upstreams, HTTP/2,
//! streamed request bodies, or `runtime.http1: hyper`) or the native one.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::native::NativeBody;
use crate::listener::BoxError;

pub enum ResponseBody {
    Hyper(Incoming),
    Native(NativeBody),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ResponseBody::Native(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Hyper(body) => body.is_end_stream(),
            ResponseBody::Native(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Hyper(body) => body.size_hint(),
            ResponseBody::Native(body) => body.size_hint(),
        }
    }
}
