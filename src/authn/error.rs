//! Why a request was not authenticated (every variant is one 401/503 reason), and why the
//! authenticator could not be built from its config.

use super::identity::RoleError;
use crate::reason::Reason;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token in the request")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token is {len} bytes, over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("the key for this token does not accept its algorithm {0:?}")]
    KeyAlgorithm(&'static str),
    #[error("no key matches kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("signature does not verify")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet ({0})")]
    NotYetValid(&'static str),
    #[error("issuer is not the configured one")]
    Issuer,
    #[error("audience does not include the configured one")]
    Audience,
    #[error("claims: {0}")]
    Claims(String),
    #[error("unsupported critical header parameter {0:?}")]
    Critical(String),
    #[error("roles claim: {0}")]
    Roles(#[source] RoleError),
    #[error("no signing keys loaded yet")]
    KeysUnavailable,
}

impl AuthError {
    pub fn reason(&self) -> Reason {
        match self {
            AuthError::Missing => Reason::TokenMissing,
            AuthError::Malformed(_) => Reason::TokenMalformed,
            AuthError::TooLarge { .. } => Reason::TokenTooLarge,
            AuthError::Algorithm(_) | AuthError::KeyAlgorithm(_) => Reason::TokenAlgorithm,
            AuthError::UnknownKey(_) => Reason::TokenUnknownKey,
            AuthError::Signature => Reason::TokenSignature,
            AuthError::Expired => Reason::TokenExpired,
            AuthError::NotYetValid(_) => Reason::TokenNotYetValid,
            AuthError::Issuer => Reason::TokenIssuer,
            AuthError::Audience => Reason::TokenAudience,
            AuthError::Claims(_) | AuthError::Critical(_) => Reason::TokenClaims,
            AuthError::Roles(_) => Reason::TokenRoles,
            AuthError::KeysUnavailable => Reason::KeysUnavailable,
        }
    }
}

/// What only the running process can get wrong: the environment variable holding the HS256
/// secret (everything a config names is checked when it is compiled, `AuthConfig`).
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("environment variable {0} holding the HS256 secret is not set or not UTF-8")]
    SecretEnv(String),
    #[error("the HS256 secret is {0} bytes; at least 32 are required")]
    SecretTooShort(usize),
}
