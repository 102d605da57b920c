//! The request-path entry point: token → cached or freshly verified `Identity`.

use std::sync::Arc;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey};
use prometheus::IntCounter;
use tokio::sync::watch;

use super::cache::{KeyStamp, TokenCache};
use super::config::{AuthConfig, KeyConfig, trimmed_secret};
use super::error::{AuthError, AuthSetupError};
use super::extract::{TokenSource, extract};
use super::identity::Identity;
use super::jwks::JwksStore;
use super::verify::{Keys, Policy};
use crate::telemetry::events::CacheLookup;
use crate::telemetry::metrics::Metrics;

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
    /// Assembles a compiled `auth` section. Only an HS256 secret held in an environment
    /// variable is read here (it belongs to the running process, not to the config). A JWKS
    /// URL is first fetched by `spawn_refresh` (until then `ready()` is false).
    pub fn new(auth: &AuthConfig, metrics: Metrics) -> Result<Authenticator, AuthSetupError> {
        let Metrics {
            jwks_refresh,
            token_cache,
            ..
        } = metrics;
        let public = auth.algorithms.without(Algorithm::HS256);
        let keys = match &auth.keys {
            KeyConfig::Secret(secret) => KeySource::Secret(DecodingKey::from_secret(secret)),
            KeyConfig::SecretEnv(name) => {
                let value =
                    std::env::var(name).map_err(|_| AuthSetupError::SecretEnv(name.clone()))?;
                let secret =
                    trimmed_secret(value.into_bytes()).map_err(AuthSetupError::SecretTooShort)?;
                KeySource::Secret(DecodingKey::from_secret(&secret))
            }
            KeyConfig::JwksFile { keys, .. } => KeySource::Jwks(Arc::new(JwksStore::fixed(
                Arc::clone(keys),
                public,
                jwks_refresh,
            ))),
            KeyConfig::JwksUrl {
                url,
                refresh_interval,
                min_refresh_interval,
            } => KeySource::Jwks(Arc::new(JwksStore::remote(
                url.clone(),
                *refresh_interval,
                *min_refresh_interval,
                public,
                jwks_refresh,
            ))),
        };
        Ok(Authenticator {
            inner: Arc::new(Inner {
                sources: auth.sources.clone(),
                max_token_bytes: auth.max_token_bytes,
                policy: Policy {
                    algorithms: auth.algorithms,
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
