//! Facts for the decision: the resource value the rule names, `swaCode`, and the parsed body
//! when the rule reads one. Then the pure decision.

use std::borrow::Cow;

use http::header;

use crate::authn::identity::Identity;
use crate::authz::rule::ValueSource;
use crate::authz::{self, Decision, RequestFacts};
use crate::body::field::string_at;
use crate::error::ProxyError;
use crate::grants::overlay::Works;
use crate::normalize::{self, Target};
use crate::reason::Reason;
use crate::route::RouteMatch;

/// Gathers the request facts the rule names, then runs the pure decision (also used by
/// `streetgate explain`).
pub fn authorize(
    matched: &RouteMatch<'_, '_>,
    identity: Option<&Identity>,
    works: Option<Works<'_>>,
    target: &Target<'_>,
    body: Option<&serde_json::Value>,
    now: u64,
) -> Result<Decision, ProxyError> {
    let rule = &matched.route.rule;
    with_facts(matched, target, body, |facts| {
        authz::decide(rule, identity, works, facts, now)
    })
}

/// `authorize`, also handing the decision's inputs to the snapshot guard's ring.
pub(super) fn decide_and_sample(
    matched: &RouteMatch<'_, '_>,
    identity: Option<&std::sync::Arc<Identity>>,
    works: Option<Works<'_>>,
    target: &Target<'_>,
    body: Option<&serde_json::Value>,
    now: u64,
    guard: Option<&crate::guard::Guard>,
) -> Result<Decision, ProxyError> {
    let route = matched.route;
    with_facts(matched, target, body, |facts| {
        if let Some(guard) = guard {
            guard.record(route, identity, facts, now);
        }
        authz::decide(&route.rule, identity.map(|i| &**i), works, facts, now)
    })
}

/// The decision on everything the body is not needed for (`authz::decide_before_body`): a
/// denial is final and the body is never read.
pub(super) fn decide_before_body(
    matched: &RouteMatch<'_, '_>,
    identity: Option<&Identity>,
    works: Option<Works<'_>>,
    target: &Target<'_>,
) -> Result<Decision, ProxyError> {
    let rule = &matched.route.rule;
    with_facts(matched, target, None, |facts| {
        authz::decide_before_body(rule, identity, works, facts)
    })
}

fn with_facts(
    matched: &RouteMatch<'_, '_>,
    target: &Target<'_>,
    body: Option<&serde_json::Value>,
    decide: impl FnOnce(&RequestFacts<'_>) -> Decision,
) -> Result<Decision, ProxyError> {
    let query = super::query::pairs(target.query)?;
    let swa_code = super::query::swa_code(&query);
    let resource: Option<Cow<'_, str>> = match matched.route.rule.access.source() {
        None => None,
        // Work references rarely carry escapes: only an escaped one is decoded into a copy.
        Some(ValueSource::Path(name)) => matched.param(name).map(|raw| {
            if !raw.contains('%') {
                return Cow::Borrowed(raw);
            }
            normalize::decode_strict(raw.as_bytes())
                .and_then(|b| String::from_utf8(b).ok())
                .map(Cow::Owned)
                .unwrap_or(Cow::Borrowed(raw))
        }),
        Some(ValueSource::Query(name)) => {
            super::query::rule_param(&query, name)?.map(Cow::Borrowed)
        }
        // Absent (or no body yet): the decision reports `bad_body` where it needs the value.
        Some(ValueSource::Body(pointer)) => match body.map(|b| string_at(b, pointer)) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(s))) => Some(Cow::Borrowed(s)),
            Some(Err(_)) => return Err(Reason::BadBody.into()),
        },
    };
    let facts = RequestFacts {
        resource: resource.as_deref(),
        swa_code,
        body,
        api: &matched.route.api_name,
    };
    Ok(decide(&facts))
}

pub(super) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
