//! The rule's access check on the resource, for a caller that passed `caller::establish`.

use super::caller::Caller;
use super::rule::{Access, Rule, ValueSource};
use super::{Capacity, Decision, RequestFacts, visibility};
use crate::codes::{SwaCode, Workstream};
use crate::grants::format::AccessLevel;
use crate::grants::overlay::Works;
use crate::grants::snapshot::WorkInfo;
use crate::reason::Reason;

pub(super) fn check(
    decision: &mut Decision,
    rule: &Rule,
    caller: &Caller<'_>,
    works: Option<Works<'_>>,
    facts: &RequestFacts<'_>,
) -> Result<Reason, Reason> {
    match &rule.access {
        Access::RoleOnly => Ok(Reason::RoleGranted),
        Access::MapView => Ok(Reason::MapView),
        Access::Filtered => {
            decision.visibility = Some(visibility::of_caller(caller));
            Ok(Reason::FilteredRows)
        }
        Access::ReadWork(source) => {
            let work = find_work(decision, works, resource(source, facts)?)?;
            let allow = read(decision, caller, work)?;
            member(rule, caller, work)?;
            Ok(allow)
        }
        Access::WriteWork(source) => {
            let work = find_work(decision, works, resource(source, facts)?)?;
            let allow = write(decision, caller, work)?;
            member(rule, caller, work)?;
            Ok(allow)
        }
        Access::CreateInWorkstream(source) => {
            let named = resource(source, facts)?;
            let workstream = Workstream::parse(named).ok_or_else(|| bad_value(source))?;
            if workstream.is_default() {
                return Err(Reason::DefaultWorkstream);
            }
            if caller.capacity == Capacity::Nobody {
                return Err(Reason::WorkstreamNoAccess);
            }
            let level = level(caller, caller.acting, workstream);
            decision.workstream_access = Some((workstream, level));
            need_full_write(level)
        }
        // Validation pairs these with `allow: authenticated` (decided by `contract`); a rule
        // that reached here anyway is refused.
        Access::ContractPermission { .. }
        | Access::SystemPermission { .. }
        | Access::ReadableContracts { .. } => Err(Reason::RoleNotPermitted),
        Access::OwnOrganisation(source) => {
            let named = resource(source, facts)?;
            if SwaCode::parse(named) == Some(caller.own) {
                Ok(Reason::OwnOrganisation)
            } else {
                Err(Reason::OtherOrganisation)
            }
        }
    }
}

fn read(decision: &mut Decision, caller: &Caller<'_>, work: WorkInfo) -> Result<Reason, Reason> {
    match caller.capacity {
        Capacity::Authority => Ok(Reason::AuthorityRead),
        Capacity::Nobody => Err(Reason::WorkstreamNoAccess),
        Capacity::Grants { .. } => {
            if work_level(decision, caller, work) >= AccessLevel::ReadOnly {
                Ok(Reason::WorkstreamRead)
            } else {
                Err(Reason::WorkstreamNoAccess)
            }
        }
    }
}

fn write(decision: &mut Decision, caller: &Caller<'_>, work: WorkInfo) -> Result<Reason, Reason> {
    match caller.capacity {
        Capacity::Authority if work.highway_authority == caller.acting => {
            Ok(Reason::AuthorityOwnWork)
        }
        Capacity::Authority => Err(Reason::AuthorityNotOwnWork),
        Capacity::Nobody => Err(Reason::WorkstreamNoAccess),
        Capacity::Grants { .. } => need_full_write(work_level(decision, caller, work)),
    }
}

pub(super) fn need_full_write(level: AccessLevel) -> Result<Reason, Reason> {
    match level {
        AccessLevel::FullWrite => Ok(Reason::WorkstreamWrite),
        AccessLevel::ReadOnly => Err(Reason::WorkstreamReadOnly),
        AccessLevel::NoAccess => Err(Reason::WorkstreamNoAccess),
    }
}

/// The caller's level on the work's workstream. Grants are for the acting organisation's own
/// workstreams, so a work promoted by anyone else is no-access whatever the prefix.
fn work_level(decision: &mut Decision, caller: &Caller<'_>, work: WorkInfo) -> AccessLevel {
    let level = if work.promoter == caller.acting {
        level(caller, caller.acting, work.workstream)
    } else {
        AccessLevel::NoAccess
    };
    decision.workstream_access = Some((work.workstream, level));
    level
}

pub(super) fn level(
    caller: &Caller<'_>,
    organisation: SwaCode,
    workstream: Workstream,
) -> AccessLevel {
    caller
        .user
        .and_then(|u| u.grants.get(&(organisation, workstream)).copied())
        .unwrap_or(AccessLevel::NoAccess)
}

fn member(rule: &Rule, caller: &Caller<'_>, work: WorkInfo) -> Result<(), Reason> {
    if rule.organisation_member
        && caller.acting != work.promoter
        && caller.acting != work.highway_authority
    {
        return Err(Reason::NotOrganisationMember);
    }
    Ok(())
}

fn find_work(
    decision: &mut Decision,
    works: Option<Works<'_>>,
    reference: &str,
) -> Result<WorkInfo, Reason> {
    let works = works.ok_or(Reason::SnapshotUnavailable)?;
    let work = works.get(reference).ok_or(Reason::WorkUnknown)?;
    decision.work = Some(work);
    Ok(work)
}

fn resource<'a>(source: &ValueSource, facts: &RequestFacts<'a>) -> Result<&'a str, Reason> {
    facts.resource.ok_or_else(|| bad_value(source))
}

/// A resource value that is missing or malformed is the request's fault, reported where it
/// was supposed to be.
fn bad_value(source: &ValueSource) -> Reason {
    match source {
        ValueSource::Path(_) => Reason::BadPath,
        ValueSource::Query(_) => Reason::BadQuery,
        ValueSource::Body(_) => Reason::BadBody,
    }
}
