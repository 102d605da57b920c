//! The retained versions: each one's entries keyed as the delta contract keys them (swa_code,
//! sub, work_reference_number), its full document precompressed, and the deltas between
//! retained versions, computed by diffing entries. An entry unchanged from the previous
//! version shares its allocation with it, so K retained versions of a slowly changing snapshot
//! cost little more than one.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::watch;

use super::encoded::Encoded;
use crate::grants::{Snapshot, SnapshotError};

/// Key → the entry's canonical JSON (compact, keys sorted).
type Entries = HashMap<Box<str>, Arc<str>>;

/// The three kinds of entry, in the contract's order and spelling.
const KINDS: [(&str, &str); 3] = [
    ("organisations", "swa_code"),
    ("users", "sub"),
    ("works", "work_reference_number"),
];

pub struct Version {
    pub number: u64,
    generated_at: String,
    /// One map per `KINDS` entry.
    entries: [Entries; 3],
    pub full: Arc<Encoded>,
}

/// Why a drop was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Invalid(#[from] SnapshotError),
    #[error("entry without its key: {0}")]
    Entry(String),
    #[error("cannot compress: {0}")]
    Compress(#[from] std::io::Error),
    #[error("catalog lock poisoned")]
    Poisoned,
}

impl PublishError {
    /// The `reason` label of the rejected-drops metric.
    pub fn label(&self) -> &'static str {
        match self {
            PublishError::Invalid(SnapshotError::Invalid(problems))
                if problems.len() == 1 && problems.iter().all(|p| p.location == "version") =>
            {
                "not_newer"
            }
            PublishError::Invalid(_) | PublishError::Entry(_) => "invalid",
            PublishError::Compress(_) | PublishError::Poisoned => "error",
        }
    }
}

/// Where `?since=V` leads.
pub enum Since {
    /// V is the latest: nothing newer.
    Current,
    /// The answer for V → latest (a delta, or the full document when that is smaller).
    Answer(Arc<Encoded>),
    /// V is not retained (too old, or never published).
    Gone,
}

pub struct Catalog {
    inner: RwLock<Inner>,
    latest: watch::Sender<u64>,
    retain: usize,
}

#[derive(Default)]
struct Inner {
    versions: BTreeMap<u64, Arc<Version>>,
    /// (since, version) → delta document.
    deltas: HashMap<(u64, u64), Arc<Encoded>>,
}

impl Catalog {
    /// Keeps the last `retain` versions (at least one).
    pub fn new(retain: usize) -> Catalog {
        Catalog {
            inner: RwLock::new(Inner::default()),
            latest: watch::Sender::new(0),
            retain: retain.max(1),
        }
    }

    /// The latest version number (0 before the first); watch it to wait for a newer one.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    pub fn latest(&self) -> Option<Arc<Version>> {
        let inner = self.inner.read().ok()?;
        inner.versions.last_key_value().map(|(_, v)| Arc::clone(v))
    }

    pub fn version(&self, n: u64) -> Option<Arc<Version>> {
        self.inner.read().ok()?.versions.get(&n).cloned()
    }

    pub fn retained(&self) -> usize {
        self.inner.read().map(|i| i.versions.len()).unwrap_or(0)
    }

    /// Validates `bytes` exactly as the sidecar would (a version must exceed the latest),
    /// then makes it the latest, with its deltas from every retained version precomputed so
    /// the pollers a new version wakes all find their answer ready. CPU-heavy: call it off
    /// the async runtime. Returns the new version number.
    pub fn publish(&self, bytes: &Bytes) -> Result<u64, PublishError> {
        let previous = self.latest();
        Snapshot::from_json(bytes, previous.as_ref().map(|p| p.number))?;
        let doc: Loose<'_> =
            serde_json::from_slice(bytes).map_err(|e| PublishError::Entry(e.to_string()))?;
        let number = doc.version;
        let lists = [&doc.organisations, &doc.users, &doc.works];
        let mut entries: [Entries; 3] = Default::default();
        for (i, list) in lists.into_iter().enumerate() {
            let before = previous.as_ref().map(|p| &p.entries[i]);
            entries[i] = keyed(list, KINDS[i].1, before)?;
        }
        let version = Arc::new(Version {
            number,
            generated_at: doc.generated_at,
            entries,
            full: Arc::new(Encoded::new(&format!("\"{number}\""), bytes.clone())?),
        });
        let older: Vec<Arc<Version>> = {
            let inner = self.inner.read().map_err(|_| PublishError::Poisoned)?;
            inner.versions.values().cloned().collect()
        };
        let mut deltas = Vec::with_capacity(older.len());
        for old in &older {
            deltas.push(((old.number, number), Arc::new(delta(old, &version)?)));
        }
        {
            let mut inner = self.inner.write().map_err(|_| PublishError::Poisoned)?;
            inner.versions.insert(number, version);
            while inner.versions.len() > self.retain {
                inner.versions.pop_first();
            }
            let Inner {
                versions,
                deltas: d,
            } = &mut *inner;
            d.extend(deltas);
            d.retain(|(a, b), _| versions.contains_key(a) && versions.contains_key(b));
        }
        self.latest.send_replace(number);
        Ok(number)
    }

    /// The answer to `?since=v`.
    pub fn since(&self, v: u64) -> Since {
        let Ok(inner) = self.inner.read() else {
            return Since::Gone;
        };
        let Some((&latest, version)) = inner.versions.last_key_value() else {
            return Since::Gone;
        };
        if v == latest {
            return Since::Current;
        }
        match inner.deltas.get(&(v, latest)) {
            // The contract lets a source answer a full document instead; it does when that is
            // smaller (a change touching most entries).
            Some(d) if d.identity_len() > version.full.identity_len() => {
                Since::Answer(Arc::clone(&version.full))
            }
            Some(d) => Since::Answer(Arc::clone(d)),
            None => Since::Gone,
        }
    }

    /// The delta `a` → `b` between two retained versions (for its immutable URL), computed on
    /// first use when `b` is not the latest.
    pub fn delta(&self, a: u64, b: u64) -> Result<Option<Arc<Encoded>>, PublishError> {
        let (old, new) = {
            let inner = self.inner.read().map_err(|_| PublishError::Poisoned)?;
            if let Some(d) = inner.deltas.get(&(a, b)) {
                return Ok(Some(Arc::clone(d)));
            }
            match (inner.versions.get(&a), inner.versions.get(&b)) {
                (Some(old), Some(new)) if a < b => (Arc::clone(old), Arc::clone(new)),
                _ => return Ok(None),
            }
        };
        let d = Arc::new(delta(&old, &new)?);
        let mut inner = self.inner.write().map_err(|_| PublishError::Poisoned)?;
        if inner.versions.contains_key(&a) && inner.versions.contains_key(&b) {
            inner.deltas.insert((a, b), Arc::clone(&d));
        }
        Ok(Some(d))
    }
}

/// Only what diffing needs; `Snapshot::from_json` has already checked the rest.
#[derive(Deserialize)]
struct Loose<'a> {
    version: u64,
    generated_at: String,
    #[serde(default, borrow)]
    organisations: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    users: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    works: Vec<&'a RawValue>,
}

/// Keys each entry and canonicalises it, so a re-ordered or re-indented drop of the same entry
/// is not a change. An entry equal to the previous version's reuses its allocation.
fn keyed(list: &[&RawValue], key: &str, before: Option<&Entries>) -> Result<Entries, PublishError> {
    let mut out = HashMap::with_capacity(list.len());
    for raw in list {
        let value: serde_json::Value =
            serde_json::from_str(raw.get()).map_err(|e| PublishError::Entry(e.to_string()))?;
        let Some(k) = value.get(key).and_then(|k| k.as_str()) else {
            return Err(PublishError::Entry(format!("no {key}")));
        };
        let k: Box<str> = k.into();
        let canonical = value.to_string();
        let shared = match before.and_then(|b| b.get(&k)) {
            Some(prev) if **prev == *canonical => Arc::clone(prev),
            _ => Arc::from(canonical),
        };
        out.insert(k, shared);
    }
    Ok(out)
}

/// The delta document `old` → `new`, exactly as the contract gives it; entries sorted by key
/// so the same pair always yields the same bytes (and ETag).
fn delta(old: &Version, new: &Version) -> Result<Encoded, PublishError> {
    let mut upsert = String::new();
    let mut delete = String::new();
    for (i, (kind, _)) in KINDS.iter().enumerate() {
        let (before, after) = (&old.entries[i], &new.entries[i]);
        let mut changed: Vec<(&Box<str>, &Arc<str>)> = after
            .iter()
            .filter(|(k, v)| before.get(*k).is_none_or(|b| !Arc::ptr_eq(b, v) && b != *v))
            .collect();
        changed.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut gone: Vec<&Box<str>> = before.keys().filter(|k| !after.contains_key(*k)).collect();
        gone.sort_unstable();
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(upsert, "{sep}\"{kind}\":[");
        for (j, (_, entry)) in changed.iter().enumerate() {
            upsert.push_str(if j == 0 { "" } else { "," });
            upsert.push_str(entry);
        }
        upsert.push(']');
        let _ = write!(delete, "{sep}\"{kind}\":[");
        for (j, key) in gone.iter().enumerate() {
            delete.push_str(if j == 0 { "" } else { "," });
            delete.push_str(&serde_json::Value::from(&***key).to_string());
        }
        delete.push(']');
    }
    let generated_at = serde_json::Value::from(new.generated_at.as_str());
    let body = format!(
        "{{\"version\":{},\"since\":{},\"generated_at\":{generated_at},\"upsert\":{{{upsert}}},\"delete\":{{{delete}}}}}",
        new.number, old.number
    );
    Ok(Encoded::new(
        &format!("\"{}-{}\"", old.number, new.number),
        Bytes::from(body),
    )?)
}
