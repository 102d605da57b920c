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

/// Decodes `body` as a stream, refusing it once more than `limit` bytes come out.
pub(super) fn decode(body: Bytes, encoding: Encoding, limit: u64) -> Result<Bytes, DecodeError> {
    let corrupt = |source| DecodeError::Corrupt { encoding, source };
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => {
            return if body.len() as u64 > limit {
                Err(DecodeError::TooLarge(limit))
            } else {
                Ok(body)
            };
        }
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        Encoding::Zstd => Box::new(zstd::stream::read::Decoder::new(&body[..]).map_err(corrupt)?),
    };
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() as u64 > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
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
                &decode(body, enc, data.len() as u64).unwrap()[..],
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
                matches!(decode(body, enc, 9_999), Err(DecodeError::TooLarge(9_999))),
                "{enc:?}"
            );
        }
    }

    #[test]
    fn a_corrupt_body_is_an_error() {
        for enc in [Encoding::Gzip, Encoding::Zstd] {
            assert!(matches!(
                decode(Bytes::from_static(b"not compressed"), enc, 1000),
                Err(DecodeError::Corrupt { .. })
            ));
        }
    }
}
