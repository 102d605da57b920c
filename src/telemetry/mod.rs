//! Metrics and the decision log.

pub mod metrics;
