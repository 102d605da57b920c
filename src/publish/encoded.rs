//! A response body prepared once per version: the identity bytes, and gzip and zstd encodings
//! each made on first request and kept, so a thousand pollers asking for the same version cost
//! one compression, not a thousand, and an encoding nobody asks for costs nothing.

use std::io::Write;
use std::sync::OnceLock;

use bytes::Bytes;
use http::HeaderValue;
use prometheus::IntCounterVec;

/// zstd level: 3 is zstd's default, fast enough for a 350 MB document in seconds.
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

#[derive(Debug)]
pub struct Encoded {
    pub etag: HeaderValue,
    identity: Bytes,
    /// `None` inside when compressing failed: the body is then sent as identity.
    gzip: OnceLock<Option<Bytes>>,
    zstd: OnceLock<Option<Bytes>>,
}

impl Encoded {
    /// `etag` is the quoted tag (`"42"` or `"41-42"`), made by the catalog from version
    /// numbers, so always a valid header value.
    pub fn new(etag: HeaderValue, body: Bytes) -> Encoded {
        Encoded {
            etag,
            identity: body,
            gzip: OnceLock::new(),
            zstd: OnceLock::new(),
        }
    }

    /// The body in `encoding` if it is ready (identity always is), with the encoding it is in.
    pub fn ready(&self, encoding: Encoding) -> Option<(Encoding, Bytes)> {
        let cell = match encoding {
            Encoding::Identity => return Some((Encoding::Identity, self.identity.clone())),
            Encoding::Gzip => &self.gzip,
            Encoding::Zstd => &self.zstd,
        };
        Some(match cell.get()? {
            Some(b) => (encoding, b.clone()),
            None => (Encoding::Identity, self.identity.clone()),
        })
    }

    /// The body in `encoding`, compressing it now if nobody has yet (once: concurrent callers
    /// wait for the first). Counted in `compressions{encoding}`. CPU-heavy for a full
    /// document: call it off the async runtime unless the body is small.
    pub fn encode(&self, encoding: Encoding, compressions: &IntCounterVec) -> (Encoding, Bytes) {
        let (cell, compress): (_, Compress) = match encoding {
            Encoding::Identity => return (Encoding::Identity, self.identity.clone()),
            Encoding::Gzip => (&self.gzip, gzip),
            Encoding::Zstd => (&self.zstd, |b| zstd::bulk::compress(b, ZSTD_LEVEL)),
        };
        let done = cell.get_or_init(|| {
            compressions
                .with_label_values(&[encoding.as_str()])
                .inc();
            match compress(&self.identity) {
                Ok(b) => Some(Bytes::from(b)),
                Err(e) => {
                    tracing::error!(error = %e, encoding = encoding.as_str(), "cannot compress; sending identity");
                    None
                }
            }
        });
        match done {
            Some(b) => (encoding, b.clone()),
            None => (Encoding::Identity, self.identity.clone()),
        }
    }

    pub fn identity_len(&self) -> usize {
        self.identity.len()
    }
}

type Compress = fn(&[u8]) -> std::io::Result<Vec<u8>>;

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body)?;
    gz.finish()
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    /// The best encoding `Accept-Encoding` allows: zstd, then gzip, then none. A coding with
    /// `q=0` is refused; `*` stands for any coding not named.
    pub fn negotiate(accept: Option<&HeaderValue>) -> Encoding {
        let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
            return Encoding::Identity;
        };
        let mut zstd = None;
        let mut gzip = None;
        let mut any = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let allowed = parts.all(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .map(|q| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0))
                    .unwrap_or(true)
            });
            match name.as_str() {
                "zstd" => zstd = Some(allowed),
                "gzip" | "x-gzip" => gzip = Some(allowed),
                "*" => any = Some(allowed),
                _ => {}
            }
        }
        if zstd.or(any) == Some(true) {
            Encoding::Zstd
        } else if gzip.or(any) == Some(true) {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Encoding::{self, *};
    use http::HeaderValue;

    fn pick(s: &str) -> Encoding {
        Encoding::negotiate(Some(&HeaderValue::from_str(s).unwrap()))
    }

    #[test]
    fn negotiation_prefers_zstd_and_honours_q_zero() {
        assert_eq!(Encoding::negotiate(None), Identity);
        assert_eq!(pick("gzip, zstd"), Zstd);
        assert_eq!(pick("gzip"), Gzip);
        assert_eq!(pick("GZIP;q=0.5"), Gzip);
        assert_eq!(pick("zstd;q=0, gzip"), Gzip);
        assert_eq!(pick("zstd;q=0, gzip;q=0"), Identity);
        assert_eq!(pick("*"), Zstd);
        assert_eq!(pick("*, zstd;q=0"), Gzip);
        assert_eq!(pick("br, deflate"), Identity);
        assert_eq!(pick("zstd;q=bogus, gzip"), Gzip);
    }
}
