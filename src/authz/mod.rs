//! The decision: a pure function of (rule, identity, grants, request facts, now) returning a
//! decision with a reason. No I/O and no clock inside, so it is tested exhaustively and
//! benchmarked alone.

pub mod rule;

use crate::authn::identity::Identity;
use crate::grants::codes::SwaCode;
use crate::reason::Reason;
use rule::{Access, Allow, Rule};

/// What the request says about the resource, extracted by the pipeline before deciding.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The value named by the rule's `ValueSource` (None when absent).
    pub resource: Option<&'a str>,
    pub swa_code: SwaCodeParam<'a>,
}

/// The `swaCode` query parameter as the client sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SwaCodeParam<'a> {
    #[default]
    Absent,
    One(&'a str),
    Repeated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub reason: Reason,
    /// The organisation the caller acts for (own, or the promoter named by `swaCode`).
    pub acting_organisation: Option<SwaCode>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.reason.is_allow()
    }

    fn new(reason: Reason, acting_organisation: Option<SwaCode>) -> Decision {
        Decision {
            reason,
            acting_organisation,
        }
    }
}

/// Role-only decision (foundation). The grants model extends this.
pub fn decide(rule: &Rule, identity: Option<&Identity>, _facts: &RequestFacts<'_>) -> Decision {
    let (roles, identity) = match (&rule.allow, identity) {
        (Allow::Public, _) => return Decision::new(Reason::Public, None),
        (Allow::Roles(_), None) => return Decision::new(Reason::TokenMissing, None),
        (Allow::Roles(roles), Some(identity)) => (roles, identity),
    };
    let own = SwaCode::parse(&identity.organisation);
    if !identity.roles.intersects(*roles) {
        return Decision::new(Reason::RoleNotPermitted, own);
    }
    match rule.access {
        Access::RoleOnly => Decision::new(Reason::RoleGranted, own),
        _ => Decision::new(Reason::SnapshotUnavailable, own),
    }
}
