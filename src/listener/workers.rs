//! Thread-per-core serving. Each worker is an OS thread running its own current_thread tokio
//! runtime with its own listener on the shared port (SO_REUSEPORT: the kernel spreads new
//! connections over them), and its own upstream connections (`forward::pool`). A request is
//! accepted, decided, forwarded and answered on one thread: no work-stealing hand-offs and no
//! cross-thread wake-ups on the data path. Where SO_REUSEPORT is refused, one listener accepts
//! and hands each connection to a worker in turn; the connection then stays on that worker.

use std::cell::Cell;
use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// The most workers a config or `STREETGATE_WORKERS` may ask for.
pub const MAX: usize = 1024;
/// Overrides `runtime.workers`.
pub const ENV: &str = "STREETGATE_WORKERS";
/// Connections waiting for one worker in hand-off mode before the acceptor waits too.
const HANDOFF_QUEUE: usize = 1024;
const BACKLOG: i32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error("{ENV}={value:?} is not a number of workers between 1 and {MAX}")]
    Env { value: String },
    #[error("cannot start worker {index}: {source}")]
    Spawn {
        index: usize,
        #[source]
        source: io::Error,
    },
}

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Upstream pools keep one slot per worker; a sidecar raises this to its worker count.
static SLOTS: AtomicUsize = AtomicUsize::new(1);

/// The index of the worker running on this thread (None off the data path).
pub fn current() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// How many per-worker slots per-worker state should have: the most workers any sidecar in
/// this process runs (tests run several).
pub fn slots() -> usize {
    SLOTS.load(Ordering::Relaxed)
}

/// The number of workers: `STREETGATE_WORKERS` when set, else `runtime.workers`, else the CPUs
/// this process may run on (`available_parallelism` reads the cgroup CPU quota and the
/// affinity mask, so a pod limited to 2 CPUs gets 2).
pub fn count(configured: Option<usize>) -> Result<usize, WorkersError> {
    count_from(std::env::var_os(ENV), configured)
}

fn count_from(env: Option<OsString>, configured: Option<usize>) -> Result<usize, WorkersError> {
    if let Some(value) = env {
        let text = value.to_string_lossy();
        return match text.trim().parse::<usize>() {
            Ok(n) if (1..=MAX).contains(&n) => Ok(n),
            _ => Err(WorkersError::Env {
                value: text.into_owned(),
            }),
        };
    }
    Ok(configured.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(NonZeroUsize::get)
            .unwrap_or(1)
            .min(MAX)
    }))
}

/// Where one worker's connections come from.
pub enum Source {
    /// Its own SO_REUSEPORT listener.
    Own(std::net::TcpListener),
    /// Connections accepted by the shared listener and handed to this worker.
    HandOff(mpsc::Receiver<std::net::TcpStream>),
}

/// What a worker's serve loop accepts from.
pub enum Connections {
    Listener(TcpListener),
    HandOff(mpsc::Receiver<std::net::TcpStream>),
}

impl Connections {
    /// The next connection; None when the hand-off acceptor has stopped.
    pub async fn accept(&mut self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        match self {
            Connections::Listener(l) => Some(l.accept().await),
            Connections::HandOff(rx) => {
                let stream = rx.recv().await?;
                // Registered with this worker's runtime here, where it will be served.
                Some(TcpStream::from_std(stream).and_then(|s| s.peer_addr().map(|peer| (s, peer))))
            }
        }
    }
}

impl Source {
    /// Must run inside the worker's runtime (tokio registers the socket with it).
    fn into_connections(self) -> io::Result<Connections> {
        Ok(match self {
            Source::Own(l) => Connections::Listener(TcpListener::from_std(l)?),
            Source::HandOff(rx) => Connections::HandOff(rx),
        })
    }
}

/// The main port, bound once per worker.
pub struct Bound {
    pub addr: SocketAddr,
    pub sources: Vec<Source>,
    /// Set in hand-off mode: the one listener, for `spawn_handoff`.
    pub shared: Option<(
        std::net::TcpListener,
        Vec<mpsc::Sender<std::net::TcpStream>>,
    )>,
}

/// Binds `workers` SO_REUSEPORT listeners on `addr` (port 0: the first one's port for all),
/// or one listener with hand-off when the first cannot take SO_REUSEPORT.
pub fn bind(addr: SocketAddr, workers: usize, reuse_port: bool) -> io::Result<Bound> {
    let first = if reuse_port {
        socket(addr, true).ok()
    } else {
        None
    };
    let Some(first) = first else {
        let shared = socket(addr, false)?;
        let addr = shared.local_addr()?;
        let (senders, sources) = (0..workers)
            .map(|_| {
                let (tx, rx) = mpsc::channel(HANDOFF_QUEUE);
                (tx, Source::HandOff(rx))
            })
            .unzip();
        return Ok(Bound {
            addr,
            sources,
            shared: Some((shared, senders)),
        });
    };
    let addr = first.local_addr()?;
    let mut sources = vec![Source::Own(first)];
    for _ in 1..workers {
        sources.push(Source::Own(socket(addr, true)?));
    }
    Ok(Bound {
        addr,
        sources,
        shared: None,
    })
}

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// Hand-off mode: accepts on the one listener (on the caller's runtime) and gives the workers
/// connections in turn until `shutdown`.
pub fn spawn_handoff(
    listener: std::net::TcpListener,
    workers: Vec<mpsc::Sender<std::net::TcpStream>>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    if workers.is_empty() {
        return Ok(());
    }
    tokio::spawn(async move {
        let mut next = 0;
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            // Deregistered here; the worker registers it with its own runtime.
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            // A worker that has stopped (shutdown) refuses it: the connection is closed.
            let _ = workers[next].send(stream).await;
            next = (next + 1) % workers.len();
        }
    });
    Ok(())
}

/// A started worker: resolves when its thread has finished (drained and stopped).
pub struct Worker {
    done: oneshot::Receiver<()>,
}

impl Worker {
    pub async fn join(self) {
        let _ = self.done.await;
    }
}

/// Starts worker `index` on its own thread and runtime; `serve` runs there until it returns.
pub fn spawn<F, Fut>(index: usize, source: Source, serve: F) -> Result<Worker, WorkersError>
where
    F: FnOnce(Connections) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let spawn_error = |source| WorkersError::Spawn { index, source };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(spawn_error)?;
    SLOTS.fetch_max(index + 1, Ordering::Relaxed);
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("streetgate-worker-{index}"))
        .spawn(move || {
            WORKER.with(|w| w.set(Some(index)));
            crate::telemetry::decision_log::buffer_this_thread();
            runtime.block_on(async move {
                tokio::spawn(crate::telemetry::decision_log::flush_periodically());
                match source.into_connections() {
                    Ok(connections) => serve(connections).await,
                    Err(e) => tracing::error!(worker = index, error = %e, "worker cannot listen"),
                }
            });
            // Connection and upstream tasks still on this runtime end here, before `done`.
            drop(runtime);
            crate::telemetry::decision_log::flush_thread();
            let _ = done_tx.send(());
        })
        .map_err(spawn_error)?;
    Ok(Worker { done })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_config_and_bad_values_are_errors() {
        assert_eq!(count_from(Some("3".into()), Some(8)).unwrap(), 3);
        assert_eq!(count_from(Some(" 2 ".into()), None).unwrap(), 2);
        assert_eq!(count_from(None, Some(5)).unwrap(), 5);
        assert!(count_from(None, None).unwrap() >= 1);
        for bad in [
            "0",
            "-1",
            "two",
            "",
            "1.5",
            "1025",
            "99999999999999999999999",
        ] {
            let err = count_from(Some(bad.into()), Some(2)).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("STREETGATE_WORKERS={bad:?}")),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn without_reuse_port_one_listener_hands_connections_to_every_worker() {
        let bound = bind("127.0.0.1:0".parse().unwrap(), 2, false).unwrap();
        let (shared, senders) = bound.shared.expect("hand-off mode");
        let (_stop, shutdown) = watch::channel(false);
        spawn_handoff(shared, senders, shutdown).unwrap();
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let mut workers = Vec::new();
        for (index, source) in bound.sources.into_iter().enumerate() {
            let seen_tx = seen_tx.clone();
            workers.push(
                spawn(index, source, move |mut connections| async move {
                    while let Some(Ok((_stream, _peer))) = connections.accept().await {
                        let _ = seen_tx.send((index, current(), std::thread::current().id()));
                    }
                })
                .unwrap(),
            );
        }
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(TcpStream::connect(bound.addr).await.unwrap());
        }
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(seen.recv().await.unwrap());
        }
        got.sort_by_key(|g| g.0);
        let indexes: Vec<usize> = got.iter().map(|g| g.0).collect();
        assert_eq!(indexes, [0, 0, 1, 1], "in turn");
        assert!(got.iter().all(|(i, current, _)| *current == Some(*i)));
        assert_ne!(got[0].2, got[2].2, "each worker on its own thread");
    }
}
