//! The original request a forward-auth proxy reports in headers: `X-Original-URI` (nginx,
//! ingress-nginx), `X-Original-URL` (ingress-nginx, absolute), `X-Forwarded-Uri` (Traefik);
//! `X-Original-Method` / `X-Forwarded-Method`. Every line of every spelling must agree: a
//! client header a proxy passed along beside its own would otherwise pick the request decided.

use http::header::{HeaderMap, HeaderName};
use http::{Method, Uri};

use crate::reason::Reason;

const URI_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-forwarded-uri"),
];
const URL_HEADER: HeaderName = HeaderName::from_static("x-original-url");
const METHOD_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-original-method"),
    HeaderName::from_static("x-forwarded-method"),
];

/// The reported method and origin-form target; `bad_target` when one is missing, repeated
/// with another value, or not a method / origin-form target. No fallback to the check
/// request's own method: nginx's auth subrequest is always a GET, so a POST would be decided
/// as a read.
pub fn reported(headers: &HeaderMap) -> Result<(Method, Uri), Reason> {
    let mut targets: Vec<&[u8]> = Vec::new();
    for name in &URI_HEADERS {
        targets.extend(headers.get_all(name).iter().map(|v| v.as_bytes()));
    }
    let urls: Vec<Uri> = headers
        .get_all(URL_HEADER)
        .iter()
        .map(|v| Uri::try_from(v.as_bytes()).map_err(|_| Reason::BadTarget))
        .collect::<Result<_, _>>()?;
    let mut from_urls = Vec::new();
    for url in &urls {
        // Absolute: only its path and query are the target.
        if url.scheme().is_none() {
            return Err(Reason::BadTarget);
        }
        from_urls.push(
            url.path_and_query()
                .map_or("/", |pq| pq.as_str())
                .as_bytes(),
        );
    }
    targets.extend(from_urls);
    let target = one(&targets)?;
    if !target.starts_with(b"/") {
        return Err(Reason::BadTarget);
    }
    let uri = Uri::try_from(target).map_err(|_| Reason::BadTarget)?;

    let mut methods: Vec<&[u8]> = Vec::new();
    for name in &METHOD_HEADERS {
        methods.extend(headers.get_all(name).iter().map(|v| v.as_bytes()));
    }
    let method = Method::from_bytes(one(&methods)?).map_err(|_| Reason::BadTarget)?;
    Ok((method, uri))
}

/// The single value all reports agree on.
fn one<'a>(values: &[&'a [u8]]) -> Result<&'a [u8], Reason> {
    let (first, rest) = values.split_first().ok_or(Reason::BadTarget)?;
    if rest.iter().any(|v| v != first) {
        return Err(Reason::BadTarget);
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn nginx_traefik_and_ingress_nginx_spellings_are_read() {
        for pairs in [
            [("x-original-uri", "/w/1?a=b"), ("x-original-method", "PUT")],
            [
                ("x-forwarded-uri", "/w/1?a=b"),
                ("x-forwarded-method", "PUT"),
            ],
            [
                ("x-original-url", "https://h.test/w/1?a=b"),
                ("x-original-method", "PUT"),
            ],
        ] {
            let (m, u) = reported(&headers(&pairs)).unwrap();
            assert_eq!(
                (m.as_str(), u.path(), u.query()),
                ("PUT", "/w/1", Some("a=b"))
            );
        }
    }

    #[test]
    fn missing_conflicting_or_odd_reports_are_bad_target() {
        let cases: [&[(&str, &str)]; 8] = [
            &[("x-original-method", "GET")],
            &[("x-original-uri", "/a")],
            &[
                ("x-original-uri", "/a"),
                ("x-forwarded-uri", "/b"),
                ("x-original-method", "GET"),
            ],
            &[
                ("x-original-uri", "/a"),
                ("x-original-uri", "/b"),
                ("x-original-method", "GET"),
            ],
            &[
                ("x-original-uri", "/a"),
                ("x-original-method", "GET"),
                ("x-forwarded-method", "POST"),
            ],
            &[
                ("x-original-uri", "/a"),
                ("x-original-url", "http://h/b"),
                ("x-original-method", "GET"),
            ],
            &[
                ("x-original-uri", "http://h/a"),
                ("x-original-method", "GET"),
            ],
            &[("x-original-uri", "/a"), ("x-original-method", "G(T")],
        ];
        for pairs in cases {
            assert_eq!(
                reported(&headers(pairs)),
                Err(Reason::BadTarget),
                "{pairs:?}"
            );
        }
    }
}
