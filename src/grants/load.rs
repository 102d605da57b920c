//! Reads a grants document from a stream straight into the indexes: each user and work is
//! checked and indexed as it is read and then dropped, so loading holds the snapshot being
//! built plus a few chunks, not the document and a tree of it. serde reads the document's
//! frame; the `users` and `works` arrays are taken out of what it reads by the splitter
//! (`split.rs`) and parsed on every core (`chunks.rs`), with the same checks, paths and order
//! of problems. Validation is the full document's: problems are kept (up to the report's cap)
//! with their paths, and duplicates are found by the indexes themselves. Users and works are
//! checked against the organisations, so those must be known first: a document that lists
//! `users` or `works` before `organisations` has those arrays held as raw JSON until the
//! organisations arrive (and not split).

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::chunks::{Estimate, Users, Works};
use super::format::{Deletes, DeltaDocument, OrganisationDoc, Upserts, UserDoc, WorkDoc};
use super::indexer::{IndexFailed, Indexer, Job};
use super::json_error::JsonError;
use super::shards::ShardedMap;
use super::snapshot::{Snapshot, SnapshotError, organisation_from, user_from};
use super::split::{Arming, Control, Finished, Splitter};
use super::timestamp::parse_rfc3339;
use super::validate::{Orgs, Report, check_generated_at, check_user, check_version, organisations};
use super::work_batch::WorkBatch;
use super::work_entry::{WorkFields, WorkScratch};

/// A document as read: a full one already built, or a delta to apply.
#[derive(Debug)]
pub enum Loaded {
    Full(Snapshot),
    Delta(DeltaDocument<'static>),
    /// The version in force again (`load_update` only): not read past `version`.
    Unchanged(u64),
}

/// Works with problems held before their batch is indexed (more than the report lists).
const MAX_DEFERRED: usize = 128;

const FIELDS: &[&str] = &[
    "version",
    "generated_at",
    "since",
    "organisations",
    "users",
    "works",
    "contracts",
    "upsert",
    "delete",
];

/// Reads, validates and (for a full document) builds. `in_force` is the version in use, which
/// a full document's must exceed. `size_hint` is the document's expected length in bytes (a
/// file's length, a body's decoded size), used only to size the indexes once: a wrong one
/// costs speed, never correctness.
pub fn load(
    reader: impl Read,
    in_force: Option<u64>,
    size_hint: Option<u64>,
) -> Result<Loaded, SnapshotError> {
    read(reader, in_force, false, size_hint)
}

/// Reads a delta document (for benchmarks and tools; sources go through `load_update`).
pub fn load_delta(reader: impl Read) -> Result<DeltaDocument<'static>, SnapshotError> {
    match read(reader, None, false, None)? {
        Loaded::Delta(delta) => Ok(delta),
        _ => Err(SnapshotError::Mixed("a full document is not a delta")),
    }
}

/// `load` for what a source answered: a document with the version in force is `Unchanged`,
/// and reading stops as soon as that is known.
pub fn load_update(
    reader: impl Read,
    in_force: Option<u64>,
    size_hint: Option<u64>,
) -> Result<Loaded, SnapshotError> {
    read(reader, in_force, true, size_hint)
}

/// `load` from bytes already in memory: parsed in place, so strings are borrowed, not copied.
pub fn load_slice(bytes: &[u8], in_force: Option<u64>) -> Result<Loaded, SnapshotError> {
    run(
        serde_json::Deserializer::from_slice(bytes),
        in_force,
        false,
        None,
        None,
    )
}

/// `load` with every batch indexed on the calling thread, to check the two-thread path
/// against.
#[cfg(any(test, feature = "testing"))]
pub fn load_in_one_thread(reader: impl Read) -> Result<Loaded, SnapshotError> {
    let de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, reader));
    run_with(de, None, false, None, None, true)
}

/// `load` with the works array cut into chunks of about `chunk_bytes`, to check many small
/// chunks against one thread.
#[cfg(any(test, feature = "testing"))]
pub fn load_in_chunks(reader: impl Read, chunk_bytes: usize) -> Result<Loaded, SnapshotError> {
    let control = Arc::new(Control::default());
    let splitter = Splitter::new(reader, Arc::clone(&control)).with_chunk_bytes(chunk_bytes);
    let de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, splitter));
    run(de, None, false, None, Some(control))
}

fn read(
    reader: impl Read,
    in_force: Option<u64>,
    skip_unchanged: bool,
    size_hint: Option<u64>,
) -> Result<Loaded, SnapshotError> {
    let counted = Counted {
        inner: reader,
        read: Arc::default(),
    };
    let sizing = size_hint.map(|total| Sizing {
        total,
        read: Arc::clone(&counted.read),
        works_from: None,
    });
    // The works array goes to the parsing workers; serde reads the rest, a byte at a time
    // (so buffered).
    let control = Arc::new(Control::default());
    let splitter = Splitter::new(counted, Arc::clone(&control));
    let de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, splitter));
    run(de, in_force, skip_unchanged, sizing, Some(control))
}

fn run<'de, R: serde_json::de::Read<'de>>(
    de: serde_json::Deserializer<R>,
    in_force: Option<u64>,
    skip_unchanged: bool,
    sizing: Option<Sizing>,
    split: Option<Arc<Control>>,
) -> Result<Loaded, SnapshotError> {
    run_with(de, in_force, skip_unchanged, sizing, split, false)
}

fn run_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    in_force: Option<u64>,
    skip_unchanged: bool,
    sizing: Option<Sizing>,
    split: Option<Arc<Control>>,
    one_thread: bool,
) -> Result<Loaded, SnapshotError> {
    let mut track = serde_path_to_error::Track::new();
    let mut loader = Loader {
        skip: if skip_unchanged { in_force } else { None },
        sizing,
        one_thread,
        split,
        ..Loader::default()
    };
    let read =
        (&mut loader).deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    let split = loader.split.clone();
    // serde's positions past a split array, moved back to the document's.
    let at = |line, column| match &split {
        Some(control) => control.position(line, column),
        None => (line, column),
    };
    if let Err(e) = read {
        if let Some(v) = loader.unchanged {
            return Ok(Loaded::Unchanged(v));
        }
        if let Some(e) = loader.split_failed.take() {
            return Err(e);
        }
        // What the workers found in the works comes before what serde found after them.
        if let Some(e) = split.as_ref().and_then(|control| control.error()) {
            return Err(e);
        }
        return Err(match loader.failed.take() {
            Some(e) => failed(e),
            None => SnapshotError::Json(JsonError::new(track.path().to_string(), &e, at)),
        });
    }
    // Trailing bytes after the document are as corrupt as a broken one.
    if let Err(e) = de.end() {
        return Err(SnapshotError::Trailing(JsonError::new(".".into(), &e, at)));
    }
    loader.finish(in_force)
}

/// Counts the bytes read from a stream, so the loader knows how far into the document it is.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Fewer bytes than any work entry can take (`{"work_reference_number":"A",...}` is over 80):
/// caps the works a lying size hint can make the index reserve room for.
const MIN_WORK_BYTES: u64 = 64;

/// The most works a hint can reserve room for (over five times a national snapshot): past
/// it the index grows as it would without a hint, so even a hint of `u64::MAX` reserves a
/// bounded amount that `shrink_to_fit` gives back.
const MAX_PRESIZED_WORKS: usize = 1 << 24;

/// What sizes the work index once, from the first full batch: the bytes its works took give
/// the document's bytes per work, and the bytes left by the hint how many works are to come.
/// Streamed, the count is not known up front; without this every shard grows by doubling and
/// is shrunk at the end, and the freed growth stays in the allocator (about 10 B a work).
struct Sizing {
    /// The document's expected length (the caller caps it by its own document limit).
    total: u64,
    /// Bytes read from the stream so far (ahead of the parser by at most its buffer).
    read: Arc<AtomicU64>,
    /// Bytes read when the `works` array began.
    works_from: Option<u64>,
}

impl Sizing {
    /// The works and reference bytes to reserve room for, given a first batch of `works`
    /// works with `ref_bytes` of references.
    fn estimate(&self, works: usize, ref_bytes: usize) -> Option<(usize, usize)> {
        let from = self.works_from?;
        let now = self.read.load(Ordering::Relaxed);
        reserve_for(
            works,
            ref_bytes,
            now.saturating_sub(from),
            self.total.saturating_sub(now),
        )
    }

    /// `estimate` for the chunks of a split array: the first chunk's bytes give the bytes
    /// per work.
    fn for_chunks(&self) -> Box<Estimate> {
        let left = self.works_from.map(|from| self.total.saturating_sub(from));
        Box::new(move |works, ref_bytes, chunk_bytes| {
            let chunk_bytes = u64::try_from(chunk_bytes).ok()?;
            reserve_for(
                works,
                ref_bytes,
                chunk_bytes,
                left?.saturating_sub(chunk_bytes),
            )
        })
    }
}

/// Room for the works of a document whose first `works` works (with `ref_bytes` of
/// references) took `read` bytes, with `left` bytes to come.
fn reserve_for(works: usize, ref_bytes: usize, read: u64, left: u64) -> Option<(usize, usize)> {
    let batch = u64::try_from(works).ok().filter(|&n| n > 0)?;
    let per_work = (read / batch).max(MIN_WORK_BYTES);
    let to_come = left / per_work;
    let total_works = usize::try_from(to_come)
        .unwrap_or(usize::MAX)
        .saturating_add(works)
        .min(MAX_PRESIZED_WORKS);
    let total_refs = ref_bytes.div_ceil(works).saturating_mul(total_works);
    Some((total_works, total_refs))
}

#[derive(Default)]
struct Loader {
    /// Sizes the work index from the document's expected length, when known.
    sizing: Option<Sizing>,
    /// Stop at `version` if it is this one.
    skip: Option<u64>,
    unchanged: Option<u64>,
    version: Option<u64>,
    generated_at: Option<String>,
    since: Option<u64>,
    organisations: Option<Vec<OrganisationDoc>>,
    /// Shared with the workers that parse a split works array.
    orgs: Option<Arc<Orgs>>,
    /// Where the works array can be handed to the parsing workers (a streamed load).
    split: Option<Arc<Control>>,
    /// What the workers found wrong in a split works array.
    split_failed: Option<SnapshotError>,
    /// `users`/`works` met before `organisations`, kept raw until they can be checked.
    early_users: Option<Box<RawValue>>,
    early_works: Option<Box<RawValue>>,
    users_seen: bool,
    works_seen: bool,
    upsert: Option<Upserts<'static>>,
    delete: Option<Deletes>,
    /// The contract-platform model's section (`model: contracts`), validated on its own.
    contracts: Option<crate::contracts::snapshot::ContractsDoc>,
    users: ShardedMap<Box<str>, super::snapshot::User>,
    /// Indexes the batches of works (on a second thread for a big document).
    indexer: Indexer,
    /// A batch has gone to the indexer.
    indexing: bool,
    /// Never index on a second thread.
    one_thread: bool,
    /// Works read but not yet indexed (indexed in batches, by shard).
    batch: WorkBatch,
    /// The problems of the batch's works, by position, held so that they and the batch's
    /// duplicates are reported in document order.
    deferred: Vec<(usize, Report)>,
    /// The buffers each streamed work is read into.
    scratch: WorkScratch,
    user_count: usize,
    work_count: usize,
    body: Option<Report>,
    failed: Option<IndexFailed>,
}

pub(super) fn failed(e: IndexFailed) -> SnapshotError {
    match e {
        IndexFailed::TooLarge(e) => SnapshotError::TooLarge(e),
        e => SnapshotError::Index(e),
    }
}

impl Loader {
    fn report(&mut self) -> &mut Report {
        self.body.get_or_insert_with(Report::new)
    }

    fn user(&mut self, user: &UserDoc<'_>) {
        let i = self.user_count;
        self.user_count += 1;
        let at = format!("users[{i}]");
        let mut r = self.body.take().unwrap_or_else(Report::new);
        let built = user_from(user);
        if !user.sub.is_empty() && self.users.insert(Box::from(&*user.sub), built).is_some() {
            r.push(
                format!("{at}.sub"),
                format!("duplicate user {:?}", user.sub),
            );
        }
        if let Some(orgs) = &self.orgs {
            check_user(&at, user, orgs, &mut r);
        }
        self.body = Some(r);
    }

    fn work(&mut self, work: &WorkDoc<'_>) -> Result<(), IndexFailed> {
        let i = self.work_count;
        self.work_count += 1;
        let orgs = self.orgs.as_deref();
        let full = self.batch.take(i, work, orgs, &mut self.deferred);
        // Past the report's cap nothing more is listed: no need to hold more.
        if full || self.deferred.len() > MAX_DEFERRED {
            self.index_works(true, full)?;
        }
        Ok(())
    }

    /// Hands the works read so far to the indexer (on its second thread when `mid_stream`)
    /// and appends the problems of the batches it has done, in document order. The first
    /// batch, when `full`, also sizes the index from the size hint.
    fn index_works(&mut self, mid_stream: bool, full: bool) -> Result<(), IndexFailed> {
        let reserve = match &self.sizing {
            Some(sizing) if full && !self.indexing => {
                sizing.estimate(self.batch.len(), self.batch.ref_bytes())
            }
            _ => None,
        };
        self.indexing = true;
        let next = self.indexer.batch();
        let job = Job {
            batch: std::mem::replace(&mut self.batch, next),
            deferred: std::mem::take(&mut self.deferred),
            reserve,
        };
        let reports = self.indexer.submit(job, mid_stream && !self.one_thread)?;
        self.append(reports);
        Ok(())
    }

    /// Waits for every batch handed to the indexer, so that problems reported next come
    /// after theirs (as they would, read in one thread).
    fn works_indexed(&mut self) -> Result<(), IndexFailed> {
        let reports = self.indexer.wait()?;
        self.append(reports);
        Ok(())
    }

    fn append(&mut self, reports: Vec<Report>) {
        let mut body = self.body.take().unwrap_or_else(Report::new);
        for r in reports {
            body = r.after(body);
        }
        self.body = Some(body);
    }

    /// Offers the array about to be read to the parsing workers.
    fn arm_split(&mut self, arming: Arming) {
        if let Some(control) = &self.split
            && !self.one_thread
        {
            control.arm(arming);
        }
    }

    /// Takes in what the workers made of a split array (nothing if it was not split): what
    /// they built becomes the loader's, their problems follow the ones before.
    fn split_done(&mut self) -> Result<(), &'static str> {
        let Some(finished) = self.split.as_ref().and_then(|control| control.take()) else {
            return Ok(());
        };
        let (error, failed, report) = match finished {
            Finished::Works(o) => {
                if o.error.is_none() && o.failed.is_none() {
                    // Nothing was indexed before the array (it comes once).
                    self.indexer = Indexer::resume(o.built);
                    self.work_count += o.entries;
                }
                (o.error, o.failed, o.report)
            }
            Finished::Users(o) => {
                if o.error.is_none() && o.failed.is_none() {
                    // Nobody was read before the array (it comes once).
                    self.users = o.built;
                    self.user_count += o.entries;
                }
                (o.error, o.failed, o.report)
            }
        };
        if let Some(e) = error {
            self.split_failed = Some(SnapshotError::Json(e));
            return Err("not JSON of the right shape");
        }
        if let Some(e) = failed {
            self.failed = Some(e);
            return Err("could not be indexed");
        }
        self.append(vec![report]);
        Ok(())
    }

    /// The organisations are known: check them, then anything that waited for them.
    fn organisations_known(&mut self, docs: Vec<OrganisationDoc>) -> Result<(), serde_json::Error> {
        let orgs = organisations(&docs, self.report());
        self.orgs = Some(Arc::new(orgs));
        self.organisations = Some(docs);
        if let Some(raw) = self.early_users.take() {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            de.deserialize_seq(Entries::<UserDoc<'_>>::new(self))?;
        }
        if let Some(raw) = self.early_works.take() {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            de.deserialize_seq(Entries::<WorkDoc<'_>>::new(self))?;
        }
        Ok(())
    }

    fn finish(mut self, in_force: Option<u64>) -> Result<Loaded, SnapshotError> {
        let full = self.users_seen
            || self.works_seen
            || self.organisations.is_some()
            || self.contracts.is_some();
        let version = self.version.unwrap_or_default();
        let generated_at = self.generated_at.take().unwrap_or_default();
        if let Some(since) = self.since {
            if full {
                return Err(SnapshotError::Mixed(
                    "a delta carries its entries in `upsert` and `delete`",
                ));
            }
            return Ok(Loaded::Delta(DeltaDocument {
                version,
                since,
                generated_at,
                upsert: self.upsert.take().unwrap_or_default(),
                delete: self.delete.take().unwrap_or_default(),
            }));
        }
        if self.upsert.is_some() || self.delete.is_some() {
            return Err(SnapshotError::Mixed("`upsert` and `delete` need `since`"));
        }
        if self.orgs.is_none() {
            self.organisations_known(Vec::new())
                .map_err(|e| SnapshotError::Json(JsonError::new(".".into(), &e, |l, c| (l, c))))?;
        }
        self.index_works(false, false).map_err(failed)?;
        self.works_indexed().map_err(failed)?;
        if let Some(e) = self.failed.take() {
            return Err(failed(e));
        }
        let mut works = std::mem::take(&mut self.indexer).finish().map_err(failed)?;
        if self.skip.is_some() && self.skip == self.version {
            return Ok(Loaded::Unchanged(version));
        }
        let mut header = Report::new();
        check_version(version, in_force, &mut header);
        check_generated_at(&generated_at, &mut header);
        for (at, message) in self
            .contracts
            .iter()
            .flat_map(crate::contracts::snapshot::problems)
        {
            header.push(format!("contracts.{at}"), message);
        }
        let report = match self.body.take() {
            Some(body) => body.after(header),
            None => header,
        };
        let problems = report.finish();
        if !problems.is_empty() {
            return Err(SnapshotError::Invalid(problems));
        }
        let mut organisations = ShardedMap::default();
        for o in self.organisations.iter().flatten() {
            if let Some((swa, org)) = organisation_from(o) {
                organisations.insert(swa, org);
            }
        }
        self.users.shrink_to_fit();
        works.shrink_to_fit();
        let mut snapshot = Snapshot {
            version,
            generated_at: parse_rfc3339(&generated_at).unwrap_or_default(),
            organisations,
            users: self.users,
            works,
            known_integrators: Default::default(),
            contracts: self.contracts.as_ref().map(|c| {
                std::sync::Arc::new(crate::contracts::snapshot::ContractsSnapshot::build(c))
            }),
        };
        snapshot.index_integrators();
        Ok(Loaded::Full(snapshot))
    }
}

impl<'de> DeserializeSeed<'de> for &mut Loader {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Loader {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a grants document (format v1) or a delta")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut version, mut generated_at) = (false, false);
        let mut seen = [false; FIELDS.len()];
        while let Some(key) = map.next_key::<crate::json_str::CowStr<'de>>()? {
            if let Some(i) = FIELDS.iter().position(|f| *f == key.0) {
                if seen[i] {
                    return Err(de::Error::duplicate_field(FIELDS[i]));
                }
                seen[i] = true;
            }
            match &*key.0 {
                "version" => {
                    let v: u64 = map.next_value()?;
                    if self.skip == Some(v) {
                        self.unchanged = Some(v);
                        return Err(de::Error::custom("the version in force"));
                    }
                    self.version = Some(v);
                    version = true;
                }
                "generated_at" => {
                    self.generated_at = Some(map.next_value()?);
                    generated_at = true;
                }
                "since" => self.since = Some(map.next_value()?),
                "contracts" => self.contracts = Some(map.next_value()?),
                "organisations" => {
                    let docs: Vec<OrganisationDoc> = map.next_value()?;
                    self.organisations_known(docs).map_err(de::Error::custom)?;
                }
                "users" => {
                    self.users_seen = true;
                    if let Some(orgs) = &self.orgs {
                        self.arm_split(Arming::Users(Users {
                            orgs: Arc::clone(orgs),
                        }));
                        let read = map.next_value_seed(Entries::<UserDoc<'_>>::new(self));
                        let split = self.split_done();
                        read?;
                        split.map_err(de::Error::custom)?;
                    } else {
                        self.early_users = Some(map.next_value()?);
                    }
                }
                "works" => {
                    self.works_seen = true;
                    if let Some(s) = &mut self.sizing {
                        s.works_from = Some(s.read.load(Ordering::Relaxed));
                    }
                    if let Some(orgs) = &self.orgs {
                        let estimate = match &self.sizing {
                            Some(sizing) => sizing.for_chunks(),
                            None => Box::new(|_, _, _| None),
                        };
                        self.arm_split(Arming::Works(Works {
                            orgs: Arc::clone(orgs),
                            estimate,
                        }));
                        let read = map.next_value_seed(Entries::<WorkDoc<'_>>::new(self));
                        let split = self.split_done();
                        read?;
                        split.map_err(de::Error::custom)?;
                    } else {
                        self.early_works = Some(map.next_value()?);
                    }
                }
                "upsert" => self.upsert = Some(map.next_value::<Owned<Upserts<'static>>>()?.0),
                "delete" => self.delete = Some(map.next_value()?),
                other => {
                    let _: IgnoredAny = map.next_value()?;
                    return Err(de::Error::unknown_field(other, FIELDS));
                }
            }
        }
        if !version {
            return Err(de::Error::missing_field("version"));
        }
        if !generated_at {
            return Err(de::Error::missing_field("generated_at"));
        }
        Ok(())
    }
}

/// An array of users or works, each handed to the loader as it is read.
struct Entries<'l, T> {
    loader: &'l mut Loader,
    entry: std::marker::PhantomData<fn() -> T>,
}

impl<'l, T> Entries<'l, T> {
    fn new(loader: &'l mut Loader) -> Self {
        Entries {
            loader,
            entry: std::marker::PhantomData,
        }
    }
}

/// How the loader reads one entry and what it does with it.
trait Entry<'de> {
    /// Reads the next entry and hands it to the loader; false at the end of the array.
    fn next<S: SeqAccess<'de>>(seq: &mut S, loader: &mut Loader) -> Result<bool, S::Error>;

    /// Called at the end of the array.
    fn end(_loader: &mut Loader) -> Result<(), IndexFailed> {
        Ok(())
    }
}

impl<'de> Entry<'de> for UserDoc<'de> {
    fn next<S: SeqAccess<'de>>(seq: &mut S, loader: &mut Loader) -> Result<bool, S::Error> {
        let Some(user) = seq.next_element::<UserDoc<'de>>()? else {
            return Ok(false);
        };
        loader.user(&user);
        Ok(true)
    }
}

impl<'de> Entry<'de> for WorkDoc<'de> {
    fn next<S: SeqAccess<'de>>(seq: &mut S, loader: &mut Loader) -> Result<bool, S::Error> {
        // Taken out while the loader is busy with the work it holds; put back after.
        let mut scratch = std::mem::take(&mut loader.scratch);
        let result = match seq.next_element_seed(WorkFields(&mut scratch)) {
            Ok(Some(())) => match loader.work(&scratch.doc()) {
                Ok(()) => Ok(true),
                Err(e) => {
                    loader.failed = Some(e);
                    Err(de::Error::custom("works could not be indexed"))
                }
            },
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        loader.scratch = scratch;
        result
    }

    /// The rest of the works go in now, so that any problems reported after the array
    /// (users listed after works) come after theirs, in document order.
    fn end(loader: &mut Loader) -> Result<(), IndexFailed> {
        loader.index_works(false, false)?;
        loader.works_indexed()
    }
}

impl<'de, 'l, T: Entry<'de>> DeserializeSeed<'de> for Entries<'l, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, 'l, T: Entry<'de>> Visitor<'de> for Entries<'l, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of entries")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while T::next(&mut seq, self.loader)? {}
        T::end(self.loader).map_err(|e| {
            self.loader.failed = Some(e);
            de::Error::custom("works could not be indexed")
        })
    }
}

/// Reads a value whose borrowed strings must outlive the input (a stream lends nothing).
struct Owned<T>(T);

impl<'de> serde::Deserialize<'de> for Owned<Upserts<'static>> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let upserts = Upserts::deserialize(d)?;
        Ok(Owned(upserts.into_owned()))
    }
}
