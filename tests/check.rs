//! Check mode (ext_authz / forward-auth) against proxy mode, through real sockets: the same
//! requests sent through the sidecar, as Envoy's HTTP ext_authz filter sends them (path_prefix
//! `/envoy`, the original method, headers and body), as nginx / Traefik forward-auth requests,
//! and as a gRPC `envoy.service.auth.v3.Authorization/Check` call, must get the same decisions,
//! reasons and identity headers. No Envoy binary can be installed here, so the Envoy-HTTP
//! requests are shaped after Envoy's API reference. nginx is Debian's, running the shipped
//! examples/nginx/auth_request.conf.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::collections::HashMap;
use std::io::Write;

use bytes::Bytes;
use common::*;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use http::{Request, StatusCode};
use http_body_util::Full;

const GRANTS: &str = include_str!("fixtures/grants/integrity.json");

pub const ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, HighwayAuthority, Contractor]}
        access: {read_work: {path: workReferenceNumber}}
      - id: UpdateWork
        route: PUT /works/{workReferenceNumber}
        allow: {roles: [Planner, Contractor]}
        access: {write_work: {path: workReferenceNumber}}
      - id: CreatePermit
        route: POST /works/{workReferenceNumber}/permits
        allow: {roles: [Planner, Contractor]}
        access: {write_work: {path: workReferenceNumber}}
        organisation_member: true
        body_workstreams: [/workstream_prefix]
      - id: Report
        route: GET /reports
        allow: {roles: [Planner]}
        access: filtered
        response:
          filter: {json: {rows: /rows, work_reference_field: work_reference_number}}
      - id: ReportUnfiltered
        route: GET /reports-unfiltered
        allow: {roles: [Planner]}
        access: filtered
        unfiltered_in_check_mode: true
        response:
          filter: {json: {rows: /rows, work_reference_field: work_reference_number}}
      - id: Status
        route: GET /status
        allow: public
"#;

/// A sidecar with the grants fixture and a check listener (HTTP and gRPC) trusting `trusted`
/// for forward-auth headers.
pub async fn check_world(trusted: &str) -> (World, tempfile::NamedTempFile) {
    let mut grants = tempfile::NamedTempFile::new().unwrap();
    grants.write_all(GRANTS.as_bytes()).unwrap();
    let extra = format!(
        "grants:\n  source:\n    file:\n      path: {}\n      poll_interval: 1s\n  max_age: 1h\n\
         check:\n  addr: 127.0.0.1:0\n  grpc_addr: 127.0.0.1:0\n  trusted_proxies: [{trusted}]\n",
        grants.path().display()
    );
    (World::start(ROUTES, &extra).await, grants)
}

fn user_a() -> String {
    token(&claims("user-a", "7001", &["Planner"]))
}

fn contractor() -> String {
    token(&claims("dig-1", "C901", &["Contractor"]))
}

/// One original request.
#[derive(Clone)]
pub struct Case {
    pub method: &'static str,
    pub target: String,
    pub token: Option<String>,
    pub body: Option<&'static str>,
    pub headers: Vec<(&'static str, &'static str)>,
}

fn case(method: &'static str, target: &str, token: Option<String>) -> Case {
    Case {
        method,
        target: target.to_owned(),
        token,
        body: None,
        headers: Vec::new(),
    }
}

/// What a mode answered: status, reason (denials), identity headers for the upstream (allows).
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    pub reason: String,
    pub identity: Vec<(String, String)>,
}

pub const IDENTITY: [&str; 4] = [
    "x-streetgate-user",
    "x-streetgate-organisation",
    "x-streetgate-roles",
    "x-streetgate-acting-organisation",
];

pub fn identity_of(lookup: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    IDENTITY
        .iter()
        .filter_map(|n| lookup(n).map(|v| (n.to_string(), v)))
        .collect()
}

fn headers_of(c: &Case, builder: http::request::Builder) -> http::request::Builder {
    let mut b = builder.header("host", "gw.test");
    if let Some(t) = &c.token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if c.body.is_some() {
        b = b.header("content-type", "application/json");
    }
    for (k, v) in &c.headers {
        b = b.header(*k, *v);
    }
    b
}

fn reason_of(reply: &Reply) -> String {
    if reply.status.is_success() {
        String::new()
    } else {
        reply.reason()
    }
}

/// Through the sidecar: the upstream's view is the identity.
pub async fn via_proxy(w: &World, c: &Case) -> Outcome {
    let before = w.upstream.count();
    let req = headers_of(c, Request::builder().method(c.method).uri(&c.target))
        .body(Full::new(Bytes::from(c.body.unwrap_or(""))))
        .unwrap();
    let reply = send(w.gw.addr, req).await;
    let seen = w.upstream.seen();
    let identity = if reply.status.is_success() {
        assert_eq!(seen.len(), before + 1);
        let h = &seen[before].headers;
        identity_of(|n| h.get(n).map(|v| v.to_str().unwrap().to_owned()))
    } else {
        assert_eq!(seen.len(), before, "a rejection is never forwarded");
        Vec::new()
    };
    Outcome {
        status: reply.status.as_u16(),
        reason: reason_of(&reply),
        identity,
    }
}

fn from_check_reply(reply: &Reply) -> Outcome {
    let identity = if reply.status.is_success() {
        identity_of(|n| reply.headers.get(n).map(|v| v.to_str().unwrap().to_owned()))
    } else {
        Vec::new()
    };
    Outcome {
        status: reply.status.as_u16(),
        reason: reason_of(reply),
        identity,
    }
}

/// As Envoy's HTTP ext_authz filter sends it (`http_service.path_prefix: /envoy`,
/// `with_request_body`, all headers allowed): the original method, the prefixed original path
/// and query, the original headers with Envoy's own beside them, and the body.
pub fn envoy_request(c: &Case) -> Request<Full<Bytes>> {
    let b = Request::builder()
        .method(c.method)
        .uri(format!("/envoy{}", c.target))
        .header("x-forwarded-proto", "http")
        .header("x-request-id", "5f0e7b1c-8a51-4a0e-9b5e-0c3c7a3c2f10")
        .header("x-envoy-expected-rq-timeout-ms", "200");
    headers_of(c, b)
        .body(Full::new(Bytes::from(c.body.unwrap_or(""))))
        .unwrap()
}

async fn via_envoy_http(w: &World, c: &Case) -> Outcome {
    let addr = w.gw.check.as_ref().unwrap().addr;
    let reply = send(addr, envoy_request(c)).await;
    assert_eq!(reply.headers.get("cache-control").unwrap(), "no-store");
    from_check_reply(&reply)
}

/// As nginx `auth_request` / ingress-nginx / Traefik send it: no body, the original method and
/// target in headers.
fn forward_auth_request(c: &Case, uri_header: &str, method_header: &str) -> Request<Full<Bytes>> {
    let b = Request::get("/forward-auth")
        .header(uri_header, c.target.as_str())
        .header(method_header, c.method);
    headers_of(c, b).body(Full::new(Bytes::new())).unwrap()
}

async fn via_forward_auth(w: &World, c: &Case) -> Outcome {
    let addr = w.gw.check.as_ref().unwrap().addr;
    let nginx = from_check_reply(
        &send(
            addr,
            forward_auth_request(c, "x-original-uri", "x-original-method"),
        )
        .await,
    );
    let traefik = from_check_reply(
        &send(
            addr,
            forward_auth_request(c, "x-forwarded-uri", "x-forwarded-method"),
        )
        .await,
    );
    assert_eq!(nginx, traefik, "{}", c.target);
    nginx
}

/// As Envoy's gRPC ext_authz client sends it: pseudo-headers and lowercase headers in the
/// `headers` map, the body in `raw_body`.
pub async fn via_grpc(w: &World, c: &Case) -> Outcome {
    let addr = w.gw.check.as_ref().unwrap().grpc_addr.unwrap();
    let mut client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut headers = HashMap::from([
        (":authority".to_owned(), "gw.test".to_owned()),
        (":method".to_owned(), c.method.to_owned()),
        (":path".to_owned(), c.target.clone()),
        ("x-request-id".to_owned(), "5f0e7b1c".to_owned()),
    ]);
    if let Some(t) = &c.token {
        headers.insert("authorization".into(), format!("Bearer {t}"));
    }
    if c.body.is_some() {
        headers.insert("content-type".into(), "application/json".into());
    }
    for (k, v) in &c.headers {
        headers.insert(k.to_string(), v.to_string());
    }
    let body = c.body.unwrap_or("");
    let http = HttpRequest {
        method: c.method.into(),
        path: c.target.clone(),
        host: "gw.test".into(),
        scheme: "http".into(),
        protocol: "HTTP/1.1".into(),
        headers,
        size: i64::try_from(body.len()).unwrap(),
        raw_body: body.as_bytes().to_vec(),
        ..Default::default()
    };
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let response = client.check(request).await.unwrap().into_inner();
    let code = response.status.as_ref().unwrap().code;
    match response.http_response.unwrap() {
        HttpResponse::OkResponse(ok) => {
            assert_eq!(code, 0);
            let set: HashMap<String, String> = ok
                .headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect();
            Outcome {
                status: 200,
                reason: String::new(),
                identity: identity_of(|n| set.get(n).cloned()),
            }
        }
        HttpResponse::DeniedResponse(denied) => {
            assert_ne!(code, 0);
            let body: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
            Outcome {
                status: u16::try_from(denied.status.unwrap().code).unwrap(),
                reason: body["reason"].as_str().unwrap().to_owned(),
                identity: Vec::new(),
            }
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The requests every mode is compared on: allows and denials of each kind, and the
/// integrity classes (double escapes, swaCode spellings, bad tokens).
pub fn cases() -> Vec<Case> {
    let a = || Some(user_a());
    let mut permit = case("POST", "/work/works/NW001/permits", a());
    permit.body = Some(r#"{"workstream_prefix":"001"}"#);
    let mut permit_ro = case("POST", "/work/works/NW001/permits", a());
    permit_ro.body = Some(r#"{"workstream_prefix":"003"}"#);
    let mut permit_dup = case("POST", "/work/works/NW001/permits", a());
    permit_dup.body = Some(r#"{"workstream_prefix":"001","workstream_prefix":"003"}"#);
    let mut spoofing = case("GET", "/work/works/NW001", a());
    spoofing.headers = vec![
        ("x-streetgate-acting-organisation", "7002"),
        ("x_streetgate_user", "admin"),
        ("x-forwarded-host", "evil.test"),
    ];
    vec![
        case("GET", "/work/works/NW001", a()),
        case("GET", "/work/works/SG001", a()),
        case("GET", "/work/works/NW003", a()),
        case("PUT", "/work/works/NW003", a()),
        case("PUT", "/work/works/NW001", a()),
        case("GET", "/work/works/NOPE1", a()),
        case("GET", "/work/works/NW001", None),
        case("GET", "/work/works/NW001", Some("not-a-jwt".into())),
        case(
            "GET",
            "/work/works/NW001",
            Some(token(&claims("user-a", "7001", &["Nobody"]))),
        ),
        case("GET", "/work/works/NW001?swaCode=7001", Some(contractor())),
        case("GET", "/work/works/NW001?SwaCode=7001", Some(contractor())),
        case(
            "GET",
            "/work/works/NW001?swaCode=7001&swacode=7002",
            Some(contractor()),
        ),
        case(
            "GET",
            "/work/works/NW001?swa%43ode=7002",
            Some(contractor()),
        ),
        case("GET", "/work/works/SG001?swaCode=7002", Some(contractor())),
        case("GET", "/work/works/%2e%2e/NW001", a()),
        case("GET", "/work/works/NW%2501", a()),
        case("GET", "/work/works//NW001", a()),
        case("GET", "/work/works/NW001;x", a()),
        case("GET", "/work/nothing", a()),
        case("DELETE", "/work/works/NW001", a()),
        case("GET", "/work/status", None),
        spoofing,
        permit,
        permit_ro,
        permit_dup,
    ]
}

#[tokio::test]
async fn envoy_http_and_grpc_decide_as_proxy_mode_does() {
    let (w, _grants) = check_world("127.0.0.0/8").await;
    let mut seen_reasons = std::collections::BTreeSet::new();
    for c in cases() {
        let proxy = via_proxy(&w, &c).await;
        seen_reasons.insert(proxy.reason.clone());
        let before = w.upstream.count();
        let envoy = via_envoy_http(&w, &c).await;
        let grpc = via_grpc(&w, &c).await;
        assert_eq!(envoy, proxy, "envoy http: {} {}", c.method, c.target);
        assert_eq!(grpc, proxy, "grpc: {} {}", c.method, c.target);
        assert_eq!(w.upstream.count(), before, "check mode forwards nothing");
    }
    // The cases cover allows and each kind of denial.
    for reason in [
        "",
        "workstream_no_access",
        "workstream_read_only",
        "work_unknown",
        "token_missing",
        "token_malformed",
        "token_roles",
        "swa_code_invalid",
        "swa_code_no_contract",
        "bad_path",
        "bad_body",
        "route_not_found",
    ] {
        assert!(seen_reasons.contains(reason), "no case for {reason:?}");
    }
}

#[tokio::test]
async fn forward_auth_decides_as_proxy_mode_does_except_bodies() {
    let (w, _grants) = check_world("127.0.0.1/32").await;
    for c in cases() {
        let proxy = via_proxy(&w, &c).await;
        let before = w.upstream.count();
        let forward = via_forward_auth(&w, &c).await;
        if c.body.is_some() {
            // nginx and Traefik never send the body a rule reads.
            assert_eq!(
                (forward.status, forward.reason.as_str()),
                (403, "body_requires_proxy"),
                "{}",
                c.target
            );
        } else {
            assert_eq!(forward, proxy, "forward-auth: {} {}", c.method, c.target);
        }
        assert_eq!(w.upstream.count(), before);
    }
}

#[tokio::test]
async fn check_decisions_are_counted_like_proxy_decisions() {
    let (w, _grants) = check_world("127.0.0.1/32").await;
    let c = case("GET", "/work/works/SG001", Some(user_a()));
    via_proxy(&w, &c).await;
    via_envoy_http(&w, &c).await;
    via_forward_auth(&w, &c).await; // nginx and Traefik spellings: two decisions
    via_grpc(&w, &c).await;
    let scrape = metrics(&w.gw).await;
    assert_eq!(
        sample(
            &scrape,
            r#"streetgate_decisions_total{decision="deny",reason="workstream_no_access",route="GetWork"}"#
        ),
        5.0,
        "{scrape}"
    );
}

#[tokio::test]
async fn allow_answers_name_the_client_headers_to_remove_in_any_spelling() {
    let (w, _grants) = check_world("127.0.0.1/32").await;
    let mut c = case("GET", "/work/works/NW001", Some(user_a()));
    c.headers = vec![
        ("x-streetgate-acting-organisation", "7002"),
        ("x_streetgate_user", "admin"),
        ("X_Forwarded_Host", "evil.test"),
        ("x-original-url", "/work/works/SG001"),
        ("x-http-method-override", "DELETE"),
    ];
    let reply = send(w.gw.check.as_ref().unwrap().addr, envoy_request(&c)).await;
    assert_eq!(reply.status, 200);
    let remove: Vec<&str> = reply.headers["x-envoy-auth-headers-to-remove"]
        .to_str()
        .unwrap()
        .split(',')
        .collect();
    for name in [
        "x_streetgate_user",
        "x_forwarded_host",
        "x-original-url",
        "x-http-method-override",
    ] {
        assert!(remove.contains(&name), "{name} not in {remove:?}");
    }
    // The client's acting organisation is replaced by the decided one, so it is set, not removed.
    assert_eq!(reply.headers["x-streetgate-acting-organisation"], "7001");
    assert!(!remove.contains(&"x-streetgate-acting-organisation"));
    assert!(reply.headers.contains_key("x-streetgate-decision-id"));
}

#[tokio::test]
async fn response_policy_routes_need_proxy_mode_unless_marked() {
    let (w, _grants) = check_world("127.0.0.1/32").await;
    let filtered = case("GET", "/work/reports", Some(user_a()));
    // Proxy mode allows and forwards it (then filters what comes back).
    let before = w.upstream.count();
    let req = Request::get("/work/reports")
        .header("host", "gw.test")
        .header("authorization", format!("Bearer {}", user_a()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(w.gw.addr, req).await;
    assert_eq!(w.upstream.count(), before + 1);
    let before = w.upstream.count();
    let expected = (403, "filter_requires_proxy".to_owned());
    let envoy = via_envoy_http(&w, &filtered).await;
    assert_eq!((envoy.status, envoy.reason), expected.clone());
    let grpc = via_grpc(&w, &filtered).await;
    assert_eq!((grpc.status, grpc.reason), expected.clone());
    let forward = via_forward_auth(&w, &filtered).await;
    assert_eq!((forward.status, forward.reason), expected);
    // A denial stays the denial it was.
    let anonymous = via_envoy_http(&w, &case("GET", "/work/reports", None)).await;
    assert_eq!(anonymous.reason, "token_missing");
    // Marked: allowed unfiltered.
    let marked = case("GET", "/work/reports-unfiltered", Some(user_a()));
    assert_eq!(via_envoy_http(&w, &marked).await.status, 200);
    assert_eq!(via_grpc(&w, &marked).await.status, 200);
    assert_eq!(w.upstream.count(), before);
}

#[tokio::test]
async fn forward_auth_headers_are_believed_only_from_trusted_proxies() {
    // Only 10.0.0.0/8 is trusted; the test connects from 127.0.0.1.
    let (w, _grants) = check_world("10.0.0.0/8").await;
    let c = case("GET", "/work/works/NW001", Some(user_a()));
    let addr = w.gw.check.as_ref().unwrap().addr;
    for (uri, method) in [
        ("x-original-uri", "x-original-method"),
        ("x-forwarded-uri", "x-forwarded-method"),
    ] {
        let reply = send(addr, forward_auth_request(&c, uri, method)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(reply.reason(), "check_peer_untrusted");
        assert!(!reply.headers.contains_key("x-streetgate-user"));
    }
    // Envoy's mode reports the request itself, not in headers: it is decided as usual.
    assert_eq!(via_envoy_http(&w, &c).await.status, 200);
}

#[tokio::test]
async fn forward_auth_reports_must_be_whole_and_agree() {
    let (w, _grants) = check_world("127.0.0.1/32").await;
    let addr = w.gw.check.as_ref().unwrap().addr;
    let t = format!("Bearer {}", user_a());
    let cases: [&[(&str, &str)]; 5] = [
        // No method: nginx's subrequest is always GET, so none is assumed.
        &[("x-original-uri", "/work/works/NW001")],
        &[("x-original-method", "GET")],
        // A client header passed along beside the proxy's own.
        &[
            ("x-original-uri", "/work/works/SG001"),
            ("x-forwarded-uri", "/work/works/NW001"),
            ("x-forwarded-method", "GET"),
        ],
        &[
            ("x-forwarded-uri", "/work/works/NW001"),
            ("x-forwarded-method", "GET"),
            ("x-original-method", "DELETE"),
        ],
        &[
            ("x-original-uri", "http://other.test/work/works/NW001"),
            ("x-original-method", "GET"),
        ],
    ];
    for headers in cases {
        let mut b = Request::get("/forward-auth")
            .header("host", "gw.test")
            .header("authorization", &t);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let reply = send(addr, b.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(
            (reply.status.as_u16(), reply.reason()),
            (400, "bad_target".to_owned()),
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn envoy_partial_bodies_and_unknown_paths_are_refused() {
    let (w, _grants) = check_world("127.0.0.1/32").await;
    let addr = w.gw.check.as_ref().unwrap().addr;
    let mut c = case("POST", "/work/works/NW001/permits", Some(user_a()));
    c.body = Some(r#"{"workstream_prefix":"001"}"#);
    c.headers = vec![("x-envoy-auth-partial-body", "true")];
    let reply = send(addr, envoy_request(&c)).await;
    assert_eq!(reply.reason(), "body_too_large");
    for path in ["/", "/envoyx/work/works/NW001", "/other"] {
        let reply = send(addr, get(path, None)).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.reason(), "route_not_found");
    }
}

#[test]
fn check_config_is_validated_with_locations() {
    let yaml = config_yaml(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2/jwks",
        r#"
      - id: Plain
        route: GET /plain
        allow: public
        unfiltered_in_check_mode: true
"#,
        "check:\n  addr: 127.0.0.1:7000\n  grpc_addr: 127.0.0.1:7000\n  trusted_proxies: [10.0.0.1/8]\n",
    );
    let problems = streetgate::config::Config::from_yaml(&yaml)
        .unwrap_err()
        .to_string();
    for expected in [
        "check.grpc_addr",
        "check.trusted_proxies[0]",
        "apis[0].routes[0].unfiltered_in_check_mode",
    ] {
        assert!(
            problems.contains(expected),
            "{expected} missing in {problems}"
        );
    }
}

// === Debian's nginx, running examples/nginx/auth_request.conf ===

/// nginx running the shipped example; killed (by its own pid) when dropped.
struct Nginx {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

async fn start_nginx(
    binary: &std::path::Path,
    check: std::net::SocketAddr,
    upstream: &str,
) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx/auth_request.conf"),
    )
    .unwrap()
    .replace("server 127.0.0.1:9090;", &format!("server {check};"))
    .replace(
        "server 127.0.0.1:8000;",
        &format!("server {};", upstream.trim_start_matches("http://")),
    )
    .replace("listen 127.0.0.1:8080;", &format!("listen {addr};"));
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
         events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
         scgi_temp_path {d}/scgi;\n{example}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = std::process::Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut nginx = Nginx {
        child,
        addr,
        _dir: dir,
    };
    let up = eventually(std::time::Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    if !up {
        let log = std::fs::read_to_string(nginx._dir.path().join("error.log")).unwrap_or_default();
        let status = nginx.child.try_wait();
        panic!("nginx did not start ({status:?}):\n{log}");
    }
    nginx
}

#[tokio::test]
async fn nginx_auth_request_gets_the_decisions_of_proxy_mode() {
    let Some(binary) = nginx_binary() else {
        if std::env::var_os("STREETGATE_REQUIRE_NGINX").is_some() {
            panic!("nginx not found but STREETGATE_REQUIRE_NGINX is set");
        }
        eprintln!("notice: nginx not found; skipping (set STREETGATE_REQUIRE_NGINX to fail)");
        return;
    };
    let (w, _grants) = check_world("127.0.0.1/32").await;
    let nginx = start_nginx(
        &binary,
        w.gw.check.as_ref().unwrap().addr,
        &w.upstream.url(),
    )
    .await;
    for c in cases() {
        let proxy = via_proxy(&w, &c).await;
        let before = w.upstream.count();
        let req = headers_of(&c, Request::builder().method(c.method).uri(&c.target))
            .body(Full::new(Bytes::from(c.body.unwrap_or(""))))
            .unwrap();
        let reply = send(nginx.addr, req).await;
        let what = format!("{} {}", c.method, c.target);
        let seen = w.upstream.seen();
        match proxy.status {
            _ if c.body.is_some() => {
                // The body a rule reads never reaches forward-auth.
                assert_eq!(reply.status, 403, "{what}");
                assert_eq!(seen.len(), before, "{what}");
            }
            200 => {
                assert_eq!(reply.status, 200, "{what}");
                assert_eq!(seen.len(), before + 1, "{what}");
                let h = &seen[before].headers;
                let identity = identity_of(|n| h.get(n).map(|v| v.to_str().unwrap().to_owned()));
                assert_eq!(identity, proxy.identity, "{what}");
                assert!(h.contains_key("x-streetgate-decision-id"));
                assert!(!h.contains_key("x-forwarded-host"), "{what}");
                assert!(!h.keys().any(|k| k.as_str().contains('_')), "{what}");
                assert_eq!(seen[before].uri, c.target, "{what}: forwarded as decided");
            }
            401 | 403 => {
                assert_eq!(reply.status, proxy.status, "{what}");
                assert_eq!(seen.len(), before, "{what}");
            }
            _ => {
                // nginx turns any other auth status into a 500 (or refuses the request itself).
                assert!(
                    matches!(reply.status.as_u16(), 400 | 500),
                    "{what}: {}",
                    reply.status
                );
                assert_eq!(seen.len(), before, "{what}");
            }
        }
    }
}
