//! Reading the upstream body whole, under the policy's cap, and undoing its Content-Encoding.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http_body::Body;
use http_body_util::BodyExt;

use super::FilterError;

/// Collects the body, failing as soon as it passes `limit` bytes (a declared Content-Length
/// over the limit fails before reading anything).
pub(super) async fn collect<B>(
    headers: &HeaderMap,
    body: B,
    limit: u64,
) -> Result<Bytes, FilterError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(FilterError::TooLarge { limit });
    }
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FilterError::Body(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry no rows
        };
        let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if (held + data.len()) as u64 > limit {
            return Err(FilterError::TooLarge { limit });
        }
        // A body in one frame (the common sized case) is kept without a copy.
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(one) => {
                buf.reserve(
                    declared
                        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
                        .max(one.len() + data.len()),
                );
                buf.extend_from_slice(&one);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Undoes the Content-Encoding chain (last applied first); identity passes as is. The
/// decoded size is capped too, so a small compressed body cannot expand past the limit.
pub(super) fn decode(headers: &HeaderMap, body: Bytes, limit: u64) -> Result<Bytes, FilterError> {
    let mut codings: Vec<String> = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let value = value
            .to_str()
            .map_err(|_| FilterError::Encoding("non-ASCII content-encoding".into()))?;
        codings.extend(
            value
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty() && c != "identity"),
        );
    }
    let mut body = body;
    for coding in codings.iter().rev() {
        body = match coding.as_str() {
            "gzip" | "x-gzip" => {
                read_capped("gzip", flate2::read::MultiGzDecoder::new(&body[..]), limit)?
            }
            "deflate" if is_zlib(&body) => {
                read_capped("deflate", flate2::read::ZlibDecoder::new(&body[..]), limit)?
            }
            // Some servers send raw deflate for "deflate".
            "deflate" => read_capped(
                "deflate",
                flate2::read::DeflateDecoder::new(&body[..]),
                limit,
            )?,
            "br" => read_capped("br", brotli::Decompressor::new(&body[..], 4096), limit)?,
            other => return Err(FilterError::Encoding(other.to_owned())),
        };
    }
    Ok(body)
}

fn is_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

fn read_capped(coding: &'static str, reader: impl Read, limit: u64) -> Result<Bytes, FilterError> {
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| FilterError::Decode { coding, source })?;
    if out.len() as u64 > limit {
        return Err(FilterError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn headers(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, encoding.parse().unwrap());
        h
    }

    #[test]
    fn decodes_each_coding() {
        let text = b"{\"rows\":[]}".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            decode(&headers("gzip"), gz.clone().into(), 10_000).unwrap(),
            &text[..]
        );

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&text).unwrap();
        assert_eq!(
            decode(&headers("deflate"), z.finish().unwrap().into(), 10_000).unwrap(),
            &text[..]
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&text).unwrap();
        assert_eq!(
            decode(&headers("deflate"), raw.finish().unwrap().into(), 10_000).unwrap(),
            &text[..]
        );
        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(&text)
            .unwrap();
        assert_eq!(
            decode(&headers("br"), br.into(), 10_000).unwrap(),
            &text[..]
        );

        assert!(matches!(
            decode(&headers("gzip"), gz.clone().into(), 100),
            Err(FilterError::TooLarge { limit: 100 })
        ));
        assert!(matches!(
            decode(&headers("gzip"), gz[..gz.len() / 2].to_vec().into(), 10_000),
            Err(FilterError::Decode { .. })
        ));
        assert!(matches!(
            decode(&headers("compress"), gz.into(), 10_000),
            Err(FilterError::Encoding(_))
        ));
        assert_eq!(
            decode(&headers("identity"), text.clone().into(), 1).unwrap(),
            &text[..]
        );
    }
}
