//! The request pipeline, one named phase after another:
//! check → route → authenticate → authorize (gather facts, decide) → forward → respond.
//! Every phase returns `Result<_, ProxyError>`; `handle` turns an error into the rejection
//! response in one place (`error::rejection`).

mod body;
mod check;
mod decide;
mod facts;
mod ids;
mod linger;
mod query;
mod respond;

pub use check::{Allowed, CheckAnswer, CheckRequest};
pub use facts::authorize;
pub use ids::unix_now;
use ids::{DecisionIds, InFlight};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use crate::listener::ClientBody;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Either, Full, Limited};

use crate::authn::Authenticator;
use crate::authn::identity::Identity;
use crate::authz::Visibility;
use crate::authz::rule::Allow;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{self, ProxyError};
use crate::filter;
use crate::forward::body_timeout::TimedBody;
use crate::forward::{RequestBody, Upstream, UpstreamBody, headers};
use crate::grants::overlay::Works;
use crate::grants::snapshot::Snapshot;
use crate::grants::store::GrantsStore;
use crate::listener::ConnInfo;
use crate::ratelimit::RateLimiter;
use crate::reason::Reason;
use crate::route::Route;
use crate::telemetry::decision_log::{self, DecisionRecord};
use crate::telemetry::events::RowOutcome;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::otel::{Span, Tracer};
use crate::telemetry::route_metrics::{Applied, RouteMetrics};

/// What the client receives: the upstream's streamed body, or a body we built.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// Everything derived from one config, swapped whole on reload.
pub struct Runtime {
    pub config: Config,
    pub upstreams: Vec<Upstream>,
    /// None without `rate_limit`; a reload with the same rates keeps the same buckets.
    pub limiter: Option<Arc<RateLimiter>>,
    /// Indexed by `Route::index`.
    route_metrics: Vec<RouteMetrics>,
}

impl Runtime {
    pub fn new(config: Config, metrics: &Metrics) -> Runtime {
        // The environment was checked at start (`app`); a reload keeps its override.
        let http1 =
            crate::listener::native::server(config.runtime.http1).unwrap_or(config.runtime.http1);
        let native = http1 == crate::listener::native::Http1Server::Native;
        let upstreams = config
            .apis
            .iter()
            .map(|api| Upstream::new(api, native))
            .collect();
        let limiter = config
            .rate_limit
            .as_ref()
            .and_then(RateLimiter::new)
            .map(Arc::new);
        let route_metrics = config
            .router
            .routes()
            .iter()
            .map(|r| RouteMetrics::new(r.id.clone(), r.response.is_some(), metrics))
            .collect();
        Runtime {
            config,
            upstreams,
            limiter,
            route_metrics,
        }
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
    /// Set when shutdown begins: readiness fails so traffic moves elsewhere during the drain.
    draining: AtomicBool,
    /// What rate limits, token times and snapshot freshness are judged at.
    pub clock: Clock,
    /// Records decided requests for the snapshot guard; None without grants.
    pub guard: Option<Arc<crate::guard::Guard>>,
    /// Set at start when `otel` is configured.
    pub tracer: std::sync::OnceLock<Tracer>,
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
            draining: AtomicBool::new(false),
            clock: Clock::system(),
            guard: None,
            tracer: std::sync::OnceLock::new(),
        }
    }

    /// The same gateway judging time by `clock` (give its grants store the same one).
    pub fn with_clock(mut self, clock: Clock) -> Gateway {
        self.clock = clock;
        self
    }

    pub fn with_guard(mut self, guard: Option<Arc<crate::guard::Guard>>) -> Gateway {
        self.guard = guard;
        self
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// What keeps the sidecar from being ready (empty when ready).
    pub fn not_ready(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.draining.load(Ordering::Acquire) {
            missing.push("shutting down");
        }
        if !self.auth.ready() {
            missing.push("signing keys not loaded");
        }
        if let Some(grants) = &self.grants
            && !grants.ready(self.clock.now())
        {
            missing.push("grants snapshot missing or stale");
        }
        missing
    }

    /// Handles one request; never fails: errors become rejection responses here.
    pub async fn handle(
        &self,
        conn: ConnInfo,
        request: Request<ClientBody>,
    ) -> Response<ProxyBody> {
        // The clocks are read here once each; the phases take their times from `log`.
        let started = Instant::now();
        let at = SystemTime::now();
        // A guard, so a request whose client goes away mid-flight is still counted out.
        let _in_flight = InFlight::enter(&self.metrics.requests_in_flight);
        // One load per request: every phase sees the same config version.
        let runtime = self.runtime.load_full();
        let mut log = DecisionRecord::new(self.ids.next(at), request.method(), started, at);
        log.trace = self.begin_span(request.headers(), "proxy");
        let version = request.version();
        let result = self.phases(&runtime, conn, request, &mut log).await;
        let response = match result {
            Ok(response) => {
                log.status = response.status().as_u16();
                decision_log::emit(&log, runtime.config.decision_log.allow_sample_rate);
                response
            }
            Err(err) => {
                let reason = err.reason();
                let mut response = self.reject(&runtime, &mut log, &err);
                // A stalled body leaves the HTTP/1 stream at an unknown point: close it. On
                // HTTP/2 only the stream ends (its unread body is reset).
                if reason == Reason::BodyTimeout && version < http::Version::HTTP_2 {
                    response.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                response.map(Either::Right)
            }
        };
        self.end_span(&mut log);
        response
    }

    /// A span for the request when tracing is on.
    fn begin_span(&self, headers: &http::HeaderMap, mode: &'static str) -> Option<Box<Span>> {
        self.tracer
            .get()
            .map(|_| Box::new(Span::begin(headers, mode)))
    }

    fn end_span(&self, log: &mut DecisionRecord) {
        if let Some(tracer) = self.tracer.get() {
            tracer.finish(log);
        }
    }

    /// Logs, counts and answers a failed request (proxy and check mode alike).
    fn reject(
        &self,
        runtime: &Runtime,
        log: &mut DecisionRecord,
        err: &ProxyError,
    ) -> Response<Full<Bytes>> {
        let reason = err.reason();
        if !matches!(err, ProxyError::Rejected(_) | ProxyError::Body(_)) {
            tracing::warn!(decision_id = %log.decision_id, error = %err, source = ?std::error::Error::source(err), "request failed");
        }
        if log.reason.is_none() {
            // Failed before a decision (checks, routing, authentication).
            log.reason = Some(reason);
            self.count(log.route.as_deref().unwrap_or(UNMATCHED), reason, false);
        }
        log.status = reason.status().as_u16();
        decision_log::emit(log, runtime.config.decision_log.allow_sample_rate);
        error::error_response(err, &log.decision_id)
    }

    /// The phases in order. Each returns early with the reason it stopped.
    async fn phases(
        &self,
        runtime: &Runtime,
        conn: ConnInfo,
        request: Request<ClientBody>,
        log: &mut DecisionRecord,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        // Refused unread, an HTTP/1 body is drained so the client can read the answer. Not
        // when the client waits for `100 Continue`: refused, it sends no body at all.
        let linger = (parts.version < http::Version::HTTP_2
            && !parts.headers.contains_key(http::header::EXPECT))
        .then_some(runtime.config.listen.body_read_timeout);
        let source = decide::BodySource::Stream {
            body: linger::Lingering::new(body, linger),
            budget: &conn.body_budget,
        };
        let decide::Decided {
            route,
            target,
            identity,
            decision,
            snapshot,
            read: request_body,
            unread,
        } = self
            .decide_request(
                runtime,
                Some(conn.peer.ip()),
                &parts,
                source,
                decide::Mode::Proxy,
                log,
            )
            .await?;
        let works = self.works(snapshot.as_deref());
        let body = match (&request_body, unread) {
            (Some(read), _) => Either::Right(Full::new(read.bytes.clone())),
            (None, Some(unread)) => {
                let max_body = runtime.config.listen.max_body_bytes;
                let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
                let stall = runtime.config.listen.body_read_timeout;
                Either::Left(TimedBody::new(Limited::new(unread, limit), stall))
            }
            (None, None) => Either::Right(Full::new(Bytes::new())),
        };
        let request_json = request_body.as_ref().map(|b| &b.json);

        // --- forward ---
        let upstream = &runtime.upstreams[route.api];
        let uri = upstream
            .uri_for(&parts.uri, target.path, target.query)
            .map_err(ProxyError::Rejected)?;
        let decision_id = log.decision_id.header_value();
        let hop = headers::Hop {
            client: &conn.peer_value,
            tls: conn.tls,
            peer_trusted: runtime.config.listen.trusted(conn.peer.ip()),
        };
        headers::rewrite_request(
            &mut parts,
            hop,
            identity.as_deref(),
            decision.acting_organisation,
            &decision_id,
        );
        parts.uri = uri;
        if let Some(span) = &log.trace {
            span.context.inject(&mut parts.headers);
        }
        if route.response.is_some() {
            filter::prepare_request_headers(&mut parts.headers);
        }
        let is_head = parts.method == http::Method::HEAD;
        let route_metrics = &runtime.route_metrics[route.index];
        // Timed from the decision, a microsecond earlier: no clock read of its own.
        let sent = log.decided.unwrap_or(log.started);
        let mut response = forward(
            upstream,
            route_metrics,
            Request::from_parts(parts, body),
            sent,
        )
        .await?;

        // --- respond ---
        headers::strip_hop_by_hop(response.headers_mut());
        response
            .headers_mut()
            .insert(headers::DECISION_ID, decision_id);
        if route.response.is_some() && is_head {
            // No body to filter, but the headers are still this caller's alone.
            filter::per_caller(response.headers_mut());
        }
        if let Some(policy) = &route.response
            && !is_head
        {
            let visibility = match (&decision.visibility, decision.allowed()) {
                (Some(v), _) => v.clone(),
                // Redaction-only routes: rows are not filtered.
                (None, true) => Visibility::All,
                // Shadow-denied: forwarded, but no row the rule refused is ever shown.
                (None, false) => respond::nothing_visible(),
            };
            let roles = identity.as_ref().map(|i| i.roles).unwrap_or_default();
            // Bounded like a streamed body: each wait for more bytes by `body_timeout`.
            // Boxed, as the other cold paths here: the request future is moved by value on
            // each await, so what only some routes run should not size it for all.
            let (filtered, outcome) =
                Box::pin(filter::apply(policy, &visibility, works, roles, response))
                    .await
                    .map_err(ProxyError::Filter)?;
            log.filter_us = Some(u64::try_from(outcome.elapsed.as_micros()).unwrap_or(u64::MAX));
            route_metrics.rows(RowOutcome::Kept).inc_by(outcome.kept);
            route_metrics
                .rows(RowOutcome::Dropped)
                .inc_by(outcome.dropped);
            return Ok(filtered.map(Either::Right));
        }
        if let (Some(created), Some(request_body), Some(store), Some(promoter)) = (
            &route.creates_work,
            request_json,
            &self.grants,
            decision.acting_organisation,
        ) && response.status().is_success()
        {
            let (parts, body) = response.into_parts();
            let body = Box::pin(Limited::new(body, respond::CREATED_RESPONSE_LIMIT).collect())
                .await
                .map_err(|source| ProxyError::UpstreamBody {
                    api: upstream.name().to_owned(),
                    source,
                })?
                .to_bytes();
            respond::remember_created_work(store, created, promoter, request_body, &body);
            return Ok(Response::from_parts(parts, Either::Right(Full::new(body))));
        }
        Ok(response.map(Either::Left))
    }

    /// Logs and counts a decision (the pre-body one when it denies, else the whole one).
    fn record(
        &self,
        runtime: &Runtime,
        route: &Route,
        log: &mut DecisionRecord,
        decision: &crate::authz::Decision,
        shadow: bool,
    ) {
        log.set_decision(
            decision.reason,
            decision.acting_organisation,
            shadow && !decision.allowed(),
        );
        if let Some(integrator) = log.integrator.as_deref() {
            let label = self
                .grants
                .as_deref()
                .and_then(|g| g.current(self.clock.at(log.at)).ok())
                .map_or("other", |s| s.integrator_label(integrator));
            let applied = Applied::of(decision.reason, shadow).as_str();
            self.metrics
                .integrator_decisions
                .with_label_values(&[label, applied])
                .inc();
        }
        let decided = Instant::now();
        log.decided = Some(decided);
        self.metrics
            .decision_duration
            .observe((decided - log.started).as_secs_f64());
        runtime.route_metrics[route.index]
            .decision(decision.reason, Applied::of(decision.reason, shadow))
            .inc();
    }

    /// Rejects a request that never reaches the pipeline (the listener's framing guard): mints
    /// a decision id and counts the decision as unmatched. It spends a per-IP token like any
    /// other request, so a flood of malformed requests is limited too.
    pub fn reject_before_routing(
        &self,
        conn: &ConnInfo,
        method: &http::Method,
        reason: Reason,
    ) -> Response<ProxyBody> {
        let runtime = self.runtime.load();
        let error = match runtime
            .limiter
            .as_ref()
            .map(|l| l.check_ip(conn.peer.ip(), self.clock.instant()))
        {
            Some(Err(limited)) => limited.into(),
            _ => ProxyError::Rejected(reason),
        };
        let reason = error.reason();
        self.count(UNMATCHED, reason, false);
        let at = SystemTime::now();
        let mut log = DecisionRecord::new(self.ids.next(at), method, Instant::now(), at);
        log.reason = Some(reason);
        log.status = reason.status().as_u16();
        decision_log::emit(&log, runtime.config.decision_log.allow_sample_rate);
        error::error_response(&error, &log.decision_id).map(Either::Right)
    }

    /// Public routes need no identity; every other route needs a verified token, and then
    /// the per-user rate limit applies.
    async fn authenticate(
        &self,
        runtime: &Runtime,
        route: &Route,
        headers: &http::HeaderMap,
        now: u64,
        log: &mut DecisionRecord,
    ) -> Result<Option<Arc<Identity>>, ProxyError> {
        if route.rule.allow == Allow::Public {
            return Ok(None);
        }
        if !self.auth.ready() {
            return Err(Reason::KeysUnavailable.into());
        }
        let identity = self
            .auth
            .authenticate(headers, now)
            .await
            .map_err(|e| e.reason())?;
        log.user = Some(identity.subject.clone());
        log.organisation = Some(identity.organisation.clone());
        log.integrator = identity.integrator.clone();
        if let Some(limiter) = &runtime.limiter {
            limiter
                .check_user(&identity.subject, self.clock.instant())
                .map_err(ProxyError::from)?;
        }
        Ok(Some(identity))
    }

    /// The works a rule looks up: the snapshot's, plus those created since it was published.
    fn works<'a>(&'a self, snapshot: Option<&'a Snapshot>) -> Option<Works<'a>> {
        snapshot
            .zip(self.grants.as_deref())
            .map(|(snapshot, store)| Works {
                snapshot,
                created: store.created(),
            })
    }

    /// The snapshot in force at `now` (this gateway's clock).
    fn snapshot_for(
        &self,
        identity: Option<&Identity>,
        now: SystemTime,
    ) -> Result<Option<Arc<Snapshot>>, Reason> {
        match (&self.grants, identity) {
            (Some(store), Some(_)) => store.current(now).map(Some),
            _ => Ok(None),
        }
    }

    /// Counts a rejection made before any rule was applied (checks, routing, authentication).
    fn count(&self, route: &str, reason: Reason, shadow: bool) {
        let applied = Applied::of(reason, shadow).as_str();
        self.metrics
            .decisions
            .with_label_values(&[route, applied, reason.as_str()])
            .inc();
    }
}

/// Sends to the upstream, timing it per route and status class from `started`.
async fn forward(
    upstream: &Upstream,
    metrics: &RouteMetrics,
    request: Request<RequestBody>,
    started: Instant,
) -> Result<Response<UpstreamBody>, ProxyError> {
    let sent = upstream.send(request, started).await;
    let status = sent.as_ref().ok().map(|r| r.status().as_u16());
    metrics
        .upstream(status)
        .observe(started.elapsed().as_secs_f64());
    sent.map_err(ProxyError::from)
}

/// Metric label for requests that matched no route (bounded: never the raw path).
const UNMATCHED: &str = "_unmatched";

impl crate::listener::Handler for Gateway {
    type Body = ProxyBody;

    fn handle(
        &self,
        conn: ConnInfo,
        request: Request<ClientBody>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send {
        Gateway::handle(self, conn, request)
    }

    fn refuse(&self, conn: &ConnInfo, method: &Method, reason: Reason) -> Response<ProxyBody> {
        self.reject_before_routing(conn, method, reason)
    }
}
