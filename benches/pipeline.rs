//! The request path's CPU work for a repeat caller, through the real pipeline pieces: target
//! checks, route match (`Router::lookup`), authentication from the token cache
//! (`Authenticator::authenticate`, a hit), and the decision (`authz::decide`) against a snapshot
//! of realistic size, on a route that needs a workstream grant. Goal: decision ≤ 1 µs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Uri, Version, header};
use streetgate::authn::Authenticator;
use streetgate::authn::identity::Identity;
use streetgate::authz::rule::ValueSource;
use streetgate::authz::{self, RequestFacts, SwaCodeParam};
use streetgate::config::Config;
use streetgate::grants::Snapshot;
use streetgate::grants::overlay::{CreatedWorks, Works};
use streetgate::grants::synthetic::synthetic_document;
use streetgate::normalize;
use streetgate::proxy::unix_now;
use streetgate::telemetry::metrics::Metrics;

const ISSUER: &str = "https://auth.bench.invalid/";
const AUDIENCE: &str = "street-manager";
/// user-0 (Planner, promoter 0000) reads work 100 through read-only on workstream 004.
const PATH: &str = "/work/works/SW00000000100";

fn config() -> Config {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");
    let yaml = format!(
        r#"
listen: {{addr: "127.0.0.1:0"}}
auth:
  jwks: {{file: {keys}/jwks.json}}
  issuer: {ISSUER}
  audience: {AUDIENCE}
grants:
  source: {{file: {{path: /nonexistent/grants.json}}}}
apis:
  - name: work
    prefix: /work
    upstream: http://127.0.0.1:1
    routes:
      - id: work.GetWork
        route: GET /works/{{workReferenceNumber}}
        allow: {{roles: [Planner, Contractor, HighwayAuthority]}}
        access: {{read_work: {{path: workReferenceNumber}}}}
      - id: work.GetPermit
        route: GET /works/{{workReferenceNumber}}/permits/{{permitReferenceNumber}}
        allow: {{roles: [Planner, Contractor, HighwayAuthority]}}
        access: map_view
"#
    );
    Config::from_yaml(&yaml).unwrap_or_else(|p| panic!("bench config invalid:\n{p}"))
}

fn token() -> String {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keys/rsa1.pem"
    ))
    .unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa1".into());
    let now = unix_now();
    let claims = serde_json::json!({
        "sub": "user-0", "org": "0000", "roles": ["Planner"],
        "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 3600,
    });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// Polls a future that completes without waiting (a token-cache hit) to its result.
fn ready<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a cache hit should not wait"),
    }
}

fn bench(c: &mut Criterion) {
    let config = config();
    let auth = Authenticator::new(&config.auth, Metrics::new()).unwrap();
    let snapshot = Snapshot::from_json(&synthetic_document(200, 10_000, 100_000), None).unwrap();
    let created = CreatedWorks::default();
    let works = Works {
        snapshot: &snapshot,
        created: &created,
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("gw.bench"));
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", token())).unwrap(),
    );
    let uri: Uri = PATH.parse().unwrap();
    let now = unix_now();
    // The first call verifies the signature and fills the cache; the bench measures hits.
    let identity: Arc<Identity> = ready(auth.authenticate(&headers, now)).unwrap();

    let matched = config.router.lookup(&Method::GET, PATH).unwrap();
    let rule = &matched.route.rule;
    let ValueSource::Path(param) = rule.access.source().unwrap().clone() else {
        panic!("GetWork takes the work from the path");
    };
    let facts = RequestFacts {
        resource: matched.param(&param),
        swa_code: SwaCodeParam::Absent,
        body: None,
        api: "work",
    };
    assert!(authz::decide(rule, Some(&identity), Some(works), &facts, now).allowed());

    let mut group = c.benchmark_group("pipeline");
    group.bench_function("route_lookup", |b| {
        b.iter(|| {
            config
                .router
                .lookup(black_box(&Method::GET), black_box(PATH))
                .is_some()
        })
    });
    group.bench_function("authenticate_cache_hit", |b| {
        b.iter(|| ready(auth.authenticate(black_box(&headers), now)).is_ok())
    });
    group.bench_function("decide_workstream_read", |b| {
        b.iter(|| authz::decide(rule, Some(&identity), Some(works), black_box(&facts), now))
    });
    group.bench_function("check_route_authenticate_decide", |b| {
        b.iter(|| {
            let target = normalize::check(
                &Method::GET,
                black_box(&uri),
                Version::HTTP_11,
                black_box(&headers),
            )
            .unwrap();
            let matched = config.router.lookup(&Method::GET, target.path).unwrap();
            let identity = ready(auth.authenticate(&headers, now)).unwrap();
            let facts = RequestFacts {
                resource: matched.param(&param),
                swa_code: SwaCodeParam::Absent,
                body: None,
                api: "work",
            };
            authz::decide(
                &matched.route.rule,
                Some(&identity),
                Some(works),
                &facts,
                now,
            )
            .allowed()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
