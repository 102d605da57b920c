//! The publisher's own metrics (`streetgate_publish_*`), on its own registry: it never runs in
//! the same process as a sidecar.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct PublishMetrics {
    pub registry: Registry,
    pub versions_published: IntCounter,
    /// reason: invalid | not_newer | unreadable | error.
    pub drops_rejected: IntCounterVec,
    pub latest_version: IntGauge,
    pub retained_versions: IntGauge,
    /// kind (full | delta | version | delta_url | other), encoding, status.
    pub requests: IntCounterVec,
    /// kind: body bytes as sent (after compression).
    pub bytes_sent: IntCounterVec,
    pub long_polls_waiting: IntGauge,
    /// Deltas built: once per pair of versions, however many pollers ask for it.
    pub deltas_built: IntCounter,
    /// encoding (gzip | zstd): bodies compressed, once per body and encoding.
    pub compressions: IntCounterVec,
}

impl PublishMetrics {
    pub fn new() -> Result<PublishMetrics, prometheus::Error> {
        let registry = Registry::new();
        let m = PublishMetrics {
            versions_published: IntCounter::new(
                "streetgate_publish_versions_total",
                "Snapshot drops validated and published.",
            )?,
            drops_rejected: IntCounterVec::new(
                Opts::new(
                    "streetgate_publish_drops_rejected_total",
                    "Snapshot drops refused; the previous version stays served.",
                ),
                &["reason"],
            )?,
            latest_version: IntGauge::new(
                "streetgate_publish_latest_version",
                "Version of the newest published snapshot (0 before the first).",
            )?,
            retained_versions: IntGauge::new(
                "streetgate_publish_retained_versions",
                "Versions kept for deltas and per-version URLs.",
            )?,
            requests: IntCounterVec::new(
                Opts::new("streetgate_publish_requests_total", "Requests answered."),
                &["kind", "encoding", "status"],
            )?,
            bytes_sent: IntCounterVec::new(
                Opts::new(
                    "streetgate_publish_bytes_sent_total",
                    "Response body bytes sent, as encoded on the wire.",
                ),
                &["kind"],
            )?,
            long_polls_waiting: IntGauge::new(
                "streetgate_publish_long_polls_waiting",
                "Long-poll requests held open now.",
            )?,
            deltas_built: IntCounter::new(
                "streetgate_publish_deltas_built_total",
                "Deltas built between two versions (once per pair, however many ask).",
            )?,
            compressions: IntCounterVec::new(
                Opts::new(
                    "streetgate_publish_compressions_total",
                    "Bodies compressed (once per body and encoding, on first request).",
                ),
                &["encoding"],
            )?,
            registry,
        };
        m.registry
            .register(Box::new(m.versions_published.clone()))?;
        m.registry.register(Box::new(m.drops_rejected.clone()))?;
        // Every reason exists at zero from start, so an alert on the first rejection has data.
        for reason in ["invalid", "not_newer", "unreadable", "error"] {
            m.drops_rejected.with_label_values(&[reason]);
        }
        m.registry.register(Box::new(m.latest_version.clone()))?;
        m.registry.register(Box::new(m.retained_versions.clone()))?;
        m.registry.register(Box::new(m.requests.clone()))?;
        m.registry.register(Box::new(m.bytes_sent.clone()))?;
        m.registry
            .register(Box::new(m.long_polls_waiting.clone()))?;
        m.registry.register(Box::new(m.deltas_built.clone()))?;
        m.registry.register(Box::new(m.compressions.clone()))?;
        for encoding in ["gzip", "zstd"] {
            m.compressions.with_label_values(&[encoding]);
        }
        Ok(m)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}
