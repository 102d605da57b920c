//! Whole-document validation of a grants snapshot before anything is built from it. Every
//! problem is reported with its location (`users[3].workstreams.7001.009`), not just the first,
//! so a publisher can fix a bad document in one go.

use std::collections::{HashMap, HashSet};

use super::codes::{SwaCode, Workstream};
use super::format::{AccessLevel, GrantsDocument, OrgKind};
use super::timestamp::parse_rfc3339;
use crate::config::Problems;

/// Past this many problems the rest are only counted: a wholly wrong document of a million
/// works must not produce a million log lines.
const MAX_REPORTED: usize = 100;

/// What validation needs to know about each organisation while checking references.
struct OrgFacts<'d> {
    kind: OrgKind,
    workstreams: &'d [String],
}

struct Report {
    problems: Problems,
    unreported: usize,
}

/// Checks `doc` as a whole; `in_force` is the version of the snapshot currently in use, which
/// the document's must exceed.
pub fn validate(doc: &GrantsDocument<'_>, in_force: Option<u64>) -> Problems {
    let mut r = Report {
        problems: Problems::default(),
        unreported: 0,
    };
    if let Some(current) = in_force
        && doc.version <= current
    {
        r.push(
            "version",
            format!(
                "{} is not above the version in force ({current})",
                doc.version
            ),
        );
    }
    if parse_rfc3339(&doc.generated_at).is_none() {
        r.push("generated_at", not_rfc3339(&doc.generated_at));
    }
    let orgs = organisations(doc, &mut r);
    for (at, message) in super::integrators::problems(doc) {
        r.push(at, message);
    }
    for (at, message) in doc
        .contracts
        .iter()
        .flat_map(crate::contracts::snapshot::problems)
    {
        r.push(format!("contracts.{at}"), message);
    }
    users(doc, &orgs, &mut r);
    works(doc, &orgs, &mut r);
    if r.unreported > 0 {
        let n = r.unreported;
        r.problems
            .push("(document)", format!("{n} more problems not listed"));
    }
    r.problems
}

fn organisations<'d>(
    doc: &'d GrantsDocument<'_>,
    r: &mut Report,
) -> HashMap<SwaCode, OrgFacts<'d>> {
    let mut orgs = HashMap::with_capacity(doc.organisations.len());
    for (i, org) in doc.organisations.iter().enumerate() {
        let at = format!("organisations[{i}]");
        let Some(swa) = SwaCode::parse(&org.swa_code) else {
            r.push(format!("{at}.swa_code"), not_swa_code(&org.swa_code));
            continue;
        };
        let facts = OrgFacts {
            kind: org.kind,
            workstreams: &org.workstreams,
        };
        if orgs.insert(swa, facts).is_some() {
            r.push(
                format!("{at}.swa_code"),
                format!("duplicate organisation {swa}"),
            );
        }
        if org.kind == OrgKind::Contractor && !org.workstreams.is_empty() {
            r.push(
                format!("{at}.workstreams"),
                "a contractor organisation has no workstreams of its own",
            );
        }
        let mut seen = HashSet::new();
        for (j, ws) in org.workstreams.iter().enumerate() {
            if Workstream::parse(ws).is_none() {
                r.push(format!("{at}.workstreams[{j}]"), not_workstream(ws));
            } else if !seen.insert(ws.as_str()) {
                r.push(
                    format!("{at}.workstreams[{j}]"),
                    format!("duplicate workstream {ws}"),
                );
            }
        }
    }
    // Contractor lists refer to other organisations, so they are checked once all are known.
    for (i, org) in doc.organisations.iter().enumerate() {
        let mut seen = HashSet::new();
        for (j, c) in org.contractors.iter().enumerate() {
            let at = format!("organisations[{i}].contractors[{j}]");
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
    orgs
}

fn users(doc: &GrantsDocument<'_>, orgs: &HashMap<SwaCode, OrgFacts<'_>>, r: &mut Report) {
    let mut subs = HashSet::with_capacity(doc.users.len());
    for (i, user) in doc.users.iter().enumerate() {
        let at = format!("users[{i}]");
        if user.sub.is_empty() {
            r.push(format!("{at}.sub"), "empty subject");
        } else if !subs.insert(&*user.sub) {
            r.push(
                format!("{at}.sub"),
                format!("duplicate user {:?}", user.sub),
            );
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
                continue;
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
                        format!(
                            "{level:?} is not an access level (full-write, read-only, no-access)"
                        ),
                    );
                }
                if Workstream::parse(ws).is_none() {
                    r.push(&*ws_at, not_workstream(ws));
                } else if let Some(f) = facts
                    && !f.workstreams.iter().any(|w| w == ws)
                {
                    r.push(
                        &*ws_at,
                        format!(
                            "organisation {} has no workstream {ws}",
                            grants.organisation
                        ),
                    );
                }
            }
        }
    }
}

fn works(doc: &GrantsDocument<'_>, orgs: &HashMap<SwaCode, OrgFacts<'_>>, r: &mut Report) {
    let mut refs = HashSet::with_capacity(doc.works.len());
    for (i, work) in doc.works.iter().enumerate() {
        let wrn = &*work.work_reference_number;
        if wrn.is_empty() {
            r.push_with(|| {
                (
                    format!("works[{i}].work_reference_number"),
                    "empty reference".into(),
                )
            });
        } else if !refs.insert(wrn) {
            r.push_with(|| {
                (
                    format!("works[{i}].work_reference_number"),
                    format!("duplicate work {wrn:?}"),
                )
            });
        }
        let promoter = lookup(orgs, &work.promoter);
        match promoter {
            None => r.push_with(|| (format!("works[{i}].promoter"), org_problem(&work.promoter))),
            Some(f) if f.kind == OrgKind::Contractor => r.push_with(|| {
                (
                    format!("works[{i}].promoter"),
                    format!(
                        "organisation {} is a contractor, not a promoter",
                        work.promoter
                    ),
                )
            }),
            Some(_) => {}
        }
        match lookup(orgs, &work.highway_authority) {
            None => r.push_with(|| {
                (
                    format!("works[{i}].highway_authority"),
                    org_problem(&work.highway_authority),
                )
            }),
            Some(f) if f.kind != OrgKind::HighwayAuthority => r.push_with(|| {
                (
                    format!("works[{i}].highway_authority"),
                    format!(
                        "organisation {} is not a highway authority",
                        work.highway_authority
                    ),
                )
            }),
            Some(_) => {}
        }
        let ws = &*work.workstream;
        if Workstream::parse(ws).is_none() {
            r.push_with(|| (format!("works[{i}].workstream"), not_workstream(ws)));
        } else if let Some(f) = promoter
            && !f.workstreams.iter().any(|w| w == ws)
        {
            r.push_with(|| {
                (
                    format!("works[{i}].workstream"),
                    format!("organisation {} has no workstream {ws}", work.promoter),
                )
            });
        }
    }
}

/// The organisation named by `code`, reporting a malformed or unknown one at `at`.
fn known_org<'m, 'd>(
    code: &str,
    orgs: &'m HashMap<SwaCode, OrgFacts<'d>>,
    at: String,
    r: &mut Report,
) -> Option<&'m OrgFacts<'d>> {
    let found = lookup(orgs, code);
    if found.is_none() {
        r.push(at, org_problem(code));
    }
    found
}

fn lookup<'m, 'd>(
    orgs: &'m HashMap<SwaCode, OrgFacts<'d>>,
    code: &str,
) -> Option<&'m OrgFacts<'d>> {
    SwaCode::parse(code).and_then(|swa| orgs.get(&swa))
}

fn org_problem(code: &str) -> String {
    match SwaCode::parse(code) {
        None => not_swa_code(code),
        Some(_) => unknown_org(code),
    }
}

fn unknown_org(code: &str) -> String {
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
    fn push(&mut self, at: impl Into<String>, message: impl Into<String>) {
        if self.problems.len() < MAX_REPORTED {
            self.problems.push(at, message);
        } else {
            self.unreported += 1;
        }
    }

    /// `push` for the per-work loop, where formatting is deferred so a clean million-work
    /// document costs no allocation per check.
    fn push_with(&mut self, problem: impl FnOnce() -> (String, String)) {
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
