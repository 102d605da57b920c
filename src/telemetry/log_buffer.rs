//! Log lines gathered in memory and written to stdout in batches. With every allowed decision
//! logged, one `write(2)` per line cost about a tenth of the CPU of a proxied request; a batch
//! every `FLUSH_EVERY` (or whenever `MAX_BUFFERED` bytes are waiting) costs almost nothing.
//! Lines keep their order. At most `FLUSH_EVERY` of output is lost if the process dies without
//! dropping its `FlushGuard` (Envoy flushes its access log every second for the same reason).

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in memory.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Waiting bytes that trigger an immediate write.
const MAX_BUFFERED: usize = 64 * 1024;

/// A `MakeWriter` for `tracing_subscriber::fmt` that batches writes to stdout.
#[derive(Clone)]
pub struct LogBuffer {
    lines: Arc<Mutex<Vec<u8>>>,
}

/// Writes whatever is buffered when dropped; keep it alive until the process ends.
pub struct FlushGuard {
    buffer: LogBuffer,
}

impl LogBuffer {
    /// The buffer and the guard that flushes it last; a background thread flushes it every
    /// `FLUSH_EVERY` meanwhile (and stops once the buffer is gone).
    pub fn start() -> io::Result<(LogBuffer, FlushGuard)> {
        let buffer = LogBuffer {
            lines: Arc::new(Mutex::new(Vec::with_capacity(MAX_BUFFERED))),
        };
        let weak = Arc::downgrade(&buffer.lines);
        std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || flush_periodically(&weak))?;
        let guard = FlushGuard {
            buffer: buffer.clone(),
        };
        Ok((buffer, guard))
    }

    pub fn flush(&self) {
        flush_locked(&mut lock(&self.lines));
    }
}

fn flush_periodically(lines: &Weak<Mutex<Vec<u8>>>) {
    loop {
        std::thread::sleep(FLUSH_EVERY);
        let Some(lines) = lines.upgrade() else { return };
        flush_locked(&mut lock(&lines));
    }
}

/// Writes and empties the buffer while its lock is held, so batches leave in order.
fn flush_locked(lines: &mut Vec<u8>) {
    if lines.is_empty() {
        return;
    }
    let mut out = io::stdout().lock();
    // Nowhere to report a failed log write; the lines are dropped rather than retried forever.
    let _ = out.write_all(lines).and_then(|()| out.flush());
    lines.clear();
}

fn lock(lines: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    // Bytes only; a panic while appending leaves at worst a partial line.
    lines.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.buffer.flush();
    }
}

impl io::Write for &LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut lines = lock(&self.lines);
        lines.extend_from_slice(buf);
        if lines.len() >= MAX_BUFFERED {
            flush_locked(&mut lines);
        }
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

    #[test]
    fn lines_wait_for_a_flush_and_leave_in_order() {
        let buffer = LogBuffer {
            lines: Arc::new(Mutex::new(Vec::new())),
        };
        let mut w = buffer.make_writer();
        w.write_all(b"one\n").unwrap();
        w.write_all(b"two\n").unwrap();
        assert_eq!(&*lock(&buffer.lines), b"one\ntwo\n");
        buffer.flush();
        assert!(lock(&buffer.lines).is_empty());
    }

    #[test]
    fn a_full_buffer_is_written_at_once() {
        let buffer = LogBuffer {
            lines: Arc::new(Mutex::new(Vec::new())),
        };
        let line = vec![b'x'; 1000];
        for _ in 0..(MAX_BUFFERED / line.len()) + 1 {
            buffer.make_writer().write_all(&line).unwrap();
            assert!(lock(&buffer.lines).len() < MAX_BUFFERED);
        }
    }
}
