//! Applies a delta to the snapshot in force: the result shares every shard the delta does not
//! touch, and is validated as strictly as a full document. Each upserted entry gets the
//! checks of a full document's entry; a change that could break references held elsewhere
//! (an organisation deleted, or one that changes kind or loses a workstream) re-checks every
//! reference in the result. Any problem refuses the delta whole.

use std::collections::HashSet;

use super::format::{DeltaDocument, OrgKind};
use super::snapshot::{
    Organisation, Snapshot, SnapshotError, organisation_from, user_from, work_from,
};
use super::timestamp::parse_rfc3339;
use super::validate::{
    OrgFacts, Orgs, Report, check_contractors, check_generated_at, check_organisation, check_user,
    check_work, no_workstream, not_authority, not_promoter, unknown_org,
};
use super::works::TooLarge;
use crate::codes::SwaCode;

pub(super) fn apply(base: &Snapshot, delta: &DeltaDocument<'_>) -> Result<Snapshot, SnapshotError> {
    if delta.since != base.version {
        return Err(SnapshotError::DeltaBase {
            since: delta.since,
            in_force: Some(base.version),
        });
    }
    let mut r = Report::new();
    if delta.version <= delta.since {
        r.push(
            "version",
            format!("{} is not above `since` ({})", delta.version, delta.since),
        );
    }
    check_generated_at(&delta.generated_at, &mut r);
    let mut next = base.clone();
    next.version = delta.version;
    next.generated_at = parse_rfc3339(&delta.generated_at).unwrap_or_default();

    let references_changed = organisations(base, &mut next, delta, &mut r);
    let orgs: Orgs = next
        .organisations
        .iter()
        .map(|(swa, o)| {
            let facts = OrgFacts {
                kind: o.kind,
                workstreams: o.workstreams.clone(),
            };
            (*swa, facts)
        })
        .collect();
    for (j, org) in delta.upsert.organisations.iter().enumerate() {
        check_contractors(
            &format!("upsert.organisations[{j}]"),
            &org.contractors,
            &orgs,
            &mut r,
        );
    }
    users(base, &mut next, delta, &orgs, &mut r);
    works(base, &mut next, delta, &orgs, &mut r)?;
    if references_changed {
        every_reference(&next, delta, &orgs, &mut r);
    }
    let problems = r.finish();
    if !problems.is_empty() {
        return Err(SnapshotError::Invalid(problems));
    }
    next.index_integrators();
    Ok(next)
}

/// Applies the organisation changes; says whether any could break a reference to it.
fn organisations(
    base: &Snapshot,
    next: &mut Snapshot,
    delta: &DeltaDocument<'_>,
    r: &mut Report,
) -> bool {
    let mut changed = false;
    let mut upserted = HashSet::new();
    for (j, org) in delta.upsert.organisations.iter().enumerate() {
        let at = format!("upsert.organisations[{j}]");
        if check_organisation(&at, org, r).is_none() {
            continue;
        }
        let Some((swa, built)) = organisation_from(org) else {
            continue;
        };
        if !upserted.insert(swa) {
            r.push(
                format!("{at}.swa_code"),
                format!("duplicate organisation {swa}"),
            );
        }
        changed |= base
            .organisation(swa)
            .is_some_and(|old| narrows(old, &built));
        next.organisations.insert(swa, built);
    }
    let mut deleted = HashSet::new();
    for (j, code) in delta.delete.organisations.iter().enumerate() {
        let at = format!("delete.organisations[{j}]");
        let Some(swa) = SwaCode::parse(code) else {
            r.push(
                at,
                format!("{code:?} is not a SWA code (4 letters or digits)"),
            );
            continue;
        };
        if upserted.contains(&swa) {
            r.push(
                at,
                format!("organisation {swa} is both upserted and deleted"),
            );
        } else if !deleted.insert(swa) {
            r.push(at, format!("duplicate organisation {swa}"));
        } else if next.organisations.remove(&swa).is_none() {
            r.push(at, unknown_org(code));
        }
        changed = true;
    }
    changed
}

/// Could references that held for `old` fail for `new`?
fn narrows(old: &Organisation, new: &Organisation) -> bool {
    old.kind != new.kind || old.workstreams.iter().any(|w| !new.workstreams.contains(w))
}

fn users(
    base: &Snapshot,
    next: &mut Snapshot,
    delta: &DeltaDocument<'_>,
    orgs: &Orgs,
    r: &mut Report,
) {
    let mut upserted = HashSet::new();
    for (j, user) in delta.upsert.users.iter().enumerate() {
        let at = format!("upsert.users[{j}]");
        if !user.sub.is_empty() && !upserted.insert(&*user.sub) {
            r.push(
                format!("{at}.sub"),
                format!("duplicate user {:?}", user.sub),
            );
        }
        check_user(&at, user, orgs, r);
        next.users.insert(Box::from(&*user.sub), user_from(user));
    }
    let mut deleted = HashSet::new();
    for (j, sub) in delta.delete.users.iter().enumerate() {
        let at = format!("delete.users[{j}]");
        if upserted.contains(sub.as_str()) {
            r.push(at, format!("user {sub:?} is both upserted and deleted"));
        } else if !deleted.insert(sub.as_str()) {
            r.push(at, format!("duplicate user {sub:?}"));
        } else if base.user(sub).is_none() {
            r.push(at, format!("unknown user {sub:?}"));
        } else {
            next.users.remove(sub.as_str());
        }
    }
}

fn works(
    base: &Snapshot,
    next: &mut Snapshot,
    delta: &DeltaDocument<'_>,
    orgs: &Orgs,
    r: &mut Report,
) -> Result<(), TooLarge> {
    let mut upserted = HashSet::new();
    for (j, work) in delta.upsert.works.iter().enumerate() {
        let wrn = &*work.work_reference_number;
        if !wrn.is_empty() && !upserted.insert(wrn) {
            r.push(
                format!("upsert.works[{j}].work_reference_number"),
                format!("duplicate work {wrn:?}"),
            );
        }
        check_work(|| format!("upsert.works[{j}]"), work, orgs, r);
        if let Some(info) = work_from(work) {
            next.works.upsert(wrn, info)?;
        }
    }
    let mut deleted = HashSet::new();
    for (j, wrn) in delta.delete.works.iter().enumerate() {
        let at = format!("delete.works[{j}]");
        if upserted.contains(wrn.as_str()) {
            r.push(at, format!("work {wrn:?} is both upserted and deleted"));
        } else if !deleted.insert(wrn.as_str()) {
            r.push(at, format!("duplicate work {wrn:?}"));
        } else if base.work(wrn).is_none() {
            r.push(at, format!("unknown work {wrn:?}"));
        } else {
            next.works.remove(wrn);
        }
    }
    Ok(())
}

/// Every reference the result holds, after an organisation went or narrowed. Entries the
/// delta upserted were checked already and are skipped.
fn every_reference(next: &Snapshot, delta: &DeltaDocument<'_>, orgs: &Orgs, r: &mut Report) {
    let upserted_orgs: HashSet<&str> = delta
        .upsert
        .organisations
        .iter()
        .map(|o| o.swa_code.as_str())
        .collect();
    for (swa, org) in next.organisations.iter() {
        if upserted_orgs.contains(swa.as_str()) {
            continue;
        }
        for c in &org.contractors {
            match orgs.get(c) {
                None => r.push(
                    format!("organisations[{swa}].contractors"),
                    unknown_org(c.as_str()),
                ),
                Some(f) if f.kind != OrgKind::Contractor => r.push(
                    format!("organisations[{swa}].contractors"),
                    format!("organisation {c} is not a contractor"),
                ),
                Some(_) => {}
            }
        }
    }
    let upserted_users: HashSet<&str> = delta.upsert.users.iter().map(|u| &*u.sub).collect();
    for (sub, user) in next.users.iter() {
        if upserted_users.contains(&**sub) {
            continue;
        }
        if let Some(org) = user.organisation
            && !orgs.contains_key(&org)
        {
            r.push(
                format!("users[{sub:?}].organisation"),
                unknown_org(org.as_str()),
            );
        }
        for (org, ws) in user.grants.keys() {
            let at = || format!("users[{sub:?}].workstreams.{org}.{ws}");
            match orgs.get(org) {
                None => r.push_with(|| (at(), unknown_org(org.as_str()))),
                Some(f) if !f.workstreams.contains(ws) => {
                    r.push_with(|| (at(), no_workstream(org.as_str(), ws.as_str())))
                }
                Some(_) => {}
            }
        }
    }
    let upserted_works: HashSet<&str> = delta
        .upsert
        .works
        .iter()
        .map(|w| &*w.work_reference_number)
        .collect();
    for (wrn, info) in next.works.iter() {
        if upserted_works.contains(wrn) {
            continue;
        }
        match orgs.get(&info.promoter) {
            None => r.push_with(|| {
                (
                    format!("works[{wrn:?}].promoter"),
                    unknown_org(info.promoter.as_str()),
                )
            }),
            Some(f) if f.kind == OrgKind::Contractor => r.push_with(|| {
                (
                    format!("works[{wrn:?}].promoter"),
                    not_promoter(info.promoter.as_str()),
                )
            }),
            Some(f) if !f.workstreams.contains(&info.workstream) => r.push_with(|| {
                (
                    format!("works[{wrn:?}].workstream"),
                    no_workstream(info.promoter.as_str(), info.workstream.as_str()),
                )
            }),
            Some(_) => {}
        }
        match orgs.get(&info.highway_authority) {
            None => r.push_with(|| {
                (
                    format!("works[{wrn:?}].highway_authority"),
                    unknown_org(info.highway_authority.as_str()),
                )
            }),
            Some(f) if f.kind != OrgKind::HighwayAuthority => r.push_with(|| {
                (
                    format!("works[{wrn:?}].highway_authority"),
                    not_authority(info.highway_authority.as_str()),
                )
            }),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
