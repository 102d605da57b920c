use super::*;
use crate::authn::identity::Role;
use crate::authn::keys::SUPPORTED;
use crate::reason::Reason;
use jsonwebtoken::EncodingKey;
use serde_json::json;

const NOW: u64 = 1_800_000_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn public_algs() -> AlgSet {
    SUPPORTED
        .iter()
        .fold(AlgSet::EMPTY, |s, (_, a)| s.with(*a))
        .without(Algorithm::HS256)
}

fn policy(algorithms: AlgSet) -> Policy {
    Policy {
        algorithms,
        issuer: "https://idp.test".into(),
        audience: "streetgate".into(),
        leeway: 5,
        claims: ClaimNames::default(),
        model: crate::model::Model::StreetManager,
    }
}

fn jwks() -> KeySet {
    KeySet::from_jwks(&fixture("jwks.json"), public_algs()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key(name: &str) -> (EncodingKey, Algorithm) {
    let pem = fixture(&format!("{name}.pem"));
    match name {
        "ec1" => (EncodingKey::from_ec_pem(&pem).unwrap(), Algorithm::ES256),
        "ed1" => (EncodingKey::from_ed_pem(&pem).unwrap(), Algorithm::EdDSA),
        _ => (EncodingKey::from_rsa_pem(&pem).unwrap(), Algorithm::RS256),
    }
}

/// Signs any header and claims, including ones `jsonwebtoken::encode` would refuse to write.
fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

fn claims() -> Value {
    json!({
        "iss": "https://idp.test", "aud": "streetgate", "sub": "user-a",
        "org": "7001", "roles": ["Planner", "UI"],
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600,
    })
}

fn token_with(kid: &str, alg: Algorithm, claims: &Value) -> String {
    let (k, _) = key(kid);
    let header = json!({"alg": alg_name(alg), "kid": kid, "typ": "JWT"});
    sign(&header, claims, &k, alg)
}

fn token(kid: &str, claims: &Value) -> String {
    token_with(kid, key(kid).1, claims)
}

fn check(token: &str, now: u64) -> Result<Identity, Reason> {
    policy(public_algs())
        .verify_token(token, Keys::Jwks(&jwks()), now)
        .map_err(|e| e.reason())
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

#[test]
fn every_public_algorithm_verifies() {
    for (kid, alg) in [
        ("rsa1", Algorithm::RS256),
        ("rsa2", Algorithm::PS256),
        ("ec1", Algorithm::ES256),
        ("ed1", Algorithm::EdDSA),
    ] {
        let id = check(&token_with(kid, alg, &claims()), NOW).unwrap();
        assert_eq!(&*id.subject, "user-a", "{kid}");
        assert_eq!(&*id.organisation, "7001");
        assert_eq!(id.roles, RoleSet::of(&[Role::Planner, Role::Ui]));
        assert_eq!(id.expires_at, NOW + 600);
        assert_eq!(id.issued_at, Some(NOW - 10));
    }
}

#[test]
fn alg_none_and_unlisted_algorithms_are_rejected() {
    let claims_b64 = b64(claims().to_string().as_bytes());
    for alg in ["none", "None", "HS512", "RS512", ""] {
        let header = b64(json!({"alg": alg, "kid": "rsa1"}).to_string().as_bytes());
        assert_eq!(
            check(&format!("{header}.{claims_b64}."), NOW),
            Err(Reason::TokenAlgorithm),
            "{alg}"
        );
    }
    // Allowed in general but not configured here.
    let only_es = policy(AlgSet::EMPTY.with(Algorithm::ES256));
    let set = jwks();
    assert_eq!(
        only_es
            .verify_token(&token("rsa1", &claims()), Keys::Jwks(&set), NOW)
            .map_err(|e| e.reason()),
        Err(Reason::TokenAlgorithm)
    );
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    let public_pem = fixture("rsa1.pub.pem");
    let forged = sign(
        &json!({"alg": "HS256", "kid": "rsa1"}),
        &claims(),
        &EncodingKey::from_secret(&public_pem),
        Algorithm::HS256,
    );
    assert_eq!(check(&forged, NOW), Err(Reason::TokenAlgorithm));
    // Even with HS256 on the allow-list, JWKS keys never verify it.
    let set = jwks();
    let lax = policy(public_algs().with(Algorithm::HS256));
    assert_eq!(
        lax.verify_token(&forged, Keys::Jwks(&set), NOW)
            .map_err(|e| e.reason()),
        Err(Reason::TokenAlgorithm)
    );
}

#[test]
fn hs256_secret_only_verifies_hs256() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let hs = policy(AlgSet::EMPTY.with(Algorithm::HS256).with(Algorithm::RS256));
    let dk = DecodingKey::from_secret(secret);
    let good = sign(
        &json!({"alg": "HS256"}),
        &claims(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    );
    assert!(hs.verify_token(&good, Keys::Secret(&dk), NOW).is_ok());
    let rs = token("rsa1", &claims());
    assert_eq!(
        hs.verify_token(&rs, Keys::Secret(&dk), NOW)
            .map_err(|e| e.reason()),
        Err(Reason::TokenAlgorithm)
    );
}

#[test]
fn key_type_must_fit_the_token_alg() {
    // An ES256 header naming an RSA key.
    let (ec, _) = key("ec1");
    let t = sign(
        &json!({"alg": "ES256", "kid": "rsa1"}),
        &claims(),
        &ec,
        Algorithm::ES256,
    );
    assert_eq!(check(&t, NOW), Err(Reason::TokenAlgorithm));
}

#[test]
fn unknown_kid_and_ambiguous_missing_kid() {
    let (k, alg) = key("rsa1");
    let t = sign(&json!({"alg": "RS256", "kid": "other"}), &claims(), &k, alg);
    assert_eq!(check(&t, NOW), Err(Reason::TokenUnknownKey));
    // Two RSA keys: a token without kid does not get to try both.
    let t = sign(&json!({"alg": "RS256"}), &claims(), &k, alg);
    assert_eq!(check(&t, NOW), Err(Reason::TokenUnknownKey));
    // One Ed25519 key: unambiguous.
    let (k, alg) = key("ed1");
    let t = sign(&json!({"alg": "EdDSA"}), &claims(), &k, alg);
    assert!(check(&t, NOW).is_ok());
}

#[test]
fn signature_is_checked_against_the_named_key() {
    let (k2, alg) = key("rsa2");
    let t = sign(&json!({"alg": "RS256", "kid": "rsa1"}), &claims(), &k2, alg);
    assert_eq!(check(&t, NOW), Err(Reason::TokenSignature));
}

#[test]
fn tampering_breaks_the_signature() {
    let t = token("rsa1", &claims());
    let (signing_input, sig) = t.rsplit_once('.').unwrap();
    let (header, _) = signing_input.split_once('.').unwrap();
    let admin = with(claims(), "roles", json!(["Admin", "UI"]));
    let tampered = format!("{header}.{}.{sig}", b64(admin.to_string().as_bytes()));
    assert_eq!(check(&tampered, NOW), Err(Reason::TokenSignature));

    let mut bad_sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bad_sig[10] ^= 1;
    let tampered = format!("{signing_input}.{}", b64(&bad_sig));
    assert_eq!(check(&tampered, NOW), Err(Reason::TokenSignature));

    bad_sig.pop();
    let truncated = format!("{signing_input}.{}", b64(&bad_sig));
    assert_eq!(check(&truncated, NOW), Err(Reason::TokenSignature));
}

#[test]
fn malformed_tokens() {
    let t = token("ec1", &claims());
    let parts: Vec<&str> = t.split('.').collect();
    for bad in [
        "".to_owned(),
        "abc".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{t}.x"),
        format!("!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"[1]"), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"ES256","alg":"RS256"}"#),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.***", parts[0], parts[1]),
    ] {
        assert_eq!(check(&bad, NOW), Err(Reason::TokenMalformed), "{bad}");
    }
}

#[test]
fn crit_header_is_rejected() {
    let (k, alg) = key("ec1");
    for crit in [json!(["exp"]), json!(["b64"]), json!([])] {
        let t = sign(
            &json!({"alg": "ES256", "kid": "ec1", "crit": crit, "b64": true, "exp": 1}),
            &claims(),
            &k,
            alg,
        );
        assert_eq!(check(&t, NOW), Err(Reason::TokenClaims), "{crit}");
    }
}

#[test]
fn expiry_with_leeway_both_ways() {
    let t = token("ec1", &claims());
    let exp = NOW + 600;
    assert!(check(&t, exp - 1).is_ok());
    assert!(check(&t, exp + 4).is_ok(), "inside the 5 s leeway");
    assert_eq!(check(&t, exp + 5), Err(Reason::TokenExpired));
    assert_eq!(check(&t, exp + 3600), Err(Reason::TokenExpired));
}

#[test]
fn not_before_and_issued_at_with_leeway() {
    let future = with(claims(), "nbf", json!(NOW + 100));
    let t = token("ec1", &future);
    assert_eq!(check(&t, NOW), Err(Reason::TokenNotYetValid));
    assert_eq!(check(&t, NOW + 94), Err(Reason::TokenNotYetValid));
    assert!(check(&t, NOW + 95).is_ok(), "inside the 5 s leeway");

    let iat = without(with(claims(), "iat", json!(NOW + 100)), "nbf");
    let t = token("ec1", &iat);
    assert_eq!(check(&t, NOW + 94), Err(Reason::TokenNotYetValid));
    assert!(check(&t, NOW + 95).is_ok());

    // nbf and iat are optional; exp is not.
    assert!(
        check(
            &token("ec1", &without(without(claims(), "nbf"), "iat")),
            NOW
        )
        .is_ok()
    );
}

#[test]
fn issuer_and_audience() {
    let t = token("ec1", &with(claims(), "iss", json!("https://evil.test")));
    assert_eq!(check(&t, NOW), Err(Reason::TokenIssuer));
    let t = token("ec1", &with(claims(), "aud", json!("other")));
    assert_eq!(check(&t, NOW), Err(Reason::TokenAudience));
    let t = token(
        "ec1",
        &with(claims(), "aud", json!(["other", "streetgate"])),
    );
    assert!(check(&t, NOW).is_ok());
    let t = token("ec1", &with(claims(), "aud", json!(["other"])));
    assert_eq!(check(&t, NOW), Err(Reason::TokenAudience));
    let t = token("ec1", &with(claims(), "aud", json!([1, "streetgate"])));
    assert_eq!(check(&t, NOW), Err(Reason::TokenClaims));
}

#[test]
fn required_claims_and_types() {
    for name in ["exp", "iss", "aud", "sub", "org", "roles"] {
        let t = token("ec1", &without(claims(), name));
        assert_eq!(check(&t, NOW), Err(Reason::TokenClaims), "missing {name}");
    }
    for (name, value) in [
        ("exp", json!("tomorrow")),
        ("exp", json!(-1)),
        ("nbf", json!(null)),
        ("iat", json!(true)),
        ("iss", json!(7)),
        ("sub", json!("")),
        ("sub", json!(["a"])),
        ("org", json!(7001)),
        ("org", json!("70011")),
        ("roles", json!({"Planner": true})),
        ("roles", json!(["Planner", 1])),
    ] {
        let t = token("ec1", &with(claims(), name, value.clone()));
        assert_eq!(check(&t, NOW), Err(Reason::TokenClaims), "{name}={value}");
    }
    let not_object = format!(
        "{}.{}.",
        b64(json!({"alg": "ES256", "kid": "ec1"}).to_string().as_bytes()),
        b64(b"[]")
    );
    let (k, alg) = key("ec1");
    let (input, _) = not_object.rsplit_once('.').unwrap();
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &k, alg).unwrap();
    assert_eq!(
        check(&format!("{input}.{sig}"), NOW),
        Err(Reason::TokenMalformed)
    );
}

#[test]
fn fractional_dates_are_accepted() {
    let t = token(
        "ec1",
        &with(claims(), "exp", json!((NOW + 60) as f64 + 0.5)),
    );
    assert_eq!(check(&t, NOW).unwrap().expires_at, NOW + 60);
}

#[test]
fn roles_claim() {
    let t = token("ec1", &with(claims(), "roles", json!("HighwayAuthority")));
    assert_eq!(
        check(&t, NOW).unwrap().roles,
        RoleSet::of(&[Role::HighwayAuthority])
    );
    for bad in [
        json!(["Planner", "Contractor"]),
        json!(["UI", "API"]),
        json!(["Superuser"]),
        json!("StreetWorksAdmin"),
    ] {
        let t = token("ec1", &with(claims(), "roles", bad.clone()));
        assert_eq!(check(&t, NOW), Err(Reason::TokenRoles), "{bad}");
    }
}

#[test]
fn claim_names_are_configurable() {
    let mut p = policy(public_algs());
    p.claims = ClaimNames {
        subject: "preferred_username".into(),
        roles: "groups".into(),
        organisation: "swa".into(),
        first_party_clients: Vec::new(),
    };
    let c = json!({
        "iss": "https://idp.test", "aud": "streetgate", "exp": NOW + 60,
        "preferred_username": "jo", "groups": ["Admin"], "swa": "C901",
    });
    let set = jwks();
    let id = p
        .verify_token(&token("ec1", &c), Keys::Jwks(&set), NOW)
        .unwrap();
    assert_eq!(&*id.subject, "jo");
    assert_eq!(&*id.organisation, "C901");
    assert_eq!(id.roles, RoleSet::of(&[Role::Admin]));
}
