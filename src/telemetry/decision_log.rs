//! The decision log: one structured JSON line per decision (target `streetgate::decision`).
//! Denials, and every decision made through a third-party integrator, are always logged;
//! other allows are sampled. The token itself never appears.

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
    /// The third-party integrator the token acts through: always logged.
    pub integrator: Option<Arc<str>>,
    pub reason: Option<Reason>,
    pub shadow: bool,
    pub status: u16,
    /// Time spent filtering the response body, when it was filtered.
    pub filter_us: Option<u64>,
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
            integrator: None,
            reason: None,
            shadow: false,
            status: 0,
            filter_us: None,
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
    if !kept(record, allow_sample_rate, rand::random::<f64>) {
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
        integrator = record.integrator.as_deref(),
        acting_organisation = record.acting_organisation.as_ref().map(SwaCode::as_str),
        decision,
        reason = reason.as_str(),
        latency_us = u64::try_from(record.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        status = record.status,
        filter_us = record.filter_us,
    );
}

/// Whether a decision is logged: denials always, allows made through an integrator always
/// (each must stay attributable), other allows at `allow_sample_rate`.
fn kept(record: &DecisionRecord, allow_sample_rate: f64, draw: impl FnOnce() -> f64) -> bool {
    let sampled = record.reason.is_some_and(Reason::is_allow) && record.integrator.is_none();
    !sampled || allow_sample_rate >= 1.0 || draw() < allow_sample_rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrator_allows_are_never_sampled_away() {
        let mut record = DecisionRecord::new("d".into(), &Method::GET, Instant::now());
        record.reason = Some(Reason::RoleGranted);
        assert!(!kept(&record, 0.0, || 0.5));
        assert!(kept(&record, 1.0, || 0.5));
        record.integrator = Some("acme".into());
        assert!(kept(&record, 0.0, || 0.99));
        record.reason = Some(Reason::IntegratorNotAgreed);
        record.integrator = None;
        assert!(kept(&record, 0.0, || 0.99));
    }
}
