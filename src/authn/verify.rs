//! Verifying one compact JWS and turning its claims into an `Identity`. Pure: keys and `now`
//! are passed in.
//!
//! jsonwebtoken does the cryptography (`crypto::verify`); the header and claim checks are ours,
//! because its `Validation` reads the system clock, skips `nbf` and `iss`/`aud` unless told,
//! ignores `crit`, allows 60 s of leeway and cannot tell "alg none" from a garbled header.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::ClaimNames;
use super::error::AuthError;
use super::identity::{Identity, RoleSet};
use super::integrator;
use super::keys::{AlgSet, KeySet, alg_name, parse_alg};
use crate::codes::SwaCode;
use crate::model::Model;

/// Where verification keys come from for one call.
#[derive(Clone, Copy)]
pub enum Keys<'a> {
    /// The configured HS256 secret: the only key HS256 tokens are checked with.
    Secret(&'a DecodingKey),
    Jwks(&'a KeySet),
}

/// The compiled `auth` policy: what a token must satisfy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub algorithms: AlgSet,
    pub issuer: String,
    pub audience: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
    pub claims: ClaimNames,
    /// Street Manager tokens carry roles and a SWA code; contracts tokens a subject and the
    /// user's company (roles, if any, are not read).
    pub model: Model,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Vec<String>>,
}

/// The parts of a token needed to pick its key, read before any signature check.
pub struct Parsed<'t> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// `header.payload`, the signed bytes.
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
}

impl Policy {
    /// Splits the token and checks its header: algorithm on the allow-list, no `crit`.
    pub fn parse<'t>(&self, token: &'t str) -> Result<Parsed<'t>, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("not three dot-separated parts"));
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header_json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::Malformed("header is not base64url"))?;
        let header: JoseHeader = serde_json::from_slice(&header_json)
            .map_err(|_| AuthError::Malformed("header is not a JOSE header"))?;
        let alg = parse_alg(&header.alg)
            .filter(|a| self.algorithms.contains(*a))
            .ok_or(AuthError::Algorithm(header.alg))?;
        // We implement no JWS extension, so any `crit` entry is one we do not understand
        // (RFC 7515 §4.1.11); an empty list is itself invalid.
        if let Some(crit) = header.crit {
            return Err(AuthError::Critical(crit.join(",")));
        }
        Ok(Parsed {
            alg,
            kid: header.kid,
            signing_input,
            payload,
            signature,
        })
    }

    /// Verifies a parsed token with `keys` and checks its claims at `now` (seconds since the
    /// epoch). `UnknownKey` means a JWKS refresh might help.
    pub fn verify(
        &self,
        token: &Parsed<'_>,
        keys: Keys<'_>,
        now: u64,
    ) -> Result<Identity, AuthError> {
        let key = match keys {
            Keys::Secret(secret) if token.alg == Algorithm::HS256 => secret,
            Keys::Secret(_) => return Err(AuthError::KeyAlgorithm(alg_name(token.alg))),
            Keys::Jwks(set) => {
                let key = set
                    .find(token.kid.as_deref(), token.alg)
                    .ok_or_else(|| AuthError::UnknownKey(token.kid.clone()))?;
                if !key.algs.contains(token.alg) {
                    return Err(AuthError::KeyAlgorithm(alg_name(token.alg)));
                }
                &key.key
            }
        };
        let valid = jsonwebtoken::crypto::verify(
            token.signature,
            token.signing_input.as_bytes(),
            key,
            token.alg,
        )
        .map_err(|_| AuthError::Malformed("signature is not base64url"))?;
        if !valid {
            return Err(AuthError::Signature);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(token.payload)
            .map_err(|_| AuthError::Malformed("payload is not base64url"))?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|_| AuthError::Malformed("payload is not a JSON object"))?;
        let identity = self.check_claims(&claims, now)?;
        match integrator::integrator(&claims, &payload, &self.claims.first_party_clients)? {
            None => Ok(identity),
            Some(name) => identity
                .with_integrator(&name)
                .map_err(|e| AuthError::Claims(e.to_string())),
        }
    }

    /// `parse` then `verify`.
    pub fn verify_token(
        &self,
        token: &str,
        keys: Keys<'_>,
        now: u64,
    ) -> Result<Identity, AuthError> {
        self.verify(&self.parse(token)?, keys, now)
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<Identity, AuthError> {
        let exp = numeric_date(claims, "exp")?.ok_or_else(|| missing("exp"))?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(AuthError::NotYetValid("nbf"));
        }
        let iat = numeric_date(claims, "iat")?;
        if iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(AuthError::NotYetValid("iat in the future"));
        }
        if string(claims, "iss")? != self.issuer {
            return Err(AuthError::Issuer);
        }
        match claims.get("aud") {
            None => return Err(missing("aud")),
            Some(Value::String(aud)) if *aud == self.audience => {}
            Some(Value::String(_)) => return Err(AuthError::Audience),
            Some(Value::Array(auds)) => {
                if !auds.iter().all(Value::is_string) {
                    return Err(wrong_type("aud"));
                }
                if !auds.iter().any(|a| a.as_str() == Some(&self.audience)) {
                    return Err(AuthError::Audience);
                }
            }
            Some(_) => return Err(wrong_type("aud")),
        }
        let names = &self.claims;
        let subject = string(claims, &names.subject)?;
        let organisation = string(claims, &names.organisation)?;
        if self.model == Model::Contracts {
            return Identity::new(subject, organisation, RoleSet::EMPTY, iat, exp)
                .map_err(|e| AuthError::Claims(e.to_string()));
        }
        if SwaCode::parse(organisation).is_none() {
            return Err(AuthError::Claims(format!(
                "{} is not a SWA code",
                names.organisation
            )));
        }
        let roles = match claims.get(&names.roles) {
            None => return Err(missing(&names.roles)),
            Some(Value::String(one)) => RoleSet::from_names([one.as_str()]),
            Some(Value::Array(many)) => {
                let names_iter = many.iter().map(Value::as_str);
                if names_iter.clone().any(|n| n.is_none()) {
                    return Err(wrong_type(&names.roles));
                }
                RoleSet::from_names(names_iter.flatten())
            }
            Some(_) => return Err(wrong_type(&names.roles)),
        }
        .map_err(AuthError::Roles)?;
        // Decided here, before the identity can be cached: claims that cannot travel as
        // identity headers make the token invalid.
        Identity::new(subject, organisation, roles, iat, exp)
            .map_err(|e| AuthError::Claims(e.to_string()))
    }
}

fn missing(name: &str) -> AuthError {
    AuthError::Claims(format!("{name} is missing"))
}

fn wrong_type(name: &str) -> AuthError {
    AuthError::Claims(format!("{name} has the wrong type"))
}

/// A non-empty string claim.
fn string<'c>(claims: &'c Map<String, Value>, name: &str) -> Result<&'c str, AuthError> {
    match claims.get(name) {
        None => Err(missing(name)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(wrong_type(name)),
    }
}

/// A NumericDate (RFC 7519 §2): non-negative seconds, fractions allowed and truncated.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = value else {
        return Err(wrong_type(name));
    };
    if let Some(secs) = n.as_u64() {
        return Ok(Some(secs));
    }
    match n.as_f64() {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(wrong_type(name)),
    }
}

#[cfg(test)]
mod tests;
