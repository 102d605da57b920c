//! Reading a request head: whether the native loop serves it, and the request built on its
//! bytes.

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};

use crate::http1::has_token;
use crate::listener::ClientBody;

/// Headers a native head may have; a head with more goes to hyper (which has the limit).
const STACK_HEADERS: usize = 32;

/// What `parse` says about the head at the start of the buffer.
pub(super) enum Parsed {
    /// A complete plain head at the start of the buffer (in the `Plain` given).
    Plain,
    /// More bytes are needed.
    Partial,
    /// Not for the native loop.
    HandOff,
}

/// Where a plain head's parts lie in the buffer; converted once the head is split off.
#[derive(Default)]
pub(super) struct Plain {
    len: usize,
    method: Method,
    target: (usize, usize),
    version: Version,
    headers: [(usize, usize, usize, usize); STACK_HEADERS],
    count: usize,
    /// Whether the connection may carry another request after this one.
    pub(super) keep_alive: bool,
}

/// Parses the head at the start of `buf` and says whether the native loop serves it.
pub(super) fn parse(buf: &[u8], cap: usize, max_headers: usize, plain: &mut Plain) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut req = httparse::Request::new(&mut headers[..max_headers.min(STACK_HEADERS)]);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= cap => len,
        Ok(httparse::Status::Partial) if buf.len() < cap => return Parsed::Partial,
        _ => return Parsed::HandOff,
    };
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::HandOff;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::HandOff;
    };
    if method == Method::CONNECT {
        return Parsed::HandOff;
    }
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    plain.len = len;
    plain.method = method;
    plain.target = at(path.as_bytes());
    plain.version = version;
    plain.count = req.headers.len();
    plain.keep_alive = version == Version::HTTP_11;
    let mut length_seen = false;
    for (i, h) in req.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // One `Content-Length: 0` is no body; any other length goes to hyper and the guard.
            if length_seen || h.value != b"0" {
                return Parsed::HandOff;
            }
            length_seen = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Parsed::HandOff;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(h.value, b"upgrade") {
                return Parsed::HandOff;
            }
            if has_token(h.value, b"close") {
                plain.keep_alive = false;
            } else if version == Version::HTTP_10 && has_token(h.value, b"keep-alive") {
                plain.keep_alive = true;
            }
        }
        let (name_at, name_len) = at(name);
        let (value_at, value_len) = at(h.value);
        plain.headers[i] = (name_at, name_len, value_at, value_len);
    }
    Parsed::Plain
}

impl Plain {
    /// Splits the head off `buf` and builds the request on it: the target and the header
    /// values share the head's bytes. None (the buffer untouched) if `http` refuses a part.
    pub(super) fn request(&self, buf: &mut BytesMut) -> Option<Request<ClientBody>> {
        let slice = |(at, len): (usize, usize)| &buf[at..at + len];
        // Names are checked before anything is split off, so a refusal leaves `buf` whole.
        let mut known: [Option<HeaderName>; STACK_HEADERS] = [const { None }; STACK_HEADERS];
        for (i, &(name_at, name_len, _, _)) in self.headers[..self.count].iter().enumerate() {
            known[i] = Some(HeaderName::from_bytes(slice((name_at, name_len))).ok()?);
        }
        let head = buf.split_to(self.len).freeze();
        let restore = |buf: &mut BytesMut, head: &Bytes| {
            let mut whole = BytesMut::with_capacity(head.len() + buf.len());
            whole.extend_from_slice(head);
            whole.extend_from_slice(buf);
            *buf = whole;
        };
        let Ok(uri) =
            Uri::from_maybe_shared(head.slice(self.target.0..self.target.0 + self.target.1))
        else {
            restore(buf, &head);
            return None;
        };
        let mut headers = crate::recycle::header_map();
        for (i, &(_, _, value_at, value_len)) in self.headers[..self.count].iter().enumerate() {
            let (Some(name), Ok(value)) = (
                known[i].take(),
                HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len)),
            ) else {
                restore(buf, &head);
                return None;
            };
            headers.append(name, value);
        }
        let mut request = Request::new(ClientBody::Empty);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = headers;
        Some(request)
    }
}

/// The request the native loop would build from the head `data` starts with, and the head's
/// length; None where it hands the connection to hyper or needs more bytes. For the fuzz
/// target that holds the native reading to the framing guard's.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn plain_request(
    data: &[u8],
    cap: usize,
    max_headers: usize,
) -> Option<(usize, Request<ClientBody>)> {
    let mut plain = Plain::default();
    if !matches!(parse(data, cap, max_headers, &mut plain), Parsed::Plain) {
        return None;
    }
    let mut buf = BytesMut::from(data);
    let request = plain.request(&mut buf)?;
    Some((plain.len, request))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body;

    fn plain(head: &[u8]) -> Plain {
        let mut p = Plain::default();
        match parse(head, 8192, 100, &mut p) {
            Parsed::Plain => p,
            Parsed::Partial => panic!("partial: {:?}", String::from_utf8_lossy(head)),
            Parsed::HandOff => panic!("handed off: {:?}", String::from_utf8_lossy(head)),
        }
    }

    fn handed_off(head: &[u8]) -> bool {
        matches!(
            parse(head, 8192, 100, &mut Plain::default()),
            Parsed::HandOff
        )
    }

    #[test]
    fn only_plain_heads_stay_native() {
        for head in [
            &b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /a?b=%41 HTTP/1.0\r\n\r\n",
            b"DELETE /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"\r\nGET /a HTTP/1.1\nHost: x\n\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
        ] {
            plain(head);
        }
        for head in [
            // Bodies, in every framing, and anything the guard judges.
            &b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"[..],
            b"POST /a HTTP/1.1\r\nContent-Length: 00\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /a HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET /a HTTP/1.1\r\nConnection: keep-alive, upgrade\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\n",
            // What httparse refuses: hyper answers it.
            b"GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"GET /a\x01 HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/2.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"G@T /a HTTP/1.1\r\n\r\n",
        ] {
            assert!(handed_off(head), "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn heads_over_the_caps_go_to_hyper_which_answers_431() {
        let big = format!("GET /a HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(9000));
        assert!(matches!(
            parse(big.as_bytes(), 8192, 100, &mut Plain::default()),
            Parsed::HandOff
        ));
        // Unfinished but already over the cap: no more reading.
        assert!(matches!(
            parse(&big.as_bytes()[..8500], 8192, 100, &mut Plain::default()),
            Parsed::HandOff
        ));
        assert!(matches!(
            parse(&big.as_bytes()[..100], 8192, 100, &mut Plain::default()),
            Parsed::Partial
        ));
        let many: String = (0..5).map(|i| format!("h{i}: v\r\n")).collect();
        let many = format!("GET /a HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            parse(many.as_bytes(), 8192, 4, &mut Plain::default()),
            Parsed::HandOff
        ));
        assert!(matches!(
            parse(many.as_bytes(), 8192, 5, &mut Plain::default()),
            Parsed::Plain
        ));
        let more: String = (0..STACK_HEADERS + 1)
            .map(|i| format!("h{i}: v\r\n"))
            .collect();
        let more = format!("GET /a HTTP/1.1\r\n{more}\r\n");
        assert!(matches!(
            parse(more.as_bytes(), 8192, 100, &mut Plain::default()),
            Parsed::HandOff
        ));
    }

    #[test]
    fn the_request_shares_the_head_and_the_rest_stays_buffered() {
        let stream = b"GET /w/1?x=%20 HTTP/1.1\r\nHost: gw\r\nX-A: 1\r\nx-a: 2\r\nConnection: close\r\n\r\nGET /next";
        let mut buf = BytesMut::from(&stream[..]);
        let head = plain(&buf);
        assert!(!head.keep_alive);
        let request = head.request(&mut buf).expect("plain");
        assert_eq!(&buf[..], b"GET /next");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/w/1?x=%20");
        assert_eq!(request.version(), Version::HTTP_11);
        let values: Vec<_> = request.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(request.headers()["host"], "gw");
        assert!(request.body().is_end_stream());

        let keep = plain(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(keep.keep_alive);
        assert!(!plain(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(plain(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }
}
