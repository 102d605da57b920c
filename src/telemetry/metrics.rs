//! Every metric streetgate exports, registered in one place so names stay stable and labels stay
//! bounded (route ids from config and fixed enums only; never raw paths or user ids).

use super::events::{CacheLookup, ConfigReload, JwksRefresh, SnapshotDelta, SnapshotFetch};
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// route, decision (allow | deny | shadow_deny), reason.
    pub decisions: IntCounterVec,
    /// Authentication + authorization time, without the upstream.
    pub decision_duration: Histogram,
    /// route, status_class (2xx, 3xx, 4xx, 5xx, error).
    pub upstream_duration: HistogramVec,
    pub requests_in_flight: IntGauge,
    pub snapshot_version: IntGauge,
    pub snapshot_age_seconds: Gauge,
    /// result: ok | not_modified | error | invalid | refused (by the snapshot guard).
    pub snapshot_fetch: IntCounterVec,
    /// result: applied | refused | mismatched.
    pub snapshot_delta: IntCounterVec,
    /// result: ok | error | invalid | rate_limited.
    pub jwks_refresh: IntCounterVec,
    /// result: hit | miss.
    pub token_cache: IntCounterVec,
    /// result: ok | invalid | error.
    pub config_reload: IntCounterVec,
    /// route, outcome: kept | dropped.
    pub filtered_rows: IntCounterVec,
    /// Decisions on tokens acting through a third-party integrator, by integrator (a label the
    /// snapshot names, capped; others are `other`) and decision.
    pub integrator_decisions: IntCounterVec,
    /// worker: main-listener connections accepted by each worker thread.
    pub worker_connections: IntCounterVec,
    /// direction: allow_to_deny | deny_to_allow (snapshot guard replays).
    pub guard_flips: IntCounterVec,
    /// Version of a candidate snapshot the guard refused and that awaits acceptance; 0: none.
    pub guard_refused_version: IntGauge,
}

impl Metrics {
    /// A fresh registry with every metric registered; tests build their own.
    #[allow(
        clippy::expect_used,
        reason = "fixed definitions: one that fails is a bug that must stop start-up"
    )]
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            decisions: IntCounterVec::new(
                Opts::new("streetgate_decisions_total", "Authorization decisions."),
                &["route", "decision", "reason"],
            )
            .expect("valid metric"),
            decision_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "streetgate_decision_duration_seconds",
                    "Authentication and authorization time per request, upstream excluded.",
                )
                .buckets(vec![
                    0.000_001, 0.000_002, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1,
                    0.000_25, 0.000_5, 0.001, 0.005, 0.025, 0.1,
                ]),
            )
            .expect("valid metric"),
            upstream_duration: HistogramVec::new(
                HistogramOpts::new(
                    "streetgate_upstream_duration_seconds",
                    "Time from forwarding a request to the upstream's response head.",
                )
                .buckets(vec![
                    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ]),
                &["route", "status_class"],
            )
            .expect("valid metric"),
            requests_in_flight: IntGauge::new(
                "streetgate_requests_in_flight",
                "Requests being handled.",
            )
            .expect("valid metric"),
            snapshot_version: IntGauge::new(
                "streetgate_snapshot_version",
                "Version of the grants snapshot in force (0 before the first).",
            )
            .expect("valid metric"),
            snapshot_age_seconds: Gauge::new(
                "streetgate_snapshot_age_seconds",
                "Seconds since the last successful grants fetch.",
            )
            .expect("valid metric"),
            snapshot_fetch: IntCounterVec::new(
                Opts::new(
                    "streetgate_snapshot_fetch_total",
                    "Grants snapshot fetches.",
                ),
                &["result"],
            )
            .expect("valid metric"),
            snapshot_delta: IntCounterVec::new(
                Opts::new(
                    "streetgate_snapshot_delta_total",
                    "Grants deltas received, by what became of them.",
                ),
                &["result"],
            )
            .expect("valid metric"),
            jwks_refresh: IntCounterVec::new(
                Opts::new("streetgate_jwks_refresh_total", "JWKS refreshes."),
                &["result"],
            )
            .expect("valid metric"),
            token_cache: IntCounterVec::new(
                Opts::new(
                    "streetgate_token_cache_total",
                    "Verified-token cache lookups.",
                ),
                &["result"],
            )
            .expect("valid metric"),
            config_reload: IntCounterVec::new(
                Opts::new("streetgate_config_reload_total", "Config reloads."),
                &["result"],
            )
            .expect("valid metric"),
            filtered_rows: IntCounterVec::new(
                Opts::new(
                    "streetgate_filtered_rows_total",
                    "Response rows kept or dropped by filtering.",
                ),
                &["route", "outcome"],
            )
            .expect("valid metric"),
            integrator_decisions: IntCounterVec::new(
                Opts::new(
                    "streetgate_integrator_decisions_total",
                    "Decisions on tokens acting through a third-party integrator.",
                ),
                &["integrator", "decision"],
            )
            .expect("valid metric"),
            worker_connections: IntCounterVec::new(
                Opts::new(
                    "streetgate_worker_connections_total",
                    "Client connections accepted, per worker thread.",
                ),
                &["worker"],
            )
            .expect("valid metric"),
            guard_flips: IntCounterVec::new(
                Opts::new(
                    "streetgate_grants_guard_flips_total",
                    "Recent decisions that a new grants snapshot would flip, by direction.",
                ),
                &["direction"],
            )
            .expect("valid metric"),
            guard_refused_version: IntGauge::new(
                "streetgate_grants_guard_refused_version",
                "Version of a grants snapshot the guard refused, pending acceptance; 0 when none.",
            )
            .expect("valid metric"),
            registry,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(m.integrator_decisions.clone()),
            Box::new(m.decisions.clone()),
            Box::new(m.decision_duration.clone()),
            Box::new(m.upstream_duration.clone()),
            Box::new(m.requests_in_flight.clone()),
            Box::new(m.snapshot_version.clone()),
            Box::new(m.snapshot_age_seconds.clone()),
            Box::new(m.snapshot_fetch.clone()),
            Box::new(m.snapshot_delta.clone()),
            Box::new(m.jwks_refresh.clone()),
            Box::new(m.token_cache.clone()),
            Box::new(m.config_reload.clone()),
            Box::new(m.filtered_rows.clone()),
            Box::new(m.worker_connections.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        for c in [
            Box::new(m.guard_flips.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.guard_refused_version.clone()),
        ] {
            m.registry.register(c).expect("metric names are unique");
        }
        for direction in ["allow_to_deny", "deny_to_allow"] {
            m.guard_flips.with_label_values(&[direction]);
        }
        // Process-wide, like the stdout they describe (see `log_buffer`).
        for c in [
            &super::log_buffer::LINES_DROPPED,
            &super::log_buffer::WRITE_ERRORS,
        ] {
            m.registry
                .register(Box::new(IntCounter::clone(c)))
                .expect("metric names are unique");
        }
        // Fixed-enum series exist at 0 from the start, so `rate()` and `increase()` alerts see
        // the first failure instead of a series appearing out of nowhere.
        let enums: [(&IntCounterVec, Vec<&str>); 5] = [
            (
                &m.snapshot_fetch,
                labels(SnapshotFetch::ALL, |r| r.as_str()),
            ),
            (
                &m.snapshot_delta,
                labels(SnapshotDelta::ALL, |r| r.as_str()),
            ),
            (&m.jwks_refresh, labels(JwksRefresh::ALL, |r| r.as_str())),
            (&m.token_cache, labels(CacheLookup::ALL, |r| r.as_str())),
            (&m.config_reload, labels(ConfigReload::ALL, |r| r.as_str())),
        ];
        for (counter, results) in enums {
            for result in results {
                counter.with_label_values(&[result]);
            }
        }
        m
    }

    pub fn snapshot_fetched(&self, result: SnapshotFetch) {
        self.snapshot_fetch
            .with_label_values(&[result.as_str()])
            .inc();
    }

    pub fn snapshot_delta(&self, result: SnapshotDelta) {
        self.snapshot_delta
            .with_label_values(&[result.as_str()])
            .inc();
    }

    pub fn config_reloaded(&self, result: ConfigReload) {
        self.config_reload
            .with_label_values(&[result.as_str()])
            .inc();
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let families = self.registry.gather();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

fn labels<T: Copy>(all: &[T], label: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|&v| label(v)).collect()
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
