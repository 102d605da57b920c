//! The indexed, immutable grants snapshot the decision reads. Built off the request path from a
//! validated `GrantsDocument`, then swapped in whole.

use std::io::Read;

use super::format::{
    AccessLevel, DeltaDocument, OrgKind, OrgStatus, OrganisationDoc, UserDoc, WorkDoc,
};
use super::integrators::{Agreements, KnownIntegrators};
use super::load::{Loaded, load, load_slice};
use super::shards::ShardedMap;
use super::timestamp::parse_rfc3339;
use super::user_grants::Grants;
use super::works::{TooLarge, WorkIndex};
use crate::codes::{SwaCode, Workstream};
use crate::problems::Problems;

#[derive(Debug, Clone)]
pub struct Organisation {
    pub swa_code: SwaCode,
    pub name: Box<str>,
    pub kind: OrgKind,
    pub status: OrgStatus,
    pub workstreams: Vec<Workstream>,
    /// Contractor organisations allowed to act for this one.
    pub contractors: Vec<SwaCode>,
    /// Third-party integrators it has an agreement with, and for which APIs.
    pub integrators: Agreements,
}

#[derive(Debug, Clone, Default)]
pub struct User {
    pub organisation: Option<SwaCode>,
    /// Seconds since the epoch; tokens with an earlier `iat` are revoked.
    pub tokens_valid_after: Option<u64>,
    /// (organisation the grant is for, workstream) → level.
    pub grants: Grants,
}

/// What the decision needs to know about a work record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkInfo {
    pub promoter: SwaCode,
    pub highway_authority: SwaCode,
    pub workstream: Workstream,
}

/// Cloning is cheap: the indexes are shards behind `Arc`s, and a delta applied to the clone
/// copies only the shards it changes.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub version: u64,
    /// Seconds since the epoch, from the document.
    pub generated_at: u64,
    pub(crate) organisations: ShardedMap<SwaCode, Organisation>,
    pub(crate) users: ShardedMap<Box<str>, User>,
    pub(crate) works: WorkIndex,
    /// Integrators with their own metric label (recomputed when organisations change).
    pub(crate) known_integrators: KnownIntegrators,
    /// The contract-platform model's section, when the document has one. Deltas do not
    /// change it, so it is shared between a snapshot and the ones deltas make of it.
    pub contracts: Option<std::sync::Arc<crate::contracts::snapshot::ContractsSnapshot>>,
}

/// Why a grants document did not become a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a grants document (format v1): {0}")]
    Json(#[source] super::JsonError),
    #[error("invalid grants document: {} problems", .0.len())]
    Invalid(#[source] Problems),
    #[error("bytes after the grants document: {0}")]
    Trailing(#[source] super::JsonError),
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    #[error(transparent)]
    Index(#[from] super::indexer::IndexFailed),
    #[error("a document has either `since` (a delta) or top-level lists (a full document): {0}")]
    Mixed(&'static str),
    #[error("delta since version {since} does not apply to the version in force ({in_force:?})")]
    DeltaBase { since: u64, in_force: Option<u64> },
}

impl Snapshot {
    /// Reads, validates and builds a snapshot from a format v1 document. `in_force` is the
    /// version currently in use, which the document's must exceed.
    pub fn from_json(bytes: &[u8], in_force: Option<u64>) -> Result<Snapshot, SnapshotError> {
        full(load_slice(bytes, in_force)?)
    }

    /// `from_json` from a stream (a file, a decoder), never holding the whole document.
    pub fn from_reader(
        reader: impl Read,
        in_force: Option<u64>,
    ) -> Result<Snapshot, SnapshotError> {
        full(load(reader, in_force, None)?)
    }

    /// `from_reader` indexing on the calling thread only (the load otherwise indexes on a
    /// second one), to check the two against each other.
    #[cfg(any(test, feature = "testing"))]
    pub fn from_reader_in_one_thread(reader: impl Read) -> Result<Snapshot, SnapshotError> {
        full(super::load::load_in_one_thread(reader)?)
    }

    /// `from_reader` with the users and works arrays cut into chunks of about `chunk_bytes`
    /// (1 MiB in a real load), to check many chunks against one thread.
    #[cfg(any(test, feature = "testing"))]
    pub fn from_reader_in_chunks(
        reader: impl Read,
        chunk_bytes: usize,
    ) -> Result<Snapshot, SnapshotError> {
        full(super::load::load_in_chunks(reader, chunk_bytes)?)
    }

    /// `from_reader` for a document of about `size_hint` bytes (a file's length): the
    /// indexes are sized once instead of grown. A wrong hint costs only speed and memory
    /// while loading, never correctness.
    pub fn from_reader_sized(
        reader: impl Read,
        in_force: Option<u64>,
        size_hint: u64,
    ) -> Result<Snapshot, SnapshotError> {
        full(load(reader, in_force, Some(size_hint))?)
    }

    /// The snapshot `delta` turns this one into, validated as strictly as a full document;
    /// only the shards the delta touches are copied.
    pub fn apply_delta(&self, delta: &DeltaDocument<'_>) -> Result<Snapshot, SnapshotError> {
        super::delta::apply(self, delta)
    }

    pub fn organisation(&self, swa: SwaCode) -> Option<&Organisation> {
        self.organisations.get(&swa)
    }

    pub fn user(&self, sub: &str) -> Option<&User> {
        self.users.get(sub)
    }

    pub fn work(&self, work_reference: &str) -> Option<WorkInfo> {
        self.works.get(work_reference)
    }

    /// Does `promoter` allow `contractor` to act for it?
    pub fn has_contract(&self, promoter: SwaCode, contractor: SwaCode) -> bool {
        self.organisation(promoter)
            .is_some_and(|o| o.contractors.contains(&contractor))
    }

    /// The user's access to `workstream` of `organisation`; anything not granted is no-access.
    pub fn access(&self, sub: &str, organisation: SwaCode, workstream: Workstream) -> AccessLevel {
        self.user(sub)
            .and_then(|u| u.grants.get(&(organisation, workstream)).copied())
            .unwrap_or(AccessLevel::NoAccess)
    }

    /// The metric label for an integrator: itself when this snapshot names it, else `other`.
    pub fn integrator_label<'a>(&self, integrator: &'a str) -> &'a str {
        self.known_integrators.label(integrator)
    }

    /// Recomputes the integrators named by the organisations (after a load or a delta).
    pub(super) fn index_integrators(&mut self) {
        self.known_integrators = KnownIntegrators::build(
            self.organisations
                .iter()
                .flat_map(|(_, o)| o.integrators.ids()),
        );
    }

    pub fn work_count(&self) -> usize {
        self.works.len()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Approximate heap bytes of the work index, for the memory budget.
    #[cfg(any(test, feature = "testing"))]
    pub fn work_index_bytes(&self) -> usize {
        self.works.heap_bytes()
    }
}

fn full(loaded: Loaded) -> Result<Snapshot, SnapshotError> {
    match loaded {
        Loaded::Full(snapshot) => Ok(snapshot),
        Loaded::Delta(_) => Err(SnapshotError::Mixed("a delta is not a full document")),
        Loaded::Unchanged(_) => Err(SnapshotError::Mixed("unreachable: no version to skip")),
    }
}

pub(super) fn organisation_from(o: &OrganisationDoc) -> Option<(SwaCode, Organisation)> {
    let swa = SwaCode::parse(&o.swa_code)?;
    let org = Organisation {
        swa_code: swa,
        name: o.name.as_str().into(),
        kind: o.kind,
        status: o.status,
        workstreams: o
            .workstreams
            .iter()
            .filter_map(|w| Workstream::parse(w))
            .collect(),
        contractors: o
            .contractors
            .iter()
            .filter_map(|c| SwaCode::parse(c))
            .collect(),
        integrators: Agreements::build(&o.integrators),
    };
    Some((swa, org))
}

pub(super) fn user_from(u: &UserDoc<'_>) -> User {
    // Parsed one user at a time, so the parse's allocations are reused, not accumulated.
    let map = u.grants().unwrap_or_default();
    let grants = map
        .0
        .iter()
        .filter_map(|g| Some((SwaCode::parse(&g.organisation)?, &g.workstreams)))
        .flat_map(|(org, ws)| {
            ws.iter().filter_map(move |(w, level)| {
                Some(((org, Workstream::parse(w)?), AccessLevel::parse(level)?))
            })
        })
        .collect::<Grants>();
    User {
        organisation: SwaCode::parse(&u.organisation),
        tokens_valid_after: u.tokens_valid_after.as_deref().and_then(parse_rfc3339),
        grants,
    }
}

pub(super) fn work_from(w: &WorkDoc<'_>) -> Option<WorkInfo> {
    Some(WorkInfo {
        promoter: SwaCode::parse(&w.promoter)?,
        highway_authority: SwaCode::parse(&w.highway_authority)?,
        workstream: Workstream::parse(&w.workstream)?,
    })
}

#[cfg(test)]
mod tests;
