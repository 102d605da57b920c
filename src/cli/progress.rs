//! Progress for long-running CLI work: a spinner with elapsed time while a step runs, and a
//! check mark with its duration when it ends. Only on a terminal: piped or redirected stderr
//! (scripts, CI) gets nothing, so output stays machine-readable.
//!
//! Kept over indicatif: one spinner and a check mark need a hundred lines, not a terminal
//! library and its dependencies in a security sidecar's binary.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(100);

type Sink = Arc<Mutex<dyn Write + Send>>;

/// Cheap to clone; clones write to the same place.
#[derive(Clone)]
pub struct Progress {
    out: Option<Sink>,
}

impl Progress {
    /// Reports on stderr when it is a terminal, otherwise stays quiet.
    pub fn stderr() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::to(Arc::new(Mutex::new(std::io::stderr())))
        } else {
            Progress::quiet()
        }
    }

    pub fn quiet() -> Progress {
        Progress { out: None }
    }

    /// Reports to `out` whatever it is (tests pass a buffer).
    pub fn to(out: Sink) -> Progress {
        Progress { out: Some(out) }
    }

    /// Runs `work` on this thread while a spinner names it; then a line with its duration.
    pub fn run<T>(&self, label: &str, work: impl FnOnce() -> T) -> T {
        let Some(out) = &self.out else {
            return work();
        };
        let started = Instant::now();
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            let spinner = scope.spawn(|| {
                let mut frame = 0;
                while !done.load(Ordering::Acquire) {
                    let elapsed = started.elapsed().as_secs_f64();
                    self.write(
                        out,
                        &format!("\r\x1b[2K{} {label} {elapsed:.1}s", FRAMES[frame]),
                    );
                    frame = (frame + 1) % FRAMES.len();
                    std::thread::park_timeout(TICK);
                }
            });
            let result = work();
            done.store(true, Ordering::Release);
            spinner.thread().unpark();
            let _ = spinner.join();
            result
        });
        let elapsed = started.elapsed().as_secs_f64();
        self.write(out, &format!("\r\x1b[2K✓ {label} ({elapsed:.1}s)\n"));
        result
    }

    /// A one-line note (a step with nothing to wait for).
    pub fn note(&self, message: &str) {
        if let Some(out) = &self.out {
            self.write(out, &format!("{message}\n"));
        }
    }

    fn write(&self, out: &Sink, text: &str) {
        // Progress is best effort: a closed terminal must not fail the command.
        if let Ok(mut out) = out.lock() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_runs_the_work_and_writes_nothing() {
        assert_eq!(Progress::quiet().run("x", || 41 + 1), 42);
    }

    #[test]
    fn a_terminal_sees_the_spinner_then_the_result_line() {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let progress = Progress::to(buf.clone());
        let value = progress.run("validating snapshot", || {
            std::thread::sleep(Duration::from_millis(250));
            7
        });
        progress.note("done");
        assert_eq!(value, 7);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(text.contains("⠋ validating snapshot"), "{text:?}");
        assert!(text.matches('\r').count() >= 3, "spinner redrew: {text:?}");
        assert!(text.contains("✓ validating snapshot ("), "{text:?}");
        assert!(text.ends_with("done\n"), "{text:?}");
    }
}
