//! The works of a streamed document, parsed on every core. The splitter (`split.rs`) cuts the
//! `works` array into chunks of whole entries; each worker thread parses a chunk with
//! serde_json's slice parser (about twice as fast per byte as its stream parser, and it lends
//! strings instead of copying them), checks its works against the organisations and batches
//! them, then waits for the chunk's turn and indexes it. Indexing in document order keeps what
//! one thread would give: the first of two equal references wins, and problems are listed in
//! document order. While one worker indexes, the others parse the next chunks.
//!
//! Memory stays bounded: at most one chunk waits per worker, besides the ones being parsed.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::indexer::{IndexFailed, Job, index_batch};
use super::json_error::JsonError;
use super::snapshot::work_from;
use super::validate::{Orgs, Report, check_work};
use super::work_batch::WorkBatch;
use super::work_entry::{WorkFields, WorkScratch};
use super::works::WorkIndex;

/// A run of whole entries of the `works` array, as `[` + their bytes + `]`.
pub(super) struct Chunk {
    /// Position in the array of chunks: the order they are indexed in.
    pub(super) seq: usize,
    /// Index in `works` of the chunk's first entry.
    pub(super) first: usize,
    pub(super) bytes: Vec<u8>,
    /// Line and column in the document of `bytes[1]` (the chunk's first byte of the document).
    pub(super) line: usize,
    pub(super) column: usize,
    /// `bytes` end with the array's closer (not: the stream ended in the chunk).
    pub(super) closed: bool,
    /// A comma came before the chunk, or comes after it: it must hold an entry.
    pub(super) after_comma: bool,
    pub(super) before_comma: bool,
}

/// What the workers made of the whole array.
pub(super) struct Outcome {
    pub(super) index: WorkIndex,
    /// Problems of the works, in document order.
    pub(super) report: Report,
    pub(super) works: usize,
    /// The first chunk that was not JSON of the right shape (later ones are not parsed).
    pub(super) error: Option<JsonError>,
    pub(super) failed: Option<IndexFailed>,
}

/// The room to reserve in the index, from the first chunk and the bytes to come.
pub(super) type Estimate = dyn Fn(usize, usize, usize) -> Option<(usize, usize)> + Send + Sync;

pub(super) struct Pipeline {
    chunks: Option<SyncSender<Chunk>>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

struct Shared {
    orgs: Arc<Orgs>,
    /// `(works, ref_bytes, chunk bytes)` of the first chunk → works and reference bytes to
    /// reserve room for.
    estimate: Box<Estimate>,
    ordered: Mutex<Ordered>,
    turn: Condvar,
}

/// What is done in chunk order, under the lock.
struct Ordered {
    /// The chunk whose turn it is.
    next: usize,
    index: WorkIndex,
    report: Report,
    works: usize,
    error: Option<JsonError>,
    failed: Option<IndexFailed>,
}

impl Ordered {
    fn stopped(&self) -> bool {
        self.error.is_some() || self.failed.is_some()
    }
}

impl Pipeline {
    /// Starts `workers` threads (at least one); `None` when not even one could start.
    pub(super) fn start(orgs: Arc<Orgs>, estimate: Box<Estimate>, workers: usize) -> Option<Self> {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            orgs,
            estimate,
            ordered: Mutex::new(Ordered {
                next: 0,
                index: WorkIndex::default(),
                report: Report::new(),
                works: 0,
                error: None,
                failed: None,
            }),
            turn: Condvar::new(),
        });
        let (chunks, inbox) = sync_channel::<Chunk>(workers);
        let inbox = Arc::new(Mutex::new(inbox));
        let mut handles = Vec::with_capacity(workers);
        for n in 0..workers {
            let (shared, inbox) = (Arc::clone(&shared), Arc::clone(&inbox));
            let spawned = std::thread::Builder::new()
                .name(format!("grants-parse-{n}"))
                .spawn(move || work(&shared, &inbox));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => tracing::warn!(error = %e, "cannot start a grants parsing thread"),
            }
        }
        if handles.is_empty() {
            return None;
        }
        Some(Pipeline {
            chunks: Some(chunks),
            workers: handles,
            shared,
        })
    }

    /// Hands a chunk to the next free worker (waiting while every one is busy).
    pub(super) fn send(&mut self, chunk: Chunk) {
        if let Some(chunks) = &self.chunks
            && chunks.send(chunk).is_err()
        {
            // Every worker is gone (they panicked): `finish` says so.
            self.chunks = None;
        }
    }

    /// Waits for every chunk sent to be indexed.
    pub(super) fn finish(mut self) -> Outcome {
        self.chunks = None;
        let mut lost = false;
        for worker in self.workers.drain(..) {
            lost |= worker.join().is_err();
        }
        let mut ordered = lock(&self.shared.ordered);
        let failed = ordered
            .failed
            .take()
            .or(lost.then_some(IndexFailed::Stopped));
        Outcome {
            index: std::mem::take(&mut ordered.index),
            report: std::mem::replace(&mut ordered.report, Report::new()),
            works: ordered.works,
            error: ordered.error.take(),
            failed,
        }
    }
}

impl Drop for Pipeline {
    /// A load abandoned mid-array: the workers stop at the next chunk.
    fn drop(&mut self) {
        self.chunks = None;
        lock(&self.shared.ordered)
            .failed
            .get_or_insert(IndexFailed::Stopped);
        self.shared.turn.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One worker: parse, wait for the chunk's turn, index.
fn work(shared: &Shared, inbox: &Mutex<Receiver<Chunk>>) {
    let mut batch = WorkBatch::default();
    let mut scratch = WorkScratch::default();
    loop {
        let Ok(chunk) = lock(inbox).recv() else {
            return;
        };
        let skip = lock(&shared.ordered).stopped();
        let parsed = if skip {
            None
        } else {
            Some(parse(&chunk, &shared.orgs, &mut batch, &mut scratch))
        };
        let mut ordered = lock(&shared.ordered);
        while ordered.next != chunk.seq && !ordered.stopped() {
            ordered = shared
                .turn
                .wait(ordered)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match parsed {
            _ if ordered.stopped() => {}
            Some(Ok((works, deferred))) => {
                let reserve = if chunk.seq == 0 {
                    (shared.estimate)(batch.len(), batch.ref_bytes(), chunk.bytes.len())
                } else {
                    None
                };
                let mut job = Job {
                    batch: std::mem::take(&mut batch),
                    deferred,
                    reserve,
                };
                match index_batch(&mut ordered.index, &mut job) {
                    Ok(report) => {
                        let before = std::mem::replace(&mut ordered.report, Report::new());
                        ordered.report = report.after(before);
                        ordered.works += works;
                    }
                    Err(e) => ordered.failed = Some(e.into()),
                }
                batch = job.batch;
            }
            Some(Err(e)) => ordered.error = Some(e),
            None => {}
        }
        ordered.next = chunk.seq + 1;
        drop(ordered);
        shared.turn.notify_all();
    }
}

/// Parses a chunk's works into `batch`: how many there were and their problems by position.
fn parse(
    chunk: &Chunk,
    orgs: &Orgs,
    batch: &mut WorkBatch,
    scratch: &mut WorkScratch,
) -> Result<(usize, Vec<(usize, Report)>), JsonError> {
    let content = chunk
        .bytes
        .get(1..chunk.bytes.len().saturating_sub(usize::from(chunk.closed)))
        .unwrap_or_default();
    if (chunk.after_comma || chunk.before_comma) && content.iter().all(u8::is_ascii_whitespace) {
        return Err(missing_entry(chunk, content));
    }
    let mut de = serde_json::Deserializer::from_slice(&chunk.bytes);
    let mut track = serde_path_to_error::Track::new();
    let mut entries = Entries {
        first: chunk.first,
        orgs,
        batch,
        scratch,
        count: 0,
        deferred: Vec::new(),
    };
    let read =
        (&mut entries).deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    let at = |line: usize, column: usize| {
        if line == 1 {
            // The chunk's `[` is column 1 of its first line.
            (chunk.line, (chunk.column + column).saturating_sub(2))
        } else {
            (chunk.line + line - 1, column)
        }
    };
    if let Err(e) = read {
        let path = in_works(&track.path().to_string(), chunk.first);
        return Err(JsonError::new(path, &e, at));
    }
    // The splitter cuts between entries, so nothing can follow the chunk's `]`; a stray byte
    // would be the splitter's bug, reported rather than ignored.
    if let Err(e) = de.end() {
        return Err(JsonError::new("works".into(), &e, at));
    }
    Ok((entries.count, entries.deferred))
}

/// The error serde gives for an entry missing between two commas or after the last one,
/// where one thread would meet it: in an array of the same bytes with the missing entry's
/// neighbours put back.
fn missing_entry(chunk: &Chunk, content: &[u8]) -> JsonError {
    // The missing entry's index in the synthetic array is `shift / 2`.
    let (synthetic, shift) = if chunk.before_comma {
        ([b"[".as_slice(), content, b",0]"].concat(), 0)
    } else {
        let closer = chunk.bytes.last().filter(|_| chunk.closed);
        (
            [
                b"[0,".as_slice(),
                content,
                closer.map(std::slice::from_ref).unwrap_or_default(),
            ]
            .concat(),
            2,
        )
    };
    let de = &mut serde_json::Deserializer::from_slice(&synthetic);
    let at = |line: usize, column: usize| {
        if line == 1 {
            (
                chunk.line,
                (chunk.column + column).saturating_sub(2 + shift),
            )
        } else {
            (chunk.line + line - 1, column)
        }
    };
    match serde_path_to_error::deserialize::<_, Vec<serde::de::IgnoredAny>>(de) {
        Err(e) => {
            let first = chunk.first.saturating_sub(shift / 2);
            JsonError::new(in_works(&e.path().to_string(), first), e.inner(), at)
        }
        // Unreachable: both arrays are refused. Said plainly if it ever is not.
        Ok(_) => JsonError::at("works".into(), "expected value", chunk.line, chunk.column),
    }
}

/// A path in a chunk (`[3].promoter`) as the path in the document (`works[1003].promoter`).
fn in_works(path: &str, first: usize) -> String {
    let within = path
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)));
    match within {
        Some((i, rest)) => format!("works[{}]{rest}", first + i),
        None => "works".into(),
    }
}

/// A chunk's entries, each checked and batched as it is read.
struct Entries<'a> {
    first: usize,
    orgs: &'a Orgs,
    batch: &'a mut WorkBatch,
    scratch: &'a mut WorkScratch,
    count: usize,
    deferred: Vec<(usize, Report)>,
}

impl<'de> DeserializeSeed<'de> for &mut Entries<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for &mut Entries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of entries")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while seq.next_element_seed(WorkFields(self.scratch))?.is_some() {
            let i = self.first + self.count;
            self.count += 1;
            let work = self.scratch.doc();
            let wrn = &*work.work_reference_number;
            if !wrn.is_empty()
                && let Some(info) = work_from(&work)
            {
                self.batch.push(i, wrn, info);
            }
            let mut r = Report::new();
            check_work(|| format!("works[{i}]"), &work, self.orgs, &mut r);
            if !r.is_empty() {
                self.deferred.push((i, r));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::in_works;

    #[test]
    fn a_chunk_path_is_moved_to_the_works_array() {
        assert_eq!(in_works("[3].promoter", 1000), "works[1003].promoter");
        assert_eq!(in_works("[0]", 7), "works[7]");
        assert_eq!(in_works(".", 7), "works");
        assert_eq!(in_works("[x]", 7), "works");
    }
}
