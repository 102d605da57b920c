//! The grants URL contract as the sidecar speaks it: `?since=<version>` for a delta, long-poll
//! with `Prefer: wait=N`, `Accept-Encoding: gzip, zstd`, 304 for "nothing newer" and 410 for
//! "too old, fetch the full document". Bodies are decoded as a stream on the apply thread, and
//! the size limit counts decoded bytes, so a compressed bomb is cut off at the limit.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::fetch::{FetchError, Fetcher};

/// A grants fetch that takes longer than this (beyond any long-poll wait) has failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Remote {
    fetcher: Fetcher,
    url: String,
    long_poll: Option<Duration>,
}

#[derive(Debug)]
pub(super) enum Answer {
    /// Nothing newer than what was asked about (304).
    NotModified { held: bool },
    /// The version asked about is too old for a delta (410): fetch the full document.
    Gone,
    Document {
        body: Bytes,
        encoding: Encoding,
        etag: Option<HeaderValue>,
        held: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum RemoteError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("unexpected status {0}")]
    Status(StatusCode),
    #[error("unsupported Content-Encoding {0:?}")]
    Encoding(String),
}

#[derive(Debug, thiserror::Error)]
pub(super) enum DecodeError {
    #[error("document larger than {0} bytes once decoded")]
    TooLarge(u64),
    #[error("cannot decode the {encoding:?} body: {source}")]
    Corrupt {
        encoding: Encoding,
        #[source]
        source: std::io::Error,
    },
}

impl Remote {
    pub(super) fn new(url: String, long_poll: Option<Duration>, max_body: u64) -> Remote {
        let max_body = usize::try_from(max_body).unwrap_or(usize::MAX);
        Remote {
            fetcher: Fetcher::new(FETCH_TIMEOUT, max_body),
            url,
            long_poll,
        }
    }

    /// Asks for what is newer than `since` (a delta, or a full document when the source
    /// prefers), or for the full document when `since` is None. `etag` is sent as
    /// `If-None-Match`; `wait` asks the source to hold the request (if long-poll is on).
    pub(super) async fn fetch(
        &self,
        since: Option<u64>,
        etag: Option<&HeaderValue>,
        wait: bool,
    ) -> Result<Answer, RemoteError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, zstd"),
        );
        if let Some(tag) = etag {
            headers.insert(header::IF_NONE_MATCH, tag.clone());
        }
        let mut timeout = FETCH_TIMEOUT;
        if let Some(wait) = self.long_poll.filter(|_| wait) {
            let secs = wait.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&format!("wait={secs}")) {
                headers.insert(header::HeaderName::from_static("prefer"), v);
            }
            // The source may hold the whole wait before it starts answering.
            timeout += Duration::from_secs(secs);
        }
        let url = match since {
            Some(v) if self.url.contains('?') => format!("{}&since={v}", self.url),
            Some(v) => format!("{}?since={v}", self.url),
            None => self.url.clone(),
        };
        let answer = self.fetcher.request(&url, headers, timeout).await?;
        let held = answer
            .headers
            .contains_key(header::HeaderName::from_static("preference-applied"));
        match answer.status {
            StatusCode::OK => Ok(Answer::Document {
                encoding: encoding(&answer.headers)?,
                etag: answer.headers.get(header::ETAG).cloned(),
                body: answer.body,
                held,
            }),
            StatusCode::NOT_MODIFIED => Ok(Answer::NotModified { held }),
            StatusCode::GONE if since.is_some() => Ok(Answer::Gone),
            other => Err(RemoteError::Status(other)),
        }
    }
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, RemoteError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let name = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match name.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "zstd" => Ok(Encoding::Zstd),
        _ => Err(RemoteError::Encoding(name)),
    }
}

/// A reader of `body` decoded as a stream, which fails once more than `limit` bytes come out.
pub(super) fn decoder(
    body: &[u8],
    encoding: Encoding,
    limit: u64,
) -> Result<Limited<Box<dyn Read + '_>>, DecodeError> {
    let corrupt = |source| DecodeError::Corrupt { encoding, source };
    let inner: Box<dyn Read + '_> = match encoding {
        Encoding::Identity if body.len() as u64 > limit => {
            return Err(DecodeError::TooLarge(limit));
        }
        Encoding::Identity => Box::new(body),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Encoding::Zstd => Box::new(zstd::stream::read::Decoder::new(body).map_err(corrupt)?),
    };
    Ok(Limited {
        inner,
        left: limit,
        exceeded: false,
    })
}

/// The size `body` should have once decoded, to size the indexes: its length, gzip's
/// trailer (the last member's length modulo 4 GiB) or zstd's frame header (when the encoder
/// wrote it). Capped by `limit`, the most the decoder will pass: a hint that lies costs only
/// speed.
pub(super) fn size_hint(body: &[u8], encoding: Encoding, limit: u64) -> Option<u64> {
    let size = match encoding {
        Encoding::Identity => body.len() as u64,
        Encoding::Gzip => {
            let tail = body.len().checked_sub(4).and_then(|at| body.get(at..))?;
            u64::from(u32::from_le_bytes(tail.try_into().ok()?))
        }
        Encoding::Zstd => zstd::zstd_safe::get_frame_content_size(body).ok()??,
    };
    Some(size.min(limit))
}

/// Passes at most `left` bytes, then fails every read (and remembers that it did).
pub(super) struct Limited<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R> Limited<R> {
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more decides between "exactly at the limit" and "over it".
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(std::io::Error::other(
                "document over the size limit once decoded",
            ));
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Decodes `body` whole (for tests), under the same limit.
#[cfg(test)]
fn decode(body: &[u8], encoding: Encoding, limit: u64) -> Result<Vec<u8>, DecodeError> {
    let mut reader = decoder(body, encoding, limit)?;
    let mut out = Vec::new();
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(_) if reader.exceeded() => Err(DecodeError::TooLarge(limit)),
        Err(source) => Err(DecodeError::Corrupt { encoding, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn decodes_each_encoding_within_the_limit() {
        let data = b"{\"version\": 1}".repeat(100);
        let zstd = Bytes::from(zstd::encode_all(&data[..], 3).unwrap());
        for (body, enc) in [
            (Bytes::from(data.clone()), Encoding::Identity),
            (gzip(&data), Encoding::Gzip),
            (zstd, Encoding::Zstd),
        ] {
            assert_eq!(
                &decode(&body, enc, data.len() as u64).unwrap()[..],
                &data[..]
            );
        }
    }

    #[test]
    fn a_body_over_the_limit_once_decoded_is_refused() {
        let data = vec![b' '; 10_000];
        let zstd = Bytes::from(zstd::encode_all(&data[..], 3).unwrap());
        for (body, enc) in [
            (Bytes::from(data.clone()), Encoding::Identity),
            (gzip(&data), Encoding::Gzip),
            (zstd, Encoding::Zstd),
        ] {
            assert!(body.len() < 10_000 || enc == Encoding::Identity);
            assert!(
                matches!(decode(&body, enc, 9_999), Err(DecodeError::TooLarge(9_999))),
                "{enc:?}"
            );
        }
    }

    #[test]
    fn the_size_hint_is_the_decoded_length_capped_by_the_limit() {
        let data = vec![b'x'; 100_000];
        let zstd = zstd::encode_all(&data[..], 3).unwrap();
        for (body, encoding) in [
            (Bytes::from(data.clone()), Encoding::Identity),
            (gzip(&data), Encoding::Gzip),
            (Bytes::from(zstd), Encoding::Zstd),
        ] {
            assert_eq!(
                size_hint(&body, encoding, 1 << 20),
                Some(100_000),
                "{encoding:?}"
            );
            assert_eq!(size_hint(&body, encoding, 1000), Some(1000), "{encoding:?}");
        }
        assert_eq!(size_hint(b"ab", Encoding::Gzip, 1000), None);
        assert_eq!(size_hint(b"not zstd", Encoding::Zstd, 1000), None);
    }

    #[test]
    fn a_corrupt_body_is_an_error() {
        for enc in [Encoding::Gzip, Encoding::Zstd] {
            assert!(matches!(
                decode(b"not compressed", enc, 1000),
                Err(DecodeError::Corrupt { .. })
            ));
        }
    }
}
