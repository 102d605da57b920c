//! Metrics and the decision log.

pub mod decision_log;
pub mod events;
pub mod log_buffer;
pub mod metrics;
pub mod otel;
pub mod route_metrics;
