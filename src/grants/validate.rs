//! The checks of a grants document and its entries, shared by the streaming loader (a full
//! document) and deltas. Every problem is reported with its location
//! (`users[3].workstreams.7001.009`), not just the first, so a publisher can fix a bad
//! document in one go.

use std::collections::{HashMap, HashSet};

use super::format::{AccessLevel, OrgKind, OrganisationDoc, UserDoc, WorkDoc};
use super::timestamp::parse_rfc3339;
use crate::codes::{SwaCode, Workstream};
use crate::problems::Problems;

/// Past this many problems the rest are only counted: a wholly wrong document of a million
/// works must not produce a million log lines.
const MAX_REPORTED: usize = 100;

/// What validation needs to know about each organisation while checking references.
pub(super) struct OrgFacts {
    pub(super) kind: OrgKind,
    pub(super) workstreams: Vec<Workstream>,
}

/// Looked up twice per work: a fast hasher, the keys come from the trusted snapshot.
pub(super) type Orgs = HashMap<SwaCode, OrgFacts, foldhash::fast::RandomState>;

pub(super) struct Report {
    problems: Problems,
    unreported: usize,
}

pub(super) fn check_version(version: u64, in_force: Option<u64>, r: &mut Report) {
    if let Some(current) = in_force
        && version <= current
    {
        r.push(
            "version",
            format!("{version} is not above the version in force ({current})"),
        );
    }
}

pub(super) fn check_generated_at(generated_at: &str, r: &mut Report) {
    if parse_rfc3339(generated_at).is_none() {
        r.push("generated_at", not_rfc3339(generated_at));
    }
}

pub(super) fn organisations(docs: &[OrganisationDoc], r: &mut Report) -> Orgs {
    let mut orgs = HashMap::with_capacity_and_hasher(docs.len(), Default::default());
    for (i, org) in docs.iter().enumerate() {
        let at = format!("organisations[{i}]");
        let Some((swa, facts)) = check_organisation(&at, org, r) else {
            continue;
        };
        if orgs.insert(swa, facts).is_some() {
            r.push(
                format!("{at}.swa_code"),
                format!("duplicate organisation {swa}"),
            );
        }
    }
    // Contractor lists refer to other organisations, so they are checked once all are known.
    for (i, org) in docs.iter().enumerate() {
        check_contractors(&format!("organisations[{i}]"), &org.contractors, &orgs, r);
    }
    orgs
}

/// Everything about one organisation but its contractors and whether its code repeats.
pub(super) fn check_organisation(
    at: &str,
    org: &OrganisationDoc,
    r: &mut Report,
) -> Option<(SwaCode, OrgFacts)> {
    let Some(swa) = SwaCode::parse(&org.swa_code) else {
        r.push(format!("{at}.swa_code"), not_swa_code(&org.swa_code));
        return None;
    };
    if org.kind == OrgKind::Contractor && !org.workstreams.is_empty() {
        r.push(
            format!("{at}.workstreams"),
            "a contractor organisation has no workstreams of its own",
        );
    }
    let mut workstreams = Vec::with_capacity(org.workstreams.len());
    for (j, ws) in org.workstreams.iter().enumerate() {
        match Workstream::parse(ws) {
            None => r.push(format!("{at}.workstreams[{j}]"), not_workstream(ws)),
            Some(w) if workstreams.contains(&w) => r.push(
                format!("{at}.workstreams[{j}]"),
                format!("duplicate workstream {ws}"),
            ),
            Some(w) => workstreams.push(w),
        }
    }
    for (at, message) in super::integrators::problems(at, &org.integrators) {
        r.push(at, message);
    }
    let facts = OrgFacts {
        kind: org.kind,
        workstreams,
    };
    Some((swa, facts))
}

/// An organisation's contractor list against the organisations known.
pub(super) fn check_contractors(at: &str, contractors: &[String], orgs: &Orgs, r: &mut Report) {
    let mut seen = HashSet::new();
    for (j, c) in contractors.iter().enumerate() {
        let at = format!("{at}.contractors[{j}]");
        match SwaCode::parse(c) {
            None => r.push(at, not_swa_code(c)),
            Some(swa) => match orgs.get(&swa) {
                None => r.push(at, unknown_org(c)),
                Some(f) if f.kind != OrgKind::Contractor => {
                    r.push(at, format!("organisation {c} is not a contractor"))
                }
                Some(_) if !seen.insert(swa) => r.push(at, format!("duplicate contractor {c}")),
                Some(_) => {}
            },
        }
    }
}

/// Everything about one user but whether its subject repeats.
pub(super) fn check_user(at: &str, user: &UserDoc<'_>, orgs: &Orgs, r: &mut Report) {
    if user.sub.is_empty() {
        r.push(format!("{at}.sub"), "empty subject");
    }
    known_org(&user.organisation, orgs, format!("{at}.organisation"), r);
    if let Some(t) = &user.tokens_valid_after
        && parse_rfc3339(t).is_none()
    {
        r.push(format!("{at}.tokens_valid_after"), not_rfc3339(t));
    }
    let map = match user.grants() {
        Ok(map) => map,
        Err(e) => {
            r.push(format!("{at}.workstreams"), e.to_string());
            return;
        }
    };
    let mut seen_orgs = HashSet::new();
    for grants in &map.0 {
        let org_at = format!("{at}.workstreams.{}", grants.organisation);
        if !seen_orgs.insert(&*grants.organisation) {
            r.push(&*org_at, format!("duplicate key {:?}", grants.organisation));
        }
        let facts = known_org(&grants.organisation, orgs, org_at.clone(), r);
        let mut seen_ws = HashSet::new();
        for (ws, level) in &grants.workstreams {
            let ws_at = format!("{org_at}.{ws}");
            if !seen_ws.insert(&**ws) {
                r.push(&*ws_at, format!("duplicate key {ws:?}"));
            }
            if AccessLevel::parse(level).is_none() {
                r.push(
                    &*ws_at,
                    format!("{level:?} is not an access level (full-write, read-only, no-access)"),
                );
            }
            match Workstream::parse(ws) {
                None => r.push(&*ws_at, not_workstream(ws)),
                Some(w) => {
                    if let Some(f) = facts
                        && !f.workstreams.contains(&w)
                    {
                        r.push(&*ws_at, no_workstream(&grants.organisation, ws));
                    }
                }
            }
        }
    }
}

/// Everything about one work but whether its reference repeats; `at` is formatted only for
/// a problem, so a clean million-work document costs no allocation per check.
pub(super) fn check_work(at: impl Fn() -> String, work: &WorkDoc<'_>, orgs: &Orgs, r: &mut Report) {
    if work.work_reference_number.is_empty() {
        r.push_with(|| {
            (
                format!("{}.work_reference_number", at()),
                "empty reference".into(),
            )
        });
    }
    let promoter = lookup(orgs, &work.promoter);
    match promoter {
        None => r.push_with(|| (format!("{}.promoter", at()), org_problem(&work.promoter))),
        Some(f) if f.kind == OrgKind::Contractor => {
            r.push_with(|| (format!("{}.promoter", at()), not_promoter(&work.promoter)))
        }
        Some(_) => {}
    }
    match lookup(orgs, &work.highway_authority) {
        None => r.push_with(|| {
            (
                format!("{}.highway_authority", at()),
                org_problem(&work.highway_authority),
            )
        }),
        Some(f) if f.kind != OrgKind::HighwayAuthority => r.push_with(|| {
            (
                format!("{}.highway_authority", at()),
                not_authority(&work.highway_authority),
            )
        }),
        Some(_) => {}
    }
    let ws = &*work.workstream;
    match Workstream::parse(ws) {
        None => r.push_with(|| (format!("{}.workstream", at()), not_workstream(ws))),
        Some(w) => {
            if let Some(f) = promoter
                && !f.workstreams.contains(&w)
            {
                r.push_with(|| {
                    (
                        format!("{}.workstream", at()),
                        no_workstream(&work.promoter, ws),
                    )
                });
            }
        }
    }
}

/// The organisation named by `code`, reporting a malformed or unknown one at `at`.
fn known_org<'m>(code: &str, orgs: &'m Orgs, at: String, r: &mut Report) -> Option<&'m OrgFacts> {
    let found = lookup(orgs, code);
    if found.is_none() {
        r.push(at, org_problem(code));
    }
    found
}

fn lookup<'m>(orgs: &'m Orgs, code: &str) -> Option<&'m OrgFacts> {
    SwaCode::parse(code).and_then(|swa| orgs.get(&swa))
}

fn org_problem(code: &str) -> String {
    match SwaCode::parse(code) {
        None => not_swa_code(code),
        Some(_) => unknown_org(code),
    }
}

pub(super) fn not_promoter(code: &str) -> String {
    format!("organisation {code} is a contractor, not a promoter")
}

pub(super) fn not_authority(code: &str) -> String {
    format!("organisation {code} is not a highway authority")
}

pub(super) fn no_workstream(code: &str, ws: &str) -> String {
    format!("organisation {code} has no workstream {ws}")
}

pub(super) fn unknown_org(code: &str) -> String {
    format!("unknown organisation {code:?}")
}

fn not_swa_code(code: &str) -> String {
    format!("{code:?} is not a SWA code (4 letters or digits)")
}

fn not_workstream(ws: &str) -> String {
    format!("{ws:?} is not a workstream prefix (3 letters or digits)")
}

fn not_rfc3339(t: &str) -> String {
    format!("{t:?} is not an RFC 3339 timestamp")
}

// === impl Report ===

impl Report {
    pub(super) fn new() -> Report {
        Report {
            problems: Problems::default(),
            unreported: 0,
        }
    }

    /// `first`'s problems, then these.
    pub(super) fn after(self, mut first: Report) -> Report {
        for p in self.problems.iter() {
            first.push(p.location.clone(), p.message.clone());
        }
        first.unreported += self.unreported;
        first
    }

    pub(super) fn is_empty(&self) -> bool {
        self.problems.is_empty() && self.unreported == 0
    }

    /// The problems, with a count of those past `MAX_REPORTED`.
    pub(super) fn finish(mut self) -> Problems {
        if self.unreported > 0 {
            let n = self.unreported;
            self.problems
                .push("(document)", format!("{n} more problems not listed"));
        }
        self.problems
    }

    pub(super) fn push(&mut self, at: impl Into<String>, message: impl Into<String>) {
        if self.problems.len() < MAX_REPORTED {
            self.problems.push(at, message);
        } else {
            self.unreported += 1;
        }
    }

    /// `push` for the per-work loop, where formatting is deferred so a clean million-work
    /// document costs no allocation per check.
    pub(super) fn push_with(&mut self, problem: impl FnOnce() -> (String, String)) {
        if self.problems.len() < MAX_REPORTED {
            let (at, message) = problem();
            self.problems.push(at, message);
        } else {
            self.unreported += 1;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
