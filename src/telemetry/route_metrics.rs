//! Metric handles of one route, resolved once per config. `with_label_values` hashes the label
//! values and takes the metric family's lock on every call; the request path instead indexes a
//! route's own slots, each filled the first time that series is used (so a route's /metrics
//! lines appear only once it has traffic).

use std::sync::{Arc, OnceLock};

use prometheus::{Histogram, IntCounter};

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

/// The `status_class` label values of `streetgate_upstream_duration_seconds`.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

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
    pub fn new(route: Arc<str>, metrics: &Metrics) -> RouteMetrics {
        RouteMetrics {
            route,
            metrics: metrics.clone(),
            decisions: (0..Reason::ALL.len() * 3)
                .map(|_| OnceLock::new())
                .collect(),
            upstream: Default::default(),
            rows: Default::default(),
        }
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
            Some(200..=299) => 1,
            Some(300..=399) => 2,
            Some(400..=499) => 3,
            Some(500..=599) => 4,
            Some(_) => 0,
            None => 5,
        };
        self.upstream[class].get_or_init(|| {
            self.metrics
                .upstream_duration
                .with_label_values(&[&*self.route, STATUS_CLASSES[class]])
        })
    }

    pub fn rows(&self, kept: bool) -> &IntCounter {
        let (slot, label) = if kept { (0, "kept") } else { (1, "dropped") };
        self.rows[slot].get_or_init(|| {
            self.metrics
                .filtered_rows
                .with_label_values(&[&*self.route, label])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_count_into_the_labelled_series() {
        let metrics = Metrics::new();
        let m = RouteMetrics::new("GetWork".into(), &metrics);
        m.decision(Reason::WorkstreamRead, Applied::Allow).inc();
        m.decision(Reason::WorkstreamRead, Applied::Allow).inc();
        m.decision(Reason::WorkstreamNoAccess, Applied::ShadowDeny)
            .inc();
        m.upstream(Some(503)).observe(0.1);
        m.upstream(None).observe(0.1);
        m.rows(false).inc_by(7);
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
