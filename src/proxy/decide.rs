//! The pipeline up to and including the decision, shared by proxy mode (`Gateway::handle`) and
//! check mode (`Gateway::check`, the ext_authz / forward-auth listener): checks, route,
//! authenticate, gather facts, decide, record. Both modes therefore give the same decisions
//! with the same reasons, metrics and decision log.

use std::net::IpAddr;
use std::sync::Arc;

use crate::listener::ClientBody;
use bytes::Bytes;
use http::request::Parts;
use tokio::sync::Semaphore;

use super::body::{self, ReadBody};
use super::{Gateway, Runtime, facts};
use crate::authn::identity::Identity;
use crate::authz::Decision;
use crate::body::{media, strict};
use crate::error::ProxyError;
use crate::grants::snapshot::Snapshot;
use crate::normalize::{self, Target};
use crate::reason::Reason;
use crate::route::Route;
use crate::telemetry::decision_log::DecisionRecord;

/// Where the request body comes from.
pub(super) enum BodySource<'c> {
    /// Proxy mode: the client's stream, read only when the rule needs it, bounded by the
    /// connection's buffered-body budget.
    Stream {
        body: super::linger::Lingering,
        budget: &'c Arc<Semaphore>,
    },
    /// Check mode: the bytes the fronting proxy sent along (none when it sends no body);
    /// `cut` is why they are not the whole body (cut short, stalled, never sent), if so.
    Given { bytes: Bytes, cut: Option<Reason> },
}

/// Which listener asked: check mode cannot filter responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Proxy,
    Check,
}

/// What the pipeline decided, and what forwarding needs from it.
pub(super) struct Decided<'r, 'p> {
    pub route: &'r Route,
    pub target: Target<'p>,
    pub identity: Option<Arc<Identity>>,
    pub decision: Decision,
    pub snapshot: Option<Arc<Snapshot>>,
    /// The body the rule read, if it read one.
    pub read: Option<ReadBody>,
    /// Proxy mode: the client's body, unread (the rule needs none).
    pub unread: Option<ClientBody>,
}

impl Gateway {
    /// Runs the pipeline up to and including the decision and records it (metrics, log).
    /// `limit_ip` is the address the per-IP rate limit is charged to (None: not charged).
    /// A denial that is not shadowed comes back as `Err` with its reason.
    pub(super) async fn decide_request<'r, 'p>(
        &self,
        runtime: &'r Runtime,
        limit_ip: Option<IpAddr>,
        parts: &'p Parts,
        body: BodySource<'_>,
        mode: Mode,
        log: &mut DecisionRecord,
    ) -> Result<Decided<'r, 'p>, ProxyError> {
        // --- limit, check, route --- (a flood of bad requests is limited too)
        if let (Some(limiter), Some(ip)) = (&runtime.limiter, limit_ip) {
            limiter
                .check_ip(ip, self.clock.instant())
                .map_err(ProxyError::from)?;
        }
        let target = normalize::check(&parts.method, &parts.uri, parts.version, &parts.headers)?;
        let matched = runtime
            .config
            .router
            .lookup(&parts.method, target.path)
            .ok_or(Reason::RouteNotFound)?;
        let route = matched.route;
        log.route = Some(route.id.clone());

        // --- authenticate ---
        // The request's time by this gateway's clock (tests move it): token times and snapshot
        // freshness are judged at it.
        let judged = self.clock.at(log.at);
        let now = judged
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let identity = self
            .authenticate(runtime, route, &parts.headers, now, log)
            .await?;

        // --- authorize ---
        let max_body = runtime.config.listen.max_body_bytes;
        if facts::content_length(&parts.headers).is_some_and(|len| len > max_body) {
            return Err(Reason::BodyTooLarge.into());
        }
        // Fail closed: with grants configured, no protected request is decided without them
        // (revocation and suspension live in the snapshot).
        let snapshot = self.snapshot_for(identity.as_deref(), judged)?;
        if let Some(span) = log.trace.as_mut() {
            span.snapshot_version = snapshot.as_ref().map(|s| s.version);
        }
        let works = self.works(snapshot.as_deref());
        let shadow = runtime.config.shadow || route.shadow;
        let needs_body = route.rule.reads_body() || route.creates_work.is_some();
        if needs_body {
            // Decide all that can be decided before touching the body: a caller refused here
            // never gets its body read or buffered.
            let early = facts::decide_before_body(&matched, identity.as_deref(), works, &target)?;
            if !early.allowed() && !shadow {
                self.record(runtime, route, log, &early, shadow);
                return Err(early.reason.into());
            }
        }
        let max_bytes = usize::try_from(max_body).unwrap_or(usize::MAX);
        let (read, unread) = match body {
            BodySource::Stream { body, budget } if needs_body => {
                let bounds = body::Bounds {
                    max_bytes,
                    timeout: runtime.config.listen.body_read_timeout,
                    budget,
                };
                // Boxed: only body-reading routes need this future's space.
                let read = Box::pin(body::read(&parts.headers, body.take(), bounds)).await?;
                (Some(read), None)
            }
            BodySource::Stream { body, .. } => (None, Some(body.take())),
            BodySource::Given { bytes, cut } if needs_body => {
                if let Some(reason) = cut {
                    return Err(reason.into());
                }
                if bytes.len() > max_bytes {
                    return Err(Reason::BodyTooLarge.into());
                }
                media::check_json(&parts.headers)?;
                let json = strict::parse(&bytes)?;
                let read = ReadBody {
                    json,
                    bytes,
                    _budget: None,
                };
                (Some(read), None)
            }
            BodySource::Given { .. } => (None, None),
        };
        let mut decision = facts::decide_and_sample(
            &matched,
            identity.as_ref(),
            works,
            &target,
            read.as_ref().map(|b| &b.json),
            now,
            self.guard.as_deref(),
        )?;
        // Check mode never sees the response, so it cannot filter or redact it.
        if mode == Mode::Check
            && decision.allowed()
            && route.response.is_some()
            && !route.unfiltered_in_check_mode
        {
            decision.reason = Reason::FilterRequiresProxy;
        }
        self.record(runtime, route, log, &decision, shadow);
        if !decision.allowed() && !shadow {
            return Err(decision.reason.into());
        }
        Ok(Decided {
            route,
            target,
            identity,
            decision,
            snapshot,
            read,
            unread,
        })
    }
}
