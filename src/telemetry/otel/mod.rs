//! OpenTelemetry traces without the SDK on the request path: one span per request (proxy and
//! check mode) carrying the decision's attributes, W3C trace context continued from the caller
//! and passed upstream, and a bounded queue drained by one task that exports batches as
//! OTLP/HTTP protobuf. A full queue or a failed export drops spans and counts them; a request
//! never waits on tracing.

mod config;
pub mod context;
mod export;

use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use prometheus::{IntCounter, IntCounterVec, Opts};
use tokio::sync::{mpsc, watch};

pub use config::{RawOtel, validate};
pub use context::TraceContext;

use crate::reason::Reason;
use crate::telemetry::decision_log::DecisionRecord;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::route_metrics::Applied;

/// A request's span while it runs (kept in its `DecisionRecord`).
#[derive(Debug)]
pub struct Span {
    pub context: TraceContext,
    start: SystemTime,
    /// `proxy` or `check`.
    mode: &'static str,
    /// The grants snapshot the decision read, if it read one.
    pub snapshot_version: Option<u64>,
}

impl Span {
    pub fn begin(headers: &HeaderMap, mode: &'static str) -> Span {
        Span {
            context: TraceContext::continue_or_start(headers),
            start: SystemTime::now(),
            mode,
            snapshot_version: None,
        }
    }

    pub fn trace_id(&self) -> String {
        self.context.trace_id_hex()
    }
}

/// A finished span, queued for export. Only decision attributes: never the token, nor the user.
#[derive(Debug)]
pub(crate) struct Finished {
    context: TraceContext,
    start: SystemTime,
    end: SystemTime,
    mode: &'static str,
    route: Option<Arc<str>>,
    method: http::Method,
    decision: Option<&'static str>,
    reason: Option<Reason>,
    acting_organisation: Option<String>,
    snapshot_version: Option<u64>,
    decision_id: String,
    status: u16,
}

/// The producer side: cheap to call on every request.
pub struct Tracer {
    queue: mpsc::Sender<Finished>,
    dropped_full: IntCounter,
}

impl Tracer {
    /// Starts the export task; it drains the queue and exits once `stop` flips.
    #[allow(
        clippy::expect_used,
        reason = "fixed metric definitions: one that fails is a bug that must stop start-up"
    )]
    pub fn start(config: &RawOtel, metrics: &Metrics, stop: watch::Receiver<bool>) -> Tracer {
        let dropped = IntCounterVec::new(
            Opts::new(
                "streetgate_otel_spans_dropped_total",
                "Spans not exported: queue_full (the bounded queue was full), export_failed.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let exported = IntCounter::new(
            "streetgate_otel_spans_exported_total",
            "Spans the OTLP endpoint accepted.",
        )
        .expect("valid metric");
        // A second sidecar in one process (tests) shares nothing: its own registry.
        let _ = metrics.registry.register(Box::new(dropped.clone()));
        let _ = metrics.registry.register(Box::new(exported.clone()));
        let (queue, rx) = mpsc::channel(config.max_queue_spans);
        let dropped_full = dropped.with_label_values(&["queue_full"]);
        let failed = dropped.with_label_values(&["export_failed"]);
        tokio::spawn(export::run(
            rx,
            config.clone(),
            export::Counters { exported, failed },
            stop,
        ));
        Tracer {
            queue,
            dropped_full,
        }
    }

    /// Ends the record's span (if it has one) and queues it; drops it when the queue is full.
    pub fn finish(&self, record: &mut DecisionRecord) {
        let Some(span) = record.trace.take() else {
            return;
        };
        if !span.context.sampled() {
            return;
        }
        let finished = Finished {
            context: span.context,
            start: span.start,
            end: SystemTime::now(),
            mode: span.mode,
            route: record.route.clone(),
            method: record.method.clone(),
            decision: record
                .reason
                .map(|reason| Applied::of(reason, record.shadow).as_str()),
            reason: record.reason,
            acting_organisation: record.acting_organisation.map(|o| o.as_str().to_owned()),
            snapshot_version: span.snapshot_version,
            decision_id: record.decision_id.to_string(),
            status: record.status,
        };
        if self.queue.try_send(finished).is_err() {
            self.dropped_full.inc();
        }
    }
}
