//! Facts for the decision: the request body when the rule reads a field from it, the resource
//! value the rule names, and `swaCode`. Then the pure decision.

use std::borrow::Cow;

use http::header;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use crate::authn::identity::Identity;
use crate::authz::rule::ValueSource;
use crate::authz::{self, Decision, RequestFacts};
use crate::error::ProxyError;
use crate::forward::RequestBody;
use crate::grants::overlay::Works;
use crate::normalize::{self, Target};
use crate::reason::Reason;
use crate::route::{Route, RouteMatch};

/// Reads the request body only when the rule (or `creates_work`) takes a field from it, and
/// parses it once as JSON (None when it is not JSON); the bytes are then forwarded as they
/// came. Otherwise the body streams to the upstream untouched (still size-capped).
pub(super) async fn read_body_if_needed(
    route: &Route,
    body: Incoming,
    max_body: u64,
) -> Result<(Option<serde_json::Value>, RequestBody), ProxyError> {
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let needs_body = matches!(route.rule.access.source(), Some(ValueSource::Body(_)))
        || route.creates_work.is_some();
    if !needs_body {
        return Ok((None, Either::Left(Limited::new(body, limit))));
    }
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(ProxyError::RequestBody)?
        .to_bytes();
    let json = serde_json::from_slice(&bytes).ok();
    Ok((json, Either::Right(Full::new(bytes))))
}

/// Gathers the request facts the rule names, then runs the pure decision (also used by
/// `streetgate explain`).
pub fn decide(
    matched: &RouteMatch<'_, '_>,
    identity: Option<&Identity>,
    works: Option<Works<'_>>,
    target: &Target<'_>,
    body: Option<&serde_json::Value>,
    now: u64,
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
        Some(ValueSource::Body(pointer)) => match body.and_then(|b| b.pointer(pointer)) {
            Some(serde_json::Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
            _ => return Err(Reason::BadBody.into()),
        },
    };
    let facts = RequestFacts {
        resource: resource.as_deref(),
        swa_code,
    };
    Ok(authz::decide(
        &matched.route.rule,
        identity,
        works,
        &facts,
        now,
    ))
}

pub(super) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
