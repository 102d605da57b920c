//! Header rewriting on the way to the upstream and back: identity is ours, hop-by-hop headers
//! stay on their hop.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::authn::identity::Identity;
use crate::codes::SwaCode;

pub const USER: HeaderName = HeaderName::from_static("x-streetgate-user");
pub const ORGANISATION: HeaderName = HeaderName::from_static("x-streetgate-organisation");
pub const ACTING_ORGANISATION: HeaderName =
    HeaderName::from_static("x-streetgate-acting-organisation");
pub const ROLES: HeaderName = HeaderName::from_static("x-streetgate-roles");
pub const INTEGRATOR: HeaderName = HeaderName::from_static("x-streetgate-integrator");
pub const DECISION_ID: HeaderName = HeaderName::from_static("x-streetgate-decision-id");
const IDENTITY_PREFIX: &str = "x-streetgate-";
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies still see, and
/// `Transfer-Encoding`, which hyper re-frames on each hop itself.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "upgrade"
            | "transfer-encoding"
    )
}

/// Removes every header `unwanted` picks and every header the `Connection` header names.
/// Nothing is collected or allocated: names are removed as they are found (a header parsed
/// from the wire would be copied to build a `HeaderName`), and nearly every request has none.
fn remove_where(headers: &mut HeaderMap, unwanted: impl Fn(&HeaderName) -> bool) {
    // Each Connection line names headers to drop: by name, in any case, comma-separated. The
    // line is cloned (a reference count) so the map can change under it.
    let (mut line, mut itself) = (0, false);
    while let Some(value) = headers
        .get_all(header::CONNECTION)
        .iter()
        .nth(line)
        .cloned()
    {
        for named in value.to_str().unwrap_or_default().split(',') {
            let named = named.trim();
            if named.eq_ignore_ascii_case("connection") {
                // Removed once its lines have all been read.
                itself = true;
            } else if !named.is_empty() {
                // `remove` by `&str` lowercases on the stack; an invalid name removes nothing.
                headers.remove(named);
            }
        }
        line += 1;
    }
    if itself {
        headers.remove(header::CONNECTION);
    }
    while let Some(name) = headers.keys().find(|name| unwanted(name)).cloned() {
        headers.remove(&name);
    }
}

/// Removes hop-by-hop headers, including every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    remove_where(headers, is_hop_by_hop);
}

/// Headers some framework or proxy reads as the method, the URL, the host or the client:
/// forwarded, they would let the upstream act on a request other than the one decided.
/// Compared after `fold` (lowercase, `_` → `-`), since many servers (CGI/WSGI, PHP, nginx with
/// `underscores_in_headers`) read `X_Forwarded_Host` as `X-Forwarded-Host`.
const REROUTING: [&str; 25] = [
    // re-method
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // re-route
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
    // re-host
    "forwarded",
    "x-forwarded",
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-original-host",
    "x-host",
    "front-end-https",
    // re-identify the client
    "forwarded-for",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
];

/// A header name as lenient servers read it: lowercase (already, in `HeaderName`) with `_` as `-`.
fn fold(name: &HeaderName) -> std::borrow::Cow<'_, str> {
    let s = name.as_str();
    if s.contains('_') {
        std::borrow::Cow::Owned(s.replace('_', "-"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Whether a client header must not reach the upstream: identity (`x-streetgate-*`), the
/// re-routing family above, and any spelling of `X-Forwarded-For`/`-Proto` other than the
/// plain one (which `set_forwarded` replaces or extends itself).
pub fn is_spoofable(name: &HeaderName) -> bool {
    let folded = fold(name);
    if folded.starts_with(IDENTITY_PREFIX) || REROUTING.contains(&&*folded) {
        return true;
    }
    let forwarded = folded == "x-forwarded-for" || folded == "x-forwarded-proto";
    forwarded && name.as_str().contains('_')
}

/// Removes every header a client could use to speak for identity, or to change the method,
/// URL, host or client address the upstream sees.
pub fn strip_spoofable(headers: &mut HeaderMap) {
    remove_where(headers, is_spoofable);
}

/// Sets `X-Forwarded-For` / `X-Forwarded-Proto` to what streetgate saw. Only when the TCP peer
/// is a trusted proxy are the client's values kept and ours appended.
/// `client` is the TCP peer's address as a header value (`ConnInfo::peer_value`).
pub fn set_forwarded(headers: &mut HeaderMap, client: &HeaderValue, tls: bool, peer_trusted: bool) {
    let proto = if tls { "https" } else { "http" };
    if peer_trusted {
        let client = client.to_str().unwrap_or_default().to_owned();
        append(headers, X_FORWARDED_FOR, client);
        if headers.contains_key(&X_FORWARDED_PROTO) {
            append(headers, X_FORWARDED_PROTO, proto.to_owned());
        } else {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        return;
    }
    // `insert` replaces every line the client sent.
    headers.insert(X_FORWARDED_FOR, client.clone());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

/// Takes `value` by value so the common case (no earlier hop) becomes the header without a copy.
fn append(headers: &mut HeaderMap, name: HeaderName, value: String) {
    let existing: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .collect();
    let joined = if existing.is_empty() {
        value
    } else {
        format!("{}, {value}", existing.join(", "))
    };
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        // Several header lines are folded into one so the list order is unambiguous.
        headers.insert(name, v);
    }
}

/// How the request reached us, for `X-Forwarded-*`.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'c> {
    /// The TCP peer's address, formatted once per connection.
    pub client: &'c HeaderValue,
    pub tls: bool,
    /// The TCP peer is one of `listen.trusted_proxies`.
    pub peer_trusted: bool,
}

/// Identity is ours: strip what the client claimed and hop-by-hop headers, then set ours.
/// The identity headers come pre-validated with the identity, so none can be skipped.
pub fn rewrite_request(
    parts: &mut http::request::Parts,
    hop: Hop<'_>,
    identity: Option<&Identity>,
    acting_organisation: Option<SwaCode>,
    decision_id: &HeaderValue,
) {
    let h = &mut parts.headers;
    // Hop-by-hop and spoofable headers in one pass over the client's names.
    remove_where(h, |name| is_hop_by_hop(name) || is_spoofable(name));
    // HTTP/2 clients send `:authority` instead of Host; the upstream still sees their host.
    if !h.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        h.insert(header::HOST, v);
    }
    h.insert(DECISION_ID, decision_id.clone());
    if let Some(id) = identity {
        let values = id.headers();
        h.insert(USER, values.user.clone());
        h.insert(ORGANISATION, values.organisation.clone());
        h.insert(ROLES, values.roles.clone());
        if let Some(integrator) = &values.integrator {
            h.insert(INTEGRATOR, integrator.clone());
        }
    }
    if let Some(acting) = acting_organisation {
        // Most callers act for their own organisation, whose value the identity already
        // holds: shared rather than made again (an allocation) per request.
        let own = identity
            .map(|id| &id.headers().organisation)
            .filter(|own| own.as_bytes() == acting.as_str().as_bytes());
        h.insert(
            ACTING_ORGANISATION,
            own.cloned().unwrap_or_else(|| acting.header_value()),
        );
    }
    set_forwarded(h, hop.client, hop.tls, hop.peer_trusted);
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

    /// Whatever the removal is for, what `Connection` names goes: over several lines, in any
    /// case, with empty and invalid items, and `Connection` itself when it names itself.
    #[test]
    fn every_header_connection_names_goes_even_when_the_caller_keeps_the_rest() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("X-A, ,bad name"),
        );
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("Connection ,x-b,"),
        );
        for name in ["x-a", "x-b", "x-c"] {
            h.insert(name, HeaderValue::from_static("1"));
        }
        strip_spoofable(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-c"]);
    }

    #[test]
    fn identity_headers_from_clients_go() {
        let mut h = HeaderMap::new();
        h.insert("x-streetgate-user", HeaderValue::from_static("admin"));
        h.insert("X-Streetgate-Roles", HeaderValue::from_static("Admin"));
        h.insert("X_Streetgate_User", HeaderValue::from_static("admin"));
        h.insert("x-streetgate_roles", HeaderValue::from_static("Admin"));
        h.insert("x-streetgateway", HeaderValue::from_static("kept"));
        strip_spoofable(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn rerouting_headers_go_in_any_spelling() {
        let mut h = HeaderMap::new();
        for name in REROUTING {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("x"),
            );
            let underscored = name.replace('-', "_").to_uppercase();
            h.insert(
                HeaderName::from_bytes(underscored.as_bytes()).unwrap(),
                HeaderValue::from_static("x"),
            );
        }
        h.insert("x_forwarded_for", HeaderValue::from_static("1.2.3.4"));
        h.insert("X-Forwarded_Proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.insert("x-request-id", HeaderValue::from_static("kept"));
        strip_spoofable(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-forwarded-for", "x-request-id"]);
    }

    /// The one pass of `rewrite_request` drops both classes and what `Connection` names
    /// (in any case, over several lines), and keeps the rest.
    #[test]
    fn request_rewrite_drops_hop_by_hop_spoofable_and_connection_named_in_one_pass() {
        let (mut parts, ()) = http::Request::builder()
            .uri("/x")
            .header("Connection", "X-Private")
            .header("connection", "keep-alive, X-Other ,x-streetgate-user")
            .header("x-private", "1")
            .header("x-other", "1")
            .header("keep-alive", "timeout=5")
            .header("transfer-encoding", "chunked")
            .header("proxy-authorization", "Basic eA==")
            .header("x-streetgate-user", "admin")
            .header("X_Forwarded_Host", "evil")
            .header("x-original-url", "/admin")
            .header("accept", "*/*")
            .header("x-request-id", "r1")
            .header("authorization", "Bearer t")
            .body(())
            .unwrap()
            .into_parts();
        let client = HeaderValue::from_static("127.0.0.1");
        let hop = Hop {
            client: &client,
            tls: false,
            peer_trusted: false,
        };
        rewrite_request(&mut parts, hop, None, None, &HeaderValue::from_static("d1"));
        let mut left: Vec<&str> = parts.headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "accept",
                "authorization",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-request-id",
                "x-streetgate-decision-id",
            ]
        );
    }

    #[test]
    fn the_acting_organisation_is_forwarded_whoever_it_is() {
        use crate::authn::identity::{Role, RoleSet};
        let planner = Identity::new("u", "7001", RoleSet::of(&[Role::Planner]), None, 9).unwrap();
        let contractor =
            Identity::new("c", "C901", RoleSet::of(&[Role::Contractor]), None, 9).unwrap();
        let client = HeaderValue::from_static("127.0.0.1");
        let hop = Hop {
            client: &client,
            tls: false,
            peer_trusted: false,
        };
        for (identity, acting, want) in [
            (Some(&planner), Some("7001"), Some("7001")),
            (Some(&contractor), Some("7001"), Some("7001")),
            (Some(&contractor), Some("C901"), Some("C901")),
            (None, Some("7002"), Some("7002")),
            (Some(&planner), None, None),
        ] {
            let (mut parts, ()) = http::Request::builder()
                .uri("/x")
                .header(ACTING_ORGANISATION, "spoofed")
                .body(())
                .unwrap()
                .into_parts();
            let acting = acting.map(|a| SwaCode::parse(a).unwrap());
            rewrite_request(
                &mut parts,
                hop,
                identity,
                acting,
                &HeaderValue::from_static("d1"),
            );
            let got: Vec<_> = parts.headers.get_all(ACTING_ORGANISATION).iter().collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{acting:?}");
        }
    }

    #[test]
    fn forwarded_headers_are_set_unless_the_peer_is_trusted() {
        let client = &HeaderValue::from_static("127.0.0.1");
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let mut trusted = h.clone();
        set_forwarded(&mut h, client, false, false);
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        set_forwarded(&mut trusted, client, false, true);
        assert_eq!(trusted["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
        assert_eq!(trusted["x-forwarded-proto"], "https, http");
    }
}
