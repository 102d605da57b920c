//! Verification keys from a JWKS document. Each key knows which algorithms it may verify, from
//! its own `kty`/`crv`/`alg`, so a token cannot choose how its key is interpreted (the HS/RS
//! confusion: symmetric `oct` keys are never taken from a JWKS).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// Algorithms streetgate verifies, as a bitmask so "may this key verify alg X" is one AND.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgSet(u8);

pub const SUPPORTED: [(&str, Algorithm); 5] = [
    ("RS256", Algorithm::RS256),
    ("PS256", Algorithm::PS256),
    ("ES256", Algorithm::ES256),
    ("EdDSA", Algorithm::EdDSA),
    ("HS256", Algorithm::HS256),
];

impl AlgSet {
    pub const EMPTY: AlgSet = AlgSet(0);

    fn bit(alg: Algorithm) -> u8 {
        match alg {
            Algorithm::RS256 => 1,
            Algorithm::PS256 => 2,
            Algorithm::ES256 => 4,
            Algorithm::EdDSA => 8,
            Algorithm::HS256 => 16,
            _ => 0,
        }
    }

    /// Every asymmetric algorithm streetgate verifies.
    pub fn all_public() -> AlgSet {
        SUPPORTED
            .iter()
            .fold(AlgSet::EMPTY, |s, (_, a)| s.with(*a))
            .without(Algorithm::HS256)
    }

    pub fn with(self, alg: Algorithm) -> AlgSet {
        AlgSet(self.0 | AlgSet::bit(alg))
    }

    pub fn without(self, alg: Algorithm) -> AlgSet {
        AlgSet(self.0 & !AlgSet::bit(alg))
    }

    pub fn contains(self, alg: Algorithm) -> bool {
        let bit = AlgSet::bit(alg);
        bit != 0 && self.0 & bit != 0
    }

    pub fn intersect(self, other: AlgSet) -> AlgSet {
        AlgSet(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The name streetgate knows an algorithm by, or `None` if it never verifies it.
pub fn parse_alg(name: &str) -> Option<Algorithm> {
    SUPPORTED.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    SUPPORTED
        .iter()
        .find(|(_, a)| *a == alg)
        .map_or("unsupported", |(n, _)| n)
}

#[derive(Debug)]
pub struct VerifyKey {
    pub kid: Option<String>,
    /// Algorithms this key verifies (already narrowed to the configured allow-list).
    pub algs: AlgSet,
    pub key: DecodingKey,
    /// SHA-256 of the key material and algorithms: a cached token verified with this key stays
    /// valid only while the key set still holds a key with this fingerprint under its `kid`.
    pub fingerprint: KeyFingerprint,
}

pub type KeyFingerprint = [u8; 32];

fn fingerprint(kty: &str, parts: &[&[u8]], algs: AlgSet) -> KeyFingerprint {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(kty.as_bytes());
    for part in parts {
        // Length-prefixed, so two different splits of the same bytes differ.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(&[algs.0]);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A loaded JWKS. Never empty: a document without one usable key is an error.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
    by_kid: HashMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWKS document")]
    Json(#[source] serde_json::Error),
    #[error("no usable signing key (of {0} listed)")]
    NoUsableKeys(usize),
}

/// Why one JWK was skipped (logged, not fatal: one odd key must not take the others down).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("not a JSON object with string members")]
    Shape,
    #[error("key type {0:?} is not supported")]
    KeyType(String),
    #[error("curve {0:?} is not supported for kty {1}")]
    Curve(String, &'static str),
    #[error("alg {0:?} does not fit the key type or is not allowed")]
    Alg(String),
    #[error("use {0:?} is not \"sig\"")]
    Use(String),
    #[error("parameter {0} is missing or not base64url")]
    Param(&'static str),
    #[error("RSA modulus of {0} bits is below 2048")]
    RsaTooSmall(usize),
    #[error("kid {0:?} appears twice")]
    DuplicateKid(String),
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl KeySet {
    /// Parses a JWKS, keeping the keys usable with `allowed` and logging why others were skipped.
    pub fn from_jwks(json: &[u8], allowed: AlgSet) -> Result<KeySet, JwksError> {
        let raw: RawJwks = serde_json::from_slice(json).map_err(JwksError::Json)?;
        let listed = raw.keys.len();
        let mut set = KeySet {
            keys: Vec::with_capacity(listed),
            by_kid: HashMap::with_capacity(listed),
        };
        for (i, value) in raw.keys.into_iter().enumerate() {
            match set.add(value, allowed) {
                Ok(()) => {}
                Err(why) => tracing::warn!(index = i, reason = %why, "skipping JWK"),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoUsableKeys(listed));
        }
        Ok(set)
    }

    fn add(&mut self, value: serde_json::Value, allowed: AlgSet) -> Result<(), SkipReason> {
        let jwk: RawJwk = serde_json::from_value(value).map_err(|_| SkipReason::Shape)?;
        let key = parse_jwk(jwk, allowed)?;
        if let Some(kid) = &key.kid {
            if self.by_kid.contains_key(kid) {
                return Err(SkipReason::DuplicateKid(kid.clone()));
            }
            self.by_kid.insert(kid.clone(), self.keys.len());
        }
        self.keys.push(key);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key a token names. Without a `kid`, only an unambiguous match is accepted, so an
    /// attacker cannot make us try every key.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&VerifyKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid).map(|i| &self.keys[*i]),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.algs.contains(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Some(k),
                    _ => None,
                }
            }
        }
    }
}

fn b64(value: Option<&String>, name: &'static str) -> Result<Vec<u8>, SkipReason> {
    value
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .filter(|v| !v.is_empty())
        .ok_or(SkipReason::Param(name))
}

fn parse_jwk(jwk: RawJwk, allowed: AlgSet) -> Result<VerifyKey, SkipReason> {
    if let Some(u) = jwk.use_.as_deref().filter(|u| *u != "sig") {
        return Err(SkipReason::Use(u.to_owned()));
    }
    let (fits, key, material) = match jwk.kty.as_str() {
        "RSA" => {
            let n = b64(jwk.n.as_ref(), "n")?;
            let e = b64(jwk.e.as_ref(), "e")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return Err(SkipReason::RsaTooSmall(bits));
            }
            (
                AlgSet::EMPTY.with(Algorithm::RS256).with(Algorithm::PS256),
                DecodingKey::from_rsa_raw_components(&n, &e),
                vec![n, e],
            )
        }
        "EC" => {
            match jwk.crv.as_deref() {
                Some("P-256") => {}
                other => return Err(SkipReason::Curve(other.unwrap_or("").to_owned(), "EC")),
            }
            let x = b64(jwk.x.as_ref(), "x")?;
            let y = b64(jwk.y.as_ref(), "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(SkipReason::Param("x/y (32 bytes each for P-256)"));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (
                AlgSet::EMPTY.with(Algorithm::ES256),
                DecodingKey::from_ec_der(&point),
                vec![point],
            )
        }
        "OKP" => {
            match jwk.crv.as_deref() {
                Some("Ed25519") => {}
                other => return Err(SkipReason::Curve(other.unwrap_or("").to_owned(), "OKP")),
            }
            let x = b64(jwk.x.as_ref(), "x")?;
            if x.len() != 32 {
                return Err(SkipReason::Param("x (32 bytes for Ed25519)"));
            }
            (
                AlgSet::EMPTY.with(Algorithm::EdDSA),
                DecodingKey::from_ed_der(&x),
                vec![x],
            )
        }
        other => return Err(SkipReason::KeyType(other.to_owned())),
    };
    // A key that names its algorithm verifies only that one.
    let algs = match jwk.alg.as_deref() {
        None => fits,
        Some(name) => match parse_alg(name).filter(|a| fits.contains(*a)) {
            Some(alg) => AlgSet::EMPTY.with(alg),
            None => return Err(SkipReason::Alg(name.to_owned())),
        },
    }
    .intersect(allowed);
    if algs.is_empty() {
        return Err(SkipReason::Alg(jwk.alg.unwrap_or_else(|| jwk.kty.clone())));
    }
    let parts: Vec<&[u8]> = material.iter().map(Vec::as_slice).collect();
    Ok(VerifyKey {
        fingerprint: fingerprint(&jwk.kty, &parts, algs),
        kid: jwk.kid,
        algs,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all() -> AlgSet {
        SUPPORTED.iter().fold(AlgSet::EMPTY, |s, (_, a)| s.with(*a))
    }

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/keys/jwks.json"
        ))
        .unwrap()
    }

    #[test]
    fn loads_fixture_keys() {
        let set = KeySet::from_jwks(&fixture(), all()).unwrap();
        assert_eq!(set.len(), 4);
        let rsa = set.find(Some("rsa1"), Algorithm::RS256).unwrap();
        assert!(rsa.algs.contains(Algorithm::PS256));
        assert!(!rsa.algs.contains(Algorithm::HS256));
        let ec = set.find(Some("ec1"), Algorithm::ES256).unwrap();
        assert_eq!(ec.algs, AlgSet::EMPTY.with(Algorithm::ES256));
        assert!(set.find(Some("nope"), Algorithm::RS256).is_none());
        // Without a kid, RS256 fits two keys: ambiguous, so none.
        assert!(set.find(None, Algorithm::RS256).is_none());
        assert_eq!(
            set.find(None, Algorithm::EdDSA).unwrap().kid.as_deref(),
            Some("ed1")
        );
    }

    #[test]
    fn allow_list_narrows_keys() {
        let only_es = AlgSet::EMPTY.with(Algorithm::ES256);
        let set = KeySet::from_jwks(&fixture(), only_es).unwrap();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn bad_keys_are_skipped_not_fatal() {
        let good: serde_json::Value = serde_json::from_slice(&fixture()).unwrap();
        let ec = good["keys"][2].clone();
        let doc = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256", "x": ec["x"], "y": ec["y"]},
            {"kty": "EC", "kid": "wrongalg", "alg": "RS256", "crv": "P-256", "x": ec["x"], "y": ec["y"]},
            "not an object",
            ec,
            {"kty": "EC", "kid": "ec1", "crv": "P-256", "x": ec["x"], "y": ec["y"]},
        ]});
        let set = KeySet::from_jwks(doc.to_string().as_bytes(), all()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.find(Some("hmac"), Algorithm::HS256).is_none());
        assert!(set.find(Some("ec1"), Algorithm::ES256).is_some());
    }

    #[test]
    fn nothing_usable_is_an_error() {
        assert!(matches!(
            KeySet::from_jwks(br#"{"keys": [{"kty": "oct", "k": "AA"}]}"#, all()),
            Err(JwksError::NoUsableKeys(1))
        ));
        assert!(matches!(
            KeySet::from_jwks(b"[]", all()),
            Err(JwksError::Json(_))
        ));
    }
}
