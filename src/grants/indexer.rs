//! Indexes the loader's batches of works, on a second thread once there is more than one
//! batch: the loader parses the next 64k works while the previous ones are indexed, so a big
//! load uses two cores. At most one batch waits and one is being indexed, so memory stays
//! bounded. Each batch's problems come back as a report of their own, in the order the
//! batches were sent, for the loader to append where the sequential load would have.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

use super::validate::Report;
use super::work_batch::WorkBatch;
use super::works::{TooLarge, WorkIndex};

/// Why batches could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexFailed {
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// The indexing thread could not start or stopped (it panicked).
    #[error("the grants indexing thread stopped")]
    Stopped,
}

/// A batch to index, the problems already found in it (by position), and the room to
/// reserve in the index before the first one.
pub(super) struct Job {
    pub(super) batch: WorkBatch,
    pub(super) deferred: Vec<(usize, Report)>,
    pub(super) reserve: Option<(usize, usize)>,
}

/// A batch indexed: the emptied batch (for reuse) and its problems in document order.
struct Done {
    batch: WorkBatch,
    report: Result<Report, TooLarge>,
}

pub(super) struct Indexer {
    state: State,
    /// Emptied batches, to be filled again without growing new ones.
    spare: Vec<WorkBatch>,
}

enum State {
    /// Indexing on the loader's thread (nothing sent to a second one yet).
    Here(WorkIndex),
    Away(Away),
    /// The second thread died (it panicked): the load fails.
    Lost,
}

struct Away {
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    thread: JoinHandle<WorkIndex>,
    in_flight: usize,
}

impl Default for Indexer {
    fn default() -> Self {
        Indexer {
            state: State::Here(WorkIndex::default()),
            spare: Vec::new(),
        }
    }
}

impl Indexer {
    /// Goes on from an index built elsewhere (the works of a split array).
    pub(super) fn resume(index: WorkIndex) -> Indexer {
        Indexer {
            state: State::Here(index),
            spare: Vec::new(),
        }
    }

    /// An empty batch to fill (a reused one when there is).
    pub(super) fn batch(&mut self) -> WorkBatch {
        self.spare.pop().unwrap_or_default()
    }

    /// Indexes `job`, on the second thread when `in_background` and there is a second core,
    /// and returns the reports of the batches done so far, in the order they were sent.
    pub(super) fn submit(
        &mut self,
        job: Job,
        in_background: bool,
    ) -> Result<Vec<Report>, IndexFailed> {
        if in_background && matches!(self.state, State::Here(_)) && second_core() {
            self.start();
        }
        match &mut self.state {
            State::Here(index) => {
                let mut job = job;
                let report = index_batch(index, &mut job);
                self.spare.push(job.batch);
                Ok(vec![report?])
            }
            State::Away(away) => {
                if away.jobs.send(job).is_err() {
                    // The thread stopped: after a batch too large, say so rather than that.
                    self.collect(true)?;
                    self.state = State::Lost;
                    return Err(IndexFailed::Stopped);
                }
                away.in_flight += 1;
                self.collect(false)
            }
            State::Lost => Err(IndexFailed::Stopped),
        }
    }

    /// Waits for every batch sent and returns their reports, in order.
    pub(super) fn wait(&mut self) -> Result<Vec<Report>, IndexFailed> {
        self.collect(true)
    }

    /// The index, once every batch is in.
    pub(super) fn finish(mut self) -> Result<WorkIndex, IndexFailed> {
        match std::mem::replace(&mut self.state, State::Lost) {
            State::Here(index) => Ok(index),
            State::Away(away) => {
                let Away { jobs, thread, .. } = away;
                drop(jobs);
                thread.join().map_err(|_| IndexFailed::Stopped)
            }
            State::Lost => Err(IndexFailed::Stopped),
        }
    }

    fn start(&mut self) {
        let State::Here(index) = std::mem::replace(&mut self.state, State::Lost) else {
            return;
        };
        // One batch waiting while one is indexed: the loader blocks rather than run ahead.
        let (jobs, inbox) = sync_channel::<Job>(1);
        let (outbox, done) = channel::<Done>();
        let spawned = std::thread::Builder::new()
            .name("grants-index".into())
            .spawn(move || {
                let mut index = index;
                for mut job in inbox {
                    let report = index_batch(&mut index, &mut job);
                    let failed = report.is_err();
                    let sent = outbox.send(Done {
                        batch: job.batch,
                        report,
                    });
                    if failed || sent.is_err() {
                        break;
                    }
                }
                index
            });
        self.state = match spawned {
            Ok(thread) => State::Away(Away {
                jobs,
                done,
                thread,
                in_flight: 0,
            }),
            // No thread to be had: the index went with the closure, so the load fails (as it
            // would for want of memory).
            Err(e) => {
                tracing::error!(error = %e, "cannot start the grants indexing thread");
                State::Lost
            }
        };
    }

    /// The reports of the batches indexed so far (all of them when `all`), in order.
    fn collect(&mut self, all: bool) -> Result<Vec<Report>, IndexFailed> {
        let State::Away(away) = &mut self.state else {
            return match self.state {
                State::Lost => Err(IndexFailed::Stopped),
                _ => Ok(Vec::new()),
            };
        };
        let mut reports = Vec::new();
        while away.in_flight > 0 {
            let done = if all {
                away.done.recv().map_err(|_| IndexFailed::Stopped)
            } else {
                match away.done.try_recv() {
                    Ok(done) => Ok(done),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => Err(IndexFailed::Stopped),
                }
            };
            let Ok(done) = done else {
                self.state = State::Lost;
                return Err(IndexFailed::Stopped);
            };
            away.in_flight -= 1;
            self.spare.push(done.batch);
            reports.push(done.report?);
        }
        Ok(reports)
    }
}

/// Two cores or more: otherwise a second thread only adds hand-offs.
fn second_core() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

/// Indexes a batch, then lists its problems in document order: for each work, a duplicate
/// reference first, then the rest.
pub(super) fn index_batch(index: &mut WorkIndex, job: &mut Job) -> Result<Report, TooLarge> {
    if let Some((works, ref_bytes)) = job.reserve.take() {
        index.reserve(works, ref_bytes);
    }
    let mut duplicates = Vec::new();
    job.batch
        .flush(index, |at, wrn| duplicates.push((at, wrn.to_owned())))?;
    duplicates.sort_unstable();
    let mut duplicates = duplicates.into_iter().peekable();
    let mut deferred = std::mem::take(&mut job.deferred).into_iter().peekable();
    let mut report = Report::new();
    loop {
        let next_dup = duplicates.peek().map(|(at, _)| *at);
        let next_other = deferred.peek().map(|(at, _)| *at);
        let duplicate_first = match (next_dup, next_other) {
            (None, None) => break,
            (Some(d), Some(o)) => d <= o,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if duplicate_first {
            if let Some((at, wrn)) = duplicates.next() {
                report.push_with(|| {
                    (
                        format!("works[{at}].work_reference_number"),
                        format!("duplicate work {wrn:?}"),
                    )
                });
            }
        } else if let Some((_, r)) = deferred.next() {
            report = r.after(report);
        }
    }
    Ok(report)
}
