//! Compiles one route of the config into a `Route`: its method and template, the `Rule` the
//! decision applies (who may call it, what it acts on, the body fields it checks) and its
//! response policy, reporting every problem with its location. A rule must fit the config's
//! domain model: Street Manager rules (roles, workstreams, works) and contracts rules (user
//! types, contract parties and roles) never mix.

use std::sync::Arc;

use http::Method;

use super::Route;
use super::config::{RawAccess, RawAllow, RawRoute, RawValueSource};
use crate::authn::identity::{Role, RoleSet};
use crate::authz::rule::{Access, Allow, BodyRule, Rule, ValueSource};
use crate::contracts::is_permission_name;
use crate::contracts::user_types::UserTypes;
use crate::filter::ResponsePolicy;
use crate::filter::config::RawFilter;
use crate::problems::Problems;

pub fn route(
    raw: &RawRoute,
    (api, api_name): (usize, &str),
    prefix: &str,
    (has_grants, user_types): (bool, Option<&Arc<UserTypes>>),
    at: &str,
    problems: &mut Problems,
) -> Option<(String, Route)> {
    let before = problems.len();
    if raw.id.is_empty()
        || !raw
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        problems.push(
            format!("{at}.id"),
            format!("{:?} must be non-empty [A-Za-z0-9_.-]", raw.id),
        );
    }
    let (method, template) = match raw.route.split_once(' ') {
        Some((m, t)) if t.starts_with('/') => (m, t),
        _ => {
            problems.push(
                format!("{at}.route"),
                format!("{:?} must be \"METHOD /path\"", raw.route),
            );
            return None;
        }
    };
    let method = match method.parse::<Method>() {
        Ok(m) if method.bytes().all(|b| b.is_ascii_uppercase()) => Some(m),
        _ => {
            problems.push(
                format!("{at}.route"),
                format!("{method:?} is not an HTTP method"),
            );
            None
        }
    };
    let params = template_params(template);

    let allow = match &raw.allow {
        RawAllow::Public => Allow::Public,
        RawAllow::Roles(names) => {
            let mut set = RoleSet::EMPTY;
            for (i, name) in names.iter().enumerate() {
                match Role::parse(name) {
                    Some(role) => set = set.with(role),
                    None => problems.push(
                        format!("{at}.allow.roles[{i}]"),
                        format!("unknown role {name:?}"),
                    ),
                }
            }
            if names.is_empty() {
                problems.push(
                    format!("{at}.allow.roles"),
                    "needs at least one role (or use `public`)",
                );
            }
            Allow::Roles(set)
        }
        RawAllow::Authenticated => Allow::Authenticated,
    };

    let source = |s: &RawValueSource, problems: &mut Problems| -> ValueSource {
        match s {
            RawValueSource::Path(p) => {
                if !params.contains(&p.as_str()) {
                    problems.push(
                        format!("{at}.access"),
                        format!("path parameter {{{p}}} is not in the template"),
                    );
                }
                ValueSource::Path(p.as_str().into())
            }
            RawValueSource::Query(q) => ValueSource::Query(q.as_str().into()),
            RawValueSource::Body(pointer) => {
                if !pointer.starts_with('/') {
                    problems.push(
                        format!("{at}.access"),
                        format!(
                            "body field {pointer:?} must be a JSON pointer like /workstream_prefix"
                        ),
                    );
                }
                ValueSource::Body(pointer.as_str().into())
            }
        }
    };
    let access = match &raw.access {
        None => Access::RoleOnly,
        Some(RawAccess::ReadWork(s)) => Access::ReadWork(source(s, problems)),
        Some(RawAccess::WriteWork(s)) => Access::WriteWork(source(s, problems)),
        Some(RawAccess::MapView) => Access::MapView,
        Some(RawAccess::CreateInWorkstream(s)) => Access::CreateInWorkstream(source(s, problems)),
        Some(RawAccess::OwnOrganisation(s)) => Access::OwnOrganisation(source(s, problems)),
        Some(RawAccess::Filtered) => Access::Filtered,
        Some(
            RawAccess::ContractPermission(_)
            | RawAccess::SystemPermission(_)
            | RawAccess::ReadableContracts,
        ) => contract_access(raw, user_types, &source, at, problems),
    };
    fits(raw, &allow, &access, user_types.is_some(), at, problems);
    if !matches!(access, Access::RoleOnly) {
        if !has_grants {
            problems.push(format!("{at}.access"), "needs a `grants` section");
        }
        if allow == Allow::Public {
            problems.push(
                format!("{at}.access"),
                "a public route cannot have an access rule",
            );
        }
    }
    let body = body_rule(raw, &allow, at, problems);
    if raw.organisation_member && !matches!(access, Access::ReadWork(_) | Access::WriteWork(_)) {
        problems.push(
            format!("{at}.organisation_member"),
            "needs a read_work or write_work access rule",
        );
    }

    let response = raw.response.as_ref().and_then(|policy| {
        ResponsePolicy::try_from(policy)
            .map_err(|e| problems.push(format!("{at}.response"), e))
            .ok()
    });
    if raw.response.as_ref().is_some_and(|p| p.filter.is_some())
        && !matches!(access, Access::Filtered | Access::ReadableContracts { .. })
    {
        problems.push(
            format!("{at}.access"),
            "a route whose response rows are filtered needs `access: filtered`",
        );
    }

    if raw.unfiltered_in_check_mode && raw.response.is_none() {
        problems.push(
            format!("{at}.unfiltered_in_check_mode"),
            "only a route with a `response` policy can be marked unfiltered in check mode",
        );
    }

    let method = method?;
    if problems.len() != before {
        return None;
    }
    let route = Route {
        id: raw.id.as_str().into(),
        api,
        api_name: api_name.into(),
        index: 0,
        method,
        template: template.into(),
        rule: Arc::new(Rule {
            allow,
            access,
            organisation_member: raw.organisation_member,
            body,
        }),
        creates_work: raw.creates_work.clone(),
        response,
        shadow: raw.shadow,
        unfiltered_in_check_mode: raw.unfiltered_in_check_mode,
    };
    Some((format!("{prefix}{template}"), route))
}

/// The route's body checks, and its list of body fields that decide nothing.
fn body_rule(raw: &RawRoute, allow: &Allow, at: &str, problems: &mut Problems) -> BodyRule {
    let pointers = |key: &str, list: &[String], problems: &mut Problems| -> Box<[Box<str>]> {
        for (i, pointer) in list.iter().enumerate() {
            if !pointer.starts_with('/') {
                problems.push(
                    format!("{at}.{key}[{i}]"),
                    format!("{pointer:?} must be a JSON pointer like /promoter_swa_code"),
                );
            }
        }
        if !list.is_empty() && *allow == Allow::Public {
            problems.push(
                format!("{at}.{key}"),
                "a public route has no acting organisation to check against",
            );
        }
        list.iter().map(|p| p.as_str().into()).collect()
    };
    let body = BodyRule {
        organisation: pointers("body_organisation", &raw.body_organisation, problems),
        authority: pointers("body_authority", &raw.body_authority, problems),
        workstreams: pointers("body_workstreams", &raw.body_workstreams, problems),
    };
    let resource = match &raw.access {
        Some(
            RawAccess::ReadWork(RawValueSource::Body(p))
            | RawAccess::WriteWork(RawValueSource::Body(p))
            | RawAccess::CreateInWorkstream(RawValueSource::Body(p))
            | RawAccess::OwnOrganisation(RawValueSource::Body(p)),
        ) => Some(p.as_str()),
        _ => None,
    };
    for (field, reason) in &raw.body_fields_unchecked {
        let at = format!("{at}.body_fields_unchecked.{field}");
        if !field.starts_with('/') {
            problems.push(&at, "must be a JSON pointer like /project_reference_number");
        }
        if reason.trim().is_empty() {
            problems.push(&at, "needs the reason the field decides nothing");
        }
        if resource == Some(field.as_str()) || body.fields().any(|f| f == field) {
            problems.push(&at, "is checked by the rule, so it cannot be unchecked too");
        }
    }
    body
}

/// Names of `{param}` segments in a template.
fn template_params(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|p| p.trim_start_matches('*'))
        .collect()
}

type Source<'a> = dyn Fn(&RawValueSource, &mut Problems) -> ValueSource + 'a;

/// Compiles `contract_permission` and `system_permission`.
fn contract_access(
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
fn fits(
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
                RawFilter::Json { by, .. } | RawFilter::Csv { by } => by.contract_field.is_some(),
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
