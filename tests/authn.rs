//! Authenticator against a real JWKS server on loopback: every token failure of issue 2, key
//! rotation through the unknown-kid refresh (rate-limited, shared), and the verified-token cache.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;
use common::{PATIENCE, eventually, skip_ahead};

use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use streetgate::authn::config::{AuthConfig, RawAuth};
use streetgate::authn::{AuthError, Authenticator};
use streetgate::reason::Reason;
use streetgate::telemetry::metrics::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://idp.test";
const AUD: &str = "streetgate";

// === JWKS server ===

/// Serves whatever JWKS it currently holds and counts requests.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(kids: &[&str]) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(jwks(kids)));
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, s, h) = (body.clone(), status.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (b, s, h) = (b.clone(), s.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let resp = Response::builder()
                            .status(StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap())
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(b.lock().unwrap().clone())))
                            .unwrap();
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        JwksServer {
            url: format!("http://{addr}/jwks.json"),
            body,
            status,
            hits,
        }
    }

    fn serve(&self, kids: &[&str]) {
        *self.body.lock().unwrap() = jwks(kids);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The fixture JWKS narrowed to `kids`.
fn jwks(kids: &[&str]) -> String {
    let all: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| kids.contains(&k["kid"].as_str().unwrap()))
        .cloned()
        .collect();
    json!({ "keys": keys }).to_string()
}

// === tokens ===

fn signing_key(kid: &str) -> (EncodingKey, Algorithm) {
    let pem = fixture(&format!("{kid}.pem"));
    match kid {
        "ec1" => (EncodingKey::from_ec_pem(&pem).unwrap(), Algorithm::ES256),
        "ed1" => (EncodingKey::from_ed_pem(&pem).unwrap(), Algorithm::EdDSA),
        _ => (EncodingKey::from_rsa_pem(&pem).unwrap(), Algorithm::RS256),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs any header, including ones `jsonwebtoken::encode` refuses to write.
fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

fn sign(kid: &str, alg: Algorithm, claims: &Value) -> String {
    let (key, _) = signing_key(kid);
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": sub, "org": "7001", "roles": ["Planner", "UI"],
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600,
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn token_header(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("token", HeaderValue::from_str(token).unwrap());
    h
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

// === authenticator set-up ===

fn raw_auth(jwks: Value, extra: Value) -> RawAuth {
    let mut auth = json!({ "issuer": ISS, "audience": AUD });
    auth["jwks"] = jwks;
    let Value::Object(extra) = extra else {
        panic!("extra must be an object")
    };
    for (k, v) in extra {
        auth[k] = v;
    }
    serde_json::from_value(auth).unwrap()
}

/// The section compiled as a config load compiles it.
fn compiled(raw: RawAuth) -> AuthConfig {
    AuthConfig::try_from(raw).unwrap()
}

fn url_jwks(url: &str, min_refresh: &str) -> Value {
    json!({ "url": { "url": url, "refresh_interval": "1h", "min_refresh_interval": min_refresh } })
}

fn file_jwks() -> Value {
    json!({ "file": format!("{}/tests/fixtures/keys/jwks.json", env!("CARGO_MANIFEST_DIR")) })
}

struct Harness {
    auth: Authenticator,
    metrics: Metrics,
    _shutdown: watch::Sender<bool>,
}

impl Harness {
    /// An authenticator on `server`'s JWKS, its first fetch done.
    async fn remote(server: &JwksServer, min_refresh: &str, extra: Value) -> Harness {
        let metrics = Metrics::new();
        let raw = raw_auth(url_jwks(&server.url, min_refresh), extra);
        let auth = Authenticator::new(&compiled(raw), metrics.clone()).unwrap();
        assert!(!auth.ready(), "no keys before the first fetch");
        let (tx, rx) = watch::channel(false);
        auth.spawn_refresh(rx);
        assert!(
            eventually(PATIENCE, || async { auth.ready() }).await,
            "timed out waiting for auth.ready()"
        );
        Harness {
            auth,
            metrics,
            _shutdown: tx,
        }
    }

    fn file(extra: Value) -> Harness {
        let metrics = Metrics::new();
        let auth =
            Authenticator::new(&compiled(raw_auth(file_jwks(), extra)), metrics.clone()).unwrap();
        let (tx, _) = watch::channel(false);
        Harness {
            auth,
            metrics,
            _shutdown: tx,
        }
    }

    async fn check(&self, headers: &HeaderMap, now: u64) -> Result<String, Reason> {
        self.auth
            .authenticate(headers, now)
            .await
            .map(|id| id.subject.to_string())
            .map_err(|e: AuthError| e.reason())
    }

    fn cache(&self, result: &str) -> u64 {
        self.metrics.token_cache.with_label_values(&[result]).get()
    }

    fn refreshes(&self, result: &str) -> u64 {
        self.metrics.jwks_refresh.with_label_values(&[result]).get()
    }
}

// === tests ===

#[tokio::test]
async fn happy_paths_for_every_algorithm() {
    let server = JwksServer::start(&["rsa1", "rsa2", "ec1", "ed1"]).await;
    let h = Harness::remote(&server, "10s", json!({})).await;
    assert_eq!(h.refreshes("ok"), 1);
    for (kid, alg) in [
        ("rsa1", Algorithm::RS256),
        ("rsa2", Algorithm::PS256),
        ("ec1", Algorithm::ES256),
        ("ed1", Algorithm::EdDSA),
    ] {
        let t = sign(kid, alg, &claims(kid));
        assert_eq!(h.check(&token_header(&t), NOW).await, Ok(kid.to_owned()));
        assert_eq!(h.check(&bearer(&t), NOW).await, Ok(kid.to_owned()));
    }
    let id = h
        .auth
        .authenticate(
            &token_header(&sign("ec1", Algorithm::ES256, &claims("x"))),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(&*id.organisation, "7001");
    assert_eq!(id.roles.header_value(), "Planner,UI");
    assert_eq!(server.hits(), 1, "known kids never refetch");
}

#[tokio::test]
async fn every_token_failure_has_its_reason() {
    let server = JwksServer::start(&["rsa1", "ec1"]).await;
    let h = Harness::remote(&server, "1h", json!({ "max_token_bytes": 2048 })).await;
    let (rsa, _) = signing_key("rsa1");
    let claims_b64 = b64(claims("a").to_string().as_bytes());
    let good = sign("rsa1", Algorithm::RS256, &claims("a"));
    let (input, sig) = good.rsplit_once('.').unwrap();
    let header_b64 = input.split_once('.').unwrap().0;
    let mut bad_sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bad_sig[0] ^= 0x80;
    let no_roles = {
        let mut c = claims("a");
        c.as_object_mut().unwrap().remove("roles");
        c
    };
    let no_exp = {
        let mut c = claims("a");
        c.as_object_mut().unwrap().remove("exp");
        c
    };

    let cases: Vec<(&str, HeaderMap, Reason)> = vec![
        ("no token", HeaderMap::new(), Reason::TokenMissing),
        (
            "alg none",
            token_header(&format!(
                "{}.{claims_b64}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#)
            )),
            Reason::TokenAlgorithm,
        ),
        (
            "HS256 signed with the RSA public key",
            token_header(&sign_raw(
                &json!({"alg": "HS256", "kid": "rsa1"}),
                &claims("a"),
                &EncodingKey::from_secret(&fixture("rsa1.pub.pem")),
                Algorithm::HS256,
            )),
            Reason::TokenAlgorithm,
        ),
        (
            "expired",
            token_header(&sign(
                "rsa1",
                Algorithm::RS256,
                &with(claims("a"), "exp", json!(NOW - 60)),
            )),
            Reason::TokenExpired,
        ),
        (
            "nbf in the future",
            token_header(&sign(
                "ec1",
                Algorithm::ES256,
                &with(claims("a"), "nbf", json!(NOW + 60)),
            )),
            Reason::TokenNotYetValid,
        ),
        (
            "wrong iss",
            token_header(&sign(
                "ec1",
                Algorithm::ES256,
                &with(claims("a"), "iss", json!("https://other.test")),
            )),
            Reason::TokenIssuer,
        ),
        (
            "wrong aud",
            token_header(&sign(
                "ec1",
                Algorithm::ES256,
                &with(claims("a"), "aud", json!(["billing"])),
            )),
            Reason::TokenAudience,
        ),
        (
            "tampered payload",
            token_header(&format!(
                "{header_b64}.{}.{sig}",
                b64(with(claims("a"), "sub", json!("admin"))
                    .to_string()
                    .as_bytes())
            )),
            Reason::TokenSignature,
        ),
        (
            "tampered signature",
            token_header(&format!("{input}.{}", b64(&bad_sig))),
            Reason::TokenSignature,
        ),
        (
            "oversized",
            token_header(&format!("{good}{}", "A".repeat(2048))),
            Reason::TokenTooLarge,
        ),
        (
            "crit header",
            token_header(&sign_raw(
                &json!({"alg": "RS256", "kid": "rsa1", "crit": ["exp"], "exp": 0}),
                &claims("a"),
                &rsa,
                Algorithm::RS256,
            )),
            Reason::TokenClaims,
        ),
        (
            "exclusive roles",
            token_header(&sign(
                "ec1",
                Algorithm::ES256,
                &with(claims("a"), "roles", json!(["Planner", "Contractor"])),
            )),
            Reason::TokenRoles,
        ),
        (
            "missing roles",
            token_header(&sign("ec1", Algorithm::ES256, &no_roles)),
            Reason::TokenClaims,
        ),
        (
            "missing exp",
            token_header(&sign("ec1", Algorithm::ES256, &no_exp)),
            Reason::TokenClaims,
        ),
        ("not a JWT", token_header("hello"), Reason::TokenMalformed),
        (
            "two different tokens",
            {
                let mut m = token_header(&good);
                m.insert(
                    "authorization",
                    HeaderValue::from_str(&format!(
                        "Bearer {}",
                        sign("ec1", Algorithm::ES256, &claims("b"))
                    ))
                    .unwrap(),
                );
                m
            },
            Reason::TokenMalformed,
        ),
    ];
    for (name, headers, reason) in cases {
        assert_eq!(h.check(&headers, NOW).await, Err(reason), "{name}");
    }
    // A rejected token is never cached: the good one is the first and only hit candidate.
    assert_eq!(h.cache("hit"), 0);
    assert_eq!(h.check(&token_header(&good), NOW).await, Ok("a".into()));
}

#[tokio::test]
async fn leeway_is_the_configured_one_both_ways() {
    let h = Harness::file(json!({ "leeway": "5s" }));
    let exp = sign(
        "ec1",
        Algorithm::ES256,
        &with(claims("a"), "exp", json!(NOW)),
    );
    assert!(h.check(&token_header(&exp), NOW + 4).await.is_ok());
    assert_eq!(
        h.check(&token_header(&exp), NOW + 5).await,
        Err(Reason::TokenExpired)
    );
    // The library's default of 60 s is not in force.
    assert_eq!(
        h.check(&token_header(&exp), NOW + 30).await,
        Err(Reason::TokenExpired)
    );
    let nbf = sign(
        "ec1",
        Algorithm::ES256,
        &with(claims("a"), "nbf", json!(NOW + 5)),
    );
    assert!(h.check(&token_header(&nbf), NOW).await.is_ok());
    let nbf = sign(
        "ec1",
        Algorithm::ES256,
        &with(claims("a"), "nbf", json!(NOW + 6)),
    );
    assert_eq!(
        h.check(&token_header(&nbf), NOW).await,
        Err(Reason::TokenNotYetValid)
    );
    let iat = sign(
        "ec1",
        Algorithm::ES256,
        &with(with(claims("a"), "iat", json!(NOW + 30)), "nbf", json!(NOW)),
    );
    assert_eq!(
        h.check(&token_header(&iat), NOW).await,
        Err(Reason::TokenNotYetValid)
    );
}

#[tokio::test]
async fn unknown_kid_refreshes_once_rate_limited() {
    let server = JwksServer::start(&["rsa1"]).await;
    let h = Harness::remote(&server, "1s", json!({})).await;
    assert_eq!(server.hits(), 1);

    // Rotation: the issuer publishes ec1 and starts signing with it.
    server.serve(&["rsa1", "ec1"]);
    let rotated = sign("ec1", Algorithm::ES256, &claims("new"));
    // Just after the first fetch, the unknown kid is inside the rate limit.
    assert_eq!(
        h.check(&token_header(&rotated), NOW).await,
        Err(Reason::TokenUnknownKey)
    );
    assert_eq!(server.hits(), 1);
    assert_eq!(h.refreshes("rate_limited"), 1);

    skip_ahead(Duration::from_millis(1100)).await;
    // Many concurrent requests with the new kid share one fetch.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let auth = h.auth.clone();
        let t = sign("ec1", Algorithm::ES256, &claims(&format!("u{i}")));
        tasks.push(tokio::spawn(async move {
            auth.authenticate(&token_header(&t), NOW).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(server.hits(), 2, "one refresh for all of them");

    // A kid the JWKS does not have: the fetch just happened, so no new one.
    let (k, alg) = signing_key("rsa1");
    let stray = sign_raw(
        &json!({"alg": "RS256", "kid": "gone"}),
        &claims("a"),
        &k,
        alg,
    );
    for _ in 0..5 {
        assert_eq!(
            h.check(&token_header(&stray), NOW).await,
            Err(Reason::TokenUnknownKey)
        );
    }
    assert_eq!(server.hits(), 2);
    skip_ahead(Duration::from_millis(1100)).await;
    assert_eq!(
        h.check(&token_header(&stray), NOW).await,
        Err(Reason::TokenUnknownKey)
    );
    assert_eq!(server.hits(), 3, "allowed again after min_refresh_interval");
    assert_eq!(h.refreshes("ok"), 3);
}

#[tokio::test]
async fn keys_unavailable_until_the_first_good_fetch() {
    let server = JwksServer::start(&["ec1"]).await;
    server.status.store(500, Ordering::SeqCst);
    let metrics = Metrics::new();
    let jwks = json!({ "url": {
        "url": server.url, "refresh_interval": "200ms", "min_refresh_interval": "10ms",
    }});
    let auth = Authenticator::new(&compiled(raw_auth(jwks, json!({}))), metrics.clone()).unwrap();
    let t = sign("ec1", Algorithm::ES256, &claims("a"));
    let (tx, rx) = watch::channel(false);
    let refresh = auth
        .spawn_refresh(rx)
        .expect("a JWKS URL has a refresh task");
    // The failed fetch is counted once its answer is read, after the server saw it.
    let failed = metrics.jwks_refresh.with_label_values(&["error"]);
    assert!(
        eventually(PATIENCE, || async { failed.get() >= 1 }).await,
        "timed out waiting for a failed JWKS fetch to be counted"
    );
    assert!(server.hits() >= 1);
    assert!(!auth.ready());
    let err = auth.authenticate(&token_header(&t), NOW).await.unwrap_err();
    assert_eq!(err.reason(), Reason::KeysUnavailable);
    // Retries on its own, then keeps refreshing every refresh_interval.
    server.status.store(200, Ordering::SeqCst);
    assert!(
        eventually(PATIENCE, || async { auth.ready() }).await,
        "timed out waiting for auth.ready()"
    );
    assert!(auth.authenticate(&token_header(&t), NOW).await.is_ok());
    let loaded_at = server.hits();
    assert!(
        eventually(PATIENCE, || async { server.hits() >= loaded_at + 2 }).await,
        "timed out waiting for server.hits() >= loaded_at + 2"
    );

    // After shutdown, no more fetches.
    tx.send(true).unwrap();
    tokio::time::timeout(PATIENCE, refresh)
        .await
        .expect("the refresh task ends on shutdown")
        .unwrap();
    let hits = server.hits();
    skip_ahead(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    assert_eq!(server.hits(), hits);
}

#[tokio::test]
async fn invalid_jwks_keeps_the_previous_keys() {
    let server = JwksServer::start(&["rsa1"]).await;
    let h = Harness::remote(&server, "1ms", json!({})).await;
    *server.body.lock().unwrap() = r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#.into();
    let (k, alg) = signing_key("rsa1");
    let stray = sign_raw(&json!({"alg": "RS256", "kid": "x"}), &claims("a"), &k, alg);
    skip_ahead(Duration::from_millis(5)).await;
    assert_eq!(
        h.check(&token_header(&stray), NOW).await,
        Err(Reason::TokenUnknownKey)
    );
    assert_eq!(server.hits(), 2);
    assert_eq!(h.refreshes("invalid"), 1);
    let t = sign("rsa1", Algorithm::RS256, &claims("a"));
    assert_eq!(h.check(&token_header(&t), NOW).await, Ok("a".into()));
}

#[tokio::test]
async fn cache_hit_skips_verification_while_its_key_lasts() {
    let server = JwksServer::start(&["rsa1"]).await;
    let h = Harness::remote(&server, "1ms", json!({})).await;
    let cached = sign("rsa1", Algorithm::RS256, &claims("cached"));
    assert_eq!(
        h.check(&token_header(&cached), NOW).await,
        Ok("cached".into())
    );
    assert_eq!((h.cache("hit"), h.cache("miss")), (0, 1));

    // The issuer drops rsa1; a token for a new kid makes us fetch the new set.
    server.serve(&["ec1"]);
    skip_ahead(Duration::from_millis(5)).await;
    let rotated = sign("ec1", Algorithm::ES256, &claims("rotated"));
    assert_eq!(
        h.check(&token_header(&rotated), NOW).await,
        Ok("rotated".into())
    );
    assert_eq!(server.hits(), 2);

    // A cached token dies with its key: it fails exactly as a fresh token from that key.
    assert_eq!(
        h.check(&bearer(&cached), NOW + 10).await,
        Err(Reason::TokenUnknownKey)
    );
    skip_ahead(Duration::from_millis(5)).await;
    let fresh = sign("rsa1", Algorithm::RS256, &claims("fresh"));
    assert_eq!(
        h.check(&token_header(&fresh), NOW).await,
        Err(Reason::TokenUnknownKey)
    );
    // The rotated key's token is served from the cache.
    assert_eq!(
        h.check(&token_header(&rotated), NOW + 10).await,
        Ok("rotated".into())
    );
    assert_eq!(h.cache("hit"), 1);
}

#[tokio::test]
async fn cache_entry_dies_at_exp() {
    let h = Harness::file(json!({ "leeway": "5s" }));
    let t = sign(
        "ed1",
        Algorithm::EdDSA,
        &with(claims("a"), "exp", json!(NOW + 10)),
    );
    let headers = token_header(&t);
    assert!(h.check(&headers, NOW).await.is_ok());
    assert!(h.check(&headers, NOW + 9).await.is_ok());
    assert_eq!((h.cache("hit"), h.cache("miss")), (1, 1));
    // Inside the leeway the token still verifies, but it is not served from (or put back in)
    // the cache once `exp` has passed.
    assert!(h.check(&headers, NOW + 10).await.is_ok());
    assert!(h.check(&headers, NOW + 11).await.is_ok());
    assert_eq!((h.cache("hit"), h.cache("miss")), (1, 3));
    assert_eq!(h.check(&headers, NOW + 15).await, Err(Reason::TokenExpired));
}

#[tokio::test]
async fn cache_is_bounded() {
    let h = Harness::file(json!({ "token_cache_entries": 2 }));
    let tokens: Vec<HeaderMap> = (0..6)
        .map(|i| token_header(&sign("ec1", Algorithm::ES256, &claims(&format!("u{i}")))))
        .collect();
    for t in &tokens {
        assert!(h.check(t, NOW).await.is_ok());
    }
    assert_eq!(h.cache("miss"), 6);
    for t in &tokens {
        assert!(h.check(t, NOW).await.is_ok());
    }
    // At most two of the six could still be cached.
    assert!(h.cache("hit") <= 2, "hits: {}", h.cache("hit"));
    assert!(h.cache("miss") >= 10);
}

#[tokio::test]
async fn hs256_secret_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    let secret = "an-hs256-secret-of-at-least-32-bytes";
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    let raw: RawAuth = serde_json::from_value(json!({
        "hs256_secret": { "file": path },
        "algorithms": ["HS256"],
        "issuer": ISS, "audience": AUD,
    }))
    .unwrap();
    let auth = Authenticator::new(&compiled(raw.clone()), Metrics::new()).unwrap();
    assert!(auth.ready());
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("whatever".into());
    let good = jsonwebtoken::encode(
        &header,
        &claims("h"),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        auth.authenticate(&token_header(&good), NOW)
            .await
            .unwrap()
            .subject
            .as_ref(),
        "h"
    );
    let rs = sign("rsa1", Algorithm::RS256, &claims("r"));
    assert_eq!(
        auth.authenticate(&token_header(&rs), NOW)
            .await
            .unwrap_err()
            .reason(),
        Reason::TokenAlgorithm
    );

    std::fs::write(&path, "short").unwrap();
    let problems = AuthConfig::try_from(raw).unwrap_err().to_string();
    assert!(problems.contains("auth.hs256_secret.file"), "{problems}");
}

#[tokio::test]
async fn setup_errors_name_the_problem() {
    let missing: RawAuth = serde_json::from_value(json!({
        "jwks": { "file": "/nonexistent/jwks.json" }, "issuer": ISS, "audience": AUD,
    }))
    .unwrap();
    let err = AuthConfig::try_from(missing).unwrap_err().to_string();
    assert!(
        err.contains("auth.jwks.file: /nonexistent/jwks.json"),
        "{err}"
    );

    let mixed = raw_auth(file_jwks(), json!({ "algorithms": ["RS256", "HS256"] }));
    let err = AuthConfig::try_from(mixed).unwrap_err().to_string();
    assert!(
        err.contains("auth.algorithms[1]: HS256 needs auth.hs256_secret"),
        "{err}"
    );
}
