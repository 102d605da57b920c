//! `check-config` problems for the `auth` section that the authenticator would otherwise only
//! discover at start-up.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

use streetgate::config::Config;

fn config(auth: &str) -> String {
    format!(
        "listen: {{ addr: \"127.0.0.1:8080\" }}\n\
         auth: {auth}\n\
         apis:\n\
         - name: works\n\
         \x20 upstream: http://127.0.0.1:9000\n\
         \x20 routes:\n\
         \x20 - {{ id: health, route: GET /health, allow: public }}\n"
    )
}

fn problems(auth: &str) -> Vec<String> {
    match Config::from_yaml(&config(auth)) {
        Ok(_) => Vec::new(),
        Err(p) => p
            .iter()
            .map(|p| format!("{}: {}", p.location, p.message))
            .collect(),
    }
}

fn fixture_jwks() -> String {
    format!(
        "{}/tests/fixtures/keys/jwks.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn good_auth_sections_pass() {
    let file = format!(
        "{{ jwks: {{file: {:?}}}, issuer: i, audience: a }}",
        fixture_jwks()
    );
    assert_eq!(problems(&file), Vec::<String>::new());
    let url = "{ jwks: {url: { url: \"https://idp.test/jwks\" }}, issuer: i, audience: a }";
    assert_eq!(problems(url), Vec::<String>::new());
}

#[test]
fn auth_problems_are_located() {
    let cases = [
        (
            "{ jwks: {file: /nonexistent/jwks.json}, issuer: i, audience: a }",
            "auth.jwks.file",
        ),
        (
            "{ jwks: {url: { url: \"ftp://idp.test/jwks\" }}, issuer: i, audience: a }",
            "auth.jwks.url.url",
        ),
        (
            "{ jwks: {url: { url: \"https://idp.test/jwks\", refresh_interval: 5s, min_refresh_interval: 1m }}, issuer: i, audience: a }",
            "auth.jwks.url.min_refresh_interval",
        ),
        (
            "{ jwks: {url: { url: \"https://idp.test/jwks\" }}, issuer: i, audience: a, token_sources: [{header: \"bad header\"}] }",
            "auth.token_sources[0]",
        ),
        (
            "{ jwks: {url: { url: \"https://idp.test/jwks\" }}, issuer: i, audience: a, token_sources: [bearer, bearer] }",
            "auth.token_sources[1]",
        ),
        (
            "{ jwks: {url: { url: \"https://idp.test/jwks\" }}, issuer: i, audience: a, max_token_bytes: 10 }",
            "auth.max_token_bytes",
        ),
        (
            "{ hs256_secret: {file: /nonexistent/secret}, algorithms: [HS256], issuer: i, audience: a }",
            "auth.hs256_secret.file",
        ),
    ];
    for (auth, location) in cases {
        let found = problems(auth);
        assert!(
            found.iter().any(|p| p.starts_with(location)),
            "{location} not in {found:?}"
        );
    }
}

#[test]
fn a_jwks_file_without_usable_keys_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).unwrap();
    let found = problems(&format!(
        "{{ jwks: {{file: {:?}}}, issuer: i, audience: a }}",
        path
    ));
    assert!(
        found.iter().any(|p| p.contains("no usable signing key")),
        "{found:?}"
    );
}
