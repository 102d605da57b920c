//! A response body: whole when it came with its head, else decoded from the connection by
//! length, chunks or until close.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use super::head::{Chunk, Framing};
use super::{Conn, ExchangeError};

/// A chunk-size or trailer line longer than this is refused.
const MAX_LINE: usize = 4096;

/// A response body read by the native client.
pub struct NativeBody {
    /// What is ready to hand out: the whole body when it came with the head.
    ready: Option<Bytes>,
    streaming: Option<Box<Streaming>>,
}

/// A body still coming from its connection.
pub(super) struct Streaming {
    pub(super) conn: Conn,
    pub(super) framing: Framing,
    pub(super) reusable: bool,
    pub(super) home: Option<Box<dyn FnOnce(Conn) + Send + Sync>>,
}

impl NativeBody {
    pub(super) fn whole(bytes: Bytes) -> NativeBody {
        NativeBody {
            ready: (!bytes.is_empty()).then_some(bytes),
            streaming: None,
        }
    }

    pub(super) fn streaming(streaming: Streaming) -> NativeBody {
        NativeBody {
            ready: None,
            streaming: Some(Box::new(streaming)),
        }
    }
}

/// One step of decoding what is buffered.
enum Step {
    Data(Bytes),
    More,
    End,
}

impl Streaming {
    fn step(&mut self) -> Result<Step, ExchangeError> {
        decode(&mut self.conn.buf, &mut self.framing)
    }
}

/// Takes the next piece of body out of `buf`, following `framing` (updated as it goes).
fn decode(buf: &mut BytesMut, framing: &mut Framing) -> Result<Step, ExchangeError> {
    loop {
        match *framing {
            Framing::Empty | Framing::Length(0) => return Ok(Step::End),
            Framing::Length(n) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                *framing = Framing::Length(n - take as u64);
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            Framing::UntilClose => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                return Ok(Step::Data(buf.split().freeze()));
            }
            Framing::Chunked(Chunk::Data(n)) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                let left = n - take as u64;
                *framing = Framing::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            Framing::Chunked(Chunk::DataEnd) => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(ExchangeError::Malformed("chunk end"));
                }
                buf.advance(2);
                *framing = Framing::Chunked(Chunk::Size);
            }
            Framing::Chunked(chunk @ (Chunk::Size | Chunk::Trailers)) => {
                let Some(line) = line(buf)? else {
                    return Ok(Step::More);
                };
                if chunk == Chunk::Trailers {
                    // Trailers are not passed on (hyper's server sends none on HTTP/1 unless
                    // asked); the empty line ends the body.
                    if line.is_empty() {
                        *framing = Framing::Empty;
                    }
                    continue;
                }
                let size = chunk_size(&line)?;
                *framing = Framing::Chunked(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                });
            }
        }
    }
}

/// A chunked response body read the way an exchange reads it, `stream` arriving `piece` bytes
/// at a time: the data it passes on and how many bytes of `stream` the body took, or None
/// where it refuses the framing or the body has not ended. For the fuzz target.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn decode_chunked(stream: &[u8], piece: usize) -> Option<(Vec<u8>, usize)> {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut pieces = stream.chunks(piece.max(1));
    let mut fed = 0;
    loop {
        match decode(&mut buf, &mut framing).ok()? {
            Step::Data(bytes) => data.extend_from_slice(&bytes),
            Step::End => return Some((data, fed - buf.len())),
            Step::More => {
                let next = pieces.next()?;
                fed += next.len();
                buf.extend_from_slice(next);
            }
        }
    }
}

/// The next CRLF-terminated line, without its CRLF; None until it is all buffered.
fn line(buf: &mut BytesMut) -> Result<Option<BytesMut>, ExchangeError> {
    let Some(end) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_LINE {
            Err(ExchangeError::Malformed("chunk line too long"))
        } else {
            Ok(None)
        };
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(ExchangeError::Malformed("chunk line without CRLF"));
    }
    let mut line = buf.split_to(end + 1);
    line.truncate(end - 1);
    if line.contains(&b'\r') {
        return Err(ExchangeError::Malformed("CR inside a chunk line"));
    }
    Ok(Some(line))
}

/// A chunk-size line: hex digits, then optional whitespace and `;extensions` (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits_end == 0 {
        return Err(ExchangeError::Malformed("chunk size"));
    }
    // Only spaces and tabs may follow the digits (hyper's decoder): `trim_ascii_start` would also
    // pass a form feed, which hyper refuses, and the two would end the body apart.
    let lws = line[digits_end..]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &line[digits_end + lws..];
    if !rest.is_empty() && rest[0] != b';' {
        return Err(ExchangeError::Malformed("chunk size"));
    }
    line[..digits_end].iter().try_fold(0u64, |acc, &b| {
        let d = crate::normalize::hex(b).ok_or(ExchangeError::Malformed("chunk size"))?;
        acc.checked_mul(16)
            .and_then(|a| a.checked_add(u64::from(d)))
            .ok_or(ExchangeError::Malformed("chunk size overflow"))
    })
}

impl Body for NativeBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = self.get_mut();
        if let Some(bytes) = this.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        let Some(s) = this.streaming.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match s.step() {
                Ok(Step::Data(bytes)) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Ok(Step::End) => {
                    if let Some(mut s) = this.streaming.take()
                        && s.reusable
                        && s.conn.buf.is_empty()
                        && let Some(home) = s.home.take()
                    {
                        home(s.conn);
                    }
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(e) => {
                    this.streaming = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            s.conn.buf.reserve(8192);
            match s.conn.io.try_read_buf(&mut s.conn.buf) {
                Ok(0) if s.framing == Framing::UntilClose => {
                    this.streaming = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.streaming = None;
                    return Poll::Ready(Some(Err(ExchangeError::ClosedMidBody)));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(s.conn.io.poll_read_ready(cx)) {
                        this.streaming = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
                Err(e) => {
                    this.streaming = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_none() && self.streaming.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let ready = self.ready.as_ref().map_or(0, |b| b.len() as u64);
        match self.streaming.as_deref() {
            None => SizeHint::with_exact(ready),
            Some(Streaming {
                framing: Framing::Length(n),
                ..
            }) => SizeHint::with_exact(ready + n),
            Some(_) => SizeHint::default(),
        }
    }
}
