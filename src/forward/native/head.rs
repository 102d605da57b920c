//! Reading a response head on the connection's buffer, and the framing of the body after it.

use bytes::Buf;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use tokio::io::AsyncReadExt;

use super::{Conn, ExchangeError, MAX_HEAD};
use crate::http1::{digits, has_token, is_chunked};

/// Response headers parsed at most.
const MAX_HEADERS: usize = 100;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of chunk data are left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to the empty one.
    Trailers,
}

pub(super) async fn read_head(
    conn: &mut Conn,
    method: &Method,
) -> Result<(http::response::Parts, Framing, bool), ExchangeError> {
    let mut received = false;
    loop {
        match head_len(&conn.buf)? {
            // 100 Continue and the like: the real answer follows.
            Some((len, true)) => {
                conn.buf.advance(len);
                continue;
            }
            Some((len, false)) => return head(conn, len, method),
            None => {}
        }
        conn.buf.reserve(4096);
        if conn.io.read_buf(&mut conn.buf).await? == 0 {
            return Err(if received || !conn.buf.is_empty() {
                ExchangeError::Malformed("response head cut short")
            } else {
                ExchangeError::ClosedEarly
            });
        }
        received = true;
    }
}

/// The length of the complete response head at the start of `buf`, and whether it is an
/// informational one to skip; None until it is all there. (Not inlined into `read_head`: the
/// header array would then live in its future, kilobytes moved with it on every request.)
fn head_len(buf: &[u8]) -> Result<Option<(usize, bool)>, ExchangeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let code = response.code.unwrap_or(0);
            Ok(Some((len, (100..200).contains(&code) && code != 101)))
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Ok(None),
        Ok(httparse::Status::Partial) => Err(ExchangeError::HeadTooLarge),
        Err(_) => Err(ExchangeError::Malformed("response head")),
    }
}

/// Builds the response head of `len` bytes at the start of the buffer (parsed again from the
/// frozen head, so header values share its bytes rather than being copied).
fn head(
    conn: &mut Conn,
    len: usize,
    method: &Method,
) -> Result<(http::response::Parts, Framing, bool), ExchangeError> {
    let bytes = conn.buf.split_to(len).freeze();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed
        .parse(&bytes)
        .map_err(|_| ExchangeError::Malformed("response head"))?;
    let status = StatusCode::from_u16(parsed.code.unwrap_or(0))
        .map_err(|_| ExchangeError::Malformed("status code"))?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut map = crate::recycle::header_map();
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| ExchangeError::Malformed("header name"))?;
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(h.value))
            .map_err(|_| ExchangeError::Malformed("header value"))?;
        map.append(name, value);
    }
    let framing = framing(status, method, version, &map)?;
    let close = map
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"close"));
    let keep_alive = map
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"keep-alive"));
    let reusable = !close
        && (version == Version::HTTP_11 || keep_alive)
        && framing != Framing::UntilClose
        && status != StatusCode::SWITCHING_PROTOCOLS;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = map;
    let (parts, ()) = response.into_parts();
    Ok((parts, framing, reusable))
}

/// hyper's `Client::decoder`, RFC 9112 §6.3 in order.
fn framing(
    status: StatusCode,
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<Framing, ExchangeError> {
    if matches!(status.as_u16(), 101 | 204 | 304) || method == Method::HEAD {
        return Ok(Framing::Empty);
    }
    if let Some(te) = headers.get_all(TRANSFER_ENCODING).iter().next_back() {
        if version == Version::HTTP_10 {
            return Err(ExchangeError::Malformed("transfer-encoding on HTTP/1.0"));
        }
        return Ok(if is_chunked(te.as_bytes()) {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::UntilClose
        });
    }
    match content_length(headers) {
        Ok(Some(n)) => Ok(Framing::Length(n)),
        Ok(None) => Ok(Framing::UntilClose),
        Err(()) => Err(ExchangeError::Malformed("content-length")),
    }
}

/// Every `Content-Length` value (comma lists included) must be the same number.
pub(super) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = digits(part.trim_ascii()).ok_or(())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    Ok(length)
}
