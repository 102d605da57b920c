//! A response body prepared once per version: the identity bytes plus gzip and zstd encodings,
//! so a thousand pollers asking for the same version cost one compression, not a thousand.

use std::io::Write;

use bytes::Bytes;
use http::HeaderValue;

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
    gzip: Bytes,
    zstd: Bytes,
}

impl Encoded {
    /// Compresses `body` both ways. `etag` is the quoted tag (`"42"` or `"41-42"`).
    pub fn new(etag: &str, body: Bytes) -> std::io::Result<Encoded> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body)?;
        let gzip = Bytes::from(gz.finish()?);
        let zstd = Bytes::from(zstd::bulk::compress(&body, ZSTD_LEVEL)?);
        let etag = HeaderValue::from_str(etag)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        Ok(Encoded {
            etag,
            identity: body,
            gzip,
            zstd,
        })
    }

    pub fn body(&self, encoding: Encoding) -> Bytes {
        match encoding {
            Encoding::Identity => self.identity.clone(),
            Encoding::Gzip => self.gzip.clone(),
            Encoding::Zstd => self.zstd.clone(),
        }
    }

    pub fn identity_len(&self) -> usize {
        self.identity.len()
    }
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
