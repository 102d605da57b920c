//! The decision log: one structured JSON line per decision (target `streetgate::decision`).
//! Denials are always logged, allows sampled; the token itself never appears.

use std::sync::Arc;
use std::time::Instant;

use http::Method;

use super::route_metrics::Applied;
use crate::authz::Decision;
use crate::grants::codes::SwaCode;
use crate::reason::Reason;

/// What one request decided, filled in phase by phase.
pub struct DecisionRecord {
    pub decision_id: String,
    pub method: Method,
    pub started: Instant,
    pub route: Option<Arc<str>>,
    pub user: Option<Arc<str>>,
    pub organisation: Option<Arc<str>>,
    pub acting_organisation: Option<SwaCode>,
    pub reason: Option<Reason>,
    pub shadow: bool,
    pub status: u16,
    /// Time spent filtering the response body, when it was filtered.
    pub filter_us: Option<u64>,
    /// The request's OpenTelemetry span (with `otel` configured); logged as `trace_id`.
    pub trace: Option<Box<super::otel::Span>>,
}

impl DecisionRecord {
    pub fn new(decision_id: String, method: &Method, started: Instant) -> DecisionRecord {
        DecisionRecord {
            decision_id,
            method: method.clone(),
            started,
            route: None,
            user: None,
            organisation: None,
            acting_organisation: None,
            reason: None,
            shadow: false,
            status: 0,
            filter_us: None,
            trace: None,
        }
    }

    pub fn decide(&mut self, decision: &Decision, shadow: bool) {
        self.reason = Some(decision.reason);
        self.acting_organisation = decision.acting_organisation;
        self.shadow = shadow && !decision.allowed();
    }
}

pub fn emit(record: &DecisionRecord, allow_sample_rate: f64) {
    let Some(reason) = record.reason else { return };
    let allowed = reason.is_allow();
    if allowed && !(allow_sample_rate >= 1.0 || rand::random::<f64>() < allow_sample_rate) {
        return;
    }
    let decision = Applied::of(reason, record.shadow).as_str();
    tracing::info!(
        target: "streetgate::decision",
        decision_id = %record.decision_id,
        route = record.route.as_deref().unwrap_or("_unmatched"),
        method = %record.method,
        user = record.user.as_deref(),
        organisation = record.organisation.as_deref(),
        acting_organisation = record.acting_organisation.as_ref().map(SwaCode::as_str),
        decision,
        reason = reason.as_str(),
        latency_us = record.started.elapsed().as_micros() as u64,
        status = record.status,
        filter_us = record.filter_us,
        trace_id = record.trace.as_deref().map(super::otel::Span::trace_id),
    );
}
