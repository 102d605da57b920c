//! Third-party integrators (seed 002): a token acting through an integrator is allowed only
//! where the organisations whose data it touches have an agreement with that integrator for
//! the route's API. That is the caller's own organisation and, when it acts for another
//! (a contractor's `swaCode`), that one too: one organisation's agreement never relays
//! another's data.

use super::caller::Caller;
use super::{Decision, IntegratorCheck};
use crate::authn::identity::Identity;
use crate::codes::SwaCode;
use crate::grants::overlay::Works;
use crate::reason::Reason;

pub(super) fn check(
    decision: &mut Decision,
    identity: &Identity,
    caller: &Caller<'_>,
    works: Option<Works<'_>>,
    api: &str,
) -> Result<(), Reason> {
    let Some(integrator) = identity.integrator.as_deref() else {
        return Ok(());
    };
    let snapshot = works.map(|w| w.snapshot);
    let agreed = |organisation: SwaCode| {
        snapshot
            .and_then(|s| s.organisation(organisation))
            .is_some_and(|o| o.integrators.covers(integrator, api))
    };
    let mut organisations = [Some(caller.own), None];
    if caller.acting != caller.own {
        organisations[1] = Some(caller.acting);
    }
    for organisation in organisations.into_iter().flatten() {
        let agreed = agreed(organisation);
        decision.integrator = Some(IntegratorCheck {
            organisation,
            agreed,
        });
        if !agreed {
            return Err(Reason::IntegratorNotAgreed);
        }
    }
    Ok(())
}
