//! Takes the `works` array out of a streamed document for the parsing workers (`chunks.rs`),
//! so that serde's stream parser, slow per byte, reads everything else (a few percent of a
//! national document) and sees the works array as `[]`.
//!
//! The splitter sits between the stream and serde, and follows the document's lexical state
//! (strings, escapes, nesting), which is all it needs to find the top-level `"works": [` and
//! the commas between its entries. It splits only when the loader has armed it: the loader
//! arms it when serde reads the `works` key with the organisations known, and the splitter
//! delivers the `[` last in a read, so by its next read serde has passed the key and the
//! arming is there to see. Anything the splitter does not recognise (a key written with
//! escapes, works before organisations) is simply passed through, and serde parses it as it
//! always did. It judges nothing: a broken document is found broken by serde or by a chunk's
//! parse, whose positions are moved back to the document's (`Region`).

use std::io::{self, Read};
use std::sync::{Arc, Mutex, PoisonError};

use super::chunks::{Chunk, Outcome, Pipeline, Spare, Users, Works};
use super::shards::ShardedMap;
use super::snapshot::User;
use super::works::WorkIndex;

/// Bytes of entries per chunk: enough works (about 35k) for a batch to touch each shard
/// several times, few enough that the chunks in flight stay a small share of the snapshot.
const CHUNK_BYTES: usize = 1 << 20;

/// Bytes read from the stream at a time.
const READ_BYTES: usize = 1 << 20;

/// What the loader and the splitter share.
#[derive(Default)]
pub(super) struct Control {
    state: Mutex<State>,
    /// Where the split arrays were, each as serde saw the document with the ones before it
    /// taken out (kept after `take`, for serde's later errors).
    regions: Mutex<Vec<Region>>,
}

#[derive(Default)]
enum State {
    #[default]
    Idle,
    /// serde is at the `works` key with the organisations known.
    Armed(Arming),
    Done(Finished),
}

/// The array serde is about to read, with what its workers need.
pub(super) enum Arming {
    Works(Works),
    Users(Users),
}

impl Arming {
    fn array(&self) -> Array {
        match self {
            Arming::Works(_) => Array::Works,
            Arming::Users(_) => Array::Users,
        }
    }
}

/// What the workers made of a split array.
pub(super) enum Finished {
    Works(Outcome<WorkIndex>),
    Users(Outcome<ShardedMap<Box<str>, User>>),
}

/// The arrays split: the big ones.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Array {
    Works,
    Users,
}

enum Running {
    Works(Pipeline<Works>),
    Users(Pipeline<Users>),
}

impl Running {
    fn start(arming: Arming, workers: usize, chunk_bytes: usize, spare: Spare) -> Option<Running> {
        Some(match arming {
            Arming::Works(works) => {
                Running::Works(Pipeline::start(works, workers, chunk_bytes, spare)?)
            }
            Arming::Users(users) => {
                Running::Users(Pipeline::start(users, workers, chunk_bytes, spare)?)
            }
        })
    }

    fn buffer(&self) -> Vec<u8> {
        match self {
            Running::Works(p) => p.buffer(),
            Running::Users(p) => p.buffer(),
        }
    }

    fn recycle(&self, bytes: Vec<u8>) {
        match self {
            Running::Works(p) => p.recycle(bytes),
            Running::Users(p) => p.recycle(bytes),
        }
    }

    fn send(&mut self, chunk: Chunk) {
        match self {
            Running::Works(p) => p.send(chunk),
            Running::Users(p) => p.send(chunk),
        }
    }

    fn finish(self) -> Finished {
        match self {
            Running::Works(p) => Finished::Works(p.finish()),
            Running::Users(p) => Finished::Users(p.finish()),
        }
    }
}

impl Control {
    pub(super) fn arm(&self, arming: Arming) {
        *self.lock() = State::Armed(arming);
    }

    /// The array split since `arm`, if it was; disarms either way.
    pub(super) fn take(&self) -> Option<Finished> {
        match std::mem::take(&mut *self.lock()) {
            State::Done(done) => Some(done),
            State::Idle | State::Armed(_) => None,
        }
    }

    /// An error the workers found, if an array was split: it comes before anything serde
    /// found after the array.
    pub(super) fn error(&self) -> Option<super::SnapshotError> {
        let mut state = self.lock();
        let State::Done(finished) = &mut *state else {
            return None;
        };
        let (error, failed) = match finished {
            Finished::Works(o) => (&mut o.error, &mut o.failed),
            Finished::Users(o) => (&mut o.error, &mut o.failed),
        };
        if let Some(e) = error.take() {
            return Some(super::SnapshotError::Json(e));
        }
        failed.take().map(super::load::failed)
    }

    /// Where serde's position `(line, column)` is in the document.
    pub(super) fn position(&self, line: usize, column: usize) -> (usize, usize) {
        let regions = self.regions.lock().unwrap_or_else(PoisonError::into_inner);
        regions
            .iter()
            .rev()
            .fold((line, column), |(line, column), r| r.position(line, column))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The arming for `array`, if that is what is armed.
    fn armed(&self, array: Array) -> Option<Arming> {
        let mut state = self.lock();
        match std::mem::take(&mut *state) {
            State::Armed(arming) if arming.array() == array => Some(arming),
            other => {
                *state = other;
                None
            }
        }
    }

    fn done(&self, finished: Finished, region: Region) {
        let mut regions = self.regions.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = |at| regions.iter().fold(at, |at, r: &Region| r.collapse(at));
        let region = Region {
            open: seen(region.open),
            close: seen(region.close),
            closed: region.closed,
        };
        regions.push(region);
        drop(regions);
        *self.lock() = State::Done(finished);
    }
}

/// The array serde did not see: its `[` and what closed it (or the end of the stream).
#[derive(Debug, Clone, Copy)]
pub(super) struct Region {
    /// Line and column of the `[`.
    open: (usize, usize),
    /// Line and column of the closing bracket, or of the end of the document.
    close: (usize, usize),
    closed: bool,
}

impl Region {
    /// Where a document position past this array is once the array is taken out.
    fn collapse(&self, (line, column): (usize, usize)) -> (usize, usize) {
        let (open_line, open_column) = self.open;
        let (close_line, close_column) = self.close;
        if (line, column) <= self.open {
            (line, column)
        } else if line == close_line {
            (
                open_line,
                (column + open_column + 1).saturating_sub(close_column),
            )
        } else {
            (line - (close_line - open_line), column)
        }
    }

    /// serde saw `[` and then the closer right after it; moves a position of serde's to the
    /// document's.
    fn position(&self, line: usize, column: usize) -> (usize, usize) {
        let (open_line, open_column) = self.open;
        let (close_line, close_column) = self.close;
        if line < open_line || (line == open_line && column <= open_column) {
            if !self.closed && (line, column) == self.open {
                // The stream ended inside the array: that is where serde's EOF is.
                return self.close;
            }
            return (line, column);
        }
        if !self.closed {
            return self.close;
        }
        if line == open_line {
            (close_line, column - (open_column + 1) + close_column)
        } else {
            (line + (close_line - open_line), column)
        }
    }
}

/// Where the lexer is in the document.
#[derive(Default)]
struct Lexer {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The current string is at the top level (a key or a value).
    top_string: bool,
    key: Key,
    /// The top-level string being read, while it can still be `works` or `users`.
    word: [u8; 5],
    word_len: usize,
    /// Line (1-based) and the offset its first byte has.
    line: usize,
    line_start: u64,
    offset: u64,
}

#[derive(Default, PartialEq, Eq, Clone, Copy)]
enum Key {
    #[default]
    None,
    /// The top-level string `"works"` or `"users"` just ended.
    Array(Array),
    /// ... and its colon.
    ArrayColon(Array),
}

impl Lexer {
    fn position(&self) -> (usize, usize) {
        let column = usize::try_from(self.offset - self.line_start).unwrap_or(usize::MAX);
        (self.line, column.saturating_add(1))
    }

    /// Where serde puts the end of the stream: the column of the last byte (0 after a newline).
    fn last_position(&self) -> (usize, usize) {
        let column = usize::try_from(self.offset - self.line_start).unwrap_or(usize::MAX);
        (self.line, column)
    }

    /// Moves the position past `seg` (counted in bulk: most of a document has no newline).
    fn advance(&mut self, seg: &[u8]) {
        if let Some(last) = memchr::memrchr(b'\n', seg) {
            self.line += memchr::memchr_iter(b'\n', seg).count();
            self.line_start = self.offset + last as u64 + 1;
        }
        self.offset += seg.len() as u64;
    }

    /// Reads on inside a string from `bytes[i]`; returns where it stopped (past the closing
    /// quote, or the end of `bytes`). A top-level string is kept while it can be `works`.
    #[inline]
    fn string(&mut self, bytes: &[u8], mut i: usize) -> usize {
        if self.escaped {
            self.escaped = false;
            self.word_len = usize::MAX;
            i += 1;
        }
        let rest = bytes.get(i..).unwrap_or_default();
        let Some(k) = memchr::memchr2(b'"', b'\\', rest) else {
            self.keep(rest);
            return bytes.len();
        };
        self.keep(rest.get(..k).unwrap_or_default());
        if rest.get(k) == Some(&b'\\') {
            self.escaped = true;
        } else {
            self.in_string = false;
            if self.top_string {
                self.key = match self.word.get(..self.word_len) {
                    Some(b"works") => Key::Array(Array::Works),
                    Some(b"users") => Key::Array(Array::Users),
                    _ => Key::None,
                };
            }
        }
        i + k + 1
    }

    /// Part of a top-level string, kept while the string can still be `works`.
    #[inline]
    fn keep(&mut self, part: &[u8]) {
        if !self.top_string || part.is_empty() {
            return;
        }
        let end = self.word_len.saturating_add(part.len());
        match self.word.get_mut(self.word_len..end) {
            Some(slot) => {
                slot.copy_from_slice(part);
                self.word_len = end;
            }
            None => self.word_len = usize::MAX,
        }
    }
}

pub(super) struct Splitter<R> {
    inner: R,
    control: Arc<Control>,
    workers: usize,
    chunk_bytes: usize,
    spare: Spare,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
    lex: Lexer,
    mode: Mode,
}

enum Mode {
    Pass,
    /// The `[` of the top-level `works` or `users` has been delivered: split if armed.
    AtArray((usize, usize), Array),
    Split(Box<Splitting>),
}

struct Splitting {
    pipeline: Running,
    open: (usize, usize),
    chunk: Vec<u8>,
    /// Top-level commas in the chunk so far (its entries, less one).
    commas: usize,
    seq: usize,
    first: usize,
    start: (usize, usize),
    /// Bytes of the buffer from here on belong to the chunk.
    from: usize,
}

impl<R: Read> Splitter<R> {
    pub(super) fn new(inner: R, control: Arc<Control>) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        Splitter {
            inner,
            control,
            workers,
            chunk_bytes: CHUNK_BYTES,
            spare: Spare::default(),
            buf: vec![0; READ_BYTES].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            lex: Lexer {
                line: 1,
                ..Lexer::default()
            },
            mode: Mode::Pass,
        }
    }

    /// Cuts chunks of about `bytes` (tests cut small ones to have many).
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(1);
        self
    }

    fn fill(&mut self) -> io::Result<()> {
        if let Mode::Split(s) = &mut self.mode {
            let held = self.buf.get(s.from..self.end).unwrap_or_default();
            s.chunk.extend_from_slice(held);
            s.from = 0;
        }
        self.pos = 0;
        self.end = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => {
                    self.end = n;
                    self.eof = n == 0;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Passes bytes to serde until the `[` of the top-level works (delivered last).
    fn pass(&mut self, out: &mut [u8]) -> usize {
        let end = self.end.min(self.pos.saturating_add(out.len()));
        let Some(bytes) = self.buf.get(..end) else {
            return 0;
        };
        let lex = &mut self.lex;
        let mut i = self.pos;
        while let Some(&b) = bytes.get(i) {
            if lex.in_string {
                i = lex.string(bytes, i);
                continue;
            }
            i += 1;
            match b {
                b'"' => {
                    lex.in_string = true;
                    lex.top_string = lex.depth == 1;
                    lex.word_len = 0;
                    lex.key = Key::None;
                }
                b':' => {
                    lex.key = match lex.key {
                        Key::Array(array) => Key::ArrayColon(array),
                        _ => Key::None,
                    }
                }
                b'[' if lex.depth == 1 && matches!(lex.key, Key::ArrayColon(_)) => {
                    let Key::ArrayColon(array) = lex.key else {
                        continue;
                    };
                    lex.advance(bytes.get(self.pos..i - 1).unwrap_or_default());
                    let at = lex.position();
                    lex.advance(b"[");
                    lex.depth += 1;
                    lex.key = Key::None;
                    self.mode = Mode::AtArray(at, array);
                    let n = i - self.pos;
                    if let (Some(dst), Some(src)) = (out.get_mut(..n), bytes.get(self.pos..i)) {
                        dst.copy_from_slice(src);
                    }
                    self.pos = i;
                    return n;
                }
                b'[' | b'{' => {
                    lex.depth += 1;
                    lex.key = Key::None;
                }
                b']' | b'}' => {
                    lex.depth = lex.depth.saturating_sub(1);
                    lex.key = Key::None;
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => lex.key = Key::None,
            }
        }
        let src = bytes.get(self.pos..i).unwrap_or_default();
        lex.advance(src);
        let n = src.len();
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(src);
        }
        self.pos = i;
        n
    }

    /// Cuts the buffered part of the array into chunks; the closing byte when the array has
    /// closed (left for `pass`).
    fn split(&mut self) -> Option<u8> {
        let Mode::Split(s) = &mut self.mode else {
            return None;
        };
        let lex = &mut self.lex;
        let bytes = self.buf.get(..self.end).unwrap_or_default();
        let mut i = self.pos;
        // Bytes before `counted` are in the lexer's position.
        let mut counted = self.pos;
        let mut closer = None;
        while let Some(&b) = bytes.get(i) {
            if lex.in_string {
                i = lex.string(bytes, i);
                continue;
            }
            match b {
                b'"' => {
                    lex.in_string = true;
                    lex.top_string = false;
                }
                b'[' | b'{' => lex.depth += 1,
                b']' | b'}' if lex.depth <= 2 => {
                    closer = Some(b);
                    break;
                }
                b']' | b'}' => lex.depth -= 1,
                b',' if lex.depth == 2 => {
                    if s.chunk.len() + (i - s.from) >= self.chunk_bytes {
                        s.chunk
                            .extend_from_slice(bytes.get(s.from..i).unwrap_or_default());
                        i += 1;
                        lex.advance(bytes.get(counted..i).unwrap_or_default());
                        counted = i;
                        s.from = i;
                        s.cut(lex.position(), 1, Some(b']'));
                        continue;
                    }
                    s.commas += 1;
                }
                _ => {}
            }
            i += 1;
        }
        let i = i.min(bytes.len());
        s.chunk
            .extend_from_slice(bytes.get(s.from..i).unwrap_or_default());
        lex.advance(bytes.get(counted..i).unwrap_or_default());
        s.from = i;
        self.pos = i;
        closer
    }

    /// Ends the split: the last chunk goes, the workers finish, and the loader is told.
    /// `closer` is the byte that closed the array (`None`: the stream ended first).
    fn end_split(&mut self, closer: Option<u8>) {
        let Mode::Split(s) = std::mem::replace(&mut self.mode, Mode::Pass) else {
            return;
        };
        let mut s = *s;
        // Sent even when the stream ended mid-entry: its parse meets the end where serde
        // would.
        let at = s.start;
        s.cut(at, 0, closer);
        let region = Region {
            open: s.open,
            close: match closer {
                Some(_) => self.lex.position(),
                None => self.lex.last_position(),
            },
            closed: closer.is_some(),
        };
        let outcome = s.pipeline.finish();
        self.control.done(outcome, region);
    }
}

impl Splitting {
    /// Sends the chunk so far (if it holds anything) and starts the next at `next`, after
    /// `cut` separating commas. `closer` ends the chunk: `]`, or what closed the array instead, for the chunk's parse to
    /// refuse as serde would; none when the stream ended.
    fn cut(&mut self, next: (usize, usize), cut: usize, closer: Option<u8>) {
        let entries = self.commas + cut;
        let next_chunk = self.pipeline.buffer();
        let mut bytes = std::mem::replace(&mut self.chunk, next_chunk);
        // Only an array with no comma may be empty: an empty chunk between commas or after
        // the last one is sent for its parse to refuse.
        let open = closer.is_none() || self.seq > 0 || cut > 0;
        let content = bytes.get(1..).unwrap_or_default();
        if open || content.iter().any(|b| !b.is_ascii_whitespace()) {
            bytes.extend(closer);
            let (line, column) = self.start;
            self.pipeline.send(Chunk {
                seq: self.seq,
                first: self.first,
                bytes,
                line,
                column,
                closed: closer.is_some(),
                after_comma: self.seq > 0,
                before_comma: cut > 0,
            });
            self.seq += 1;
        } else {
            self.pipeline.recycle(bytes);
        }
        self.first += entries;
        self.commas = 0;
        self.start = next;
    }
}

impl<R: Read> Read for Splitter<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.mode {
                Mode::AtArray(open, array) => {
                    let running = self.control.armed(array).and_then(|arming| {
                        let spare = Arc::clone(&self.spare);
                        Running::start(arming, self.workers, self.chunk_bytes, spare)
                    });
                    self.mode = match running {
                        Some(pipeline) => Mode::Split(Box::new(Splitting {
                            chunk: pipeline.buffer(),
                            pipeline,
                            open,
                            commas: 0,
                            seq: 0,
                            first: 0,
                            start: self.lex.position(),
                            from: self.pos,
                        })),
                        None => Mode::Pass,
                    };
                    continue;
                }
                Mode::Split(_) if self.pos < self.end => {
                    if let Some(closer) = self.split() {
                        self.end_split(Some(closer));
                    }
                    continue;
                }
                Mode::Pass if self.pos < self.end => return Ok(self.pass(out)),
                _ => {}
            }
            if self.eof {
                self.end_split(None);
                return Ok(0);
            }
            if let Err(e) = self.fill() {
                self.end_split(None);
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests;
