//! The request pipeline, one named phase after another:
//! check → route → authenticate → gather facts → decide → forward → respond.
//! Every phase returns `Result<_, ProxyError>`; `handle` turns an error into the rejection
//! response in one place (`error::rejection`).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use crate::authn::Authenticator;
use crate::authn::identity::Identity;
use crate::authz::rule::{Allow, ValueSource};
use crate::authz::{self, Decision, RequestFacts, SwaCodeParam};
use crate::config::Config;
use crate::error::{self, ProxyError};
use crate::filter::{self, Visibility};
use crate::forward::{RequestBody, Upstream, headers};
use crate::grants::codes::SwaCode;
use crate::grants::overlay::Works;
use crate::grants::snapshot::Snapshot;
use crate::grants::store::GrantsStore;
use crate::normalize::{self, Target};
use crate::reason::Reason;
use crate::route::{Route, RouteMatch};
use crate::telemetry::decision_log::{self, DecisionRecord};
use crate::telemetry::metrics::Metrics;

/// What the client receives: the upstream's streamed body, or a body we built.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Everything derived from one config, swapped whole on reload.
pub struct Runtime {
    pub config: Config,
    pub upstreams: Vec<Upstream>,
}

impl Runtime {
    pub fn new(config: Config) -> Runtime {
        let upstreams = config.apis.iter().map(Upstream::new).collect();
        Runtime { config, upstreams }
    }
}

/// Shared state of a running sidecar.
pub struct Gateway {
    pub runtime: ArcSwap<Runtime>,
    pub auth: Authenticator,
    /// None when the config has no `grants` section (role-only deployments).
    pub grants: Option<Arc<GrantsStore>>,
    pub metrics: Metrics,
    ids: DecisionIds,
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

impl Gateway {
    pub fn new(
        runtime: Runtime,
        auth: Authenticator,
        grants: Option<Arc<GrantsStore>>,
        metrics: Metrics,
    ) -> Gateway {
        Gateway {
            runtime: ArcSwap::from_pointee(runtime),
            auth,
            grants,
            metrics,
            ids: DecisionIds::new(),
        }
    }

    /// What keeps the sidecar from being ready (empty when ready).
    pub fn not_ready(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.auth.ready() {
            missing.push("signing keys not loaded");
        }
        if let Some(grants) = &self.grants
            && !grants.ready(SystemTime::now())
        {
            missing.push("grants snapshot missing or stale");
        }
        missing
    }

    /// Handles one request; never fails: errors become rejection responses here.
    pub async fn handle(&self, conn: ConnInfo, request: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        let decision_id = self.ids.next();
        self.metrics.requests_in_flight.inc();
        // One load per request: every phase sees the same config version.
        let runtime = self.runtime.load_full();
        let mut log = DecisionRecord::new(&decision_id, request.method(), started);
        let result = self
            .phases(&runtime, conn, request, &decision_id, &mut log)
            .await;
        self.metrics.requests_in_flight.dec();
        match result {
            Ok(response) => {
                log.status = response.status().as_u16();
                decision_log::emit(&log, runtime.config.decision_log.allow_sample_rate);
                response
            }
            Err(err) => {
                let reason = err.reason();
                if !matches!(err, ProxyError::Rejected(_)) {
                    tracing::warn!(decision_id = %decision_id, error = %err, source = ?std::error::Error::source(&err), "request failed");
                }
                if log.reason.is_none() {
                    // Failed before a decision (checks, routing, authentication).
                    log.reason = Some(reason);
                    self.count(log.route.as_deref().unwrap_or(UNMATCHED), reason, false);
                }
                log.status = reason.status().as_u16();
                decision_log::emit(&log, runtime.config.decision_log.allow_sample_rate);
                error::rejection(reason, &decision_id).map(Either::Right)
            }
        }
    }

    async fn phases(
        &self,
        runtime: &Runtime,
        conn: ConnInfo,
        request: Request<Incoming>,
        decision_id: &str,
        log: &mut DecisionRecord,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        let target = normalize::check(&parts.method, &parts.uri, parts.version, &parts.headers)?;
        let matched = runtime
            .config
            .router
            .lookup(&parts.method, target.path)
            .ok_or(Reason::RouteNotFound)?;
        let route = matched.route;
        log.route = Some(route.id.clone());

        let now = unix_now();
        let identity = self.authenticate(route, &parts.headers, now).await?;
        if let Some(id) = &identity {
            log.user = Some(id.subject.clone());
            log.organisation = Some(id.organisation.clone());
        }

        let max_body = runtime.config.listen.max_body_bytes;
        let declared_len = content_length(&parts.headers);
        if declared_len.is_some_and(|len| len > max_body) {
            return Err(Reason::BodyTooLarge.into());
        }
        // Fail closed: with grants configured, no protected request is decided without them
        // (revocation and suspension live in the snapshot).
        let snapshot = self.snapshot_for(identity.as_deref())?;
        let works = snapshot
            .as_deref()
            .zip(self.grants.as_deref())
            .map(|(snapshot, store)| Works {
                snapshot,
                created: store.created(),
            });
        let (facts_body, body) = read_body_if_needed(route, body, max_body).await?;
        let decision = decide(
            &matched,
            identity.as_deref(),
            works,
            &target,
            facts_body.as_deref(),
            now,
        )?;
        let shadow = runtime.config.shadow || route.shadow;
        log.decide(&decision, shadow);
        self.metrics
            .decision_duration
            .observe(log.started.elapsed().as_secs_f64());
        self.count(&route.id, decision.reason, shadow);
        if !decision.allowed() && !shadow {
            return Err(decision.reason.into());
        }

        // --- forward ---
        let upstream = &runtime.upstreams[route.api];
        let uri = upstream.uri_for(target.path, target.query)?;
        prepare_upstream_headers(
            &mut parts,
            conn,
            identity.as_deref(),
            &decision,
            decision_id,
        );
        parts.uri = uri;
        if route.response.is_some() {
            filter::prepare_request_headers(&mut parts.headers);
        }
        let is_head = parts.method == http::Method::HEAD;
        let upstream_started = Instant::now();
        let sent = upstream.send(Request::from_parts(parts, body)).await;
        let status_class = match &sent {
            Ok(r) => status_class(r.status().as_u16()),
            Err(_) => "error",
        };
        self.metrics
            .upstream_duration
            .with_label_values(&[&*route.id, status_class])
            .observe(upstream_started.elapsed().as_secs_f64());
        let mut response = sent?;

        // --- respond ---
        headers::strip_hop_by_hop(response.headers_mut());
        if let Ok(id) = HeaderValue::from_str(decision_id) {
            response.headers_mut().insert(headers::DECISION_ID, id);
        }
        if let Some(policy) = &route.response
            && !is_head
        {
            let visibility = match (&decision.visibility, decision.allowed()) {
                (Some(v), _) => v.clone(),
                // Redaction-only routes: rows are not filtered.
                (None, true) => Visibility::All,
                // Shadow-denied: forwarded, but no row the rule refused is ever shown.
                (None, false) => nothing_visible(),
            };
            let roles = identity.as_ref().map(|i| i.roles).unwrap_or_default();
            let filtering = filter::apply(policy, &visibility, works, roles, response);
            let (filtered, outcome) = tokio::time::timeout(upstream.timeout(), filtering)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout {
                    api: runtime.config.apis[route.api].name.clone(),
                    timeout: upstream.timeout(),
                })?
                .map_err(ProxyError::Filter)?;
            log.filter_us = Some(outcome.elapsed.as_micros() as u64);
            for (label, n) in [("kept", outcome.kept), ("dropped", outcome.dropped)] {
                self.metrics
                    .filtered_rows
                    .with_label_values(&[&*route.id, label])
                    .inc_by(n);
            }
            return Ok(filtered.map(Either::Right));
        }
        if let (Some(created), Some(request_body), Some(store), Some(promoter)) = (
            &route.creates_work,
            facts_body.as_deref(),
            &self.grants,
            decision.acting_organisation,
        ) && response.status().is_success()
        {
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, CREATED_RESPONSE_LIMIT)
                .collect()
                .await
                .map_err(|_| Reason::UpstreamUnavailable)?
                .to_bytes();
            remember_created_work(store, created, promoter, request_body, &body);
            return Ok(Response::from_parts(parts, Either::Right(Full::new(body))));
        }
        Ok(response.map(Either::Left))
    }

    /// Rejects a request that never reaches the pipeline (the listener's framing guard): mints
    /// a decision id and counts the decision as unmatched.
    pub fn reject_before_routing(
        &self,
        method: &http::Method,
        reason: Reason,
    ) -> Response<ProxyBody> {
        let decision_id = self.ids.next();
        self.count(UNMATCHED, reason, false);
        let mut log = DecisionRecord::new(&decision_id, method, Instant::now());
        log.reason = Some(reason);
        log.status = reason.status().as_u16();
        let sample_rate = self.runtime.load().config.decision_log.allow_sample_rate;
        decision_log::emit(&log, sample_rate);
        error::rejection(reason, &decision_id).map(Either::Right)
    }

    /// Public routes need no identity; every other route needs a verified token.
    async fn authenticate(
        &self,
        route: &Route,
        headers: &http::HeaderMap,
        now: u64,
    ) -> Result<Option<Arc<Identity>>, ProxyError> {
        if route.rule.allow == Allow::Public {
            return Ok(None);
        }
        if !self.auth.ready() {
            return Err(Reason::KeysUnavailable.into());
        }
        match self.auth.authenticate(headers, now).await {
            Ok(identity) => Ok(Some(identity)),
            Err(e) => Err(e.reason().into()),
        }
    }

    fn snapshot_for(&self, identity: Option<&Identity>) -> Result<Option<Arc<Snapshot>>, Reason> {
        match (&self.grants, identity) {
            (Some(store), Some(_)) => store.current(SystemTime::now()).map(Some),
            _ => Ok(None),
        }
    }

    fn count(&self, route: &str, reason: Reason, shadow: bool) {
        let decision = match (reason.is_allow(), shadow) {
            (true, _) => "allow",
            (false, true) => "shadow_deny",
            (false, false) => "deny",
        };
        self.metrics
            .decisions
            .with_label_values(&[route, decision, reason.as_str()])
            .inc();
    }
}

/// Visibility that keeps no row at all.
fn nothing_visible() -> Visibility {
    Visibility::Workstreams {
        organisation: SwaCode::parse("0000").unwrap_or_else(|| unreachable!("valid code")),
        readable: Vec::new(),
    }
}

/// A work-creating response is read whole to learn the new reference; it is small JSON.
const CREATED_RESPONSE_LIMIT: usize = 1 << 20;

/// After a successful create, the new work goes into the overlay so its creator can act on it
/// before the next snapshot. The promoter is the acting organisation the decision allowed.
fn remember_created_work(
    store: &GrantsStore,
    created: &crate::config::raw::RawCreatesWork,
    promoter: crate::grants::codes::SwaCode,
    request_body: &[u8],
    response_body: &[u8],
) {
    let request: serde_json::Value = serde_json::from_slice(request_body).unwrap_or_default();
    let response: serde_json::Value = serde_json::from_slice(response_body).unwrap_or_default();
    let text = |v: &serde_json::Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
    };
    let reference = text(&response, &created.reference);
    let authority = text(&request, &created.highway_authority)
        .and_then(|s| crate::grants::codes::SwaCode::parse(&s));
    let workstream = text(&request, &created.workstream)
        .and_then(|s| crate::grants::codes::Workstream::parse(&s));
    match (reference, authority, workstream) {
        (Some(reference), Some(highway_authority), Some(workstream)) => {
            store.created().insert(
                &reference,
                crate::grants::snapshot::WorkInfo {
                    promoter,
                    highway_authority,
                    workstream,
                },
            );
        }
        _ => tracing::warn!(
            "created work not remembered: reference, authority or workstream missing"
        ),
    }
}

/// Metric label for requests that matched no route (bounded: never the raw path).
const UNMATCHED: &str = "_unmatched";

/// Reads the request body only when the rule takes a field from it; otherwise the body streams
/// to the upstream untouched (still size-capped).
async fn read_body_if_needed(
    route: &Route,
    body: Incoming,
    max_body: u64,
) -> Result<(Option<Bytes>, RequestBody), ProxyError> {
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
    Ok((Some(bytes.clone()), Either::Right(Full::new(bytes))))
}

/// Gathers the request facts the rule names, then runs the pure decision.
fn decide(
    matched: &RouteMatch<'_, '_>,
    identity: Option<&Identity>,
    works: Option<Works<'_>>,
    target: &Target<'_>,
    body: Option<&[u8]>,
    now: u64,
) -> Result<Decision, ProxyError> {
    let query: Vec<(Cow<'_, str>, Cow<'_, str>)> = target
        .query
        .map(|q| normalize::query_pairs(q).collect())
        .unwrap_or_default();
    let swa_code = swa_code(&query);
    let body_value;
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
            let mut values = query.iter().filter(|(k, _)| k == &**name);
            match (values.next(), values.next()) {
                (Some((_, v)), None) => Some(Cow::Borrowed(&**v)),
                (Some(_), Some(_)) => return Err(Reason::BadQuery.into()),
                (None, _) => None,
            }
        }
        Some(ValueSource::Body(pointer)) => {
            body_value = body
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .ok_or(Reason::BadBody)?;
            match body_value.pointer(pointer) {
                Some(serde_json::Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
                _ => return Err(Reason::BadBody.into()),
            }
        }
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

fn swa_code<'q>(query: &'q [(Cow<'_, str>, Cow<'_, str>)]) -> SwaCodeParam<'q> {
    let mut codes = query.iter().filter(|(k, _)| k == "swaCode");
    match (codes.next(), codes.next()) {
        (None, _) => SwaCodeParam::Absent,
        (Some((_, v)), None) => SwaCodeParam::One(v),
        (Some(_), Some(_)) => SwaCodeParam::Repeated,
    }
}

/// Identity is ours: strip what the client claimed, hop-by-hop headers, then set ours.
fn prepare_upstream_headers(
    parts: &mut http::request::Parts,
    conn: ConnInfo,
    identity: Option<&Identity>,
    decision: &Decision,
    decision_id: &str,
) {
    let h = &mut parts.headers;
    headers::strip_hop_by_hop(h);
    headers::strip_identity(h);
    // HTTP/2 clients send `:authority` instead of Host; the upstream still sees their host.
    if !h.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        h.insert(header::HOST, v);
    }
    let mut set = |name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(headers::DECISION_ID, decision_id);
    if let Some(id) = identity {
        set(headers::USER, &id.subject);
        set(headers::ORGANISATION, &id.organisation);
    }
    if let Some(acting) = decision.acting_organisation {
        set(headers::ACTING_ORGANISATION, acting.as_str());
    }
    if let Some(id) = identity
        && let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(id.roles.header_value()))
    {
        h.insert(headers::ROLES, v);
    }
    headers::append_forwarded(h, conn.peer.ip(), conn.tls);
    parts.version = http::Version::HTTP_11;
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "1xx",
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Decision ids: a random per-process prefix and a counter, unique without coordination.
struct DecisionIds {
    prefix: u32,
    counter: AtomicU64,
}

impl DecisionIds {
    fn new() -> DecisionIds {
        DecisionIds {
            prefix: rand::random(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:012x}", self.prefix, n)
    }
}
