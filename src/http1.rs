//! The pieces of HTTP/1 header-value grammar that the framing guard, the native server and the
//! native client must read alike (as hyper reads them): one reading each, so a request or a
//! response cannot be framed one way by one of them and another way by the next.

/// Whether a comma-separated header value (`Connection`) lists `token`, in any case.
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// hyper: a `Transfer-Encoding` line is chunked when it reads as text (`HeaderValue::to_str`:
/// visible ASCII, spaces and tabs) and its last coding is `chunked`.
pub fn is_chunked(value: &[u8]) -> bool {
    let text = value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
    text && value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// hyper's Content-Length parse: ASCII digits only, no sign, no overflow.
pub fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_codings_and_lengths() {
        assert!(has_token(b"keep-alive, Close", b"close"));
        assert!(!has_token(b"closed", b"close"));
        assert!(is_chunked(b"gzip, Chunked "));
        assert!(!is_chunked(b"chunked, gzip"));
        assert!(
            !is_chunked("gzip\u{e9}, chunked".as_bytes()),
            "not text to hyper"
        );
        assert_eq!(digits(b"42"), Some(42));
        for bad in [&b""[..], b"+1", b"1 ", b"99999999999999999999"] {
            assert_eq!(digits(bad), None, "{bad:?}");
        }
    }
}
