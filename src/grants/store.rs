//! The grants store: the snapshot in force behind an `ArcSwapOption`, the time of the last
//! successful fetch, and the created-works overlay. Requests only `load` (never wait); a new
//! document is validated and built by the caller of `apply`, off the request path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

use super::admission::{Admission, Refusal};
use super::load::{Loaded, load_update};
use super::overlay::CreatedWorks;
use super::snapshot::{Snapshot, SnapshotError};
use crate::clock::Clock;
use crate::grants::config::OnStale;
use crate::reason::Reason;
use crate::telemetry::events::{SnapshotDelta, SnapshotFetch};
use crate::telemetry::metrics::Metrics;

/// No successful fetch yet.
const NEVER: u64 = u64::MAX;

pub struct GrantsStore {
    snapshot: ArcSwapOption<Snapshot>,
    /// Milliseconds since the epoch of the last successful fetch (new, unchanged or 304).
    last_fetch_ms: AtomicU64,
    created: CreatedWorks,
    max_age: Duration,
    on_stale: OnStale,
    metrics: Metrics,
    /// Serialises `apply` so two documents cannot both pass the version check; readers never
    /// take it.
    applying: Mutex<()>,
    clock: Clock,
    /// The snapshot guard (the `guard` module), consulted before a snapshot replaces another.
    admission: Option<Arc<dyn Admission>>,
    /// A candidate the guard refused, until a later one goes into force or it is accepted.
    pending: Mutex<Option<Arc<Snapshot>>>,
}

/// The version in force after `apply_update`, and whether a delta brought it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub version: u64,
    pub delta: bool,
    /// A version not in force before went into force (false: the same version again).
    pub changed: bool,
}

/// Why `apply` left the snapshot in force unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Rejected(#[from] SnapshotError),
    /// A delta was refused: a full document should be fetched.
    #[error("delta refused: {0}")]
    Delta(#[source] SnapshotError),
    #[error("grants store lock poisoned by a panic in an earlier apply")]
    Poisoned,
    #[error("snapshot version {version} refused by the guard: {refusal}")]
    Refused {
        version: u64,
        #[source]
        refusal: Refusal,
    },
    #[error("snapshot version {0} was refused by the guard and awaits acceptance")]
    StillPending(u64),
}

/// Why `accept` put nothing in force.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("no refused snapshot of version {asked} is pending (pending: {pending:?})")]
    NotPending { asked: u64, pending: Option<u64> },
    #[error("grants store lock poisoned by a panic in an earlier apply")]
    Poisoned,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read grants file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("grants file {path}: {source}")]
    Snapshot {
        path: PathBuf,
        #[source]
        source: SnapshotError,
    },
}

impl GrantsStore {
    pub fn new(max_age: Duration, on_stale: OnStale, metrics: Metrics) -> GrantsStore {
        metrics.snapshot_version.set(0);
        GrantsStore {
            snapshot: ArcSwapOption::empty(),
            last_fetch_ms: AtomicU64::new(NEVER),
            created: CreatedWorks::default(),
            max_age,
            on_stale,
            metrics,
            applying: Mutex::new(()),
            clock: Clock::system(),
            admission: None,
            pending: Mutex::new(None),
        }
    }

    /// Puts `admission` in the way of every snapshot after the first.
    pub fn with_admission(mut self, admission: Arc<dyn Admission>) -> GrantsStore {
        self.admission = Some(admission);
        self
    }

    /// The same store judging freshness by `clock` (shared with the gateway).
    pub fn with_clock(mut self, clock: Clock) -> GrantsStore {
        self.clock = clock;
        self
    }

    /// The clock the sources stamp fetches with and the gateway asks freshness at.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The snapshot for one request, or why there is none.
    pub fn current(&self, now: SystemTime) -> Result<Arc<Snapshot>, Reason> {
        let snapshot = self
            .snapshot
            .load_full()
            .ok_or(Reason::SnapshotUnavailable)?;
        if self.on_stale == OnStale::Deny && self.is_stale(now) {
            return Err(Reason::SnapshotStale);
        }
        Ok(snapshot)
    }

    pub fn created(&self) -> &CreatedWorks {
        &self.created
    }

    /// Has a snapshot and it is not stale (whatever `on_stale` says: readiness tells the
    /// orchestrator the grants are out of date even when requests are still served).
    pub fn ready(&self, now: SystemTime) -> bool {
        self.update_age(now);
        self.snapshot.load().is_some() && !self.is_stale(now)
    }

    /// The version in force, if any.
    pub fn version(&self) -> Option<u64> {
        self.snapshot.load().as_ref().map(|s| s.version)
    }

    /// Validates and builds `bytes` (a full document or a delta) and swaps the result in; on
    /// failure the old snapshot stays. A full document with the version already in force is
    /// ignored (counted as not modified: the source answered, nothing changed). Returns the
    /// version in force afterwards. CPU-heavy for big documents: call it off the async
    /// runtime's worker threads.
    pub fn apply(&self, bytes: &[u8], now: SystemTime) -> Result<u64, ApplyError> {
        self.apply_update(bytes, now, Some(bytes.len() as u64))
            .map(|a| a.version)
    }

    /// `apply` from a stream (a file, a decoder), also saying whether the document was a
    /// delta. The document is read straight into the indexes, never held whole. `size_hint`
    /// (a file's length, a body's decoded size) sizes the indexes once; a wrong hint costs only
    /// speed.
    pub fn apply_update(
        &self,
        reader: impl Read,
        now: SystemTime,
        size_hint: Option<u64>,
    ) -> Result<Applied, ApplyError> {
        let _guard = self.applying.lock().map_err(|_| ApplyError::Poisoned)?;
        let in_force = self.version();
        let loaded = match load_update(reader, in_force, size_hint) {
            Ok(loaded) => loaded,
            Err(e) => return Err(self.rejected(e, in_force)),
        };
        let (snapshot, delta) = match loaded {
            Loaded::Unchanged(version) => {
                self.fetched(now, SnapshotFetch::NotModified);
                return Ok(Applied {
                    version,
                    delta: false,
                    changed: false,
                });
            }
            Loaded::Full(snapshot) => (snapshot, false),
            Loaded::Delta(delta) => {
                let Some(current) = self.snapshot.load_full() else {
                    return Err(self.delta_refused(SnapshotError::DeltaBase {
                        since: delta.since,
                        in_force,
                    }));
                };
                match current.apply_delta(&delta) {
                    Ok(snapshot) => {
                        self.metrics.snapshot_delta(SnapshotDelta::Applied);
                        (snapshot, true)
                    }
                    Err(e) => return Err(self.delta_refused(e)),
                }
            }
        };
        let version = snapshot.version;
        if self.pending_version() == Some(version) {
            // The version the guard already refused: not judged again. The source answered;
            // the operator has been told (gauge, alert, log).
            self.fetched(now, SnapshotFetch::Refused);
            return Err(ApplyError::StillPending(version));
        }
        if let (Some(admission), Some(old)) = (&self.admission, self.snapshot.load_full())
            && let Err(refusal) = admission.admit(&old, &snapshot)
        {
            tracing::error!(
                in_force = old.version,
                refused = version,
                reason = %refusal,
                "grants snapshot refused by the guard; the one in force stays (accept with POST /grants/accept?version={version})"
            );
            self.set_pending(Some(Arc::new(snapshot)));
            self.fetched(now, SnapshotFetch::Refused);
            return Err(ApplyError::Refused { version, refusal });
        }
        self.put_in_force(&Arc::new(snapshot), now);
        Ok(Applied {
            version,
            delta,
            changed: true,
        })
    }

    /// Puts the refused candidate of `version` in force (the operator's accept).
    pub fn accept(&self, version: u64, now: SystemTime) -> Result<u64, AcceptError> {
        let _guard = self.applying.lock().map_err(|_| AcceptError::Poisoned)?;
        let pending = self
            .pending
            .lock()
            .map_err(|_| AcceptError::Poisoned)?
            .clone();
        match pending {
            Some(snapshot) if snapshot.version == version => {
                tracing::warn!(version, "refused grants snapshot accepted by an operator");
                self.put_in_force(&snapshot, now);
                Ok(version)
            }
            other => Err(AcceptError::NotPending {
                asked: version,
                pending: other.map(|s| s.version),
            }),
        }
    }

    /// The version of the candidate the guard refused, if one is pending.
    pub fn pending_version(&self) -> Option<u64> {
        self.pending.lock().ok()?.as_ref().map(|s| s.version)
    }

    fn set_pending(&self, snapshot: Option<Arc<Snapshot>>) {
        let version = snapshot.as_ref().map_or(0, |s| s.version);
        if let Ok(mut pending) = self.pending.lock() {
            *pending = snapshot;
        }
        self.metrics
            .guard_refused_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
    }

    /// The one place a snapshot goes into force.
    fn put_in_force(&self, snapshot: &Arc<Snapshot>, now: SystemTime) {
        let version = snapshot.version;
        // Swap first, then prune: a work leaves the overlay only once readers can already
        // find it in the snapshot.
        let previous = self.snapshot.swap(Some(Arc::clone(snapshot)));
        self.created.prune(snapshot);
        self.set_pending(None);
        self.metrics
            .snapshot_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        self.fetched(now, SnapshotFetch::Ok);
        tracing::info!(
            version,
            works = snapshot.work_count(),
            users = snapshot.user_count(),
            "grants snapshot in force"
        );
        if let Some(previous) = previous {
            release_when_unused(previous);
        }
    }

    fn rejected(&self, e: SnapshotError, in_force: Option<u64>) -> ApplyError {
        self.metrics.snapshot_fetched(SnapshotFetch::Invalid);
        match &e {
            SnapshotError::Invalid(problems) => tracing::warn!(
                in_force = ?in_force,
                problems = %problems,
                "grants document rejected; previous snapshot stays"
            ),
            other => tracing::warn!(
                in_force = ?in_force,
                error = %other,
                "grants document rejected; previous snapshot stays"
            ),
        }
        e.into()
    }

    /// A delta that does not apply (wrong base) or fails validation; the caller fetches a
    /// full document next.
    fn delta_refused(&self, e: SnapshotError) -> ApplyError {
        let result = match &e {
            SnapshotError::DeltaBase { .. } => SnapshotDelta::Mismatched,
            _ => SnapshotDelta::Refused,
        };
        self.metrics.snapshot_delta(result);
        if result == SnapshotDelta::Refused {
            self.metrics.snapshot_fetched(SnapshotFetch::Invalid);
        }
        tracing::warn!(error = %e, problems = ?problems_of(&e), "grants delta refused; previous snapshot stays");
        ApplyError::Delta(e)
    }

    /// The source answered "unchanged" (HTTP 304, or a file that did not change).
    pub(super) fn not_modified(&self, now: SystemTime) {
        self.fetched(now, SnapshotFetch::NotModified);
    }

    /// The source could not be reached or read.
    pub(super) fn fetch_failed(&self, now: SystemTime) {
        self.metrics.snapshot_fetched(SnapshotFetch::Error);
        self.update_age(now);
    }

    fn fetched(&self, now: SystemTime, result: SnapshotFetch) {
        self.last_fetch_ms.store(millis(now), Ordering::Release);
        self.metrics.snapshot_fetched(result);
        self.update_age(now);
    }

    /// Time since the last successful fetch; None before the first.
    fn age(&self, now: SystemTime) -> Option<Duration> {
        let last = self.last_fetch_ms.load(Ordering::Acquire);
        (last != NEVER).then(|| Duration::from_millis(millis(now).saturating_sub(last)))
    }

    fn is_stale(&self, now: SystemTime) -> bool {
        self.age(now).is_none_or(|age| age > self.max_age)
    }

    fn update_age(&self, now: SystemTime) {
        if let Some(age) = self.age(now) {
            self.metrics.snapshot_age_seconds.set(age.as_secs_f64());
        }
    }
}

/// How long `release_when_unused` waits for requests to let go of an old snapshot.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Frees a replaced snapshot on this (blocking) thread once in-flight requests are done with
/// it. Otherwise the last request holding it would free a million works on an async worker,
/// stalling every connection on that worker for milliseconds. After `RELEASE_WAIT` it is left
/// to whoever holds it last.
fn release_when_unused(mut old: Arc<Snapshot>) {
    let started = std::time::Instant::now();
    loop {
        match Arc::try_unwrap(old) {
            Ok(snapshot) => return drop(snapshot),
            Err(shared) if started.elapsed() < RELEASE_WAIT => {
                old = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return,
        }
    }
}

fn problems_of(e: &SnapshotError) -> Option<String> {
    match e {
        SnapshotError::Invalid(problems) => Some(problems.to_string()),
        _ => None,
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(NEVER - 1))
        .unwrap_or(0)
}

/// Loads a snapshot file once (for `streetgate explain` and tests).
pub fn load_file(path: &Path) -> Result<Snapshot, LoadError> {
    let file = std::fs::File::open(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Snapshot::from_reader_sized(file, None, size).map_err(|source| LoadError::Snapshot {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::synthetic::synthetic_document_version;

    const MAX_AGE: Duration = Duration::from_secs(60);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn staleness_counts_from_the_last_successful_fetch() {
        let metrics = Metrics::new();
        let store = GrantsStore::new(MAX_AGE, OnStale::Deny, metrics.clone());
        assert_eq!(
            store.current(at(0)).unwrap_err(),
            Reason::SnapshotUnavailable
        );
        assert!(!store.ready(at(0)));

        store
            .apply(&synthetic_document_version(1, 4, 4, 4), at(0))
            .unwrap();
        assert!(store.ready(at(60)), "exactly max_age is still fresh");
        assert_eq!(store.current(at(60)).unwrap().version, 1);
        assert!(!store.ready(at(61)));
        assert_eq!(store.current(at(61)).unwrap_err(), Reason::SnapshotStale);
        assert_eq!(metrics.snapshot_age_seconds.get(), 61.0);

        // A failure does not refresh; an unchanged answer does.
        store.fetch_failed(at(70));
        assert!(!store.ready(at(70)));
        store.not_modified(at(70));
        assert!(store.ready(at(130)));
        assert!(!store.ready(at(131)));
        // So does a document with the version in force.
        store
            .apply(&synthetic_document_version(1, 4, 4, 4), at(131))
            .unwrap();
        assert!(store.ready(at(131)));
        // A rejected one does not.
        store.apply(b"{}", at(200)).unwrap_err();
        assert!(!store.ready(at(200)));

        let count = |r: &str| metrics.snapshot_fetch.with_label_values(&[r]).get();
        assert_eq!(
            (
                count("ok"),
                count("not_modified"),
                count("error"),
                count("invalid")
            ),
            (1, 2, 1, 1)
        );
    }

    #[test]
    fn serve_stale_keeps_answering_but_is_not_ready() {
        let store = GrantsStore::new(MAX_AGE, OnStale::ServeStale, Metrics::new());
        assert_eq!(
            store.current(at(0)).unwrap_err(),
            Reason::SnapshotUnavailable
        );
        store
            .apply(&synthetic_document_version(3, 4, 4, 4), at(0))
            .unwrap();
        assert_eq!(store.current(at(3600)).unwrap().version, 3);
        assert!(!store.ready(at(3600)));
    }

    #[test]
    fn a_clock_before_the_fetch_is_not_stale() {
        let store = GrantsStore::new(MAX_AGE, OnStale::Deny, Metrics::new());
        store
            .apply(&synthetic_document_version(1, 4, 4, 4), at(100))
            .unwrap();
        assert!(store.ready(at(0)));
    }
}
