//! Authentication: token extraction, JWT verification against JWKS keys, the verified-token
//! cache. Produces an `Identity` or a 401 reason.
//!
//! TEMPORARY STUB: replaced by the authn branch.

pub mod identity;

use std::sync::Arc;

use identity::Identity;

use crate::config::raw::RawAuth;
use crate::reason::Reason;
use crate::telemetry::metrics::Metrics;

#[derive(Clone)]
pub struct Authenticator;

#[derive(Debug, thiserror::Error)]
#[error("authentication failed: {0}")]
pub struct AuthError(Reason);

impl AuthError {
    pub fn reason(&self) -> Reason {
        self.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("auth setup failed")]
pub struct AuthSetupError;

impl Authenticator {
    pub fn new(_auth: &RawAuth, _metrics: Metrics) -> Result<Authenticator, AuthSetupError> {
        Ok(Authenticator)
    }
    pub fn spawn_refresh(&self, _shutdown: tokio::sync::watch::Receiver<bool>) {}
    pub fn ready(&self) -> bool {
        false
    }
    pub async fn authenticate(
        &self,
        _headers: &http::HeaderMap,
        _now_unix: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        Err(AuthError(Reason::KeysUnavailable))
    }
}
