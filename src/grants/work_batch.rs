//! Works read from a document, indexed in batches ordered by shard. In document order each
//! work lands in a random one of 4,096 shards, and its first touch of that shard's memory is
//! a cache miss: about a fifth of a 3M-work load's CPU went there. A batch of 64k works
//! touches each shard once for about 16 of them (a split array's batch is a chunk's works,
//! about 9k: the chunks are parsed on every core, which is the bigger gain). A repeated reference still keeps its first
//! entry: equal references share a shard, and within a shard a batch keeps document order.

use super::format::WorkDoc;
use super::snapshot::{WorkInfo, work_from};
use super::validate::{Orgs, Report, check_work};
use super::works::{TooLarge, WorkIndex};

/// Works per batch (and a cap on the batch's references, so odd documents stay bounded).
const WORKS: usize = 1 << 16;
const REF_BYTES: usize = 16 << 20;

#[derive(Default)]
pub(super) struct WorkBatch {
    refs: String,
    rows: Vec<Row>,
}

struct Row {
    /// Set by `flush`, on the indexing thread.
    hash: u64,
    /// The reference is `refs[start..end]`.
    start: usize,
    end: usize,
    info: WorkInfo,
    /// Position in the document's `works`, for problems.
    at: usize,
}

impl WorkBatch {
    /// Adds a work; true when the batch is full and must be flushed.
    pub(super) fn push(&mut self, at: usize, wrn: &str, info: WorkInfo) -> bool {
        let start = self.refs.len();
        self.refs.push_str(wrn);
        self.rows.push(Row {
            hash: 0,
            start,
            end: self.refs.len(),
            info,
            at,
        });
        self.rows.len() >= WORKS || self.refs.len() >= REF_BYTES
    }

    /// Takes the document's work number `i`: batched if it can be indexed, and its problems
    /// (against `orgs`, when known) kept by position in `deferred`. True when the batch is
    /// full.
    pub(super) fn take(
        &mut self,
        i: usize,
        work: &WorkDoc<'_>,
        orgs: Option<&Orgs>,
        deferred: &mut Vec<(usize, Report)>,
    ) -> bool {
        let wrn = &*work.work_reference_number;
        let mut full = false;
        if !wrn.is_empty()
            && let Some(info) = work_from(work)
        {
            full = self.push(i, wrn, info);
        }
        if let Some(orgs) = orgs {
            let mut r = Report::new();
            check_work(|| format!("works[{i}]"), work, orgs, &mut r);
            if !r.is_empty() {
                deferred.push((i, r));
            }
        }
        full
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(super) fn ref_bytes(&self) -> usize {
        self.refs.len()
    }

    /// Indexes the batch, calling `duplicate(at, reference)` for each reference already
    /// indexed (by an earlier batch or earlier in this one), and empties it.
    pub(super) fn flush(
        &mut self,
        index: &mut WorkIndex,
        mut duplicate: impl FnMut(usize, &str),
    ) -> Result<(), TooLarge> {
        for r in &mut self.rows {
            r.hash = index.hash(self.refs.get(r.start..r.end).unwrap_or_default());
        }
        self.rows
            .sort_unstable_by_key(|r| (WorkIndex::shard_of(r.hash), r.at));
        for r in &self.rows {
            let wrn = self.refs.get(r.start..r.end).unwrap_or_default();
            if !index.insert_new_hashed(r.hash, wrn, r.info)? {
                duplicate(r.at, wrn);
            }
        }
        self.rows.clear();
        self.refs.clear();
        Ok(())
    }
}
