//! One pass over the raw config that reports every problem with its location and, when there
//! are none, yields the compiled `Config`.

use std::collections::HashSet;

use std::sync::Arc;

use http::{Method, Uri};

use super::Config;
use super::raw::{RawAccess, RawAllow, RawApi, RawConfig, RawRoute, RawValueSource};
use crate::authn::identity::{Role, RoleSet};
use crate::authn::{AuthConfig, RawAuth};
use crate::authz::rule::{Access, Allow, BodyRule, Rule, ValueSource};
use crate::contracts::user_types::UserTypes;
use crate::filter::ResponsePolicy;
use crate::forward::Api;
use crate::problems::Problems;
use crate::route::{Route, Router};

pub(super) fn validate(raw: RawConfig) -> Result<Config, Problems> {
    let mut problems = Problems::default();

    check_listen(&raw, &mut problems);
    let auth = AuthConfig::try_from(RawAuth {
        model: raw.model,
        ..raw.auth.clone()
    })
    .map_err(|p| problems.extend(p))
    .ok();
    let user_types = super::model::user_types(&raw, &mut problems);
    if let Some(g) = &raw.grants {
        g.check(&mut problems);
    }
    super::check::validate(&raw, &mut problems);
    crate::telemetry::otel::validate(raw.otel.as_ref(), &mut problems);

    let mut apis = Vec::with_capacity(raw.apis.len());
    let mut router = Router::default();
    let mut ids = HashSet::new();
    if raw.apis.is_empty() {
        problems.push("apis", "at least one API is required");
    }
    for (ai, api) in raw.apis.iter().enumerate() {
        let at = format!("apis[{ai}]");
        let prefix = check_prefix(api, &at, &mut problems);
        let upstream = check_upstream(&api.upstream, &format!("{at}.upstream"), &mut problems);
        check_timeouts(api, &at, &mut problems);
        for (ri, route) in api.routes.iter().enumerate() {
            let at = format!("{at}.routes[{ri}]");
            if !ids.insert(route.id.clone()) {
                problems.push(
                    format!("{at}.id"),
                    format!("route id {:?} is used twice", route.id),
                );
            }
            if let Some((full_path, compiled)) = compile_route(
                route,
                (ai, &api.name),
                &prefix,
                (raw.grants.is_some(), user_types.as_ref()),
                &at,
                &mut problems,
            ) && let Err(e) = router.insert(&full_path, compiled)
            {
                problems.push(format!("{at}.route"), e.to_string());
            }
        }
        if let Some(upstream) = upstream {
            apis.push(Api {
                name: api.name.clone(),
                prefix,
                strip_prefix: api.strip_prefix,
                upstream,
                connect_timeout: api.connect_timeout,
                request_timeout: api.request_timeout,
                body_timeout: api.body_timeout,
            });
        }
    }

    let Some(auth) = auth else {
        return Err(problems);
    };
    problems.into_result(Config {
        source: None,
        listen: raw.listen,
        admin: raw.admin,
        auth,
        grants: raw.grants,
        decision_log: raw.decision_log,
        shadow: raw.shadow,
        rate_limit: raw.rate_limit,
        shutdown: raw.shutdown,
        runtime: raw.runtime,
        check: raw.check,
        otel: raw.otel,
        watch: raw.watch,
        apis,
        router,
    })
}

fn check_listen(raw: &RawConfig, problems: &mut Problems) {
    raw.listen.check(problems);
    let l = &raw.listen;
    if raw.admin.addr == l.addr && l.addr.port() != 0 {
        problems.push("admin.addr", "must differ from listen.addr");
    }
    if !(0.0..=1.0).contains(&raw.decision_log.allow_sample_rate) {
        problems.push("decision_log.allow_sample_rate", "must be between 0 and 1");
    }
    if let Some(workers) = raw.runtime.workers
        && !(1..=crate::listener::workers::MAX).contains(&workers)
    {
        problems.push(
            "runtime.workers",
            format!(
                "must be between 1 and {} (leave it out for one per available CPU)",
                crate::listener::workers::MAX
            ),
        );
    }
    if let Some(rl) = &raw.rate_limit {
        rl.check(problems);
    }
}

/// A zero timeout would fail every request (or, for the connector, mean none at all).
fn check_timeouts(api: &RawApi, at: &str, problems: &mut Problems) {
    for (field, value) in [
        ("connect_timeout", api.connect_timeout),
        ("request_timeout", api.request_timeout),
        ("body_timeout", api.body_timeout),
    ] {
        if value.is_zero() {
            problems.push(format!("{at}.{field}"), "must be above zero");
        }
    }
}

fn check_prefix(api: &RawApi, at: &str, problems: &mut Problems) -> String {
    let Some(prefix) = api.prefix.as_deref() else {
        if api.strip_prefix {
            problems.push(format!("{at}.strip_prefix"), "needs a prefix");
        }
        return String::new();
    };
    let trimmed = prefix.trim_end_matches('/');
    if !prefix.starts_with('/')
        || trimmed.is_empty()
        || trimmed.contains(['{', '}', '?', '#', '%', '\\'])
        || trimmed
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        problems.push(
            format!("{at}.prefix"),
            format!("{prefix:?} must be a plain absolute path like /work"),
        );
    }
    trimmed.to_owned()
}

fn check_upstream(text: &str, at: &str, problems: &mut Problems) -> Option<Uri> {
    match text.parse::<Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some()
                && matches!(uri.path(), "" | "/")
                && uri.query().is_none() =>
        {
            Some(uri)
        }
        _ => {
            problems.push(
                at,
                format!("{text:?} must be http(s)://host[:port] with no path"),
            );
            None
        }
    }
}

fn compile_route(
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
        ) => super::model::contract_access(raw, user_types, &source, at, problems),
    };
    super::model::fits(raw, &allow, &access, user_types.is_some(), at, problems);
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
        ResponsePolicy::compile(policy)
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
