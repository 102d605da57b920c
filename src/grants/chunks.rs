//! The works and users of a streamed document, parsed on every core. The splitter (`split.rs`)
//! cuts such an array into chunks of whole entries; each worker thread parses a chunk with
//! serde_json's slice parser (about twice as fast per byte as its stream parser, and it lends
//! strings instead of copying them) and checks its entries against the organisations, then
//! waits for the chunk's turn and adds them to what is being built. Building in document order
//! keeps what one thread would give: the first of two equal references wins, a repeated user
//! replaces the one before, and problems are listed in document order. While one worker
//! builds, the others parse the next chunks.
//!
//! Memory stays bounded: at most one chunk waits per worker, besides the ones being parsed,
//! and their buffers are reused.

mod users;
mod works;

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::indexer::IndexFailed;
use super::json_error::JsonError;
use super::validate::Report;

pub(super) use users::Users;
pub(super) use works::{Estimate, Works};

/// A run of whole entries of an array, as `[` + their bytes + the closer.
pub(super) struct Chunk {
    /// Position in the array of chunks: the order they are built in.
    pub(super) seq: usize,
    /// Index in the array of the chunk's first entry.
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

/// One kind of array: how a worker parses a chunk of it and adds it, in turn, to what is
/// built.
pub(super) trait Entries: Send + Sync + 'static {
    /// The array's key in the document.
    const NAME: &'static str;
    /// A worker's own: what a chunk parsed into, and buffers to reuse.
    type Scratch: Default;
    /// What the array builds (an index, a map).
    type Built: Default + Send;

    /// Parses `chunk` into `scratch`; the number of entries.
    fn parse(&self, chunk: &Chunk, scratch: &mut Self::Scratch) -> Result<usize, JsonError>;

    /// Adds what `parse` left in `scratch`, in the chunk's turn; the problems, in order.
    fn build(
        &self,
        chunk: &Chunk,
        scratch: &mut Self::Scratch,
        built: &mut Self::Built,
    ) -> Result<Report, IndexFailed>;
}

/// What the workers made of a whole array.
pub(super) struct Outcome<B> {
    pub(super) built: B,
    /// Problems of the entries, in document order.
    pub(super) report: Report,
    pub(super) entries: usize,
    /// The first chunk that was not JSON of the right shape (later ones are not parsed).
    pub(super) error: Option<JsonError>,
    pub(super) failed: Option<IndexFailed>,
}

/// Chunks' buffers parsed, to be filled again, kept for the whole document (both arrays):
/// fresh ones would cost a page fault per 4 KiB, and freeing one makes glibc serve the
/// large allocations that follow from its heap, where they stay resident.
pub(super) type Spare = Arc<Mutex<Vec<Vec<u8>>>>;

pub(super) struct Pipeline<E: Entries> {
    chunks: Option<SyncSender<Chunk>>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<Shared<E>>,
}

struct Shared<E: Entries> {
    entries: E,
    ordered: Mutex<Ordered<E::Built>>,
    turn: Condvar,
    spare: Spare,
    /// A new buffer's capacity.
    chunk_bytes: usize,
}

/// What is done in chunk order, under the lock.
struct Ordered<B> {
    /// The chunk whose turn it is.
    next: usize,
    built: B,
    report: Report,
    entries: usize,
    error: Option<JsonError>,
    failed: Option<IndexFailed>,
}

impl<B> Ordered<B> {
    fn stopped(&self) -> bool {
        self.error.is_some() || self.failed.is_some()
    }
}

impl<E: Entries> Pipeline<E> {
    /// Starts `workers` threads (at least one); `None` when not even one could start.
    pub(super) fn start(
        entries: E,
        workers: usize,
        chunk_bytes: usize,
        spare: Spare,
    ) -> Option<Self> {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            entries,
            ordered: Mutex::new(Ordered {
                next: 0,
                built: E::Built::default(),
                report: Report::new(),
                entries: 0,
                error: None,
                failed: None,
            }),
            turn: Condvar::new(),
            spare,
            chunk_bytes,
        });
        let (chunks, inbox) = sync_channel::<Chunk>(workers);
        let inbox = Arc::new(Mutex::new(inbox));
        let mut handles = Vec::with_capacity(workers);
        for n in 0..workers {
            let (shared, inbox) = (Arc::clone(&shared), Arc::clone(&inbox));
            let spawned = std::thread::Builder::new()
                .name(format!("grants-{}-{n}", E::NAME))
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

    /// A buffer for the next chunk, holding its `[`.
    pub(super) fn buffer(&self) -> Vec<u8> {
        let mut bytes = lock(&self.shared.spare).pop().unwrap_or_else(|| {
            Vec::with_capacity(self.shared.chunk_bytes.saturating_add(64 << 10))
        });
        bytes.push(b'[');
        bytes
    }

    /// A buffer not sent after all.
    pub(super) fn recycle(&self, bytes: Vec<u8>) {
        self.shared.recycle(bytes);
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

    /// Waits for every chunk sent to be built.
    pub(super) fn finish(mut self) -> Outcome<E::Built> {
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
            built: std::mem::take(&mut ordered.built),
            report: std::mem::replace(&mut ordered.report, Report::new()),
            entries: ordered.entries,
            error: ordered.error.take(),
            failed,
        }
    }
}

impl<E: Entries> Drop for Pipeline<E> {
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

impl<E: Entries> Shared<E> {
    fn recycle(&self, mut bytes: Vec<u8>) {
        bytes.clear();
        let mut spare = lock(&self.spare);
        // As many as can be in flight at once; past that they are freed.
        if spare.len() < 8 {
            spare.push(bytes);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops the other workers if this one panics: they would otherwise wait for its turn
/// forever.
struct StopOnPanic<'a, E: Entries>(&'a Shared<E>);

impl<E: Entries> Drop for StopOnPanic<'_, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0.ordered)
                .failed
                .get_or_insert(IndexFailed::Stopped);
            self.0.turn.notify_all();
        }
    }
}

/// One worker: parse, wait for the chunk's turn, build.
fn work<E: Entries>(shared: &Shared<E>, inbox: &Mutex<Receiver<Chunk>>) {
    let _stop = StopOnPanic(shared);
    let mut scratch = E::Scratch::default();
    loop {
        let Ok(chunk) = lock(inbox).recv() else {
            return;
        };
        let skip = lock(&shared.ordered).stopped();
        let parsed = if skip {
            None
        } else {
            Some(shared.entries.parse(&chunk, &mut scratch))
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
            Some(Ok(entries)) => {
                match shared
                    .entries
                    .build(&chunk, &mut scratch, &mut ordered.built)
                {
                    Ok(report) => {
                        let before = std::mem::replace(&mut ordered.report, Report::new());
                        ordered.report = report.after(before);
                        ordered.entries += entries;
                    }
                    Err(e) => ordered.failed = Some(e),
                }
            }
            Some(Err(e)) => ordered.error = Some(e),
            None => {}
        }
        ordered.next = chunk.seq + 1;
        drop(ordered);
        shared.turn.notify_all();
        shared.recycle(chunk.bytes);
    }
}

/// How a kind of entries reads a chunk's array, one element at a time.
trait ReadEntries {
    fn read<'de, S: SeqAccess<'de>>(&mut self, seq: S) -> Result<(), S::Error>;
}

/// A chunk's array handed to a `ReadEntries`.
struct Seq<'r, R>(&'r mut R);

impl<'de, R: ReadEntries> DeserializeSeed<'de> for Seq<'_, R> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, R: ReadEntries> Visitor<'de> for Seq<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of entries")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<(), S::Error> {
        self.0.read(seq)
    }
}

/// Parses `chunk` of the array `name` with `entries`; serde's path and position in the chunk
/// are moved to the document's.
fn parse_chunk(chunk: &Chunk, name: &str, entries: &mut impl ReadEntries) -> Result<(), JsonError> {
    let content = chunk
        .bytes
        .get(1..chunk.bytes.len().saturating_sub(usize::from(chunk.closed)))
        .unwrap_or_default();
    if (chunk.after_comma || chunk.before_comma) && content.iter().all(u8::is_ascii_whitespace) {
        return Err(missing_entry(chunk, name, content));
    }
    let mut de = serde_json::Deserializer::from_slice(&chunk.bytes);
    let mut track = serde_path_to_error::Track::new();
    let read =
        Seq(entries).deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    let at = |line: usize, column: usize| in_document(chunk, line, column, 0);
    if let Err(e) = read {
        let path = in_array(name, &track.path().to_string(), chunk.first);
        return Err(JsonError::new(path, &e, at));
    }
    // The splitter cuts between entries, so nothing can follow the chunk's `]`; a stray byte
    // would be the splitter's bug, reported rather than ignored.
    if let Err(e) = de.end() {
        return Err(JsonError::new(name.into(), &e, at));
    }
    Ok(())
}

/// A position in a chunk (its `[` at column 1, after `shift` more bytes put before it) as
/// the position in the document.
fn in_document(chunk: &Chunk, line: usize, column: usize, shift: usize) -> (usize, usize) {
    if line == 1 {
        (
            chunk.line,
            (chunk.column + column).saturating_sub(2 + shift),
        )
    } else {
        (chunk.line + line - 1, column)
    }
}

/// The error serde gives for an entry missing between two commas or after the last one,
/// where one thread would meet it: in an array of the same bytes with the missing entry's
/// neighbours put back.
fn missing_entry(chunk: &Chunk, name: &str, content: &[u8]) -> JsonError {
    // The missing entry's index in the synthetic array is `shift / 2`.
    let (synthetic, shift) = if chunk.before_comma {
        ([b"[".as_slice(), content, b",0]"].concat(), 0)
    } else {
        let closer = chunk.bytes.last().filter(|_| chunk.closed);
        let closer = closer.map(std::slice::from_ref).unwrap_or_default();
        ([b"[0,".as_slice(), content, closer].concat(), 2)
    };
    let de = &mut serde_json::Deserializer::from_slice(&synthetic);
    let at = |line: usize, column: usize| in_document(chunk, line, column, shift);
    match serde_path_to_error::deserialize::<_, Vec<serde::de::IgnoredAny>>(de) {
        Err(e) => {
            let first = chunk.first.saturating_sub(shift / 2);
            JsonError::new(in_array(name, &e.path().to_string(), first), e.inner(), at)
        }
        // Unreachable: both arrays are refused. Said plainly if it ever is not.
        Ok(_) => JsonError::at(name.into(), "expected value", chunk.line, chunk.column),
    }
}

/// A path in a chunk (`[3].promoter`) as the path in the document (`works[1003].promoter`).
fn in_array(name: &str, path: &str, first: usize) -> String {
    let within = path
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)));
    match within {
        Some((i, rest)) => format!("{name}[{}]{rest}", first + i),
        None => name.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::in_array;

    #[test]
    fn a_chunk_path_is_moved_to_the_array() {
        assert_eq!(
            in_array("works", "[3].promoter", 1000),
            "works[1003].promoter"
        );
        assert_eq!(in_array("users", "[0]", 7), "users[7]");
        assert_eq!(in_array("works", ".", 7), "works");
        assert_eq!(in_array("works", "[x]", 7), "works");
    }
}
