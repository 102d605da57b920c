//! The JWKS in force and, for a URL, keeping it fresh: a periodic refresh, plus an early one
//! when a token names a `kid` we do not know (key rotation), rate-limited and shared by every
//! request that asks while it runs.
//!
//! Requests read the key set through an `ArcSwapOption` and never lock; only the unknown-kid
//! path waits, on the async mutex that serializes fetches.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use prometheus::IntCounterVec;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use crate::telemetry::events::JwksRefresh;

use super::keys::{AlgSet, KeySet};
use crate::fetch::{Fetched, Fetcher};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest wait between attempts while no key set has loaded yet.
const MIN_RETRY: Duration = Duration::from_secs(1);

pub struct JwksStore {
    current: ArcSwapOption<KeySet>,
    allowed: AlgSet,
    remote: Option<Remote>,
    refreshes: IntCounterVec,
}

struct Remote {
    url: String,
    fetcher: Fetcher,
    refresh_interval: Duration,
    min_refresh_interval: Duration,
    /// Held for the duration of a fetch, so concurrent refreshes become one.
    state: Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    etag: Option<HeaderValue>,
    last_attempt: Option<Instant>,
}

impl JwksStore {
    /// A key set loaded once (from a file).
    pub fn fixed(set: Arc<KeySet>, allowed: AlgSet, refreshes: IntCounterVec) -> JwksStore {
        JwksStore {
            current: ArcSwapOption::new(Some(set)),
            allowed,
            remote: None,
            refreshes,
        }
    }

    /// Empty until the first fetch of `url` succeeds.
    pub fn remote(
        url: String,
        refresh_interval: Duration,
        min_refresh_interval: Duration,
        allowed: AlgSet,
        refreshes: IntCounterVec,
    ) -> JwksStore {
        JwksStore {
            current: ArcSwapOption::empty(),
            allowed,
            remote: Some(Remote {
                url,
                fetcher: Fetcher::new(FETCH_TIMEOUT, MAX_JWKS_BYTES),
                refresh_interval,
                min_refresh_interval,
                state: Mutex::new(FetchState::default()),
            }),
            refreshes,
        }
    }

    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Called when a token's `kid` is not in `seen`. Returns the key set to retry with if it
    /// changed, either because this call fetched a new one or because another request did while
    /// this one waited. At most one fetch per `min_refresh_interval`.
    pub async fn refresh_for_unknown_kid(&self, seen: &Arc<KeySet>) -> Option<Arc<KeySet>> {
        let remote = self.remote.as_ref()?;
        let mut state = remote.state.lock().await;
        if let Some(now) = self.current().filter(|now| !Arc::ptr_eq(now, seen)) {
            return Some(now);
        }
        if state
            .last_attempt
            .is_some_and(|at| at.elapsed() < remote.min_refresh_interval)
        {
            self.count(JwksRefresh::RateLimited);
            return None;
        }
        self.fetch(remote, &mut state).await;
        self.current().filter(|now| !Arc::ptr_eq(now, seen))
    }

    /// Fetches now, whatever the rate limit (the periodic refresh).
    async fn refresh(&self, remote: &Remote) {
        let mut state = remote.state.lock().await;
        self.fetch(remote, &mut state).await;
    }

    async fn fetch(&self, remote: &Remote, state: &mut FetchState) {
        state.last_attempt = Some(Instant::now());
        // Without keys, ask for the whole document even if we hold an ETag.
        let etag = if self.is_loaded() {
            state.etag.as_ref()
        } else {
            None
        };
        match remote.fetcher.get(&remote.url, etag).await {
            Ok(Fetched::NotModified) => self.count(JwksRefresh::Ok),
            Ok(Fetched::Body { body, etag }) => match KeySet::from_jwks(&body, self.allowed) {
                Ok(set) => {
                    tracing::info!(url = %remote.url, keys = set.len(), "JWKS loaded");
                    self.current.store(Some(Arc::new(set)));
                    state.etag = etag;
                    self.count(JwksRefresh::Ok);
                }
                Err(e) => {
                    tracing::warn!(url = %remote.url, error = %e, "JWKS rejected; keeping the previous keys");
                    self.count(JwksRefresh::Invalid);
                }
            },
            Err(e) => {
                tracing::warn!(url = %remote.url, error = %e, "JWKS fetch failed; keeping the previous keys");
                self.count(JwksRefresh::Error);
            }
        }
    }

    fn count(&self, result: JwksRefresh) {
        self.refreshes.with_label_values(&[result.as_str()]).inc();
    }

    /// Refreshes every `refresh_interval` (sooner while nothing has loaded) until `shutdown`
    /// changes. No-op for a fixed key set; otherwise the task, which ends after `shutdown`.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.remote.as_ref()?;
        let store = Arc::clone(self);
        Some(tokio::spawn(async move {
            let Some(remote) = store.remote.as_ref() else {
                return;
            };
            loop {
                store.refresh(remote).await;
                let wait = if store.is_loaded() {
                    remote.refresh_interval
                } else {
                    remote
                        .min_refresh_interval
                        .max(MIN_RETRY)
                        .min(remote.refresh_interval)
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }))
    }
}
