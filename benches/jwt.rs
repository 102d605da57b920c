//! JWT cost on the request path: a cold verification (signature + claims, cache bypassed) per
//! algorithm, and a verified-token cache hit through `Authenticator::authenticate`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use streetgate::authn::Authenticator;
use streetgate::authn::cache::TokenCache;
use streetgate::authn::config::{AuthConfig, ClaimNames, RawAuth};
use streetgate::authn::keys::{AlgSet, KeySet};
use streetgate::authn::verify::{Keys, Policy};
use streetgate::telemetry::metrics::Metrics;

const NOW: u64 = 1_800_000_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn token(kid: &str, alg: Algorithm, key: &EncodingKey) -> String {
    let header = json!({"alg": format!("{alg:?}"), "kid": kid, "typ": "JWT"});
    let claims = json!({
        "iss": "https://idp.test", "aud": "streetgate", "sub": "user-a", "org": "7001",
        "roles": ["Planner", "UI"], "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{sig}")
}

fn cold(c: &mut Criterion) {
    let keys = KeySet::from_jwks(&fixture("jwks.json"), AlgSet::all_public()).expect("jwks");
    let policy = Policy {
        algorithms: AlgSet::all_public(),
        issuer: "https://idp.test".into(),
        audience: "streetgate".into(),
        leeway: 5,
        claims: ClaimNames::default(),
        model: streetgate::model::Model::StreetManager,
    };
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa1.pem")).expect("rsa key");
    let ec = EncodingKey::from_ec_pem(&fixture("ec1.pem")).expect("ec key");
    let ed = EncodingKey::from_ed_pem(&fixture("ed1.pem")).expect("ed key");
    for (name, t) in [
        ("verify_cold/RS256", token("rsa1", Algorithm::RS256, &rsa)),
        ("verify_cold/PS256", token("rsa1", Algorithm::PS256, &rsa)),
        ("verify_cold/ES256", token("ec1", Algorithm::ES256, &ec)),
        ("verify_cold/EdDSA", token("ed1", Algorithm::EdDSA, &ed)),
    ] {
        assert!(policy.verify_token(&t, Keys::Jwks(&keys), NOW).is_ok());
        c.bench_function(name, |b| {
            b.iter(|| policy.verify_token(black_box(&t), Keys::Jwks(&keys), NOW))
        });
    }
}

fn cache_hit(c: &mut Criterion) {
    let raw: RawAuth = serde_json::from_value(json!({
        "jwks": { "file": format!("{}/tests/fixtures/keys/jwks.json", env!("CARGO_MANIFEST_DIR")) },
        "issuer": "https://idp.test", "audience": "streetgate",
    }))
    .expect("auth config");
    let auth = Authenticator::new(
        &AuthConfig::try_from(raw).expect("auth section"),
        Metrics::new(),
    )
    .expect("authenticator");
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa1.pem")).expect("rsa key");
    let mut headers = HeaderMap::new();
    headers.insert(
        "token",
        HeaderValue::from_str(&token("rsa1", Algorithm::RS256, &rsa)).expect("header"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(auth.authenticate(&headers, NOW))
        .expect("first verification");
    c.bench_function("authenticate/cache_hit", |b| {
        b.iter(|| rt.block_on(auth.authenticate(black_box(&headers), NOW)))
    });

    // The cache alone (token hash + map lookup), to separate it from extraction and the runtime.
    let cache = TokenCache::new(100_000);
    let t = headers["token"].to_str().expect("ascii");
    let identity = rt
        .block_on(auth.authenticate(&headers, NOW))
        .expect("cached");
    cache.insert(cache.key(t), identity, None, NOW);
    c.bench_function("token_cache/hit", |b| {
        b.iter(|| cache.get(&cache.key(black_box(t)), NOW, None))
    });

    // The entry key alone, side by side with the SHA-256 key it replaced.
    c.bench_function("token_cache/key_siphash13_128", |b| {
        b.iter(|| cache.key(black_box(t)))
    });
    c.bench_function("token_cache/key_sha256", |b| {
        b.iter(|| {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(t).as_bytes());
            let mut key = [0u8; 32];
            key.copy_from_slice(d.as_ref());
            key
        })
    });
}

criterion_group!(benches, cold, cache_hit);
criterion_main!(benches);
