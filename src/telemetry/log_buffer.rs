//! Log lines gathered in memory and written to stdout in batches by one background thread.
//! With every allowed decision logged, one `write(2)` per line cost about a tenth of the CPU of
//! a proxied request. A request thread only appends to a buffer under a short lock and never
//! writes itself, so a slow log consumer cannot stall requests; past `MAX_WAITING` bytes lines
//! are dropped (and counted) rather than held without bound. Lines keep their order. At most
//! `FLUSH_EVERY` of output is lost if the process dies without dropping its `FlushGuard`
//! (Envoy flushes its access log every second for the same reason).
//!
//! A write that fails (a full disk behind stdout, a closed pipe) loses its batch: requests are
//! still answered, and the loss is counted in `LINES_DROPPED` and `WRITE_ERRORS`, which every
//! `Metrics` registry exports (the log has no other place to report its own failure).
//!
//! Kept over tracing-appender's `non_blocking`: that worker writes each line on its own (one
//! `write(2)` per line, the very cost this buffer removes) and bounds its queue in lines, not
//! bytes. Its dropped-line count has an equivalent here, exported as
//! `streetgate_decision_log_dropped_total`.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::Thread;
use std::time::Duration;

use prometheus::IntCounter;
use tracing_subscriber::fmt::MakeWriter;

/// Log lines lost, for either reason: the consumer fell behind, or their write failed. One per
/// process, like stdout.
#[allow(clippy::expect_used, reason = "a fixed, valid definition")]
pub static LINES_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "streetgate_decision_log_dropped_total",
        "Log lines (decision log and others) lost: output not keeping up, or a failed write.",
    )
    .expect("valid metric")
});

/// Writes of a batch of log lines to stdout that failed.
#[allow(clippy::expect_used, reason = "a fixed, valid definition")]
pub static WRITE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "streetgate_decision_log_write_errors_total",
        "Failed writes of log output (e.g. disk full); the batch is lost.",
    )
    .expect("valid metric")
});

/// How long a line may wait in memory.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Waiting bytes that wake the writer at once.
const WAKE_AT: usize = 64 * 1024;
/// Waiting bytes beyond which new lines are dropped (the consumer is not keeping up).
const MAX_WAITING: usize = 32 * 1024 * 1024;

/// A `MakeWriter` for `tracing_subscriber::fmt` that batches writes to stdout.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

struct Shared {
    waiting: Mutex<Vec<u8>>,
    /// Held while a batch is taken and written, so batches leave in the order they filled.
    out: Mutex<Box<dyn Write + Send>>,
    dropped: AtomicU64,
    writer_thread: OnceLock<Thread>,
}

/// Writes whatever is waiting when dropped; keep it alive until the process ends.
pub struct FlushGuard {
    buffer: LogBuffer,
}

impl LogBuffer {
    /// The buffer and the guard that flushes it last; a background thread writes it every
    /// `FLUSH_EVERY`, or sooner when `WAKE_AT` bytes wait (and stops once the buffer is gone).
    pub fn start() -> io::Result<(LogBuffer, FlushGuard)> {
        let buffer = LogBuffer::to(Box::new(io::stdout()));
        let weak = Arc::downgrade(&buffer.shared);
        let thread = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || flush_periodically(&weak))?;
        let _ = buffer.shared.writer_thread.set(thread.thread().clone());
        let guard = FlushGuard {
            buffer: buffer.clone(),
        };
        Ok((buffer, guard))
    }

    /// A buffer over any writer, flushed only by `flush` (tests read the lines back).
    pub fn to(out: Box<dyn Write + Send>) -> LogBuffer {
        LogBuffer {
            shared: Arc::new(Shared {
                waiting: Mutex::new(Vec::with_capacity(WAKE_AT)),
                out: Mutex::new(out),
                dropped: AtomicU64::new(0),
                writer_thread: OnceLock::new(),
            }),
        }
    }

    /// Writes everything waiting, in order.
    pub fn flush(&self) {
        self.shared.flush();
    }

    /// Queues whole lines (a batch of them) for the writer.
    pub fn append(&self, lines: &[u8]) {
        self.shared.append(lines);
    }
}

impl Shared {
    fn flush(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut *lock(&self.waiting));
        // A failed write is counted and its lines dropped rather than retried: retrying would
        // only grow the backlog while the output stays broken.
        if !batch.is_empty() && out.write_all(&batch).is_err() {
            lost(&batch);
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let notice = format!(
                "{{\"level\":\"WARN\",\"fields\":{{\"message\":\"log lines dropped: output not keeping up\",\"bytes\":{dropped}}},\"target\":\"streetgate::log\"}}\n"
            );
            if out.write_all(notice.as_bytes()).is_err() {
                lost(notice.as_bytes());
            }
        }
        if out.flush().is_err() {
            WRITE_ERRORS.inc();
        }
    }

    fn append(&self, line: &[u8]) {
        let mut waiting = lock(&self.waiting);
        if waiting.len() + line.len() > MAX_WAITING {
            self.dropped.fetch_add(line.len() as u64, Ordering::Relaxed);
            LINES_DROPPED.inc_by(lines(line));
            return;
        }
        waiting.extend_from_slice(line);
        if waiting.len() >= WAKE_AT {
            drop(waiting);
            if let Some(thread) = self.writer_thread.get() {
                thread.unpark();
            }
        }
    }
}

/// Counts a batch whose write failed.
fn lost(batch: &[u8]) {
    WRITE_ERRORS.inc();
    LINES_DROPPED.inc_by(lines(batch));
}

/// Lines in a batch (a partial last line counts).
fn lines(batch: &[u8]) -> u64 {
    let full = batch.iter().filter(|&&b| b == b'\n').count() as u64;
    full + u64::from(batch.last().is_some_and(|&b| b != b'\n'))
}

fn flush_periodically(shared: &Weak<Shared>) {
    loop {
        std::thread::park_timeout(FLUSH_EVERY);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.flush();
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Bytes only; a panic while appending leaves at worst a partial line.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.buffer.flush();
    }
}

impl io::Write for &LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = &'a LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_wait_for_a_flush_and_leave_in_order() {
        let sink = Sink::default();
        let buffer = LogBuffer::to(Box::new(sink.clone()));
        let mut w = buffer.make_writer();
        w.write_all(b"one\n").unwrap();
        w.write_all(b"two\n").unwrap();
        assert!(lock(&sink.0).is_empty(), "request threads never write");
        buffer.flush();
        assert_eq!(&*lock(&sink.0), b"one\ntwo\n");
        buffer.make_writer().write_all(b"three\n").unwrap();
        drop(FlushGuard { buffer });
        assert_eq!(&*lock(&sink.0), b"one\ntwo\nthree\n");
    }

    /// A sink whose writes always fail, as stdout on a full disk.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failed_writes_are_counted_and_their_lines_dropped() {
        let buffer = LogBuffer::to(Box::new(Full));
        let (errors, dropped) = (WRITE_ERRORS.get(), LINES_DROPPED.get());
        buffer.make_writer().write_all(b"one\ntwo\n").unwrap();
        buffer.flush();
        // Other tests share the counters: at least ours are in.
        assert!(WRITE_ERRORS.get() > errors);
        assert!(LINES_DROPPED.get() >= dropped + 2);
        assert!(lock(&buffer.shared.waiting).is_empty(), "not retried");
    }

    #[test]
    fn a_consumer_that_falls_behind_loses_lines_not_memory() {
        let sink = Sink::default();
        let buffer = LogBuffer::to(Box::new(sink.clone()));
        let line = vec![b'x'; 1024 * 1024];
        for _ in 0..(MAX_WAITING / line.len()) + 3 {
            buffer.make_writer().write_all(&line).unwrap();
        }
        assert!(lock(&buffer.shared.waiting).len() <= MAX_WAITING);
        buffer.flush();
        let written = lock(&sink.0);
        assert!(written.ends_with(b"\"target\":\"streetgate::log\"}\n"));
        assert!(String::from_utf8_lossy(&written[MAX_WAITING..]).contains("\"bytes\":3145728"));
    }
}
