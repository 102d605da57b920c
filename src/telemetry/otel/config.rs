//! The `otel` section: where spans go and how much may wait.

use std::time::Duration;

use http::Uri;
use serde::Deserialize;

use crate::problems::Problems;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawOtel {
    /// OTLP/HTTP traces endpoint, e.g. `http://otel-collector:4318/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the exported resource.
    #[serde(default = "defaults::service_name")]
    pub service_name: String,
    /// Spans waiting for export; past it new spans are dropped (and counted).
    #[serde(default = "defaults::max_queue_spans")]
    pub max_queue_spans: usize,
    /// Spans per export request.
    #[serde(default = "defaults::max_batch_spans")]
    pub max_batch_spans: usize,
    /// A partial batch is sent after this long.
    #[serde(default = "defaults::flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// One export request's deadline; a batch that misses it is dropped (and counted).
    #[serde(default = "defaults::export_timeout", with = "humantime_serde")]
    pub export_timeout: Duration,
}

mod defaults {
    use std::time::Duration;
    pub fn service_name() -> String {
        "streetgate".into()
    }
    pub fn max_queue_spans() -> usize {
        4096
    }
    pub fn max_batch_spans() -> usize {
        512
    }
    pub fn flush_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn export_timeout() -> Duration {
        Duration::from_secs(5)
    }
}

impl RawOtel {
    pub fn endpoint_uri(&self) -> Option<Uri> {
        let uri: Uri = self.endpoint.parse().ok()?;
        let web = matches!(uri.scheme_str(), Some("http" | "https"));
        (web && uri.authority().is_some()).then_some(uri)
    }
}

pub fn validate(otel: Option<&RawOtel>, problems: &mut Problems) {
    let Some(o) = otel else { return };
    if o.endpoint_uri().is_none() {
        problems.push(
            "otel.endpoint",
            format!("{:?} must be an http:// or https:// URL", o.endpoint),
        );
    }
    if o.service_name.is_empty() {
        problems.push("otel.service_name", "must not be empty");
    }
    if o.max_batch_spans == 0 {
        problems.push("otel.max_batch_spans", "must be at least 1");
    }
    if o.max_queue_spans < o.max_batch_spans.max(1) {
        problems.push(
            "otel.max_queue_spans",
            "must be at least otel.max_batch_spans",
        );
    }
    if o.flush_interval.is_zero() {
        problems.push("otel.flush_interval", "must be above zero");
    }
    if o.export_timeout.is_zero() {
        problems.push("otel.export_timeout", "must be above zero");
    }
}
