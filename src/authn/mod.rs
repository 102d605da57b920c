//! Authentication: token extraction, JWT verification against JWKS keys, the verified-token
//! cache. Produces an `Identity` or a 401 reason.

mod authenticator;
pub mod cache;
pub mod config;
mod error;
pub mod extract;
pub mod identity;
pub mod integrator;
mod jwks;
pub mod keys;
pub mod verify;

pub use authenticator::Authenticator;
pub use config::{AuthConfig, RawAuth};
pub use error::{AuthError, AuthSetupError};
pub use identity::Identity;
