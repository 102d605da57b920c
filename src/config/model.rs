//! The domain model a config speaks (`model: street_manager | contracts`) and the checks that
//! every rule fits it: Street Manager rules (roles, workstreams, works) and contracts rules
//! (user types, contract parties and roles) never mix in one config.

use std::sync::Arc;

use super::raw::{RawAccess, RawConfig, RawRoute, RawValueSource};
use crate::authz::rule::{Access, Allow, ValueSource};
use crate::contracts::is_permission_name;
use crate::contracts::user_types::UserTypes;
use crate::model::Model;
use crate::problems::Problems;

/// The contracts model's user-type table; None for Street Manager.
pub(super) fn user_types(raw: &RawConfig, problems: &mut Problems) -> Option<Arc<UserTypes>> {
    match (raw.model, &raw.contracts) {
        (Model::StreetManager, None) => None,
        (Model::StreetManager, Some(_)) => {
            problems.push("contracts", "only with `model: contracts`");
            None
        }
        (Model::Contracts, None) => {
            problems.push(
                "contracts",
                "`model: contracts` needs the user-type table (contracts.user_types)",
            );
            None
        }
        (Model::Contracts, Some(table)) => {
            if raw.grants.is_none() {
                problems.push(
                    "grants",
                    "`model: contracts` reads users and contracts from the grants snapshot",
                );
            }
            Some(UserTypes::compile(table, "contracts", problems))
        }
    }
}

type Source<'a> = dyn Fn(&RawValueSource, &mut Problems) -> ValueSource + 'a;

/// Compiles `contract_permission` and `system_permission`.
pub(super) fn contract_access(
    raw: &RawRoute,
    user_types: Option<&Arc<UserTypes>>,
    source: &Source<'_>,
    at: &str,
    problems: &mut Problems,
) -> Access {
    let Some(table) = user_types else {
        problems.push(format!("{at}.access"), "needs `model: contracts`");
        return Access::RoleOnly;
    };
    match &raw.access {
        Some(RawAccess::ContractPermission(p)) => {
            let named: Vec<RawValueSource> = [
                p.path.clone().map(RawValueSource::Path),
                p.query.clone().map(RawValueSource::Query),
                p.body.clone().map(RawValueSource::Body),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !is_permission_name(&p.needs) {
                problems.push(
                    format!("{at}.access.contract_permission.needs"),
                    format!(
                        "{:?} must be a permission name like read or communicate",
                        p.needs
                    ),
                );
            }
            let [one] = named.as_slice() else {
                problems.push(
                    format!("{at}.access.contract_permission"),
                    "exactly one of path, query or body names the contract",
                );
                return Access::RoleOnly;
            };
            Access::ContractPermission {
                source: source(one, problems),
                needs: p.needs.as_str().into(),
                user_types: table.clone(),
            }
        }
        Some(RawAccess::SystemPermission(name)) => {
            if !table.any_holds(name) {
                problems.push(
                    format!("{at}.access.system_permission"),
                    format!("no user type in contracts.user_types holds {name:?}"),
                );
            }
            let user_type = raw
                .user_type_field
                .as_ref()
                .map(|pointer| source(&RawValueSource::Body(pointer.clone()), problems));
            Access::SystemPermission {
                name: name.as_str().into(),
                user_type,
                user_types: table.clone(),
            }
        }
        Some(RawAccess::ReadableContracts) => Access::ReadableContracts {
            user_types: table.clone(),
        },
        _ => Access::RoleOnly,
    }
}

/// Keys of one model used in a config of the other.
pub(super) fn fits(
    raw: &RawRoute,
    allow: &Allow,
    access: &Access,
    contracts: bool,
    at: &str,
    problems: &mut Problems,
) {
    let contract_rule = matches!(
        access,
        Access::ContractPermission { .. }
            | Access::SystemPermission { .. }
            | Access::ReadableContracts { .. }
    );
    let contract_list = matches!(access, Access::ReadableContracts { .. });
    // Rows keyed by contract id need the contracts' visibility, and nothing else gives it.
    let keyed_by_contract =
        raw.response
            .as_ref()
            .and_then(|r| r.filter.as_ref())
            .map(|f| match f {
                crate::filter::config::RawFilter::Json { by, .. }
                | crate::filter::config::RawFilter::Csv { by } => by.contract_field.is_some(),
            });
    if contract_list != (keyed_by_contract == Some(true)) {
        problems.push(
            format!("{at}.response.filter"),
            "a contract list (`access: readable_contracts`) filters rows by `contract_field`, and only it does",
        );
    }
    if contracts {
        if matches!(allow, Allow::Roles(_)) {
            problems.push(
                format!("{at}.allow"),
                "the contracts model has no Street Manager roles: use `authenticated` or `public`",
            );
        }
        if !contract_rule && !matches!(access, Access::RoleOnly) {
            problems.push(
                format!("{at}.access"),
                "a Street Manager rule; the contracts model uses contract_permission or system_permission",
            );
        }
        let street_manager_keys = [
            ("organisation_member", raw.organisation_member),
            ("body_organisation", !raw.body_organisation.is_empty()),
            ("body_authority", !raw.body_authority.is_empty()),
            ("body_workstreams", !raw.body_workstreams.is_empty()),
            ("creates_work", raw.creates_work.is_some()),
        ];
        for (key, used) in street_manager_keys {
            if used {
                problems.push(
                    format!("{at}.{key}"),
                    "a Street Manager key; not part of the contracts model",
                );
            }
        }
    } else if *allow == Allow::Authenticated {
        problems.push(
            format!("{at}.allow"),
            "`authenticated` is for `model: contracts`; Street Manager routes name their roles",
        );
    }
    if raw.user_type_field.is_some() && !matches!(access, Access::SystemPermission { .. }) {
        problems.push(
            format!("{at}.user_type_field"),
            "needs `access: {system_permission: ...}`",
        );
    }
    if let Some(pointer) = &raw.user_type_field
        && !pointer.starts_with('/')
    {
        problems.push(
            format!("{at}.user_type_field"),
            format!("{pointer:?} must be a JSON pointer like /user_type"),
        );
    }
}
