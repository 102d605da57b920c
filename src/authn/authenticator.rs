//! The request-path entry point: token → cached or freshly verified `Identity`.

use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey};
use prometheus::IntCounter;
use tokio::sync::watch;

use super::cache::{KeyStamp, TokenCache};
use super::error::{AuthError, AuthSetupError};
use super::extract::{TokenSource, extract};
use super::identity::Identity;
use super::jwks::JwksStore;
use super::keys::{AlgSet, KeySet, parse_alg};
use super::verify::{Keys, Policy};
use crate::config::raw::{RawAuth, RawJwks, RawSecret};
use crate::telemetry::events::CacheLookup;
use crate::telemetry::metrics::Metrics;

/// Shortest HS256 secret accepted: the hash output size (RFC 7518 §3.2).
const MIN_HS256_SECRET: usize = 32;

/// Cheap to clone; clones share keys and cache.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    sources: Vec<TokenSource>,
    max_token_bytes: usize,
    policy: Policy,
    keys: KeySource,
    cache: TokenCache,
    cache_hit: IntCounter,
    cache_miss: IntCounter,
}

enum KeySource {
    Secret(DecodingKey),
    Jwks(Arc<JwksStore>),
}

impl Authenticator {
    /// Compiles the `auth` config; reads the JWKS file or the HS256 secret now. A JWKS URL is
    /// first fetched by `spawn_refresh` (until then `ready()` is false).
    pub fn new(auth: &RawAuth, metrics: Metrics) -> Result<Authenticator, AuthSetupError> {
        let Metrics {
            jwks_refresh,
            token_cache,
            ..
        } = metrics;
        let mut algorithms = AlgSet::EMPTY;
        for name in &auth.algorithms {
            let alg = parse_alg(name).ok_or_else(|| AuthSetupError::Algorithm(name.clone()))?;
            algorithms = algorithms.with(alg);
        }
        let hs256 = algorithms.contains(Algorithm::HS256);
        let public = algorithms.without(Algorithm::HS256);
        let keys = match (&auth.jwks, &auth.hs256_secret) {
            (None, None) => return Err(AuthSetupError::NoKeySource),
            (Some(_), Some(_)) => return Err(AuthSetupError::MixedKeys),
            (Some(_), None) if hs256 => return Err(AuthSetupError::MixedKeys),
            (None, Some(_)) if !public.is_empty() || !hs256 => {
                return Err(AuthSetupError::MixedKeys);
            }
            (None, Some(secret)) => KeySource::Secret(read_secret(secret)?),
            (Some(RawJwks::File(path)), None) => {
                let set = read_jwks_file(path, public)?;
                KeySource::Jwks(Arc::new(JwksStore::fixed(set, public, jwks_refresh)))
            }
            (
                Some(RawJwks::Url {
                    url,
                    refresh_interval,
                    min_refresh_interval,
                }),
                None,
            ) => {
                check_url(url)?;
                KeySource::Jwks(Arc::new(JwksStore::remote(
                    url.clone(),
                    *refresh_interval,
                    *min_refresh_interval,
                    public,
                    jwks_refresh,
                )))
            }
        };
        let sources = auth
            .token_sources
            .iter()
            .map(|s| {
                TokenSource::compile(s).ok_or_else(|| AuthSetupError::TokenSource(format!("{s:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Authenticator {
            inner: Arc::new(Inner {
                sources,
                max_token_bytes: auth.max_token_bytes,
                policy: Policy {
                    algorithms,
                    issuer: auth.issuer.clone(),
                    audience: auth.audience.clone(),
                    leeway: auth.leeway.as_secs(),
                    claims: auth.claims.clone(),
                    model: auth.model,
                },
                keys,
                cache: TokenCache::new(auth.token_cache_entries),
                cache_hit: token_cache.with_label_values(&[CacheLookup::Hit.as_str()]),
                cache_miss: token_cache.with_label_values(&[CacheLookup::Miss.as_str()]),
            }),
        })
    }

    /// Spawns the JWKS refresh task (no-op for a JWKS file or HS256); it stops when `shutdown`
    /// changes, and returns it (none for a JWKS file or HS256). Call once per authenticator.
    pub fn spawn_refresh(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        match &self.inner.keys {
            KeySource::Jwks(store) => store.spawn_refresh(shutdown),
            KeySource::Secret(_) => None,
        }
    }

    /// True once signing keys are loaded (always, for HS256 and a JWKS file).
    pub fn ready(&self) -> bool {
        match &self.inner.keys {
            KeySource::Secret(_) => true,
            KeySource::Jwks(store) => store.is_loaded(),
        }
    }

    /// The caller's identity, from the cache or by verifying the request's token at `now_unix`.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        now_unix: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        let inner = &*self.inner;
        let token = extract(headers, &inner.sources, inner.max_token_bytes)?;
        let key = inner.cache.key(token);
        // The key set in force: a cached token is only as valid as the key that verified it.
        let current = match &inner.keys {
            KeySource::Secret(_) => None,
            KeySource::Jwks(store) => Some(store.current().ok_or(AuthError::KeysUnavailable)?),
        };
        if let Some(identity) = inner.cache.get(&key, now_unix, current.as_deref()) {
            inner.cache_hit.inc();
            return Ok(identity);
        }
        inner.cache_miss.inc();
        let parsed = inner.policy.parse(token)?;
        let (identity, stamp) = match (&inner.keys, current) {
            (KeySource::Secret(secret), _) => {
                let identity = inner
                    .policy
                    .verify(&parsed, Keys::Secret(secret), now_unix)?;
                (identity, None)
            }
            (KeySource::Jwks(store), Some(set)) => {
                let (identity, set) = match inner.policy.verify(&parsed, Keys::Jwks(&set), now_unix)
                {
                    Err(AuthError::UnknownKey(kid)) => {
                        // Boxed: a JWKS fetch is rare and its future large.
                        let Some(fresh) = Box::pin(store.refresh_for_unknown_kid(&set)).await
                        else {
                            return Err(AuthError::UnknownKey(kid));
                        };
                        let identity =
                            inner.policy.verify(&parsed, Keys::Jwks(&fresh), now_unix)?;
                        (identity, fresh)
                    }
                    other => (other?, set),
                };
                let stamp = KeyStamp::of(&set, parsed.kid.as_deref(), parsed.alg);
                (identity, stamp)
            }
            (KeySource::Jwks(_), None) => return Err(AuthError::KeysUnavailable),
        };
        let identity = Arc::new(identity);
        inner
            .cache
            .insert(key, Arc::clone(&identity), stamp, now_unix);
        Ok(identity)
    }
}

fn read_secret(secret: &RawSecret) -> Result<DecodingKey, AuthSetupError> {
    let bytes = match secret {
        RawSecret::Env(name) => std::env::var(name)
            .map_err(|_| AuthSetupError::SecretEnv(name.clone()))?
            .into_bytes(),
        RawSecret::File(path) => std::fs::read(path).map_err(|source| AuthSetupError::Read {
            path: path.clone(),
            source,
        })?,
    };
    // Secret files written by `echo` or editors end in a newline that is not part of the secret.
    let trimmed = bytes.trim_ascii_end();
    if trimmed.len() < MIN_HS256_SECRET {
        return Err(AuthSetupError::SecretTooShort(trimmed.len()));
    }
    Ok(DecodingKey::from_secret(trimmed))
}

fn read_jwks_file(path: &Path, allowed: AlgSet) -> Result<KeySet, AuthSetupError> {
    let bytes = std::fs::read(path).map_err(|source| AuthSetupError::Read {
        path: path.to_owned(),
        source,
    })?;
    KeySet::from_jwks(&bytes, allowed).map_err(|source| AuthSetupError::Jwks {
        path: path.to_owned(),
        source,
    })
}

fn check_url(url: &str) -> Result<(), AuthSetupError> {
    match url.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
            Ok(())
        }
        _ => Err(AuthSetupError::Url(url.to_owned())),
    }
}
