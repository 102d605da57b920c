//! A route's `response` policy as written: which rows of the response the caller keeps, and
//! which fields are redacted. `ResponsePolicy::try_from` compiles it.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawResponsePolicy {
    #[serde(default)]
    pub filter: Option<RawFilter>,
    #[serde(default)]
    pub redact: Option<RawRedact>,
    /// Largest body read for filtering or redaction; over it, 502 `response_too_large`.
    #[serde(default = "defaults::max_response_bytes")]
    pub max_body_bytes: u64,
    /// What a filtered JSON body's `pagination` counts (`total_rows`, ...) become: they
    /// describe the unfiltered rows, so by default they are removed.
    #[serde(default)]
    pub pagination: RawPagination,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawPagination {
    #[default]
    Remove,
    /// The number of rows kept in this page (not a total across pages).
    Recompute,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawFilter {
    Json {
        /// JSON pointer to the rows array; empty string for a top-level array.
        rows: String,
        #[serde(flatten)]
        by: RawRowKey,
    },
    Csv {
        #[serde(flatten)]
        by: RawRowKey,
    },
}

/// How a row's workstream is found: by a workstream field plus an organisation field, or by a
/// work reference looked up in the works index. Field names are JSON member names or CSV
/// column headers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRowKey {
    #[serde(default)]
    pub workstream_field: Option<String>,
    #[serde(default)]
    pub organisation_field: Option<String>,
    #[serde(default)]
    pub work_reference_field: Option<String>,
    /// Contracts model: the contract id of the row (`access: readable_contracts`).
    #[serde(default)]
    pub contract_field: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRedact {
    /// Field paths (dot-separated, `[]` for every element: `rows[].s74_cost`).
    pub fields: Vec<String>,
    /// Callers holding this role see the fields.
    #[serde(default = "defaults::redact_unless")]
    pub unless_role: String,
}

pub mod defaults {
    pub fn max_response_bytes() -> u64 {
        64 * 1024 * 1024
    }
    pub fn redact_unless() -> String {
        "StreetWorksAdmin".into()
    }
}
