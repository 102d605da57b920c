//! Who the caller is for this decision: its own organisation checked against the snapshot
//! (revoked token, suspended organisation), its roles against the rule, and the organisation
//! it acts for (`swaCode`) with the capacity that follows.

use super::{Capacity, Decision, SwaCodeParam};
use crate::authn::identity::{Identity, Role, RoleSet};
use crate::codes::SwaCode;
use crate::grants::format::OrgStatus;
use crate::grants::overlay::Works;
use crate::grants::snapshot::{Snapshot, User};
use crate::reason::Reason;

/// A caller that passed the identity, role and `swaCode` checks.
pub(super) struct Caller<'s> {
    pub own: SwaCode,
    pub acting: SwaCode,
    pub capacity: Capacity,
    /// The user's entry in the snapshot (None: absent from it, or no snapshot).
    pub user: Option<&'s User>,
}

pub(super) fn establish<'s>(
    decision: &mut Decision,
    identity: &Identity,
    allowed: RoleSet,
    works: Option<Works<'s>>,
    swa_code: SwaCodeParam<'_>,
) -> Result<Caller<'s>, Reason> {
    // Authentication hands over a verified organisation claim; one that is not a SWA code
    // cannot be matched against any grant.
    let own = SwaCode::parse(&identity.organisation).ok_or(Reason::TokenClaims)?;
    decision.acting_organisation = Some(own);

    let snapshot = works.map(|w| w.snapshot);
    let user = snapshot.and_then(|s| s.user(&identity.subject));
    if let Some(user) = user {
        if let Some(valid_after) = user.tokens_valid_after {
            // A token without `iat` cannot prove it was issued after the cut-off.
            if identity.issued_at.is_none_or(|iat| iat < valid_after) {
                return Err(Reason::TokenRevoked);
            }
        }
        // The publisher moved the user to another organisation: tokens naming the old one
        // predate that change.
        if user.organisation.is_some_and(|org| org != own) {
            return Err(Reason::TokenRevoked);
        }
    }
    if snapshot.is_some_and(|s| suspended(s, own)) {
        return Err(Reason::OrganisationSuspended);
    }

    if !identity.roles.intersects(allowed) {
        return Err(Reason::RoleNotPermitted);
    }

    let named = match swa_code {
        SwaCodeParam::Absent => None,
        SwaCodeParam::Repeated => return Err(Reason::SwaCodeInvalid),
        SwaCodeParam::One(text) => Some(SwaCode::parse(text).ok_or(Reason::SwaCodeInvalid)?),
    };
    let (acting, capacity) = if identity.roles.contains(Role::Contractor) {
        match named {
            None => (own, Capacity::Nobody),
            Some(promoter) => {
                let snapshot = snapshot.ok_or(Reason::SnapshotUnavailable)?;
                if !snapshot.has_contract(promoter, own) {
                    return Err(Reason::SwaCodeNoContract);
                }
                if suspended(snapshot, promoter) {
                    decision.acting_organisation = Some(promoter);
                    return Err(Reason::OrganisationSuspended);
                }
                (promoter, Capacity::Grants { via_contract: true })
            }
        }
    } else {
        if named.is_some_and(|named| named != own) {
            return Err(Reason::SwaCodeNotOwnOrganisation);
        }
        let authority = Role::HighwayAuthority;
        if identity.roles.contains(authority) && allowed.contains(authority) {
            (own, Capacity::Authority)
        } else {
            (
                own,
                Capacity::Grants {
                    via_contract: false,
                },
            )
        }
    };
    decision.acting_organisation = Some(acting);
    decision.capacity = Some(capacity);
    Ok(Caller {
        own,
        acting,
        capacity,
        user,
    })
}

fn suspended(snapshot: &Snapshot, organisation: SwaCode) -> bool {
    snapshot
        .organisation(organisation)
        .is_some_and(|o| o.status == OrgStatus::Suspended)
}
