//! One pass over the raw config that reports every problem with its location and, when there
//! are none, yields the compiled `Config`.

use std::collections::HashSet;

use http::Uri;

use super::Config;
use super::raw::{RawApi, RawConfig};
use crate::authn::{AuthConfig, RawAuth};
use crate::forward::Api;
use crate::problems::Problems;
use crate::ratelimit::RateLimits;
use crate::route::Router;

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
            if let Some((full_path, compiled)) = crate::route::compile::route(
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

    let rate_limit = raw
        .rate_limit
        .as_ref()
        .and_then(|r| RateLimits::try_from(r).map_err(|p| problems.extend(p)).ok());
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
        rate_limit,
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
