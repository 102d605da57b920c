//! The hook a candidate snapshot passes before it goes into force. The snapshot guard
//! (the `guard` module) implements it; it lives behind a trait so grants does not depend on the
//! decision code that the guard replays.

use super::snapshot::Snapshot;

pub trait Admission: Send + Sync {
    /// Whether `new` may replace `old`.
    fn admit(&self, old: &Snapshot, new: &Snapshot) -> Result<(), Refusal>;
}

/// Why a candidate was held back: it would deny too many of the requests recently allowed.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{revoked} of {allowed} recently allowed requests would be denied (more than max_revocation_ratio {max_ratio})"
)]
pub struct Refusal {
    pub revoked: usize,
    pub allowed: usize,
    pub max_ratio: f64,
}
