//! Keeps the grants store fed: polls a file (re-read when its mtime or size changes) or a URL
//! (deltas since the version in force, conditional GET with the last ETag, long-poll when
//! configured), backing off exponentially with jitter on failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::remote::{Answer, Encoding, Remote, decoder, size_hint};
use super::store::{Applied, ApplyError, GrantsStore};
use crate::grants::config::GrantsSource;

/// Polls the configured source until `shutdown` turns true (or its sender is dropped).
pub fn spawn_source(
    store: Arc<GrantsStore>,
    source: GrantsSource,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        match source {
            GrantsSource::File {
                path,
                poll_interval,
            } => poll_file(&store, path, poll_interval, shutdown).await,
            GrantsSource::Url {
                url,
                poll_interval,
                max_backoff,
                long_poll,
                max_document_bytes,
            } => {
                let url = UrlSource {
                    url,
                    poll_interval,
                    max_backoff,
                    long_poll,
                    max_document_bytes,
                };
                poll_url(&store, url, shutdown).await
            }
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
            Ok(Some((stamp, file))) => {
                // Remember the stamp even if the document is rejected: re-reading an unchanged
                // bad file would only log the same problems again.
                seen = Some(stamp);
                apply_file(store, file).await;
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

/// The file, opened, if its stamp changed since `seen`.
async fn read_if_changed(
    path: &Path,
    seen: Option<Stamp>,
) -> std::io::Result<Option<(Stamp, std::fs::File)>> {
    let meta = tokio::fs::metadata(path).await?;
    let stamp = Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    };
    if seen == Some(stamp) {
        return Ok(None);
    }
    let file = tokio::fs::File::open(path).await?.into_std().await;
    Ok(Some((stamp, file)))
}

async fn poll_url(store: &Arc<GrantsStore>, url: UrlSource, mut shutdown: watch::Receiver<bool>) {
    let remote = Remote::new(url.url.clone(), url.long_poll, url.max_document_bytes);
    let mut etag: Option<HeaderValue> = None;
    let mut full_next = false;
    let mut failures: u32 = 0;
    loop {
        let since = if full_next { None } else { store.version() };
        full_next = false;
        // Long-poll only while the source answers well; after a failure, poll as usual.
        let wait = url.long_poll.is_some() && failures == 0;
        let fetched = tokio::select! {
            r = remote.fetch(since, etag.as_ref(), wait) => r,
            _ = shutdown.changed() => return,
        };
        let next = match fetched {
            Ok(Answer::NotModified { held }) => {
                store.not_modified(store.clock().now());
                Next::Poll { held: held && wait }
            }
            Ok(Answer::Gone) => {
                tracing::info!(
                    url = url.url,
                    since,
                    "delta not offered; fetching the full document"
                );
                full_next = true;
                Next::Now
            }
            Ok(Answer::Document {
                body,
                encoding,
                etag: tag,
                held,
            }) => match apply(store, body, encoding, url.max_document_bytes).await {
                Outcome::Applied(applied) => {
                    // After a delta the snapshot is exactly the source's version N, whose full
                    // document has `ETag: "N"` by the contract.
                    etag = if applied.delta {
                        HeaderValue::from_str(&format!("\"{}\"", applied.version)).ok()
                    } else {
                        tag
                    };
                    // Something new arrived: while long-polling, ask again at once (a source
                    // that answered at once because it had news has not ignored `Prefer`; one
                    // that cannot hold will answer the next request at once without
                    // `Preference-Applied`, and the interval applies from then on).
                    Next::Poll {
                        held: (held || applied_new(&applied)) && wait,
                    }
                }
                Outcome::DeltaRefused => {
                    etag = None;
                    full_next = true;
                    Next::Now
                }
                // A rejected document's ETag is forgotten, so it is fetched (and rejected)
                // again rather than answered by 304s that would look like freshness.
                Outcome::Rejected => {
                    etag = None;
                    Next::Failed
                }
            },
            Err(e) => {
                tracing::warn!(url = url.url, error = %e, "grants fetch failed");
                store.fetch_failed(store.clock().now());
                Next::Failed
            }
        };
        let pause = match next {
            Next::Now | Next::Poll { held: true } => Duration::ZERO,
            Next::Poll { held: false } => url.poll_interval,
            Next::Failed => backoff(
                url.poll_interval,
                url.max_backoff,
                failures.saturating_add(1),
            ),
        };
        failures = match next {
            Next::Failed => failures.saturating_add(1),
            _ => 0,
        };
        if sleep_or_shutdown(pause, &mut shutdown).await {
            return;
        }
    }
}

/// What the URL loop does after an answer.
#[derive(Clone, Copy)]
enum Next {
    /// Ask again at once (a full document after a 410 or a refused delta).
    Now,
    /// At once when the source held the request (long-poll works), else after the interval.
    Poll { held: bool },
    /// Back off.
    Failed,
}

/// What became of a fetched document.
enum Outcome {
    Applied(Applied),
    DeltaRefused,
    Rejected,
}

/// The URL source's settings.
struct UrlSource {
    url: String,
    poll_interval: Duration,
    max_backoff: Duration,
    long_poll: Option<Duration>,
    max_document_bytes: u64,
}

/// Whether an applied answer brought a version not in force before.
fn applied_new(applied: &super::store::Applied) -> bool {
    applied.changed
}

/// Validates and builds a file's document (see `run_apply`).
async fn apply_file(store: &Arc<GrantsStore>, file: std::fs::File) -> bool {
    let store = Arc::clone(store);
    // Read as a stream: the document is never held whole. Its length sizes the indexes.
    let size = file.metadata().ok().map(|m| m.len());
    run_apply(move || store.apply_update(file, store.clock().now(), size).is_ok())
        .await
        .unwrap_or(false)
}

/// Decodes and applies a fetched body (see `run_apply`).
async fn apply(store: &Arc<GrantsStore>, body: Bytes, encoding: Encoding, limit: u64) -> Outcome {
    let store = Arc::clone(store);
    let outcome = run_apply(move || {
        let mut reader = match decoder(&body, encoding, limit) {
            Ok(reader) => reader,
            Err(e) => {
                tracing::warn!(error = %e, "grants document refused");
                store.fetch_failed(store.clock().now());
                return Outcome::Rejected;
            }
        };
        let size = size_hint(&body, encoding, limit);
        match store.apply_update(&mut reader, store.clock().now(), size) {
            Ok(applied) => Outcome::Applied(applied),
            Err(_) if reader.exceeded() => {
                tracing::warn!(
                    limit,
                    "grants document over max_document_bytes once decoded"
                );
                store.fetch_failed(store.clock().now());
                Outcome::Rejected
            }
            Err(ApplyError::Delta(_)) => Outcome::DeltaRefused,
            Err(_) => Outcome::Rejected,
        }
    })
    .await;
    outcome.unwrap_or(Outcome::Rejected)
}

/// Runs `work` (validating and building a document) on a thread of its own at a lower CPU
/// priority: a big document takes a second or more of CPU, and on a busy node requests should
/// not queue behind it (a swap under full load otherwise doubled the p99). The thread is not
/// the blocking pool's, so the pool's other work (DNS, file reads) keeps normal priority.
async fn run_apply<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, applied) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("grants-apply".into())
        .spawn(move || {
            lower_priority();
            let _ = done.send(work());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the grants apply thread");
        return None;
    }
    match applied.await {
        Ok(out) => Some(out),
        Err(_) => {
            tracing::error!("grants apply thread panicked");
            None
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
