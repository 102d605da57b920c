//! Watches the drop directory. The legacy system writes a snapshot under another name (a
//! dotfile or `*.tmp`) and renames it to `*.json` when complete, so only `*.json` files not
//! starting with `.` are read. A file written in place is read too early at worst: it then
//! fails validation (truncated JSON), is counted as rejected, and is read again once its size
//! or modification time changes, so the finished file is still published.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;

use super::catalog::Catalog;
use super::metrics::PublishMetrics;

/// Size and modification time: a file whose stamp changed is read again.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// Scans `dir` every `every` until shutdown, publishing each new or changed drop in order of
/// modification time (then name).
pub async fn run(
    dir: PathBuf,
    every: Duration,
    catalog: Arc<Catalog>,
    metrics: PublishMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen: HashMap<PathBuf, Stamp> = HashMap::new();
    loop {
        match scan(&dir).await {
            Ok(files) => {
                // Forget files that were removed, so a new drop under an old name is read.
                seen.retain(|p, _| files.iter().any(|(f, _)| f == p));
                for (path, stamp) in files {
                    if seen.get(&path) == Some(&stamp) {
                        continue;
                    }
                    seen.insert(path.clone(), stamp);
                    publish(&path, &catalog, &metrics).await;
                }
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list the drop directory")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
        }
    }
}

/// The candidate drops, oldest first.
async fn scan(dir: &Path) -> std::io::Result<Vec<(PathBuf, Stamp)>> {
    let mut out = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let Ok(meta) = entry.metadata().await else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let stamp = Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        out.push((path, stamp));
    }
    out.sort_by(|a, b| (a.1.modified, &a.0).cmp(&(b.1.modified, &b.0)));
    Ok(out)
}

async fn publish(path: &Path, catalog: &Arc<Catalog>, metrics: &PublishMetrics) {
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            metrics
                .drops_rejected
                .with_label_values(&["unreadable"])
                .inc();
            tracing::warn!(file = %path.display(), error = %e, "drop unreadable; skipped");
            return;
        }
    };
    let size = bytes.len();
    let catalog2 = Arc::clone(catalog);
    let result = tokio::task::spawn_blocking(move || catalog2.publish(&bytes)).await;
    match result {
        Ok(Ok(version)) => {
            metrics.versions_published.inc();
            metrics
                .latest_version
                .set(i64::try_from(version).unwrap_or(i64::MAX));
            metrics
                .retained_versions
                .set(i64::try_from(catalog.retained()).unwrap_or(i64::MAX));
            tracing::info!(file = %path.display(), version, bytes = size, "snapshot published");
        }
        Ok(Err(e)) => {
            metrics.drops_rejected.with_label_values(&[e.label()]).inc();
            match &e {
                super::catalog::PublishError::Invalid(crate::grants::SnapshotError::Invalid(p)) => {
                    tracing::warn!(file = %path.display(), problems = %p, "drop rejected; previous version stays served")
                }
                other => {
                    tracing::warn!(file = %path.display(), error = %other, "drop rejected; previous version stays served")
                }
            }
        }
        Err(e) => {
            metrics.drops_rejected.with_label_values(&["error"]).inc();
            tracing::error!(file = %path.display(), error = %e, "publishing a drop panicked");
        }
    }
}
