//! Request integrity, headers and query: what the upstream receives is exactly what was
//! decided. Spoofed identity, re-routing and re-methoding headers are stripped in any spelling,
//! `X-Forwarded-For`/`-Proto` are ours unless the peer is a trusted proxy, identity that cannot
//! travel as a header is refused, `swaCode` is one parameter however it is spelt, and path
//! escapes that would decode again downstream are refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use std::io::Write;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;

fn planner() -> String {
    token(&claims("user-a", "7001", &["Planner"]))
}

/// Every header a client may not pass on, in the spellings lenient servers fold together.
const SPOOFED: &[(&str, &str)] = &[
    ("x-streetgate-user", "admin"),
    ("X-Streetgate-Organisation", "9999"),
    ("X_Streetgate_User", "admin"),
    ("x-streetgate_roles", "StreetWorksAdmin"),
    ("X_STREETGATE_ACTING_ORGANISATION", "9999"),
    ("x-streetgate-decision-id", "forged"),
    ("x-streetgate-anything-new", "1"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("x_http_method_override", "DELETE"),
    ("X-HTTP-Method", "PUT"),
    ("X-Method-Override", "PATCH"),
    ("x_method_override", "PATCH"),
    ("X-Original-URL", "/party/admin"),
    ("X_Original_URL", "/party/admin"),
    ("X-Original-URI", "/party/admin"),
    ("X-Rewrite-URL", "/party/admin"),
    ("x_rewrite_url", "/party/admin"),
    ("Forwarded", "for=1.2.3.4;host=evil;proto=https"),
    ("X-Forwarded-Host", "evil.example"),
    ("X_Forwarded_Host", "evil.example"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Prefix", "/admin"),
    ("X-Forwarded-Server", "evil"),
    ("X-Forwarded-Uri", "/admin"),
    ("X-Original-Host", "evil.example"),
    ("X-Host", "evil.example"),
    ("X-Real-IP", "10.9.9.9"),
    ("x_real_ip", "10.9.9.9"),
    ("True-Client-IP", "10.9.9.9"),
    ("X-Client-IP", "10.9.9.9"),
    ("X_Forwarded_For", "10.9.9.9"),
    ("x-forwarded_for", "10.9.9.9"),
    ("X_Forwarded_Proto", "https"),
];

fn assert_clean(seen: &Seen) {
    for (name, _) in SPOOFED {
        let lower = name.to_ascii_lowercase();
        assert!(
            !seen.headers.contains_key(lower.as_str()) || lower.starts_with("x-streetgate-"),
            "{name} reached the upstream"
        );
    }
    let names: Vec<&str> = seen.headers.keys().map(|k| k.as_str()).collect();
    for name in &names {
        assert!(
            !name.contains('_'),
            "{name} (an underscore spelling) reached the upstream"
        );
    }
    assert_eq!(seen.headers["x-streetgate-user"], "user-a");
    assert_eq!(seen.headers["x-streetgate-organisation"], "7001");
    assert_eq!(seen.headers["x-streetgate-roles"], "Planner");
    assert_eq!(seen.headers["x-streetgate-acting-organisation"], "7001");
    assert_ne!(seen.headers["x-streetgate-decision-id"], "forged");
    assert!(!seen.headers.contains_key("x-streetgate-anything-new"));
    for identity in [
        "x-streetgate-user",
        "x-streetgate-organisation",
        "x-streetgate-roles",
        "x-streetgate-acting-organisation",
        "x-streetgate-decision-id",
    ] {
        assert_eq!(
            seen.headers.get_all(identity).iter().count(),
            1,
            "{identity}"
        );
    }
    assert_eq!(seen.method, http::Method::GET);
}

#[tokio::test]
async fn rerouting_and_identity_headers_are_stripped_in_any_spelling() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    let mut req = Request::get("/work/works/W1")
        .header("host", "gw.test")
        .header("token", planner())
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "kept");
    for (name, value) in SPOOFED {
        req = req.header(*name, *value);
    }
    let reply = send(w.gw.addr, req.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let seen = w.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_clean(&seen[0]);
    let h = &seen[0].headers;
    assert_eq!(h["x-request-id"], "kept", "ordinary headers pass");
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "set, not appended");
    assert_eq!(h["x-forwarded-proto"], "http", "set, not appended");
    assert_ne!(
        reply.headers["x-streetgate-decision-id"], "forged",
        "the response carries our decision id"
    );
}

/// The same, written on the wire exactly (mixed case, repeated lines, underscores).
#[tokio::test]
async fn raw_wire_spellings_are_stripped_too() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    let mut head = format!(
        "GET /work/works/W1 HTTP/1.1\r\nHost: gw.test\r\ntoken: {}\r\nConnection: close\r\n",
        planner()
    );
    for (name, value) in SPOOFED {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n");
    head.push_str("x-streetgate-user: admin\r\nX-STREETGATE-USER: root\r\n\r\n");
    let resp = raw(w.gw.addr, head.as_bytes()).await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    let seen = w.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_clean(&seen[0]);
    assert_eq!(seen[0].headers["x-forwarded-for"], "127.0.0.1");
}

fn with_trusted(yaml: &str, nets: &str) -> String {
    yaml.replace(
        "  idle_timeout: 2s\n",
        &format!("  idle_timeout: 2s\n  trusted_proxies: {nets}\n"),
    )
}

async fn trusted_world(nets: &str) -> World {
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let yaml = config_yaml(&upstream.url(), &jwks.url(), DEFAULT_ROUTES, "");
    let gw = sidecar(&with_trusted(&yaml, nets)).await;
    World { upstream, jwks, gw }
}

#[tokio::test]
async fn a_trusted_proxy_peer_keeps_and_extends_forwarded_for() {
    for nets in [
        "[127.0.0.0/8]",
        "[10.0.0.0/8, 127.0.0.1/32]",
        "['::1/128', 127.0.0.1/32]",
    ] {
        let w = trusted_world(nets).await;
        let req = Request::get("/work/works/W1")
            .header("host", "gw.test")
            .header("token", planner())
            .header("x-forwarded-for", "203.0.113.7")
            .header("x-forwarded-proto", "https")
            .header("x_forwarded_for", "10.9.9.9")
            .header("x-real-ip", "10.9.9.9")
            .header("x-forwarded-host", "evil.example")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = send(w.gw.addr, req).await;
        assert_eq!(reply.status, 200);
        let seen = &w.upstream.seen()[0];
        let h = &seen.headers;
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1", "{nets}");
        assert_eq!(h["x-forwarded-proto"], "https, http", "{nets}");
        assert!(
            !h.contains_key("x_forwarded_for"),
            "underscore spelling still goes"
        );
        assert!(
            !h.contains_key("x-real-ip"),
            "the rest of the family still goes"
        );
        assert!(!h.contains_key("x-forwarded-host"));
    }
}

#[tokio::test]
async fn an_untrusted_peer_gets_its_forwarded_for_replaced() {
    let w = trusted_world("[10.0.0.0/8, '2001:db8::/32']").await;
    let req = Request::get("/work/works/W1")
        .header("host", "gw.test")
        .header("token", planner())
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(w.gw.addr, req).await.status, 200);
    let seen = &w.upstream.seen()[0];
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
}

#[test]
fn trusted_proxies_are_validated_with_their_location() {
    let yaml = |nets: &str| {
        with_trusted(
            &config_yaml(
                "http://127.0.0.1:1",
                "http://127.0.0.1:2/jwks",
                DEFAULT_ROUTES,
                "",
            ),
            nets,
        )
    };
    assert!(streetgate::config::Config::from_yaml(&yaml("[10.0.0.0/8, '::1/128']")).is_ok());
    for (nets, location) in [
        ("[10.0.0.1/8]", "listen.trusted_proxies[0]"),
        ("[10.0.0.0/8, 192.168.1.1/16]", "listen.trusted_proxies[1]"),
        ("[not-a-cidr]", "listen.trusted_proxies[0]"),
        ("[10.0.0.0/33]", "listen.trusted_proxies[0]"),
        ("[10.0.0.1]", "listen.trusted_proxies[0]"),
    ] {
        let problems = streetgate::config::Config::from_yaml(&yaml(nets))
            .err()
            .unwrap_or_else(|| panic!("{nets} accepted"))
            .to_string();
        assert!(problems.contains(location), "{nets}: {problems}");
    }
}

#[tokio::test]
async fn identity_that_cannot_be_a_header_is_token_claims_and_never_forwarded() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    let long = "a".repeat(300);
    let subjects = [
        "user\r\nx-streetgate-roles: Admin",
        "user\nb",
        "user\rb",
        "user\u{0}",
        "user\tb",
        "user\u{7f}",
        "usér",
        "user\u{2028}",
        "用户",
        " user-a",
        "user-a ",
        long.as_str(),
    ];
    for sub in subjects {
        let t = token(&claims(sub, "7001", &["Planner"]));
        for attempt in 0..2 {
            let reply = send(w.gw.addr, get("/work/works/W1", Some(&t))).await;
            assert_eq!(reply.status, 401, "{sub:?} attempt {attempt}");
            assert_eq!(reply.reason(), "token_claims", "{sub:?} attempt {attempt}");
        }
    }
    let t = token(&claims("user-a", "70\r\n01", &["Planner"]));
    let reply = send(w.gw.addr, get("/work/works/W1", Some(&t))).await;
    assert_eq!(reply.reason(), "token_claims");
    assert_eq!(w.upstream.count(), 0, "nothing was forwarded");
    // A plain subject with inner spaces and punctuation is fine.
    let t = token(&claims("Jane Doe <jane@x.example>", "7001", &["Planner"]));
    let reply = send(w.gw.addr, get("/work/works/W1", Some(&t))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        w.upstream.seen()[0].headers["x-streetgate-user"],
        "Jane Doe <jane@x.example>"
    );
}

async fn swa_status(w: &World, query: &str) -> (StatusCode, String) {
    let reply = send(
        w.gw.addr,
        get(&format!("/work/works/W1?{query}"), Some(&planner())),
    )
    .await;
    let reason = if reply.status.is_success() {
        String::new()
    } else {
        reply.reason()
    };
    (reply.status, reason)
}

#[tokio::test]
async fn swa_code_is_one_parameter_however_it_is_spelt() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    for query in [
        "swaCode=7001&swaCode=7001",
        "swaCode=7001&SwaCode=9999",
        "SWACODE=9999&swaCode=7001",
        "swaCode=7001&swacode=7001",
        "swaCode=7001&swa%43ode=9999",
        "swaCode=7001&%73waCode=9999",
        "swaCode=7001&swaCode[]=9999",
        "swaCode[]=7001&swaCode[0]=9999",
        "swaCode=7001&swaCode%5B%5D=9999",
        "swaCode=7001&swaCode+=9999",
        "swaCode=7001&%C5%BFwaCode=9999",
        "x=1&SwaCode=7001&y=2&swaCode=7001",
    ] {
        assert_eq!(
            swa_status(&w, query).await,
            (StatusCode::BAD_REQUEST, "swa_code_invalid".into()),
            "{query}"
        );
    }
    // One of them, in any spelling, is the swaCode the decision reads.
    for query in [
        "SwaCode=9999",
        "swacode=9999",
        "swaCode[]=9999",
        "swa%43ode=9999",
    ] {
        assert_eq!(
            swa_status(&w, query).await,
            (
                StatusCode::FORBIDDEN,
                "swa_code_not_own_organisation".into()
            ),
            "{query}"
        );
    }
    // Double-encoded names would read as another name to an upstream decoding twice.
    for query in ["swa%2543ode=9999", "swaCode=7001&swa%2543ode=9999"] {
        assert_eq!(
            swa_status(&w, query).await,
            (StatusCode::BAD_REQUEST, "bad_query".into()),
            "{query}"
        );
    }
    // `;` splits pairs for some parsers only.
    assert_eq!(
        swa_status(&w, "x=1;swaCode=9999").await,
        (StatusCode::BAD_REQUEST, "bad_query".into())
    );
    // A double-encoded value is not a SWA code.
    assert_eq!(
        swa_status(&w, "swaCode=%25370001").await,
        (StatusCode::BAD_REQUEST, "swa_code_invalid".into())
    );
    assert_eq!(w.upstream.count(), 0, "no rejected request was forwarded");
    assert_eq!(swa_status(&w, "SwaCode=7001").await.0, StatusCode::OK);
    assert_eq!(w.upstream.seen()[0].uri, "/work/works/W1?SwaCode=7001");
}

/// Promoter 7001 with works W1 (workstream 001) and W2 (002); user-a holds full-write on 001.
const GRANTS: &str = include_str!("fixtures/grants/small.json");

const QUERY_ROUTES: &str = r#"
      - id: GetByQuery
        route: GET /lookup
        allow: {roles: [Planner]}
        access: {read_work: {query: workReferenceNumber}}
"#;

#[tokio::test]
async fn a_query_parameter_a_rule_reads_is_read_once_and_exactly() {
    let mut grants = tempfile::NamedTempFile::new().unwrap();
    grants.write_all(GRANTS.as_bytes()).unwrap();
    let extra = format!(
        "grants:\n  source:\n    file:\n      path: {}\n      poll_interval: 1s\n  max_age: 1h\n",
        grants.path().display()
    );
    let w = World::start(QUERY_ROUTES, &extra).await;
    let status = |q: &'static str| {
        let addr = w.gw.addr;
        async move {
            let reply = send(addr, get(&format!("/work/lookup?{q}"), Some(&planner()))).await;
            let reason = if reply.status.is_success() {
                String::new()
            } else {
                reply.reason()
            };
            (reply.status.as_u16(), reason)
        }
    };
    for q in [
        "workReferenceNumber=W1&WorkReferenceNumber=W2",
        "workReferenceNumber=W1&workReferenceNumber[]=W2",
        "workReferenceNumber=W1&workreferencenumber=W2",
        "workReferenceNumber=W1&work%52eferenceNumber=W2",
        "WORKREFERENCENUMBER=W2",
        "workReferenceNumber=W%2531",
        "workReferenceNumber=W1&workReferenceNumber=W1",
    ] {
        assert_eq!(status(q).await, (400, "bad_query".into()), "{q}");
    }
    assert_eq!(w.upstream.count(), 0);
    assert_eq!(status("workReferenceNumber=W1").await.0, 200);
    assert_eq!(
        status("workReferenceNumber=W2").await,
        (403, "workstream_no_access".into())
    );
}

#[tokio::test]
async fn path_escapes_that_decode_again_are_bad_path_and_never_forwarded() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    for path in [
        "/work/works/W1%3F",
        "/work/works/W1%C2%85",
        "/work/works/W1%C2%9Bx",
        "/work/works/W1%3fswaCode=9999",
        "/work/works/W1%23frag",
        "/work/works/W1%25",
        "/work/works/W1%252F..%252Fparty",
        "/work/works/W1%253F",
        "/work/works/%252e%252e",
        "/work/works/W1%2525",
        "/work/works/W1%2F",
        "/work/works/W1%5C",
        "/work/works/W1%3B",
        "/work/works/W1%00",
        "/work/works/W1%0D%0A",
        "/work/works/W1%09",
        "/work/works/W1%1F",
        "/work/works/W1%7F",
        "/work/works/%2E%2E",
    ] {
        let reply = send(w.gw.addr, get(path, Some(&planner()))).await;
        assert_eq!(reply.status, 400, "{path}");
        assert_eq!(reply.reason(), "bad_path", "{path}");
    }
    assert_eq!(w.upstream.count(), 0);
    // Escapes that decode to plain characters are still fine.
    let reply = send(w.gw.addr, get("/work/works/W%31%20x", Some(&planner()))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(w.upstream.seen()[0].uri, "/work/works/W%31%20x");
}

/// qs (Express's extended parser) reads `[swaCode]=x` as `swaCode=x` (an empty parent takes
/// the bracket's content), and `swaCode[]x=` as `swaCode[]=` (text after the last bracket
/// pair is dropped).
#[tokio::test]
async fn swa_code_spellings_qs_reads_count_as_swa_code() {
    let w = World::start(DEFAULT_ROUTES, "").await;
    for query in [
        "[swaCode]=9999",
        "[SWACODE]=9999",
        "%5BswaCode%5D=9999",
        "[swaCode][]=9999",
        "swaCode[]x=9999",
        "swaCode[0]]=9999",
        "swaCode%20=9999",
        "%09swaCode=9999",
        "swaCode[=9999",
    ] {
        assert_eq!(
            swa_status(&w, query).await,
            (
                StatusCode::FORBIDDEN,
                "swa_code_not_own_organisation".into()
            ),
            "{query}"
        );
    }
    for query in [
        "swaCode=7001&[swaCode]=9999",
        "[swaCode]=7001&swaCode[]=9999",
        "swaCode=7001&swaCode[]x=9999",
        "swaCode=7001&swaCode=",
        "swaCode=",
        "swaCode=7001+",
        "swaCode=%2B7001",
        "swaCode=7001%00",
    ] {
        let got = swa_status(&w, query).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{query}: {got:?}");
    }
    assert_eq!(w.upstream.count(), 0, "no rejected request was forwarded");
    // Names that merely contain it are other parameters.
    for query in ["x[swaCode]=9999", "swaCodes=9999", "a.swaCode=9999"] {
        assert_eq!(swa_status(&w, query).await.0, StatusCode::OK, "{query}");
    }
}
