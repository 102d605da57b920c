//! The contracts model's decision (seed 003): user type (system permissions, reads without
//! membership, assignable user types), then the caller's party and role on the contract,
//! through the contract's template.
//!
//! The company in the token must be the user's company in the snapshot: a user moved to
//! another company holds tokens that predate the move (`token_revoked`). A user absent from
//! the snapshot has no user type and no contracts.

use std::sync::Arc;

use super::Visibility;
use super::rule::{Access, Rule, ValueSource};
use super::{Decision, RequestFacts, Stage};
use crate::authn::identity::Identity;
use crate::contracts::snapshot::{ContractUser, PermissionSource};
use crate::contracts::user_types::{Reads, UserType, UserTypes};
use crate::contracts::{ContractRole, Party};
use crate::grants::overlay::Works;
use crate::reason::Reason;

/// What the contracts decision was made from, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContractStep {
    /// The caller's user type (None: not in the snapshot, or not in the config's table).
    pub user_type: Option<Arc<str>>,
    /// The contract's hub and supplier company, when it was found.
    pub contract: Option<(Option<Arc<str>>, Arc<str>)>,
    /// The caller's party and role on it, and where their permissions came from.
    pub membership: Option<(Party, ContractRole, PermissionSource)>,
    /// The read access the user type gives without membership, when consulted.
    pub reads: Option<Reads>,
    /// The user type a user-admin request assigns.
    pub assigns: Option<Arc<str>>,
}

pub(super) fn check(
    decision: &mut Decision,
    rule: &Rule,
    identity: &Identity,
    works: Option<Works<'_>>,
    facts: &RequestFacts<'_>,
    stage: Stage,
) -> Result<Reason, Reason> {
    if identity.integrator.is_some() {
        // Integrator agreements are Street Manager organisations'; none covers a contract.
        return Err(Reason::IntegratorNotAgreed);
    }
    let snapshot = works.ok_or(Reason::SnapshotUnavailable)?.snapshot;
    let user = snapshot
        .contracts
        .as_ref()
        .and_then(|c| c.user(&identity.subject));
    if user.is_some_and(|u| *u.company != *identity.organisation) {
        return Err(Reason::TokenRevoked);
    }
    let step = decision.contract.insert(ContractStep::default());
    match &rule.access {
        Access::SystemPermission {
            name,
            user_type,
            user_types,
        } => {
            let own = caller_type(step, user, user_types);
            if !own.is_some_and(|(_, t)| t.holds(name)) {
                return Err(Reason::SystemPermissionMissing);
            }
            if user_type.is_some() && stage == Stage::Whole {
                // Absent: the request changes no user type (a phone number, say).
                if let Some(named) = facts.resource {
                    step.assigns = Some(named.into());
                    let (target, _) = user_types.get(named).ok_or(Reason::BadBody)?;
                    let caller = own.map_or(usize::MAX, |(i, _)| i);
                    if !user_types.may_assign(caller, target) {
                        return Err(Reason::UserTypeNotAssignable);
                    }
                }
            }
            Ok(Reason::SystemPermission)
        }
        Access::ContractPermission {
            source,
            needs,
            user_types,
        } => {
            let own = caller_type(step, user, user_types);
            let id = facts.resource.ok_or(match source {
                ValueSource::Path(_) => Reason::BadPath,
                ValueSource::Query(_) => Reason::BadQuery,
                ValueSource::Body(_) => Reason::BadBody,
            })?;
            let contract = snapshot
                .contracts
                .as_ref()
                .and_then(|c| c.contract(id))
                .ok_or(Reason::ContractUnknown)?;
            step.contract = Some((contract.hub.clone(), contract.supplier.clone()));
            let membership = user.and_then(|u| u.contracts.get(id).copied());
            if let Some((party, role)) = membership {
                let (granted, from) = contract.permits(party, role, needs);
                step.membership = Some((party, role, from));
                if granted {
                    return Ok(Reason::ContractPermission);
                }
            }
            if &**needs == "read"
                && let (Some(user), Some((_, t))) = (user, own)
            {
                step.reads = Some(t.reads);
                let reads = match t.reads {
                    Reads::All => true,
                    Reads::Hub => contract
                        .hub
                        .as_deref()
                        .is_some_and(|h| user.hubs.iter().any(|u| **u == *h)),
                    Reads::Supplier => contract.supplier == user.company,
                    Reads::Assigned => false,
                };
                if reads {
                    return Ok(Reason::UserTypeRead);
                }
            }
            Err(if membership.is_some() {
                Reason::ContractPermissionMissing
            } else {
                Reason::ContractNotMember
            })
        }
        Access::ReadableContracts { user_types } => {
            let own = caller_type(step, user, user_types);
            let reads = own.map_or(Reads::Assigned, |(_, t)| t.reads);
            step.reads = Some(reads);
            let readable = match (user, snapshot.contracts.as_ref()) {
                (Some(user), Some(section)) => section.readable(user, reads),
                _ => Default::default(),
            };
            decision.visibility = Some(Visibility::Contracts(readable));
            Ok(Reason::FilteredRows)
        }
        // `allow: authenticated` and nothing more.
        _ => Ok(Reason::RoleGranted),
    }
}

/// The caller's user type from the config's table, recorded for `explain`.
fn caller_type<'t>(
    step: &mut ContractStep,
    user: Option<&ContractUser>,
    user_types: &'t UserTypes,
) -> Option<(usize, &'t UserType)> {
    let found = user.and_then(|u| user_types.get(&u.user_type));
    step.user_type = found.map(|(_, t)| t.name.clone());
    found
}

/// The contracts model's lines of `explain`, in the order the decision read them.
pub(super) fn explain(step: &ContractStep, lines: &mut Vec<String>) {
    lines.push(match &step.user_type {
        Some(t) => format!("user type: {t}"),
        None => {
            "user type: none (user not in the snapshot, or its type not in contracts.user_types)"
                .to_owned()
        }
    });
    if let Some(named) = &step.assigns {
        lines.push(format!("assigns user type: {named}"));
    }
    if let Some((hub, supplier)) = &step.contract {
        lines.push(format!(
            "contract: hub {}, supplier {supplier}",
            hub.as_deref().unwrap_or("(none)")
        ));
        lines.push(match step.membership {
            Some((party, role, from)) => format!(
                "party and role: {party} {role} (permissions from {})",
                match from {
                    PermissionSource::Template => "the contract's template",
                    PermissionSource::RoleDefault => "the role's defaults",
                }
            ),
            None => "party and role: not assigned to this contract".to_owned(),
        });
    }
    if let Some(reads) = step.reads {
        lines.push(format!(
            "read without membership: {}",
            match reads {
                Reads::All => "all contracts",
                Reads::Hub => "contracts of the user's hubs",
                Reads::Supplier => "contracts whose supplier is the user's company",
                Reads::Assigned => "none (assigned contracts only)",
            }
        ));
    }
}
