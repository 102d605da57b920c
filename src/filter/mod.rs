//! Response filtering and redaction for reporting and export routes (filled in by the response
//! filtering issue).

use crate::grants::codes::{SwaCode, Workstream};

/// Which rows a caller may see, computed by the decision from identity and grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Highway authorities (and routes without workstream filtering) see every row.
    All,
    /// Only rows of these workstreams of the acting organisation.
    Workstreams {
        organisation: SwaCode,
        readable: Vec<Workstream>,
    },
}
