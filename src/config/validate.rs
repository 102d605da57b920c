//! One pass over the raw config that reports every problem with its location and, when there
//! are none, yields the compiled `Config`.

use std::collections::HashSet;

use std::sync::Arc;

use http::{Method, Uri};

use super::raw::{
    RawAccess, RawAllow, RawApi, RawAuth, RawConfig, RawJwks, RawRoute, RawSecret, RawValueSource,
};
use super::{Api, Config, Problems};
use crate::authn::extract::TokenSource;
use crate::authn::identity::{Role, RoleSet};
use crate::authn::keys::{AlgSet, KeySet};
use crate::authz::rule::{Access, Allow, BodyRule, Rule, ValueSource};
use crate::contracts::user_types::UserTypes;
use crate::filter::ResponsePolicy;
use crate::route::{Route, Router};

pub(super) fn validate(raw: RawConfig) -> Result<Config, Problems> {
    let mut problems = Problems::default();

    check_listen(&raw, &mut problems);
    check_auth(&raw, &mut problems);
    let user_types = super::model::user_types(&raw, &mut problems);
    if let Some(g) = &raw.grants {
        check_guard(g, &mut problems);
    }
    crate::check::validate(&raw, &mut problems);
    crate::telemetry::otel::validate(raw.otel.as_ref(), &mut problems);

    let mut apis = Vec::with_capacity(raw.apis.len());
    let mut router = Router::default();
    let mut ids = HashSet::new();
    if raw.apis.is_empty() {
        problems.push("apis", "at least one API is required");
    }
    if let Some(grants) = &raw.grants {
        check_grants_source(&grants.source, &mut problems);
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

    problems.into_result(Config {
        source: None,
        listen: raw.listen,
        admin: raw.admin,
        auth: RawAuth {
            model: raw.model,
            ..raw.auth
        },
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

/// The snapshot guard's keys (`crate::guard`).
fn check_guard(g: &super::raw::RawGrants, problems: &mut Problems) {
    if let Some(r) = g.max_revocation_ratio
        && !(r > 0.0 && r <= 1.0)
    {
        problems.push(
            "grants.max_revocation_ratio",
            format!("{r} is not a share above 0 and at most 1"),
        );
    }
    if g.max_revocation_ratio.is_some() && g.guard_window == 0 {
        problems.push(
            "grants.guard_window",
            "0 turns the guard off, so max_revocation_ratio could never apply",
        );
    }
    if let Some(path) = &g.accept_token_file {
        match std::fs::read_to_string(path) {
            Ok(t) if t.trim().len() >= 16 => {}
            Ok(_) => problems.push(
                "grants.accept_token_file",
                "the token must be at least 16 characters",
            ),
            Err(_) => problems.push(
                "grants.accept_token_file",
                format!("{} is not a readable file", path.display()),
            ),
        }
    }
}

fn check_listen(raw: &RawConfig, problems: &mut Problems) {
    let l = &raw.listen;
    if l.max_headers == 0 {
        problems.push("listen.max_headers", "must be at least 1");
    }
    if l.max_header_bytes < 1024 {
        problems.push("listen.max_header_bytes", "must be at least 1024");
    }
    if l.header_read_timeout.is_zero() {
        problems.push("listen.header_read_timeout", "must be above zero");
    }
    if l.idle_timeout.is_zero() {
        problems.push("listen.idle_timeout", "must be above zero");
    }
    if l.body_read_timeout.is_zero() {
        problems.push("listen.body_read_timeout", "must be above zero");
    }
    if l.buffered_body_budget() < l.max_body_bytes {
        problems.push(
            "listen.max_buffered_body_bytes_per_connection",
            "must be at least listen.max_body_bytes",
        );
    }
    for (i, net) in l.trusted_proxies.iter().enumerate() {
        // `10.0.0.1/8` is most likely a typo for a single host or for `10.0.0.0/8`.
        if net.trunc() != *net {
            problems.push(
                format!("listen.trusted_proxies[{i}]"),
                format!(
                    "{net} has host bits set; write {} (or a /32 or /128 for one host)",
                    net.trunc()
                ),
            );
        }
    }
    if let Some(tls) = &l.tls {
        for (field, path) in [("cert", &tls.cert), ("key", &tls.key)] {
            if !path.is_file() {
                problems.push(
                    format!("listen.tls.{field}"),
                    format!("{} is not a readable file", path.display()),
                );
            }
        }
    }
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
        for (field, rate) in [("per_ip", rl.per_ip), ("per_user", rl.per_user)] {
            if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                problems.push(
                    format!("rate_limit.{field}"),
                    "must be a number of requests per second above zero (leave it out to disable)",
                );
            }
        }
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

fn check_auth(raw: &RawConfig, problems: &mut Problems) {
    let a = &raw.auth;
    if a.token_sources.is_empty() {
        problems.push(
            "auth.token_sources",
            "at least one token source is required",
        );
    }
    match (&a.jwks, &a.hs256_secret) {
        (None, None) => problems.push("auth", "one of auth.jwks or auth.hs256_secret is required"),
        (Some(_), Some(_)) => problems.push(
            "auth.hs256_secret",
            "HS256 secrets cannot be mixed with public keys from auth.jwks",
        ),
        _ => {}
    }
    for (i, alg) in a.algorithms.iter().enumerate() {
        match alg.as_str() {
            "RS256" | "PS256" | "ES256" | "EdDSA" => {
                if a.hs256_secret.is_some() {
                    problems.push(
                        format!("auth.algorithms[{i}]"),
                        format!("{alg} needs public keys, but auth.hs256_secret is set"),
                    );
                }
            }
            "HS256" => {
                if a.hs256_secret.is_none() {
                    problems.push(
                        format!("auth.algorithms[{i}]"),
                        "HS256 needs auth.hs256_secret",
                    );
                }
            }
            other => problems.push(
                format!("auth.algorithms[{i}]"),
                format!("{other:?} is not allowed (RS256, PS256, ES256, EdDSA, HS256)"),
            ),
        }
    }
    if a.algorithms.is_empty() {
        problems.push("auth.algorithms", "at least one algorithm is required");
    }
    if a.issuer.is_empty() {
        problems.push("auth.issuer", "must not be empty");
    }
    if a.audience.is_empty() {
        problems.push("auth.audience", "must not be empty");
    }
    if a.leeway.as_secs() > 300 {
        problems.push("auth.leeway", "must be at most 5m");
    }
    if a.token_cache_entries == 0 {
        problems.push("auth.token_cache_entries", "must be at least 1");
    }
    if a.max_token_bytes < 256 {
        problems.push("auth.max_token_bytes", "must be at least 256");
    }
    check_auth_sources(a, problems);
}

/// Token sources, the JWKS location and the HS256 secret file.
fn check_auth_sources(a: &RawAuth, problems: &mut Problems) {
    for (i, source) in a.token_sources.iter().enumerate() {
        if TokenSource::compile(source).is_none() {
            problems.push(
                format!("auth.token_sources[{i}]"),
                "is not a valid HTTP header name",
            );
        }
        if a.token_sources[..i].contains(source) {
            problems.push(format!("auth.token_sources[{i}]"), "is listed twice");
        }
    }
    match &a.jwks {
        Some(RawJwks::File(path)) => match std::fs::read(path) {
            Err(e) => problems.push("auth.jwks.file", format!("{}: {e}", path.display())),
            Ok(bytes) => {
                if let Err(e) = KeySet::from_jwks(&bytes, AlgSet::all_public()) {
                    problems.push("auth.jwks.file", format!("{}: {e}", path.display()));
                }
            }
        },
        Some(RawJwks::Url {
            url,
            refresh_interval,
            min_refresh_interval,
        }) => {
            let ok = url.parse::<Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !ok {
                problems.push(
                    "auth.jwks.url.url",
                    format!("{url:?} is not an http(s) URL"),
                );
            }
            if refresh_interval.is_zero() {
                problems.push("auth.jwks.url.refresh_interval", "must be above zero");
            }
            if min_refresh_interval > refresh_interval {
                problems.push(
                    "auth.jwks.url.min_refresh_interval",
                    "must not exceed refresh_interval",
                );
            }
        }
        None => {}
    }
    if let Some(RawSecret::File(path)) = &a.hs256_secret
        && !path.is_file()
    {
        problems.push(
            "auth.hs256_secret.file",
            format!("{} is not a readable file", path.display()),
        );
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

/// Longest long-poll wait accepted: longer holds outlast the idle timeouts of most proxies.
const MAX_LONG_POLL: std::time::Duration = std::time::Duration::from_secs(300);

fn check_grants_source(source: &super::raw::RawGrantsSource, problems: &mut Problems) {
    let super::raw::RawGrantsSource::Url {
        long_poll,
        max_document_bytes,
        ..
    } = source
    else {
        return;
    };
    if let Some(wait) = long_poll
        && (*wait < std::time::Duration::from_secs(1) || *wait > MAX_LONG_POLL)
    {
        problems.push(
            "grants.source.url.long_poll",
            format!("must be between 1s and {}s", MAX_LONG_POLL.as_secs()),
        );
    }
    if *max_document_bytes == 0 {
        problems.push("grants.source.url.max_document_bytes", "must be above 0");
    }
}
