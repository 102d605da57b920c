//! The `auth` section: where tokens come from, which keys and algorithms verify them and which
//! claims they carry. `AuthConfig::try_from(RawAuth)` checks the section in one pass, reporting
//! every problem with its location, and loads the key material a file holds (the JWKS, the
//! HS256 secret) once; `Authenticator::new` only assembles what it compiled.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::extract::TokenSource;
use super::keys::{AlgSet, KeySet, parse_alg};
use crate::model::Model;
use crate::problems::Problems;

/// Shortest HS256 secret accepted: the hash output size (RFC 7518 §3.2).
pub const MIN_HS256_SECRET: usize = 32;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Where the token is read from, in order. Default: the `token` header, then
    /// `Authorization: Bearer`.
    #[serde(default = "defaults::token_sources")]
    pub token_sources: Vec<RawTokenSource>,
    #[serde(default)]
    pub jwks: Option<RawJwks>,
    /// Shared secret for HS256. Only allowed when no JWKS is configured, so symmetric and
    /// public keys are never mixed.
    #[serde(default)]
    pub hs256_secret: Option<RawSecret>,
    #[serde(default = "defaults::algorithms")]
    pub algorithms: Vec<String>,
    pub issuer: String,
    pub audience: String,
    #[serde(default = "defaults::leeway", with = "humantime_serde")]
    pub leeway: Duration,
    #[serde(default)]
    pub claims: ClaimNames,
    #[serde(default = "defaults::token_cache_entries")]
    pub token_cache_entries: usize,
    /// Tokens longer than this are rejected before any parsing.
    #[serde(default = "defaults::max_token_bytes")]
    pub max_token_bytes: usize,
    /// Copied from the top-level `model` before compiling: it decides which claims a token
    /// must carry (Street Manager roles and a SWA code, or a subject and company).
    #[serde(skip)]
    pub model: Model,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawTokenSource {
    /// A header whose whole value is the token.
    Header(String),
    /// `Authorization: Bearer <token>`.
    Bearer,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawJwks {
    File(PathBuf),
    Url {
        url: String,
        #[serde(default = "defaults::jwks_refresh", with = "humantime_serde")]
        refresh_interval: Duration,
        /// Lower bound between two fetches triggered by unknown `kid`s.
        #[serde(default = "defaults::jwks_min_refresh", with = "humantime_serde")]
        min_refresh_interval: Duration,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSecret {
    /// Name of an environment variable holding the secret (read when the sidecar starts).
    Env(String),
    File(PathBuf),
}

/// The claim names a token's identity is read from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClaimNames {
    #[serde(default = "defaults::claim_subject")]
    pub subject: String,
    #[serde(default = "defaults::claim_roles")]
    pub roles: String,
    #[serde(default = "defaults::claim_organisation")]
    pub organisation: String,
    /// Client ids (`azp`/`client_id`) of the API's own clients: tokens from them name no
    /// third-party integrator.
    #[serde(default)]
    pub first_party_clients: Vec<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            subject: defaults::claim_subject(),
            roles: defaults::claim_roles(),
            organisation: defaults::claim_organisation(),
            first_party_clients: Vec::new(),
        }
    }
}

/// The `auth` section compiled: every name parsed, every file read.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub sources: Vec<TokenSource>,
    pub algorithms: AlgSet,
    pub keys: KeyConfig,
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
    pub claims: ClaimNames,
    pub token_cache_entries: usize,
    pub max_token_bytes: usize,
    pub model: Model,
}

/// Where verification keys come from.
#[derive(Debug, Clone)]
pub enum KeyConfig {
    /// HS256 from a file, read when compiled (trailing newline dropped).
    Secret(Vec<u8>),
    /// HS256 from an environment variable of the running sidecar.
    SecretEnv(String),
    /// A JWKS file, read and parsed when compiled.
    JwksFile { path: PathBuf, keys: Arc<KeySet> },
    JwksUrl {
        url: String,
        refresh_interval: Duration,
        min_refresh_interval: Duration,
    },
}

/// A reload compares where keys come from, not the key bytes of a JWKS file.
impl PartialEq for KeyConfig {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeyConfig::Secret(a), KeyConfig::Secret(b)) => a == b,
            (KeyConfig::SecretEnv(a), KeyConfig::SecretEnv(b)) => a == b,
            (KeyConfig::JwksFile { path: a, .. }, KeyConfig::JwksFile { path: b, .. }) => a == b,
            (
                KeyConfig::JwksUrl {
                    url: a,
                    refresh_interval: ar,
                    min_refresh_interval: am,
                },
                KeyConfig::JwksUrl {
                    url: b,
                    refresh_interval: br,
                    min_refresh_interval: bm,
                },
            ) => a == b && ar == br && am == bm,
            _ => false,
        }
    }
}

impl TryFrom<RawAuth> for AuthConfig {
    type Error = Problems;

    fn try_from(raw: RawAuth) -> Result<AuthConfig, Problems> {
        let mut problems = Problems::default();
        let algorithms = algorithms(&raw, &mut problems);
        let sources = sources(&raw.token_sources, &mut problems);
        let keys = keys(&raw, algorithms, &mut problems);
        if raw.issuer.is_empty() {
            problems.push("auth.issuer", "must not be empty");
        }
        if raw.audience.is_empty() {
            problems.push("auth.audience", "must not be empty");
        }
        if raw.leeway.as_secs() > 300 {
            problems.push("auth.leeway", "must be at most 5m");
        }
        if raw.token_cache_entries == 0 {
            problems.push("auth.token_cache_entries", "must be at least 1");
        }
        if raw.max_token_bytes < 256 {
            problems.push("auth.max_token_bytes", "must be at least 256");
        }
        // No keys only after a problem was reported.
        let Some(keys) = keys else {
            return Err(problems);
        };
        problems.into_result(AuthConfig {
            sources,
            algorithms,
            keys,
            issuer: raw.issuer,
            audience: raw.audience,
            leeway: raw.leeway,
            claims: raw.claims,
            token_cache_entries: raw.token_cache_entries,
            max_token_bytes: raw.max_token_bytes,
            model: raw.model,
        })
    }
}

fn algorithms(raw: &RawAuth, problems: &mut Problems) -> AlgSet {
    let mut set = AlgSet::EMPTY;
    for (i, name) in raw.algorithms.iter().enumerate() {
        let at = format!("auth.algorithms[{i}]");
        match parse_alg(name) {
            Some(Algorithm::HS256) if raw.hs256_secret.is_none() => {
                problems.push(at, "HS256 needs auth.hs256_secret");
            }
            Some(Algorithm::HS256) => set = set.with(Algorithm::HS256),
            Some(_) if raw.hs256_secret.is_some() => problems.push(
                at,
                format!("{name} needs public keys, but auth.hs256_secret is set"),
            ),
            Some(alg) => set = set.with(alg),
            None => problems.push(
                at,
                format!("{name:?} is not allowed (RS256, PS256, ES256, EdDSA, HS256)"),
            ),
        }
    }
    if raw.algorithms.is_empty() {
        problems.push("auth.algorithms", "at least one algorithm is required");
    }
    set
}

fn sources(raw: &[RawTokenSource], problems: &mut Problems) -> Vec<TokenSource> {
    if raw.is_empty() {
        problems.push(
            "auth.token_sources",
            "at least one token source is required",
        );
    }
    let mut sources = Vec::with_capacity(raw.len());
    for (i, source) in raw.iter().enumerate() {
        if raw[..i].contains(source) {
            problems.push(format!("auth.token_sources[{i}]"), "is listed twice");
        }
        match TokenSource::compile(source) {
            Some(s) => sources.push(s),
            None => problems.push(
                format!("auth.token_sources[{i}]"),
                "is not a valid HTTP header name",
            ),
        }
    }
    sources
}

/// The key source, its file read and parsed now; None after a problem.
fn keys(raw: &RawAuth, algorithms: AlgSet, problems: &mut Problems) -> Option<KeyConfig> {
    match (&raw.jwks, &raw.hs256_secret) {
        (None, None) => {
            problems.push("auth", "one of auth.jwks or auth.hs256_secret is required");
            None
        }
        (Some(_), Some(_)) => {
            problems.push(
                "auth.hs256_secret",
                "HS256 secrets cannot be mixed with public keys from auth.jwks",
            );
            None
        }
        (None, Some(RawSecret::Env(name))) => Some(KeyConfig::SecretEnv(name.clone())),
        (None, Some(RawSecret::File(path))) => {
            match std::fs::read(path) {
                Err(e) => {
                    problems.push("auth.hs256_secret.file", format!("{}: {e}", path.display()));
                    None
                }
                Ok(bytes) => match trimmed_secret(bytes) {
                    Ok(secret) => Some(KeyConfig::Secret(secret)),
                    Err(len) => {
                        problems.push(
                        "auth.hs256_secret.file",
                        format!("the secret is {len} bytes; at least {MIN_HS256_SECRET} are required"),
                    );
                        None
                    }
                },
            }
        }
        (Some(RawJwks::File(path)), None) => {
            let public = algorithms.without(Algorithm::HS256);
            let read = std::fs::read(path).map_err(|e| e.to_string());
            match read.and_then(|b| KeySet::from_jwks(&b, public).map_err(|e| e.to_string())) {
                Ok(keys) => Some(KeyConfig::JwksFile {
                    path: path.clone(),
                    keys: Arc::new(keys),
                }),
                Err(e) => {
                    problems.push("auth.jwks.file", format!("{}: {e}", path.display()));
                    None
                }
            }
        }
        (
            Some(RawJwks::Url {
                url,
                refresh_interval,
                min_refresh_interval,
            }),
            None,
        ) => {
            let ok = url.parse::<Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !ok {
                problems.push(
                    "auth.jwks.url.url",
                    format!("{url:?} is not an http(s) URL"),
                );
            }
            if refresh_interval.is_zero() {
                problems.push("auth.jwks.url.refresh_interval", "must be above zero");
            }
            if min_refresh_interval > refresh_interval {
                problems.push(
                    "auth.jwks.url.min_refresh_interval",
                    "must not exceed refresh_interval",
                );
            }
            Some(KeyConfig::JwksUrl {
                url: url.clone(),
                refresh_interval: *refresh_interval,
                min_refresh_interval: *min_refresh_interval,
            })
        }
    }
}

/// Secret files written by `echo` or editors end in a newline that is not part of the secret.
/// Err: the trimmed length, when too short.
pub fn trimmed_secret(mut bytes: Vec<u8>) -> Result<Vec<u8>, usize> {
    let len = bytes.trim_ascii_end().len();
    bytes.truncate(len);
    if len < MIN_HS256_SECRET {
        return Err(len);
    }
    Ok(bytes)
}

pub mod defaults {
    use super::*;

    pub fn token_sources() -> Vec<RawTokenSource> {
        vec![
            RawTokenSource::Header("token".into()),
            RawTokenSource::Bearer,
        ]
    }
    pub fn algorithms() -> Vec<String> {
        vec![
            "RS256".into(),
            "PS256".into(),
            "ES256".into(),
            "EdDSA".into(),
        ]
    }
    pub fn leeway() -> Duration {
        Duration::from_secs(5)
    }
    pub fn token_cache_entries() -> usize {
        100_000
    }
    pub fn max_token_bytes() -> usize {
        8 * 1024
    }
    pub fn jwks_refresh() -> Duration {
        Duration::from_secs(300)
    }
    pub fn jwks_min_refresh() -> Duration {
        Duration::from_secs(10)
    }
    pub fn claim_subject() -> String {
        "sub".into()
    }
    pub fn claim_roles() -> String {
        "roles".into()
    }
    pub fn claim_organisation() -> String {
        "org".into()
    }
}
