//! Framing a request as hyper's client frames it: one buffer for the head and a whole body.

use bytes::Bytes;
use http::header::TRANSFER_ENCODING;
use http::{Method, Request, Version};
use http_body::Body;
use http_body_util::{BodyExt, Either};

use super::head::content_length;
use crate::forward::RequestBody;

/// Whether the native client takes this request: its body is whole, and nothing in the head
/// asks for a framing of its own.
pub fn takes(request: &Request<RequestBody>) -> bool {
    let whole = match request.body() {
        Either::Right(_) => true,
        Either::Left(streamed) => streamed.is_end_stream(),
    };
    whole && !request.headers().contains_key(TRANSFER_ENCODING)
}

/// The request's head and body as they go on the wire, in `out`.
pub async fn encode(request: Request<RequestBody>, out: &mut Vec<u8>) -> (Method, Bytes) {
    let (parts, body) = request.into_parts();
    let body = match body {
        // A `Full` has its one frame ready.
        Either::Right(mut full) => match full.frame().await {
            Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
            _ => Bytes::new(),
        },
        Either::Left(_) => Bytes::new(),
    };
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(if parts.version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // hyper: a body's own length unless the head has a valid one; none for an empty body.
    if !body.is_empty() && content_length(&parts.headers) != Ok(Some(body.len() as u64)) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    crate::recycle::give_map(parts.headers);
    (parts.method, body)
}
