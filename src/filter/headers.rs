//! Headers of a response that was (or may have been) filtered or redacted for one caller: it
//! must never be stored by a shared cache and served to another caller, and nothing may
//! describe the unfiltered body it came from.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Shared-cache directives and the validators, digests and counts of the upstream's body.
const DESCRIBE_UPSTREAM_BODY: [&str; 14] = [
    "expires",
    "surrogate-control",
    "cdn-cache-control",
    "etag",
    "last-modified",
    "content-md5",
    "digest",
    "repr-digest",
    "content-digest",
    "x-total-count",
    "x-total",
    "x-total-pages",
    "x-result-count",
    "content-range",
];

/// `Cache-Control: private, no-store` replaces whatever the upstream allowed (`public`,
/// `max-age`, `s-maxage`), and the headers above go.
pub fn per_caller(headers: &mut HeaderMap) {
    for name in DESCRIBE_UPSTREAM_BODY {
        headers.remove(HeaderName::from_static(name));
    }
    // Pagination headers in the GitHub/Spring style carry totals too.
    let counted: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-pagination-"))
        .cloned()
        .collect();
    for name in counted {
        headers.remove(name);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_caching_and_upstream_descriptions_go() {
        let mut h = HeaderMap::new();
        h.append(header::CACHE_CONTROL, HeaderValue::from_static("public"));
        h.append(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=600, s-maxage=600"),
        );
        for name in DESCRIBE_UPSTREAM_BODY {
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("1"));
        }
        h.insert("x-pagination-total", HeaderValue::from_static("40"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        per_caller(&mut h);
        assert_eq!(h.len(), 2);
        assert_eq!(h.get_all(header::CACHE_CONTROL).iter().count(), 1);
        assert_eq!(h[header::CACHE_CONTROL], "private, no-store");
    }
}
