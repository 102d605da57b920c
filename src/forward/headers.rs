//! Header rewriting on the way to the upstream and back: identity is ours, hop-by-hop headers
//! stay on their hop.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::authn::identity::Identity;
use crate::grants::codes::SwaCode;

pub const USER: HeaderName = HeaderName::from_static("x-streetgate-user");
pub const ORGANISATION: HeaderName = HeaderName::from_static("x-streetgate-organisation");
pub const ACTING_ORGANISATION: HeaderName =
    HeaderName::from_static("x-streetgate-acting-organisation");
pub const ROLES: HeaderName = HeaderName::from_static("x-streetgate-roles");
pub const DECISION_ID: HeaderName = HeaderName::from_static("x-streetgate-decision-id");
const IDENTITY_PREFIX: &str = "x-streetgate-";
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies still see.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including every header the `Connection` header names.
/// `Transfer-Encoding` is left to hyper, which re-frames each hop itself.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Removes every `x-streetgate-*` header a client sent: only the sidecar speaks for identity.
pub fn strip_identity(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// Appends the client address and protocol to `X-Forwarded-For` / `X-Forwarded-Proto`.
pub fn append_forwarded(headers: &mut HeaderMap, client: IpAddr, tls: bool) {
    append(headers, X_FORWARDED_FOR, client.to_string());
    let proto = if tls { "https" } else { "http" };
    if headers.contains_key(&X_FORWARDED_PROTO) {
        append(headers, X_FORWARDED_PROTO, proto.to_owned());
    } else {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
}

/// Takes `value` by value so the common case (no earlier hop) becomes the header without a copy.
fn append(headers: &mut HeaderMap, name: HeaderName, value: String) {
    let joined = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing}, {value}"),
        _ => value,
    };
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        // Several header lines are folded into one so the list order is unambiguous.
        headers.insert(name, v);
    }
}

/// Identity is ours: strip what the client claimed and hop-by-hop headers, then set ours.
pub fn rewrite_request(
    parts: &mut http::request::Parts,
    client: IpAddr,
    tls: bool,
    identity: Option<&Identity>,
    acting_organisation: Option<SwaCode>,
    decision_id: &str,
) {
    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    strip_identity(h);
    // HTTP/2 clients send `:authority` instead of Host; the upstream still sees their host.
    if !h.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        h.insert(header::HOST, v);
    }
    let mut set = |name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(DECISION_ID, decision_id);
    if let Some(id) = identity {
        set(USER, &id.subject);
        set(ORGANISATION, &id.organisation);
    }
    if let Some(acting) = acting_organisation {
        set(ACTING_ORGANISATION, acting.as_str());
    }
    // The joined roles become the header without another copy.
    if let Some(id) = identity
        && let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(id.roles.header_value()))
    {
        h.insert(ROLES, v);
    }
    append_forwarded(h, client, tls);
    parts.version = http::Version::HTTP_11;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn identity_headers_from_clients_go() {
        let mut h = HeaderMap::new();
        h.insert("x-streetgate-user", HeaderValue::from_static("admin"));
        h.insert("X-Streetgate-Roles", HeaderValue::from_static("Admin"));
        h.insert("x-streetgateway", HeaderValue::from_static("kept"));
        strip_identity(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn forwarded_headers_append() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        append_forwarded(&mut h, "127.0.0.1".parse().unwrap(), false);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
    }
}
