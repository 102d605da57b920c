//! Request checks before routing: the request target and the message framing. Anything
//! ambiguous is rejected (400) rather than guessed at, so the path the decision sees is exactly
//! the path the upstream receives (docs/model.md, "What is authorized is what is forwarded").

use std::borrow::Cow;

use http::{HeaderMap, Method, Uri, Version, header};

use crate::reason::Reason;

/// A checked origin-form target. `path` is still percent-encoded, exactly as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
}

/// Checks the target, Host and framing headers of a request head.
pub fn check<'a>(
    method: &Method,
    uri: &'a Uri,
    version: Version,
    headers: &HeaderMap,
) -> Result<Target<'a>, Reason> {
    if method == Method::CONNECT {
        return Err(Reason::BadTarget);
    }
    check_host(uri, version, headers)?;
    check_framing(headers)?;
    let path = uri.path();
    if !path.starts_with('/') {
        // asterisk-form (`OPTIONS *`) and anything else that is not a path.
        return Err(Reason::BadTarget);
    }
    check_path(path)?;
    let query = uri.query();
    if let Some(q) = query {
        check_query(q)?;
    }
    Ok(Target { path, query })
}

/// HTTP/1.1 needs exactly one Host; an absolute-form target must name that same host. HTTP/2
/// carries `:authority` in the URI; a Host header beside it must agree.
fn check_host(uri: &Uri, version: Version, headers: &HeaderMap) -> Result<(), Reason> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Reason::BadHost);
    }
    let host = match host {
        Some(h) => Some(h.to_str().map_err(|_| Reason::BadHost)?),
        None => None,
    };
    if host.is_some_and(|h| h.is_empty() || h.contains(['/', '@', ' ', '\\'])) {
        return Err(Reason::BadHost);
    }
    match (version, uri.authority(), host) {
        (Version::HTTP_2 | Version::HTTP_3, Some(authority), Some(host)) => {
            if !authority.as_str().eq_ignore_ascii_case(host) {
                return Err(Reason::BadHost);
            }
        }
        (Version::HTTP_2 | Version::HTTP_3, Some(_), None) => {}
        (_, _, None) => return Err(Reason::BadHost),
        (_, Some(authority), Some(host)) => {
            // Absolute-form: only accepted when it names the Host we are answering for.
            if !authority.as_str().eq_ignore_ascii_case(host) || uri.scheme().is_none() {
                return Err(Reason::BadTarget);
            }
        }
        (_, None, Some(_)) => {}
    }
    Ok(())
}

/// Request smuggling guards: Content-Length with Transfer-Encoding, several Content-Lengths,
/// or a Transfer-Encoding other than a single `chunked`.
fn check_framing(headers: &HeaderMap) -> Result<(), Reason> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let length = lengths.next();
    if lengths.next().is_some() {
        return Err(Reason::BadFraming);
    }
    if let Some(len) = length {
        let ok = len
            .to_str()
            .is_ok_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(Reason::BadFraming);
        }
    }
    let mut encodings = headers.get_all(header::TRANSFER_ENCODING).iter();
    if let Some(te) = encodings.next() {
        if length.is_some() || encodings.next().is_some() {
            return Err(Reason::BadFraming);
        }
        if !te.as_bytes().eq_ignore_ascii_case(b"chunked") {
            return Err(Reason::BadFraming);
        }
    }
    Ok(())
}

/// Each segment must be plain: no dot segments, no empty segments, no backslash, no `;`
/// parameters, only ASCII, and percent-escapes must be valid, decode to UTF-8, and not hide a
/// dot, slash, backslash, control character, `?` or `#` (which end the path for a server that
/// decodes before splitting), or `%` (so no escape survives one decoding to decode again
/// downstream: every `%25` is refused, not only `%25xx`).
fn check_path(path: &str) -> Result<(), Reason> {
    check_path_plain(path)?;
    // Without an escape the path is its own decoding, and the plain checks have seen it is
    // visible ASCII: the escape checks could only pass, so no copy is made to run them.
    if !path.as_bytes().contains(&b'%') {
        return Ok(());
    }
    check_path_escapes(path.as_bytes())
}

/// What the path must be as received: no empty or dot segments, visible ASCII only, no `\` or `;`.
fn check_path_plain(path: &str) -> Result<(), Reason> {
    if path.contains("//") {
        return Err(Reason::BadPath);
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(Reason::BadPath);
    }
    for &b in path.as_bytes() {
        if !(0x21..0x7f).contains(&b) || b == b'\\' || b == b';' {
            return Err(Reason::BadPath);
        }
    }
    Ok(())
}

/// What the path's percent-escapes must be: well-formed, UTF-8, hiding nothing.
fn check_path_escapes(bytes: &[u8]) -> Result<(), Reason> {
    let decoded = decode_strict(bytes).ok_or(Reason::BadPath)?;
    // What a percent-escape may not hide: the characters that change how a path is split.
    let escaped_forbidden = decoded_escapes(bytes).any(|b| {
        matches!(
            b,
            b'.' | b'/' | b'\\' | b';' | b'?' | b'#' | b'%' | 0..0x20 | 0x7f
        )
    });
    if escaped_forbidden {
        return Err(Reason::BadPath);
    }
    // C1 controls (U+0080..U+009F) arrive as UTF-8 escapes (`%C2%85` is NEL, a line break to
    // some log pipelines and parsers): as unwelcome in a decoded path as their C0 cousins.
    match std::str::from_utf8(&decoded) {
        Ok(text) if !text.chars().any(char::is_control) => Ok(()),
        _ => Err(Reason::BadPath),
    }
}

fn check_query(query: &str) -> Result<(), Reason> {
    check_query_plain(query)?;
    // As for the path: visible ASCII without an escape decodes to itself.
    if !query.as_bytes().contains(&b'%') {
        return Ok(());
    }
    check_query_escapes(query.as_bytes())
}

fn check_query_plain(query: &str) -> Result<(), Reason> {
    if query
        .bytes()
        // `;` is a pair separator to some parsers (older Python, Rails) and not to others:
        // refused, as Go's net/url does, so every upstream splits the query the same way.
        .any(|b| !(0x21..0x7f).contains(&b) || b == b'#' || b == b';')
    {
        return Err(Reason::BadQuery);
    }
    Ok(())
}

fn check_query_escapes(bytes: &[u8]) -> Result<(), Reason> {
    let decoded = decode_strict(bytes).ok_or(Reason::BadQuery)?;
    if std::str::from_utf8(&decoded).is_err() || decoded_escapes(bytes).any(|b| b == 0) {
        return Err(Reason::BadQuery);
    }
    Ok(())
}

/// The value of one hex digit.
pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes, failing on any `%` not followed by two hex digits.
pub fn decode_strict(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The bytes that percent-escapes decode to (input already known to be well-formed).
fn decoded_escapes(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bytes
        .windows(3)
        .filter(|w| w[0] == b'%')
        .filter_map(|w| Some(hex(w[1])? << 4 | hex(w[2])?))
}

/// Decoded `name=value` pairs of a query already accepted by `check` (`+` is a space).
/// Components with nothing to decode are borrowed, so a plain query costs no allocation.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_component(k), decode_component(v))
    })
}

fn decode_component(s: &str) -> Cow<'_, str> {
    if !s.contains(['+', '%']) {
        return Cow::Borrowed(s);
    }
    let plus = s.replace('+', " ");
    let bytes = decode_strict(plus.as_bytes()).unwrap_or_else(|| plus.clone().into_bytes());
    Cow::Owned(String::from_utf8(bytes).unwrap_or(plus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(target: &str) -> (Uri, HeaderMap) {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("gw.example"));
        (target.parse().unwrap(), h)
    }

    fn path_result(target: &str) -> Result<(), Reason> {
        let (uri, h) = head(target);
        check(&Method::GET, &uri, Version::HTTP_11, &h).map(|_| ())
    }

    /// Every string of up to `len` characters from `alphabet`.
    fn strings(alphabet: &[char], len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..len {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn skipping_the_decoding_of_a_path_without_escapes_changes_no_answer() {
        // The shortcut against the checks run in full, over every short path and query made
        // of the characters each rule is about (escapes, dots, slashes, controls, non-ASCII).
        let alphabet = [
            '/', '.', '%', '2', 'e', 'F', 'a', ';', '\\', ' ', '?', '#', '\u{85}', 'é', '\t',
        ];
        for s in strings(&alphabet, 4) {
            let path = format!("/{s}");
            let full = check_path_plain(&path).and_then(|()| check_path_escapes(path.as_bytes()));
            assert_eq!(check_path(&path), full, "{path:?}");
            let full = check_query_plain(&s).and_then(|()| check_query_escapes(s.as_bytes()));
            assert_eq!(check_query(&s), full, "{s:?}");
        }
    }

    #[test]
    fn plain_paths_pass_unchanged() {
        let (uri, h) = head("/work/works/AB%20C?swaCode=7001&x=1");
        let t = check(&Method::GET, &uri, Version::HTTP_11, &h).unwrap();
        assert_eq!(t.path, "/work/works/AB%20C");
        assert_eq!(t.query, Some("swaCode=7001&x=1"));
        assert!(path_result("/").is_ok());
        assert!(path_result("/work/works/").is_ok());
        assert!(path_result("/a/b-c_d~e.json").is_ok());
        assert!(path_result("/a/%C3%A9").is_ok());
    }

    #[test]
    fn ambiguous_paths_are_rejected() {
        for bad in [
            "/work/../party",
            "/work/./works",
            "/work/..",
            "/work/%2e%2e/party",
            "/work/%2E/x",
            "/work/.%2e/x",
            "/work/a%2fb",
            "/work/a%2Fb",
            "/work/a%5cb",
            "/work/a%00b",
            "/work/a%C2%85b",
            "/work/7%C2%9As",
            "/work/%C2%80",
            "/work/a%zz",
            "/work/a%2",
            "/work/%C3",
            "/work/%FF",
            "/work//works",
            "/work/a;jsessionid=1",
            "/work/a%3bb",
            "/work/a%3Fb",
            "/work/a%3fx=1",
            "/work/a%23b",
            "/work/a%25",
            "/work/a%252F",
            "/work/a%252e%252e/x",
            "/work/a%2525",
            "/work/a%253F",
            "/work/a%01",
            "/work/a%1F",
            "/work/a%0d%0a",
            "/work/a%09",
            "/work/a%7F",
            "/work/a%5C",
            "/work/%u002e",
        ] {
            assert_eq!(path_result(bad), Err(Reason::BadPath), "{bad}");
        }
    }

    #[test]
    fn bad_queries_are_rejected() {
        assert_eq!(path_result("/a?x=%zz"), Err(Reason::BadQuery));
        assert_eq!(path_result("/a?x=%00"), Err(Reason::BadQuery));
        assert_eq!(path_result("/a?x=%FF"), Err(Reason::BadQuery));
        assert_eq!(path_result("/a?x=1;swaCode=9999"), Err(Reason::BadQuery));
        assert_eq!(path_result("/a?x=1%3Bs"), Ok(()), "an escaped ; is data");
        assert!(path_result("/a?x=%2F&y=a+b").is_ok());
    }

    #[test]
    fn host_rules() {
        let uri: Uri = "/a".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(
            check(&Method::GET, &uri, Version::HTTP_11, &h),
            Err(Reason::BadHost)
        );
        h.append(header::HOST, HeaderValue::from_static("a"));
        h.append(header::HOST, HeaderValue::from_static("b"));
        assert_eq!(
            check(&Method::GET, &uri, Version::HTTP_11, &h),
            Err(Reason::BadHost)
        );

        let (abs, h) = head("http://evil.example/a");
        assert_eq!(
            check(&Method::GET, &abs, Version::HTTP_11, &h),
            Err(Reason::BadTarget)
        );
        let (same, h) = head("http://gw.example/a");
        assert!(check(&Method::GET, &same, Version::HTTP_11, &h).is_ok());

        let h2: Uri = "https://gw.example/a".parse().unwrap();
        assert!(check(&Method::GET, &h2, Version::HTTP_2, &HeaderMap::new()).is_ok());
        let (_, other) = head("/a");
        let h2b: Uri = "https://other.example/a".parse().unwrap();
        assert_eq!(
            check(&Method::GET, &h2b, Version::HTTP_2, &other),
            Err(Reason::BadHost)
        );
    }

    #[test]
    fn framing_rules() {
        let (uri, mut h) = head("/a");
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(check(&Method::POST, &uri, Version::HTTP_11, &h).is_ok());
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert_eq!(
            check(&Method::POST, &uri, Version::HTTP_11, &h),
            Err(Reason::BadFraming)
        );
        h.remove(header::TRANSFER_ENCODING);
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert_eq!(
            check(&Method::POST, &uri, Version::HTTP_11, &h),
            Err(Reason::BadFraming)
        );
        let (_, mut h) = head("/a");
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("gzip, chunked"),
        );
        assert_eq!(
            check(&Method::POST, &uri, Version::HTTP_11, &h),
            Err(Reason::BadFraming)
        );
        let (_, mut h) = head("/a");
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("+5"));
        assert_eq!(
            check(&Method::POST, &uri, Version::HTTP_11, &h),
            Err(Reason::BadFraming)
        );
    }

    #[test]
    fn connect_and_asterisk_are_rejected() {
        let (uri, h) = head("/a");
        assert_eq!(
            check(&Method::CONNECT, &uri, Version::HTTP_11, &h),
            Err(Reason::BadTarget)
        );
        let (star, h) = head("*");
        assert_eq!(
            check(&Method::OPTIONS, &star, Version::HTTP_11, &h),
            Err(Reason::BadTarget)
        );
    }

    /// Random targets built from the characters that matter: whatever `check` accepts decodes
    /// to the same segments it was routed by (no hidden slash, dot segment, backslash or NUL),
    /// and nothing panics.
    #[test]
    fn accepted_paths_mean_what_they_say() {
        use rand::RngExt;
        const PIECES: &[&str] = &[
            "/", ".", "..", "%", "%2e", "%2E", "%2f", "%2F", "%5c", "%00", "%41", "%zz", "%C3%A9",
            "%C3", "a", "works", "\\", ";", "?", "=", "&", "~", "-", "%25", "+", "%3F", "%3f",
            "%23", "%252F", "%252e", "%2525", "%09", "%7F", "%20",
        ];
        let mut rng = rand::rng();
        let h = {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("gw"));
            h
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut target = String::from("/");
            for _ in 0..rng.random_range(0..8) {
                target.push_str(PIECES[rng.random_range(0..PIECES.len())]);
            }
            let Ok(uri) = target.parse::<Uri>() else {
                continue;
            };
            let Ok(t) = check(&Method::GET, &uri, Version::HTTP_11, &h) else {
                continue;
            };
            accepted += 1;
            let decoded = String::from_utf8(decode_strict(t.path.as_bytes()).unwrap()).unwrap();
            let raw: Vec<&str> = t.path.split('/').collect();
            let plain: Vec<&str> = decoded.split('/').collect();
            assert_eq!(raw.len(), plain.len(), "{target}: an escape hid a slash");
            assert!(
                !plain.iter().any(|s| *s == "." || *s == ".."),
                "{target}: dot segment"
            );
            assert!(
                !decoded.contains(['\\', '\0', ';', '?', '#', '%']),
                "{target}: {decoded:?}"
            );
            // Decoding once more (a double-decoding upstream) changes nothing.
            let again = String::from_utf8(decode_strict(decoded.as_bytes()).unwrap()).unwrap();
            assert_eq!(again, decoded, "{target}: decodes again downstream");
            assert!(!decoded.chars().any(char::is_control), "{target}");
        }
        assert!(
            accepted > 1_000,
            "the generator should produce plenty of valid paths"
        );
    }

    #[test]
    fn query_pairs_decode() {
        let pairs: Vec<_> = query_pairs("swaCode=7001&a=b+c&&d=%41").collect();
        assert_eq!(
            pairs,
            vec![
                ("swaCode".into(), "7001".into()),
                ("a".into(), "b c".into()),
                ("d".into(), "A".into())
            ]
        );
    }
}
