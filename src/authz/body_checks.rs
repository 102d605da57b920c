//! The rule's checks on body fields other than its resource (`BodyRule`): organisations that
//! must be the acting one, and workstreams the request moves work into. Without them a body
//! naming another organisation or workstream would be forwarded under a decision that never
//! looked at it.

use super::Capacity;
use super::access::{level, need_full_write};
use super::caller::Caller;
use super::rule::Rule;
use crate::body::field::string_at;
use crate::codes::{SwaCode, Workstream};
use crate::grants::format::OrgKind;
use crate::grants::overlay::Works;
use crate::reason::Reason;

pub(super) fn check(
    rule: &Rule,
    caller: &Caller<'_>,
    works: Option<Works<'_>>,
    body: Option<&serde_json::Value>,
) -> Result<(), Reason> {
    if rule.body.is_empty() {
        return Ok(());
    }
    // The pipeline always reads the body of a rule with body checks; a caller without one
    // (explain without --body) has nothing to check against.
    let body = body.ok_or(Reason::BadBody)?;
    let text = |pointer: &str| string_at(body, pointer).map_err(|_| Reason::BadBody);

    for pointer in &rule.body.organisation {
        if let Some(named) = text(pointer)? {
            same_organisation(named, caller.acting)?;
        }
    }
    if acts_as_authority(caller, works) {
        for pointer in &rule.body.authority {
            if let Some(named) = text(pointer)? {
                same_organisation(named, caller.acting)?;
            }
        }
    } else {
        // Still type-checked: a field of the wrong type is refused whoever sends it.
        for pointer in &rule.body.authority {
            text(pointer)?;
        }
    }
    for pointer in &rule.body.workstreams {
        if let Some(named) = text(pointer)? {
            let workstream = Workstream::parse(named).ok_or(Reason::BadBody)?;
            if workstream.is_default() {
                return Err(Reason::DefaultWorkstream);
            }
            match caller.capacity {
                Capacity::Grants { .. } => {
                    need_full_write(level(caller, caller.acting, workstream))?;
                }
                // Authorities hold no workstream grants; a contractor without swaCode acts for
                // nobody.
                Capacity::Authority | Capacity::Nobody => return Err(Reason::WorkstreamNoAccess),
            }
        }
    }
    Ok(())
}

fn same_organisation(named: &str, acting: SwaCode) -> Result<(), Reason> {
    // Compared as parsed codes, so "7001" and a differently spelt "7001" cannot disagree; a
    // value that is not a code at all is the request's fault.
    let named = SwaCode::parse(named).ok_or(Reason::BadBody)?;
    if named == acting {
        Ok(())
    } else {
        Err(Reason::OtherOrganisation)
    }
}

/// A highway authority by role, or an organisation of kind highway_authority acting as a
/// promoter of its own works (also when a contractor acts for it).
fn acts_as_authority(caller: &Caller<'_>, works: Option<Works<'_>>) -> bool {
    caller.capacity == Capacity::Authority
        || works
            .and_then(|w| w.snapshot.organisation(caller.acting))
            .is_some_and(|o| o.kind == OrgKind::HighwayAuthority)
}
