//! Works created through the sidecar since the last snapshot. A successful `POST /works` puts
//! the new work here so its creator can act on it at once; entries leave once a snapshot
//! contains them. Lock-free beyond DashMap's shards, so the request path never waits on it.

use dashmap::DashMap;

use super::snapshot::{Snapshot, WorkInfo};

#[derive(Debug, Default)]
pub struct CreatedWorks {
    works: DashMap<Box<str>, WorkInfo>,
}

impl CreatedWorks {
    pub fn insert(&self, work_reference: &str, info: WorkInfo) {
        self.works.insert(work_reference.into(), info);
    }

    pub fn get(&self, work_reference: &str) -> Option<WorkInfo> {
        self.works.get(work_reference).map(|e| *e.value())
    }

    /// Drops every entry the new snapshot already knows.
    pub fn prune(&self, snapshot: &Snapshot) {
        self.works.retain(|wrn, _| snapshot.work(wrn).is_none());
    }

    pub fn len(&self) -> usize {
        self.works.len()
    }

    pub fn is_empty(&self) -> bool {
        self.works.is_empty()
    }
}

/// The works the decision can see: the snapshot first, then the overlay.
#[derive(Clone, Copy)]
pub struct Works<'a> {
    pub snapshot: &'a Snapshot,
    pub created: &'a CreatedWorks,
}

impl Works<'_> {
    pub fn get(&self, work_reference: &str) -> Option<WorkInfo> {
        self.snapshot
            .work(work_reference)
            .or_else(|| self.created.get(work_reference))
    }
}
