//! The decision: a pure function of (rule, identity, grants, request facts, now) returning a
//! decision with a reason. No I/O and no clock inside, so it is tested exhaustively and
//! benchmarked alone.
//!
//! The order of checks, which is also the order `explain` reports them in:
//! public route → identity (own organisation, revoked token, suspended organisation) → roles →
//! `swaCode` (acting organisation and capacity) → the integrator's agreements (`integrator`) →
//! the rule's access on the resource → the rule's checks on other body fields (`body_checks`).
//!
//! A rule that reads the body is decided twice: `decide_before_body` first, on everything that
//! does not need the body, so a caller who may not call the route never gets its body read;
//! then `decide` on the whole request.

mod access;
mod body_checks;
mod caller;
pub mod contract;
pub mod explain;
#[cfg(any(test, feature = "testing"))]
pub mod fixture;
mod integrator;
pub mod rule;
mod visibility;

pub use visibility::Visibility;

use crate::authn::identity::Identity;
use crate::codes::{SwaCode, Workstream};
use crate::grants::format::AccessLevel;
use crate::grants::overlay::Works;
use crate::grants::snapshot::WorkInfo;
use crate::reason::Reason;
use rule::{Access, Allow, Rule};

pub use explain::explain;
pub use visibility::visibility;

/// What the request says about the resource, extracted by the pipeline before deciding.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The value named by the rule's `ValueSource` (None when absent).
    pub resource: Option<&'a str>,
    pub swa_code: SwaCodeParam<'a>,
    /// The parsed request body, for the rule's body checks (None when not read).
    pub body: Option<&'a serde_json::Value>,
    /// The route's API (`apis[].name`), which an integrator's agreement must cover.
    pub api: &'a str,
}

/// The `swaCode` query parameter as the client sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SwaCodeParam<'a> {
    #[default]
    Absent,
    One(&'a str),
    Repeated,
}

/// How the caller is treated once its roles and `swaCode` are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// A highway authority: reads every work, writes where the work's authority is its own.
    Authority,
    /// Held to the workstream grants the acting organisation gave this user: planners (and
    /// other roles) for their own organisation, or a contractor acting for a promoter it has a
    /// contract with (`via_contract`).
    Grants { via_contract: bool },
    /// A contractor without `swaCode`: acts for nobody, so no workstream access anywhere.
    Nobody,
}

/// The outcome, plus the small facts the decision was made from (for `explain`, the decision
/// log and the forwarded headers). Only `visibility` ever allocates, and only on filtered routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub reason: Reason,
    /// The organisation the caller acts for (own, or the promoter named by `swaCode`).
    /// Forwarded as `x-streetgate-acting-organisation`.
    pub acting_organisation: Option<SwaCode>,
    /// Set once roles and `swaCode` were accepted.
    pub capacity: Option<Capacity>,
    /// The work record the rule looked up, when it was found.
    pub work: Option<WorkInfo>,
    /// The workstream whose grant was consulted and the caller's level on it.
    pub workstream_access: Option<(Workstream, AccessLevel)>,
    /// For `Access::Filtered` routes that were allowed: which rows the caller may see.
    pub visibility: Option<Visibility>,
    /// The last integrator agreement consulted, when the token acts through an integrator.
    pub integrator: Option<IntegratorCheck>,
    /// Contracts model: the user type, contract, party and role the decision read.
    pub contract: Option<contract::ContractStep>,
}

/// Whether an organisation's agreements cover the token's integrator for the route's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegratorCheck {
    pub organisation: SwaCode,
    pub agreed: bool,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.reason.is_allow()
    }

    fn new(reason: Reason) -> Decision {
        Decision {
            reason,
            acting_organisation: None,
            capacity: None,
            work: None,
            workstream_access: None,
            visibility: None,
            integrator: None,
            contract: None,
        }
    }
}

/// Decides one request.
///
/// `works` is None when no grants snapshot is available: role-only rules are then decided on the
/// token alone (deployments without a `grants` section), every other rule, and a contractor's
/// `swaCode` (its contract cannot be checked), get `SnapshotUnavailable`. When grants are
/// configured the pipeline answers 503 before deciding if it has no snapshot, so revocation and
/// suspension are never skipped there.
///
/// `now_unix` is part of the contract so time-dependent rules stay pure; revocation compares the
/// token's `iat` with `tokens_valid_after` and needs no clock today.
pub fn decide(
    rule: &Rule,
    identity: Option<&Identity>,
    works: Option<Works<'_>>,
    facts: &RequestFacts<'_>,
    _now_unix: u64,
) -> Decision {
    let mut decision = Decision::new(Reason::Public);
    decision.reason = match evaluate(&mut decision, rule, identity, works, facts, Stage::Whole) {
        Ok(allow) | Err(allow) => allow,
    };
    decision
}

/// Decides what can be decided without the body: identity, revocation, suspension, roles,
/// `swaCode`, and the access check when its resource is not in the body. A denial here is
/// final; an allow is provisional (`decide` with the body has the last word). `facts.body` and
/// a body-sourced `facts.resource` are ignored.
pub fn decide_before_body(
    rule: &Rule,
    identity: Option<&Identity>,
    works: Option<Works<'_>>,
    facts: &RequestFacts<'_>,
) -> Decision {
    let mut decision = Decision::new(Reason::Public);
    let stage = Stage::BeforeBody;
    decision.reason = match evaluate(&mut decision, rule, identity, works, facts, stage) {
        Ok(allow) | Err(allow) => allow,
    };
    decision
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    BeforeBody,
    Whole,
}

/// `Ok` carries an allow reason, `Err` a denial; `?` stops at the first denial.
fn evaluate(
    decision: &mut Decision,
    rule: &Rule,
    identity: Option<&Identity>,
    works: Option<Works<'_>>,
    facts: &RequestFacts<'_>,
    stage: Stage,
) -> Result<Reason, Reason> {
    let (roles, identity) = match (&rule.allow, identity) {
        (Allow::Public, _) => return Ok(Reason::Public),
        (Allow::Roles(_) | Allow::Authenticated, None) => return Err(Reason::TokenMissing),
        (Allow::Authenticated, Some(identity)) => {
            return contract::check(decision, rule, identity, works, facts, stage);
        }
        (Allow::Roles(roles), Some(identity)) => (*roles, identity),
    };
    if works.is_none() && identity.integrator.is_some() {
        // No snapshot, no agreements: an integrator is refused even on role-only routes.
        return Err(Reason::IntegratorNotAgreed);
    }
    if works.is_none() && !matches!(rule.access, Access::RoleOnly) {
        return Err(Reason::SnapshotUnavailable);
    }
    let caller = caller::establish(decision, identity, roles, works, facts.swa_code)?;
    integrator::check(decision, identity, &caller, works, facts.api)?;
    if stage == Stage::BeforeBody {
        if matches!(rule.access.source(), Some(rule::ValueSource::Body(_))) {
            return Ok(Reason::RoleGranted);
        }
        return access::check(decision, rule, &caller, works, facts);
    }
    let allow = access::check(decision, rule, &caller, works, facts)?;
    body_checks::check(rule, &caller, works, facts.body)?;
    Ok(allow)
}

#[cfg(test)]
mod body_tests;
#[cfg(test)]
mod tests;
