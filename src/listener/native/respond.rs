//! Writing a response: the head, then the body by length, chunks or until close.

use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, Response, StatusCode, Version};
use http_body::{Body, Frame};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::listener::BoxError;

/// A data frame up to this size is copied behind the head (or the previous frame) so both
/// leave in one write; a larger one is written on its own.
const COALESCE: usize = 16 * 1024;

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body may follow (HEAD, 1xx, 204, 304).
    Bodiless,
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a known length: the body ends when the connection does.
    UntilClose,
}

/// Writes the response; Ok(true) when the connection may carry another request.
pub(super) async fn write_response<I, B>(
    io: &mut I,
    out: &mut Vec<u8>,
    response: Response<B>,
    version: Version,
    is_head: bool,
    close: bool,
) -> io::Result<bool>
where
    I: AsyncWrite + Unpin,
    B: Body<Data = Bytes, Error: Into<BoxError> + Send> + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let framing = if is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Bodiless
    } else if let Some(n) = body.size_hint().exact() {
        Framing::Length(n)
    } else if let Some(n) = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok()?.parse::<u64>().ok())
    {
        Framing::Length(n)
    } else if version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        Framing::UntilClose
    };
    let close = close || framing == Framing::UntilClose;
    out.clear();
    encode_head(out, status, &parts.headers, framing, version, close);
    crate::recycle::give_map(parts.headers);
    let result = write_body(io, out, &mut body, framing).await;
    out.clear();
    if out.capacity() > 64 * 1024 {
        // One big response should not pin its buffer for the connection's life.
        *out = Vec::with_capacity(1024);
    }
    Ok(result? && !close)
}

fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    version: Version,
    close: bool,
) {
    // As hyper: an HTTP/1.0 client is answered in its own version.
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        let framed = name == TRANSFER_ENCODING
            || name == CONNECTION
            || (name == CONTENT_LENGTH && framing != Framing::Bodiless);
        if framed {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Bodiless | Framing::UntilClose => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !headers.contains_key(DATE) {
        out.extend_from_slice(b"date: ");
        date::write(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Streams the body after the head in `out`; Ok(false) when the body failed or did not match
/// its length (the connection must close: the client cannot find the next response).
async fn write_body<I, B>(
    io: &mut I,
    out: &mut Vec<u8>,
    body: &mut B,
    framing: Framing,
) -> io::Result<bool>
where
    I: AsyncWrite + Unpin,
    B: Body<Data = Bytes, Error: Into<BoxError> + Send> + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut whole = true;
    if framing != Framing::Bodiless {
        loop {
            // (`if let`: in edition 2024 its scrutinee is gone before `else`, so no frame is
            // held across the await there.)
            let frame = if let Ready(frame) = next_frame(body).await {
                frame
            } else {
                // What is ready leaves now: the client should not wait for a slow body.
                flush(io, out).await?;
                std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
            };
            let data = match frame {
                None => break,
                Some(Err(e)) => {
                    let e: BoxError = e.into();
                    tracing::debug!(error = %e, "response body failed; closing the connection");
                    whole = false;
                    break;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers are not sent on HTTP/1 (hyper's server drops them too unless
                    // the client asked with `TE: trailers`).
                    Err(_) => continue,
                },
            };
            if data.is_empty() {
                continue;
            }
            let mut data = data;
            if framing == Framing::Chunked {
                push_hex(out, data.len());
                out.extend_from_slice(b"\r\n");
            } else if (data.len() as u64) > left {
                // More than the length said: the rest is not sent.
                data.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                whole = false;
            }
            left -= data.len() as u64;
            if data.len() <= COALESCE {
                out.extend_from_slice(&data);
            } else {
                flush(io, out).await?;
                io.write_all(&data).await?;
            }
            if framing == Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
            if !whole {
                break;
            }
        }
        match framing {
            Framing::Chunked if whole => out.extend_from_slice(b"0\r\n\r\n"),
            Framing::Length(_) if left != 0 => whole = false,
            _ => {}
        }
    }
    flush(io, out).await?;
    io.flush().await?;
    Ok(whole)
}

use Polled::{Ready, Waiting};

enum Polled<T> {
    Ready(T),
    Waiting,
}

/// The body's next frame if it is ready now (the waker is registered either way).
async fn next_frame<B: Body + Unpin>(
    body: &mut B,
) -> Polled<Option<Result<Frame<B::Data>, B::Error>>> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(frame) => Ready(frame),
            Poll::Pending => Waiting,
        })
    })
    .await
}

async fn flush<I: AsyncWrite + Unpin>(io: &mut I, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// A chunk size line's number, in lowercase hex.
fn push_hex(out: &mut Vec<u8>, n: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(DIGITS[(n >> (i * 4)) & 0xf]);
    }
}

/// The `Date` header, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    pub(super) fn write(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs {
                *c = (secs, httpdate::fmt_http_date(now));
            }
            out.extend_from_slice(c.1.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::collections::VecDeque;

    use http_body_util::Full;

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        for n in [0usize, 1, 9, 10, 15, 16, 255, 4096, 0xabcdef, usize::MAX] {
            let mut out = Vec::new();
            push_hex(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{n:x}"));
        }
    }

    type Frames = Vec<Result<Frame<Bytes>, BoxError>>;

    /// A body of given frames with no size hint, as a streamed upstream body.
    struct Streamed(VecDeque<Result<Frame<Bytes>, BoxError>>);

    impl Body for Streamed {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.get_mut().0.pop_front())
        }
    }

    fn streamed(frames: Frames) -> Streamed {
        Streamed(frames.into())
    }

    /// Writes `response` as the native loop does; returns the bytes and whether the
    /// connection may be reused.
    async fn written<B>(response: Response<B>, version: Version, is_head: bool) -> (String, bool)
    where
        B: Body<Data = Bytes, Error: Into<BoxError> + Send> + Unpin,
    {
        let mut wire = Vec::new();
        let mut out = Vec::new();
        let reusable = write_response(&mut wire, &mut out, response, version, is_head, false)
            .await
            .unwrap();
        (String::from_utf8(wire).unwrap(), reusable)
    }

    fn without_date(wire: &str) -> String {
        wire.lines()
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn a_known_length_goes_out_with_its_head_in_one_piece() {
        let mut response = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
        response
            .headers_mut()
            .insert("x-b", HeaderValue::from_static("1"));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        let (wire, reusable) = written(response, Version::HTTP_11, false).await;
        assert!(reusable);
        assert!(wire.contains("\r\ndate: "), "{wire}");
        assert_eq!(
            without_date(&wire),
            "HTTP/1.1 200 OK\nx-b: 1\ncontent-length: 11\n\n{\"ok\":true}"
        );
    }

    #[tokio::test]
    async fn an_unknown_length_is_chunked_on_1_1_and_ends_the_connection_on_1_0() {
        let frames = || -> Frames {
            vec![
                Ok(Frame::data(Bytes::from_static(b"hello "))),
                Ok(Frame::data(Bytes::new())),
                Ok(Frame::data(Bytes::from(vec![b'x'; 17]))),
                Ok(Frame::trailers(HeaderMap::new())),
            ]
        };
        let (wire, reusable) =
            written(Response::new(streamed(frames())), Version::HTTP_11, false).await;
        assert!(reusable);
        assert_eq!(
            without_date(&wire),
            format!(
                "HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n6\nhello \n11\n{}\n0\n",
                "x".repeat(17)
            )
        );
        assert!(wire.ends_with("\r\n0\r\n\r\n"));
        let (wire, reusable) =
            written(Response::new(streamed(frames())), Version::HTTP_10, false).await;
        assert!(!reusable);
        assert_eq!(
            without_date(&wire),
            format!(
                "HTTP/1.0 200 OK\nconnection: close\n\nhello {}",
                "x".repeat(17)
            )
        );
    }

    #[tokio::test]
    async fn a_large_frame_is_written_whole_after_the_head() {
        let big = Bytes::from(vec![b'z'; COALESCE * 3]);
        let (wire, reusable) =
            written(Response::new(Full::new(big)), Version::HTTP_11, false).await;
        assert!(reusable);
        let body = "z".repeat(COALESCE * 3);
        assert!(
            wire.ends_with(&format!("\r\n\r\n{body}")),
            "head, then the body"
        );
        assert!(wire.contains(&format!("content-length: {}\r\n", body.len())));
    }

    #[tokio::test]
    async fn bodiless_answers_keep_their_length_header_and_send_nothing() {
        let mut response = Response::new(Full::new(Bytes::new()));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("42"));
        let (wire, reusable) = written(response, Version::HTTP_11, true).await;
        assert!(reusable);
        assert_eq!(without_date(&wire), "HTTP/1.1 200 OK\ncontent-length: 42\n");
        for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
            let mut response = Response::new(Full::new(Bytes::from_static(b"ignored")));
            *response.status_mut() = status;
            let (wire, _) = written(response, Version::HTTP_11, false).await;
            assert!(!wire.contains("ignored"), "{wire}");
            assert!(wire.ends_with("\r\n\r\n"), "{wire}");
        }
    }

    #[tokio::test]
    async fn a_body_that_fails_or_misses_its_length_ends_the_connection() {
        let failing: Frames = vec![
            Ok(Frame::data(Bytes::from_static(b"part"))),
            Err("upstream went away".into()),
        ];
        let (wire, reusable) =
            written(Response::new(streamed(failing)), Version::HTTP_11, false).await;
        assert!(!reusable);
        assert!(wire.ends_with("4\r\npart\r\n"), "no last chunk: {wire:?}");

        let short: Frames = vec![Ok(Frame::data(Bytes::from_static(b"abc")))];
        let mut response = Response::new(streamed(short));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        let (wire, reusable) = written(response, Version::HTTP_11, false).await;
        assert!(!reusable);
        assert!(wire.contains("content-length: 5\r\n"), "{wire:?}");
        assert!(wire.ends_with("\r\n\r\nabc"), "{wire:?}");

        let long: Frames = vec![Ok(Frame::data(Bytes::from_static(b"abcdef")))];
        let mut response = Response::new(streamed(long));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("2"));
        let (wire, reusable) = written(response, Version::HTTP_11, false).await;
        assert!(!reusable);
        assert!(wire.ends_with("\r\n\r\nab"), "{wire:?}");
    }
}
