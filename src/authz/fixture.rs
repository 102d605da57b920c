//! The seed 000 scenario as a grants snapshot, shared by the decision tests and the decision
//! benchmark (which cannot reach the snapshot's crate-private fields). Not part of the API.
//!
//! Organisations: promoter 7001 (workstreams 000–004, contractors C901 and C903), promoter 7002
//! (suspended, contractor C901), promoter 7003 (contractor C901), highway authorities 4020 and
//! 4021, contractors C901 and C902 (no contract anywhere) and C903 (suspended).
//!
//! Users of 7001: `user-a` (full-write 001 and 002, no-access 003 and 004: map view only),
//! `user-b` (read-only 001–003, no-access 004), `revoked` (tokens valid after 1_000_000),
//! `moved` (the snapshot places it in 7003). Contractors: `dig-1` of C901 (7001: full-write 001,
//! read-only 002; 7003: read-only 001; 7002: full-write 001), `dig-2` of C901 (no grants),
//! `trench-1` of C902 (7001: full-write 001, but no contract), `c903-1` of C903.
//! Authorities: `ha-leeds` of 4020, `ha-york` of 4021. Users absent from the snapshot (admins,
//! DataExport) have no grants.
//!
//! Works (reference → promoter, authority, workstream): `NW001` 7001/4020/001, `NW002`
//! 7001/4020/002, `NW003` 7001/4021/003, `NW004` 7001/4020/004, `NW000` 7001/4020/000,
//! `SG001` 7002/4020/001, `YW001` 7003/4021/001.

use crate::codes::{SwaCode, Workstream};
use crate::grants::format::{AccessLevel, OrgKind, OrgStatus};
use crate::grants::snapshot::{Organisation, Snapshot, User, WorkInfo};

/// SWA code, kind, status, workstreams, contractors.
type OrgRow = (
    &'static str,
    OrgKind,
    OrgStatus,
    &'static [&'static str],
    &'static [&'static str],
);

/// Subject, organisation, `tokens_valid_after`, grants (organisation, workstream, level).
type UserRow = (
    &'static str,
    &'static str,
    Option<u64>,
    &'static [(&'static str, &'static str, AccessLevel)],
);

/// `tokens_valid_after` of the `revoked` user.
pub const REVOKED_AFTER: u64 = 1_000_000;

#[rustfmt::skip]
pub fn seed_000() -> Snapshot {
    let mut snapshot = Snapshot {
        version: 1,
        generated_at: 1_700_000_000,
        ..Snapshot::default()
    };
    use OrgKind::{Contractor, HighwayAuthority, Promoter};
    use OrgStatus::{Active, Suspended};
    let orgs: [OrgRow; 8] = [
        ("7001", Promoter, Active, &["000", "001", "002", "003", "004"], &["C901", "C903"]),
        ("7002", Promoter, Suspended, &["000", "001"], &["C901"]),
        ("7003", Promoter, Active, &["000", "001"], &["C901"]),
        ("4020", HighwayAuthority, Active, &[], &[]),
        ("4021", HighwayAuthority, Active, &[], &[]),
        ("C901", Contractor, Active, &[], &[]),
        ("C902", Contractor, Active, &[], &[]),
        ("C903", Contractor, Suspended, &[], &[]),
    ];
    for (code, kind, status, workstreams, contractors) in orgs {
        snapshot.organisations.insert(swa(code), Organisation {
            swa_code: swa(code),
            name: code.into(),
            kind,
            status,
            workstreams: workstreams.iter().map(|w| ws(w)).collect(),
            contractors: contractors.iter().map(|c| swa(c)).collect(),
            integrators: Default::default(),
        });
    }

    use AccessLevel::{FullWrite, NoAccess, ReadOnly};
    let users: [UserRow; 11] = [
        ("user-a", "7001", None, &[
            ("7001", "001", FullWrite), ("7001", "002", FullWrite),
            ("7001", "003", NoAccess), ("7001", "004", NoAccess),
        ]),
        ("user-b", "7001", None, &[
            ("7001", "001", ReadOnly), ("7001", "002", ReadOnly),
            ("7001", "003", ReadOnly), ("7001", "004", NoAccess),
        ]),
        ("revoked", "7001", Some(REVOKED_AFTER), &[("7001", "001", FullWrite)]),
        ("moved", "7003", None, &[("7001", "001", FullWrite)]),
        ("gas-1", "7002", None, &[("7002", "001", FullWrite)]),
        ("dig-1", "C901", None, &[
            ("7001", "001", FullWrite), ("7001", "002", ReadOnly),
            ("7003", "001", ReadOnly), ("7002", "001", FullWrite),
        ]),
        ("dig-2", "C901", None, &[]),
        ("trench-1", "C902", None, &[("7001", "001", FullWrite)]),
        ("c903-1", "C903", None, &[("7001", "001", FullWrite)]),
        ("ha-leeds", "4020", None, &[]),
        ("ha-york", "4021", None, &[]),
    ];
    for (sub, org, valid_after, grants) in users {
        snapshot.users.insert(sub.into(), User {
            organisation: Some(swa(org)),
            tokens_valid_after: valid_after,
            grants: grants.iter().map(|(o, w, level)| ((swa(o), ws(w)), *level)).collect(),
        });
    }

    snapshot.works = index(&base_works());
    snapshot
}

fn base_works() -> Vec<(String, WorkInfo)> {
    [
        ("NW001", "7001", "4020", "001"),
        ("NW002", "7001", "4020", "002"),
        ("NW003", "7001", "4021", "003"),
        ("NW004", "7001", "4020", "004"),
        ("NW000", "7001", "4020", "000"),
        ("SG001", "7002", "4020", "001"),
        ("YW001", "7003", "4021", "001"),
    ]
    .iter()
    .map(|(r, p, a, w)| (r.to_string(), work(p, a, w)))
    .collect()
}

fn index(works: &[(String, WorkInfo)]) -> crate::grants::works::WorkIndex {
    crate::grants::works::WorkIndex::build(
        works.iter().map(|(r, _)| r.len()).sum(),
        works.iter().map(|(r, w)| (r.as_str(), *w)),
    )
    .unwrap_or_else(|_| unreachable!("fixture works fit the index"))
}

/// The seed 000 scenario padded with `works` more works and `users` more users (each with a
/// few grants), so lookups are measured at a realistic size.
pub fn seed_000_with_bulk(works: usize, users: usize) -> Snapshot {
    let mut snapshot = seed_000();
    let prefixes = ["001", "002", "003", "004"];
    let mut all = base_works();
    all.extend((0..works).map(|i| {
        (
            format!("NW{i:011}"),
            work("7001", "4020", prefixes[i % prefixes.len()]),
        )
    }));
    snapshot.works = index(&all);
    for i in 0..users {
        let grants = prefixes
            .iter()
            .take(1 + i % prefixes.len())
            .map(|p| ((swa("7001"), ws(p)), AccessLevel::ReadOnly))
            .collect();
        snapshot.users.insert(
            format!("bulk-user-{i}").into(),
            User {
                organisation: Some(swa("7001")),
                tokens_valid_after: None,
                grants,
            },
        );
    }
    snapshot
}

/// A work record, for tests that add works to the created-works overlay.
pub fn work(promoter: &str, highway_authority: &str, workstream: &str) -> WorkInfo {
    WorkInfo {
        promoter: swa(promoter),
        highway_authority: swa(highway_authority),
        workstream: ws(workstream),
    }
}

fn swa(code: &str) -> SwaCode {
    SwaCode::parse(code).unwrap_or_else(|| unreachable!("fixture SWA code {code:?}"))
}

fn ws(prefix: &str) -> Workstream {
    Workstream::parse(prefix).unwrap_or_else(|| unreachable!("fixture workstream {prefix:?}"))
}
