//! The retained versions: each one's entries keyed as the delta contract keys them (swa_code,
//! sub, work_reference_number), its full document, the keys that changed from the version
//! before it, and the deltas between retained versions. An entry unchanged from the previous
//! version shares its allocation with it, so K retained versions of a slowly changing snapshot
//! cost little more than one.
//!
//! The per-version work follows the change, not the snapshot or the fleet: an entry whose
//! bytes equal the previous version's is reused without being parsed again, a delta is built
//! from the keys the versions in between changed (never by diffing whole versions), and each
//! delta and each compressed body is made once, on first use, however many pollers ask.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use http::HeaderValue;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use tokio::sync::watch;

use super::encoded::Encoded;
use super::metrics::PublishMetrics;
use crate::grants::{Snapshot, SnapshotError};
use crate::json_str::CowStr;

/// Key → the entry as stored. Keys are shared between versions like the entries; foldhash,
/// not SipHash: the keys come from validated drops, and every entry is looked up per version.
type Entries = HashMap<Arc<str>, Stored, foldhash::fast::RandomState>;

/// One entry of one version.
#[derive(Clone)]
struct Stored {
    /// Its canonical JSON (compact, keys sorted): what deltas carry and what is compared.
    canonical: Arc<str>,
    /// The bytes as dropped, when they differ from `canonical`, so that the same bytes in the
    /// next drop are recognised without parsing them.
    raw: Option<Arc<str>>,
}

impl Stored {
    fn dropped_as(&self, text: &str) -> bool {
        self.raw.as_deref().unwrap_or(&*self.canonical) == text
    }

    fn same(&self, other: &Stored) -> bool {
        Arc::ptr_eq(&self.canonical, &other.canonical) || self.canonical == other.canonical
    }
}

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
    /// Per kind, the keys upserted or deleted since the version published before this one
    /// (empty for the first).
    changed: [Vec<Arc<str>>; 3],
    pub full: Arc<Encoded>,
}

/// Why a drop was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Invalid(#[from] SnapshotError),
    #[error("entry without its key: {0}")]
    Entry(String),
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
            PublishError::Poisoned => "error",
        }
    }
}

/// Where `?since=V` leads.
pub enum Since {
    /// V is the latest: nothing newer.
    Current,
    /// The answer for V → latest (a delta, or the full document when that is smaller).
    Answer(Arc<Encoded>),
    /// The delta V → latest is not built yet: `since_built` builds it (off the runtime).
    Unbuilt,
    /// V is not retained (too old, or never published).
    Gone,
}

/// A delta, built once by whoever asks first; later askers wait for it or find it ready.
type DeltaCell = Arc<OnceLock<Arc<Encoded>>>;

pub struct Catalog {
    inner: RwLock<Inner>,
    latest: watch::Sender<u64>,
    retain: usize,
    /// One publish at a time: each version's `changed` is relative to the one before it.
    publishing: Mutex<()>,
    metrics: PublishMetrics,
}

#[derive(Default)]
struct Inner {
    versions: BTreeMap<u64, Arc<Version>>,
    /// (since, version) → delta document.
    deltas: HashMap<(u64, u64), DeltaCell>,
}

impl Catalog {
    /// Keeps the last `retain` versions (at least one).
    pub fn new(retain: usize, metrics: PublishMetrics) -> Catalog {
        Catalog {
            inner: RwLock::new(Inner::default()),
            latest: watch::Sender::new(0),
            retain: retain.max(1),
            publishing: Mutex::new(()),
            metrics,
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
    /// then makes it the latest, with the delta from the previous version (where the pollers
    /// a new version wakes are) built before it is announced. Validation runs on a second
    /// thread while the entries are keyed. CPU-heavy: call it off the async runtime. Returns
    /// the new version number.
    pub fn publish(&self, bytes: &Bytes) -> Result<u64, PublishError> {
        let _one = self.publishing.lock().map_err(|_| PublishError::Poisoned)?;
        let previous = self.latest();
        let in_force = previous.as_ref().map(|p| p.number);
        let (checked, keyed) = std::thread::scope(|s| {
            let check = s.spawn(|| Snapshot::from_json(bytes, in_force).map(drop));
            let keyed = key_document(bytes, previous.as_deref());
            (check.join(), keyed)
        });
        match checked {
            Ok(result) => result?,
            Err(panic) => std::panic::resume_unwind(panic),
        }
        let version = Arc::new(keyed?);
        let number = version.number;
        let first = previous.map(|p| {
            let d = self.build_delta(&p, &[&*version]);
            ((p.number, number), Arc::new(OnceLock::from(d)))
        });
        {
            let mut inner = self.inner.write().map_err(|_| PublishError::Poisoned)?;
            inner.versions.insert(number, version);
            while inner.versions.len() > self.retain {
                inner.versions.pop_first();
            }
            let Inner { versions, deltas } = &mut *inner;
            deltas.extend(first);
            deltas.retain(|(a, b), _| versions.contains_key(a) && versions.contains_key(b));
        }
        self.latest.send_replace(number);
        Ok(number)
    }

    /// The answer to `?since=v` if it is ready; `Unbuilt` when its delta must be built first.
    pub fn since(&self, v: u64) -> Since {
        self.answer(v, false)
    }

    /// The answer to `?since=v`, building its delta if nobody has yet. May take a while for
    /// a big change: call it off the async runtime.
    pub fn since_built(&self, v: u64) -> Since {
        self.answer(v, true)
    }

    fn answer(&self, v: u64, build: bool) -> Since {
        let Ok(inner) = self.inner.read() else {
            return Since::Gone;
        };
        let Some((&latest, version)) = inner.versions.last_key_value() else {
            return Since::Gone;
        };
        if v == latest {
            return Since::Current;
        }
        if !inner.versions.contains_key(&v) {
            return Since::Gone;
        }
        let full = Arc::clone(&version.full);
        let delta = match inner.deltas.get(&(v, latest)).and_then(|c| c.get()) {
            Some(d) => Arc::clone(d),
            None if !build => return Since::Unbuilt,
            None => {
                drop(inner);
                match self.delta(v, latest) {
                    Ok(Some(d)) => d,
                    _ => return Since::Gone,
                }
            }
        };
        // The contract lets a source answer a full document instead; it does when that is
        // smaller (a change touching most entries).
        if delta.identity_len() > full.identity_len() {
            Since::Answer(full)
        } else {
            Since::Answer(delta)
        }
    }

    /// The delta `a` → `b` between two retained versions (also for its immutable URL), built
    /// on first use from the keys the versions after `a` up to `b` changed. Concurrent askers
    /// of the same pair wait for one build.
    pub fn delta(&self, a: u64, b: u64) -> Result<Option<Arc<Encoded>>, PublishError> {
        let (cell, old, chain) = {
            let mut inner = self.inner.write().map_err(|_| PublishError::Poisoned)?;
            let Some(old) = inner.versions.get(&a).cloned() else {
                return Ok(None);
            };
            if a >= b || !inner.versions.contains_key(&b) {
                return Ok(None);
            }
            let chain: Vec<Arc<Version>> = inner
                .versions
                .range(a + 1..=b)
                .map(|(_, v)| Arc::clone(v))
                .collect();
            let cell = Arc::clone(inner.deltas.entry((a, b)).or_default());
            (cell, old, chain)
        };
        let chain: Vec<&Version> = chain.iter().map(|v| &**v).collect();
        Ok(Some(Arc::clone(
            cell.get_or_init(|| self.build_delta(&old, &chain)),
        )))
    }

    /// The delta from `old` to the last of `chain` (every version published after `old`, in
    /// order): only the keys they changed are looked at.
    fn build_delta(&self, old: &Version, chain: &[&Version]) -> Arc<Encoded> {
        self.metrics.deltas_built.inc();
        let Some(new) = chain.last() else {
            return Arc::new(Encoded::new(
                HeaderValue::from_static("\"empty\""),
                Bytes::new(),
            ));
        };
        let mut upsert = String::new();
        let mut delete = String::new();
        for (i, (kind, _)) in KINDS.iter().enumerate() {
            let (before, after) = (&old.entries[i], &new.entries[i]);
            let mut keys: Vec<&str> = chain
                .iter()
                .flat_map(|v| v.changed[i].iter().map(|k| &**k))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(upsert, "{sep}\"{kind}\":[");
            let _ = write!(delete, "{sep}\"{kind}\":[");
            let (mut upserts, mut deletes) = (0, 0);
            for key in keys {
                match (before.get(key), after.get(key)) {
                    (Some(b), Some(a)) if b.same(a) => {}
                    (_, Some(a)) => {
                        upsert.push_str(if upserts == 0 { "" } else { "," });
                        upsert.push_str(&a.canonical);
                        upserts += 1;
                    }
                    (Some(_), None) => {
                        delete.push_str(if deletes == 0 { "" } else { "," });
                        delete.push_str(&serde_json::Value::from(key).to_string());
                        deletes += 1;
                    }
                    (None, None) => {}
                }
            }
            upsert.push(']');
            delete.push(']');
        }
        let generated_at = serde_json::Value::from(new.generated_at.as_str());
        let body = format!(
            "{{\"version\":{},\"since\":{},\"generated_at\":{generated_at},\"upsert\":{{{upsert}}},\"delete\":{{{delete}}}}}",
            new.number, old.number
        );
        Arc::new(Encoded::new(
            etag(&format!("\"{}-{}\"", old.number, new.number)),
            Bytes::from(body),
        ))
    }
}

/// An ETag made of version numbers, which are always valid header characters.
fn etag(quoted: &str) -> HeaderValue {
    HeaderValue::from_str(quoted).unwrap_or(HeaderValue::from_static("\"\""))
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

/// A version's entries keyed and canonicalised, with what changed since `previous`.
fn key_document(bytes: &Bytes, previous: Option<&Version>) -> Result<Version, PublishError> {
    let doc: Loose<'_> =
        serde_json::from_slice(bytes).map_err(|e| PublishError::Entry(e.to_string()))?;
    let number = doc.version;
    let lists = [&doc.organisations, &doc.users, &doc.works];
    let mut entries: [Entries; 3] = Default::default();
    let mut changed: [Vec<Arc<str>>; 3] = Default::default();
    for (i, list) in lists.into_iter().enumerate() {
        let before = previous.map(|p| &p.entries[i]);
        (entries[i], changed[i]) = keyed(list, KINDS[i].1, before)?;
    }
    if previous.is_none() {
        changed = Default::default();
    }
    Ok(Version {
        number,
        generated_at: doc.generated_at,
        entries,
        changed,
        full: Arc::new(Encoded::new(etag(&format!("\"{number}\"")), bytes.clone())),
    })
}

/// Keys each entry, reusing the previous version's when its bytes are the same, else
/// canonicalising it, so a re-ordered or re-indented drop of the same entry is not a change.
/// Also returns the keys upserted or deleted since `before`.
fn keyed(
    list: &[&RawValue],
    key: &'static str,
    before: Option<&Entries>,
) -> Result<(Entries, Vec<Arc<str>>), PublishError> {
    let mut out = HashMap::with_capacity_and_hasher(list.len(), Default::default());
    let mut changed = Vec::new();
    let mut kept = 0usize;
    for raw in list {
        let text = raw.get();
        let mut de = serde_json::Deserializer::from_str(text);
        let name = match KeyOf(key).deserialize(&mut de) {
            Ok(Some(k)) => k.0,
            Ok(None) => return Err(PublishError::Entry(format!("no {key}"))),
            Err(e) => return Err(PublishError::Entry(e.to_string())),
        };
        let found = before.and_then(|b| b.get_key_value(&*name));
        kept += usize::from(found.is_some());
        let (k, prev): (Arc<str>, _) = match found {
            Some((k, prev)) => (Arc::clone(k), Some(prev)),
            None => (Arc::from(&*name), None),
        };
        let stored = match prev {
            Some(p) if p.dropped_as(text) => p.clone(),
            _ => {
                let value: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| PublishError::Entry(e.to_string()))?;
                let canonical = value.to_string();
                let raw = (canonical != text).then(|| Arc::from(text));
                match prev {
                    Some(p) if *p.canonical == *canonical => Stored {
                        canonical: Arc::clone(&p.canonical),
                        raw,
                    },
                    _ => {
                        changed.push(k.clone());
                        Stored {
                            canonical: Arc::from(canonical),
                            raw,
                        }
                    }
                }
            }
        };
        out.insert(k, stored);
    }
    // Every key of `before` met again means none was deleted: no need to look for them.
    if let Some(before) = before
        && kept < before.len()
    {
        changed.extend(before.keys().filter(|k| !out.contains_key(*k)).cloned());
    }
    Ok((out, changed))
}

/// The string value of one named field of a JSON object, reading nothing else into memory.
struct KeyOf(&'static str);

impl<'de> DeserializeSeed<'de> for KeyOf {
    type Value = Option<CowStr<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyOf {
    type Value = Option<CowStr<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an object with {}", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(name) = map.next_key::<CowStr<'de>>()? {
            if name.0 == self.0 && found.is_none() {
                // Read whole whatever it is; a key that is not a string is no key.
                let raw: &'de RawValue = map.next_value()?;
                found = serde_json::from_str::<CowStr<'de>>(raw.get()).ok();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}
