//! Which rows of a filtered (reporting or export) response the caller may see.
//!
//! Highway authorities see every row. Everyone held to grants (planners, contractors acting for
//! a promoter, and DataExport or Admin users, who have no wider right in the model) sees the
//! rows of the acting organisation's workstreams they can read (read-only or full-write). A
//! contractor without `swaCode` acts for nobody and sees no rows.

use super::Capacity;
use super::caller::Caller;
use crate::codes::{SwaCode, Workstream};
use crate::grants::format::AccessLevel;
use crate::grants::snapshot::{Snapshot, User};

/// Which rows a caller may see, computed by the decision from identity and grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Highway authorities (and routes without workstream filtering) see every row.
    All,
    /// Only rows of these workstreams of the acting organisation.
    Workstreams {
        organisation: SwaCode,
        readable: Vec<Workstream>,
    },
    /// Contracts model: only rows of these contracts (the ones the caller may read).
    Contracts(std::collections::HashSet<std::sync::Arc<str>>),
}

/// The visibility of `subject` acting for `acting` in `capacity` (as a `Decision` reports them).
pub fn visibility(
    snapshot: &Snapshot,
    subject: &str,
    capacity: Capacity,
    acting: SwaCode,
) -> Visibility {
    compute(snapshot.user(subject), capacity, acting)
}

pub(super) fn of_caller(caller: &Caller<'_>) -> Visibility {
    compute(caller.user, caller.capacity, caller.acting)
}

fn compute(user: Option<&User>, capacity: Capacity, acting: SwaCode) -> Visibility {
    let mut readable = Vec::new();
    match capacity {
        Capacity::Authority => return Visibility::All,
        Capacity::Nobody => {}
        Capacity::Grants { .. } => {
            if let Some(user) = user {
                readable.extend(user.grants.iter().filter_map(|(&(org, ws), &level)| {
                    (org == acting && level >= AccessLevel::ReadOnly).then_some(ws)
                }));
                readable.sort_unstable();
            }
        }
    }
    Visibility::Workstreams {
        organisation: acting,
        readable,
    }
}
