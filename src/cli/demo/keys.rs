//! Demo signing keys: a fresh ES256 key pair per run, its JWKS, and tokens signed with it.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::DemoError;

pub const KID: &str = "demo-1";
pub const ISSUER: &str = "https://demo.streetgate.local";
pub const AUDIENCE: &str = "street-manager";

pub struct DemoKeys {
    encoding: EncodingKey,
    jwks: String,
}

impl DemoKeys {
    pub fn generate() -> Result<DemoKeys, DemoError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| DemoError::Keys)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| DemoError::Keys)?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(DemoError::Keys);
        }
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});
        Ok(DemoKeys {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwks: jwks.to_string(),
        })
    }

    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// A contracts-model token (subject and company), valid for 12 hours.
    pub fn contracts_token(&self, sub: &str, company: &str, now: u64) -> Result<String, DemoError> {
        let claims = serde_json::json!({
            "sub": sub, "company": company,
            "iss": ISSUER, "aud": "contracts",
            "iat": now, "nbf": now, "exp": now + 12 * 3600,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(DemoError::Sign)
    }

    /// A token valid for 12 hours.
    pub fn token(
        &self,
        sub: &str,
        org: &str,
        roles: &[&str],
        now: u64,
    ) -> Result<String, DemoError> {
        let claims = serde_json::json!({
            "sub": sub, "org": org, "roles": roles,
            "iss": ISSUER, "aud": AUDIENCE,
            "iat": now, "nbf": now, "exp": now + 12 * 3600,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(DemoError::Sign)
    }
}
