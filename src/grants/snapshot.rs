//! The indexed, immutable grants snapshot the decision reads. Built off the request path from a
//! validated `GrantsDocument`, then swapped in whole.

use std::collections::HashMap;

use super::codes::{SwaCode, Workstream};
use super::format::{AccessLevel, GrantsDocument, OrgKind, OrgStatus};
use super::integrators::{Agreements, KnownIntegrators};
use super::timestamp::parse_rfc3339;
use super::validate::validate;
use super::works::{TooLarge, WorkIndex};
use crate::config::Problems;

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
    pub grants: HashMap<(SwaCode, Workstream), AccessLevel>,
}

/// What the decision needs to know about a work record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkInfo {
    pub promoter: SwaCode,
    pub highway_authority: SwaCode,
    pub workstream: Workstream,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    /// Seconds since the epoch, from the document.
    pub generated_at: u64,
    pub(crate) organisations: HashMap<SwaCode, Organisation>,
    pub(crate) users: HashMap<Box<str>, User>,
    pub(crate) works: WorkIndex,
    /// Integrators with their own metric label.
    pub(crate) known_integrators: KnownIntegrators,
    /// The contract-platform model's section, when the document has one.
    pub contracts: Option<crate::contracts::snapshot::ContractsSnapshot>,
}

/// Why a grants document did not become a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a grants document (format v1): {0}")]
    Json(#[source] serde_path_to_error::Error<serde_json::Error>),
    #[error("invalid grants document: {} problems", .0.len())]
    Invalid(#[source] Problems),
    #[error("bytes after the grants document: {0}")]
    Trailing(#[source] serde_json::Error),
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

impl Snapshot {
    /// Parses, validates and builds a snapshot from a format v1 document. `in_force` is the
    /// version currently in use, which the document's must exceed.
    pub fn from_json(bytes: &[u8], in_force: Option<u64>) -> Result<Snapshot, SnapshotError> {
        let doc = parse(bytes)?;
        Snapshot::from_document(&doc, in_force)
    }

    /// Validates the whole document, then builds its indexes.
    pub fn from_document(
        doc: &GrantsDocument<'_>,
        in_force: Option<u64>,
    ) -> Result<Snapshot, SnapshotError> {
        let problems = validate(doc, in_force);
        if !problems.is_empty() {
            return Err(SnapshotError::Invalid(problems));
        }
        Ok(build(doc)?)
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

/// Parses a document, naming the path of the first syntax or type error.
pub fn parse(bytes: &[u8]) -> Result<GrantsDocument<'_>, SnapshotError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let doc = serde_path_to_error::deserialize(&mut de).map_err(SnapshotError::Json)?;
    // Trailing bytes after the document are as corrupt as a broken one.
    de.end().map_err(SnapshotError::Trailing)?;
    Ok(doc)
}

/// Builds the indexes of a validated document. Anything validation would have rejected is
/// skipped rather than trusted, so this never panics on a document that bypassed it.
fn build(doc: &GrantsDocument<'_>) -> Result<Snapshot, TooLarge> {
    let organisations = doc
        .organisations
        .iter()
        .filter_map(|o| {
            let swa = SwaCode::parse(&o.swa_code)?;
            Some((
                swa,
                Organisation {
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
                },
            ))
        })
        .collect();
    let mut users = HashMap::with_capacity(doc.users.len());
    for u in &doc.users {
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
            .collect();
        let user = User {
            organisation: SwaCode::parse(&u.organisation),
            tokens_valid_after: u.tokens_valid_after.as_deref().and_then(parse_rfc3339),
            grants,
        };
        users.insert(Box::<str>::from(&*u.sub), user);
    }
    let ref_bytes = doc
        .works
        .iter()
        .map(|w| w.work_reference_number.len())
        .sum();
    let works = WorkIndex::build(
        ref_bytes,
        doc.works.iter().filter_map(|w| {
            let info = WorkInfo {
                promoter: SwaCode::parse(&w.promoter)?,
                highway_authority: SwaCode::parse(&w.highway_authority)?,
                workstream: Workstream::parse(&w.workstream)?,
            };
            Some((&*w.work_reference_number, info))
        }),
    )?;
    let known_integrators = KnownIntegrators::build(
        doc.organisations
            .iter()
            .flat_map(|o| o.integrators.iter().map(|i| i.id.as_str())),
    );
    Ok(Snapshot {
        known_integrators,
        contracts: doc
            .contracts
            .as_ref()
            .map(crate::contracts::snapshot::ContractsSnapshot::build),
        version: doc.version,
        generated_at: parse_rfc3339(&doc.generated_at).unwrap_or_default(),
        organisations,
        users,
        works,
    })
}

#[cfg(test)]
mod tests;
