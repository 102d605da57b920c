//! Keeps the grants store fed: polls a file (re-read when its mtime or size changes) or a URL
//! (conditional GET with the last ETag), backing off exponentially with jitter on failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::GrantsStore;
use crate::config::raw::RawGrantsSource;
use crate::fetch::{Fetched, Fetcher};

/// A grants fetch that takes longer than this has failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest grants document accepted: a million works is about 120 MB of JSON.
const MAX_DOCUMENT_BYTES: usize = 1 << 30;

/// Polls the configured source until `shutdown` turns true (or its sender is dropped).
pub fn spawn_source(
    store: Arc<GrantsStore>,
    source: RawGrantsSource,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        match source {
            RawGrantsSource::File {
                path,
                poll_interval,
            } => poll_file(&store, path, poll_interval, shutdown).await,
            RawGrantsSource::Url {
                url,
                poll_interval,
                max_backoff,
            } => poll_url(&store, &url, poll_interval, max_backoff, shutdown).await,
        }
    })
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

async fn poll_file(
    store: &Arc<GrantsStore>,
    path: PathBuf,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen: Option<Stamp> = None;
    loop {
        match read_if_changed(&path, seen).await {
            Ok(None) => store.not_modified(store.clock().now()),
            Ok(Some((stamp, bytes))) => {
                // Remember the stamp even if the document is rejected: re-reading an unchanged
                // bad file would only log the same problems again.
                seen = Some(stamp);
                apply(store, bytes).await;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "grants file unreadable");
                store.fetch_failed(store.clock().now());
            }
        }
        if sleep_or_shutdown(every, &mut shutdown).await {
            return;
        }
    }
}

async fn read_if_changed(
    path: &Path,
    seen: Option<Stamp>,
) -> std::io::Result<Option<(Stamp, Bytes)>> {
    let meta = tokio::fs::metadata(path).await?;
    let stamp = Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    };
    if seen == Some(stamp) {
        return Ok(None);
    }
    let bytes = tokio::fs::read(path).await?;
    Ok(Some((stamp, Bytes::from(bytes))))
}

async fn poll_url(
    store: &Arc<GrantsStore>,
    url: &str,
    every: Duration,
    max_backoff: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let fetcher = Fetcher::new(FETCH_TIMEOUT, MAX_DOCUMENT_BYTES);
    let mut etag: Option<HeaderValue> = None;
    let mut failures: u32 = 0;
    loop {
        let fetched = tokio::select! {
            r = fetcher.get(url, etag.as_ref()) => r,
            _ = shutdown.changed() => return,
        };
        let ok = match fetched {
            Ok(Fetched::NotModified) => {
                store.not_modified(store.clock().now());
                true
            }
            Ok(Fetched::Body { body, etag: tag }) => {
                let ok = apply(store, body).await;
                // A rejected document's ETag is forgotten, so it is fetched (and rejected)
                // again rather than answered by 304s that would look like freshness.
                etag = if ok { tag } else { None };
                ok
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "grants fetch failed");
                store.fetch_failed(store.clock().now());
                false
            }
        };
        failures = if ok { 0 } else { failures.saturating_add(1) };
        let wait = if ok {
            every
        } else {
            backoff(every, max_backoff, failures)
        };
        if sleep_or_shutdown(wait, &mut shutdown).await {
            return;
        }
    }
}

/// Validates and builds on a thread of its own at a lower CPU priority: a big document takes
/// a second or more of CPU, and on a busy node requests should not queue behind it (a swap
/// under full load otherwise doubled the p99). The thread is not the blocking pool's, so the
/// pool's other work (DNS, file reads) keeps normal priority.
async fn apply(store: &Arc<GrantsStore>, bytes: Bytes) -> bool {
    let store = Arc::clone(store);
    let (done, applied) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("grants-apply".into())
        .spawn(move || {
            lower_priority();
            let _ = done.send(store.apply(&bytes, store.clock().now()).is_ok());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the grants apply thread");
        return false;
    }
    match applied.await {
        Ok(ok) => ok,
        Err(_) => {
            tracing::error!("grants apply thread panicked");
            false
        }
    }
}

/// Nice value of the apply thread (0 is normal, 19 the lowest).
const APPLY_NICE: i32 = 10;

/// On Linux `setpriority(PRIO_PROCESS, 0)` changes the calling thread only.
#[cfg(target_os = "linux")]
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, APPLY_NICE) {
        tracing::debug!(error = %e, "cannot lower the grants apply thread's priority");
    }
}

/// Elsewhere the same call would lower the whole process; leave it.
#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// `every · 2^failures`, capped at `max`, then drawn uniformly from its upper half so a fleet
/// of sidecars does not retry in step.
fn backoff(every: Duration, max: Duration, failures: u32) -> Duration {
    let exp = every
        .checked_mul(1u32 << failures.min(16))
        .unwrap_or(max)
        .min(max)
        .max(Duration::from_millis(1));
    let half = exp / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Sleeps for `d`; true if shutdown was asked for meanwhile.
async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        r = shutdown.changed() => r.is_err() || *shutdown.borrow(),
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let every = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for failures in 1..40 {
            let d = backoff(every, max, failures);
            let exp = (every * (1 << failures.min(16))).min(max);
            assert!(d >= exp / 2 && d <= exp, "{failures}: {d:?}");
        }
        let draws: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(every, max, 10)).collect();
        assert!(draws.len() > 1, "no jitter");
    }
}
