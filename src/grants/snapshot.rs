//! The indexed, immutable grants snapshot the decision reads. Built off the request path from a
//! validated `GrantsDocument`, then swapped in whole.

use std::collections::HashMap;

use super::codes::{SwaCode, Workstream};
use super::format::{AccessLevel, OrgKind, OrgStatus};

#[derive(Debug, Clone)]
pub struct Organisation {
    pub swa_code: SwaCode,
    pub name: Box<str>,
    pub kind: OrgKind,
    pub status: OrgStatus,
    pub workstreams: Vec<Workstream>,
    /// Contractor organisations allowed to act for this one.
    pub contractors: Vec<SwaCode>,
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
    pub(crate) works: HashMap<Box<str>, WorkInfo>,
}

impl Snapshot {
    pub fn organisation(&self, swa: SwaCode) -> Option<&Organisation> {
        self.organisations.get(&swa)
    }

    pub fn user(&self, sub: &str) -> Option<&User> {
        self.users.get(sub)
    }

    pub fn work(&self, work_reference: &str) -> Option<WorkInfo> {
        self.works.get(work_reference).copied()
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

    pub fn work_count(&self) -> usize {
        self.works.len()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }
}
