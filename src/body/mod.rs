//! Request bodies that a rule reads, taken the strict way: only JSON media types, parsed with
//! duplicate keys refused anywhere in the document, and fields read with their JSON type
//! checked. The point is that the upstream, whatever its parser (first-wins, last-wins), acts on
//! the same values the decision saw: any document two parsers could read differently is refused.
//!
//! Pure functions only; reading the bytes off the connection lives in `proxy::body`.

pub mod field;
pub mod media;
pub mod strict;

/// Why a body the rule reads was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("content type is not JSON: {0}")]
    UnsupportedMediaType(&'static str),
    #[error("body is not strict JSON: {0}")]
    Invalid(#[source] serde_json::Error),
    #[error("body exceeds the size limit")]
    TooLarge,
    #[error("body exceeds the connection's buffered-body budget")]
    ConnectionBudget,
    #[error("body not received within the read timeout")]
    Timeout,
    #[error("reading the body failed")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BodyError {
    pub fn reason(&self) -> crate::reason::Reason {
        use crate::reason::Reason;
        match self {
            BodyError::UnsupportedMediaType(_) => Reason::UnsupportedMediaType,
            BodyError::Invalid(_) | BodyError::Read(_) => Reason::BadBody,
            BodyError::TooLarge | BodyError::ConnectionBudget => Reason::BodyTooLarge,
            BodyError::Timeout => Reason::BodyTimeout,
        }
    }
}
