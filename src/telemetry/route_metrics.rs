//! Metric handles of one route, resolved once per config. `with_label_values` hashes the label
//! values and takes the metric family's lock on every call; the request path instead indexes a
//! route's own slots, each filled the first time that series is used (so a route's /metrics
//! lines appear only once it has traffic), except a filtered route's rows, at zero from start.

use std::sync::{Arc, OnceLock};

use prometheus::{Histogram, IntCounter};

use super::events::{RowOutcome, StatusClass};
use super::metrics::Metrics;
use crate::reason::Reason;

/// How a decision was applied (the `decision` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Allow,
    Deny,
    ShadowDeny,
}

impl Applied {
    pub fn of(reason: Reason, shadow: bool) -> Applied {
        match (reason.is_allow(), shadow) {
            (true, _) => Applied::Allow,
            (false, true) => Applied::ShadowDeny,
            (false, false) => Applied::Deny,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Allow => "allow",
            Applied::Deny => "deny",
            Applied::ShadowDeny => "shadow_deny",
        }
    }
}

pub struct RouteMetrics {
    route: Arc<str>,
    metrics: Metrics,
    /// Indexed by `reason as usize * 3 + applied as usize`.
    decisions: Box<[OnceLock<IntCounter>]>,
    upstream: [OnceLock<Histogram>; 6],
    /// kept, dropped.
    rows: [OnceLock<IntCounter>; 2],
}

impl RouteMetrics {
    /// A route with a response policy (`filtered`) has its row series at zero from the start.
    pub fn new(route: Arc<str>, filtered: bool, metrics: &Metrics) -> RouteMetrics {
        let m = RouteMetrics {
            route,
            metrics: metrics.clone(),
            decisions: (0..Reason::ALL.len() * 3)
                .map(|_| OnceLock::new())
                .collect(),
            upstream: Default::default(),
            rows: Default::default(),
        };
        if filtered {
            for &outcome in RowOutcome::ALL {
                m.rows(outcome);
            }
        }
        m
    }

    pub fn decision(&self, reason: Reason, applied: Applied) -> &IntCounter {
        self.decisions[reason as usize * 3 + applied as usize].get_or_init(|| {
            self.metrics.decisions.with_label_values(&[
                &*self.route,
                applied.as_str(),
                reason.as_str(),
            ])
        })
    }

    /// The upstream duration histogram for an HTTP status, or for a failure (`None`).
    pub fn upstream(&self, status: Option<u16>) -> &Histogram {
        let class = match status {
            Some(200..=299) => StatusClass::Success,
            Some(300..=399) => StatusClass::Redirect,
            Some(400..=499) => StatusClass::ClientError,
            Some(500..=599) => StatusClass::ServerError,
            Some(_) => StatusClass::Informational,
            None => StatusClass::Failed,
        };
        self.upstream[class as usize].get_or_init(|| {
            self.metrics
                .upstream_duration
                .with_label_values(&[&*self.route, class.as_str()])
        })
    }

    pub fn rows(&self, outcome: RowOutcome) -> &IntCounter {
        self.rows[outcome as usize].get_or_init(|| {
            self.metrics
                .filtered_rows
                .with_label_values(&[&*self.route, outcome.as_str()])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_count_into_the_labelled_series() {
        let metrics = Metrics::new();
        let m = RouteMetrics::new("GetWork".into(), false, &metrics);
        m.decision(Reason::WorkstreamRead, Applied::Allow).inc();
        m.decision(Reason::WorkstreamRead, Applied::Allow).inc();
        m.decision(Reason::WorkstreamNoAccess, Applied::ShadowDeny)
            .inc();
        m.upstream(Some(503)).observe(0.1);
        m.upstream(None).observe(0.1);
        m.rows(RowOutcome::Dropped).inc_by(7);
        let text = metrics.render();
        for line in [
            r#"streetgate_decisions_total{decision="allow",reason="workstream_read",route="GetWork"} 2"#,
            r#"streetgate_decisions_total{decision="shadow_deny",reason="workstream_no_access",route="GetWork"} 1"#,
            r#"streetgate_upstream_duration_seconds_count{route="GetWork",status_class="5xx"} 1"#,
            r#"streetgate_upstream_duration_seconds_count{route="GetWork",status_class="error"} 1"#,
            r#"streetgate_filtered_rows_total{outcome="dropped",route="GetWork"} 7"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains(r#"status_class="2xx""#),
            "series appear only once used"
        );
    }
}
