//! Response filtering and redaction for reporting and export routes: the upstream's rows are
//! cut down to the caller's readable workstreams, and sensitive fields removed, before they
//! leave. Fails closed: a body that cannot be read as the configured format never goes out.
//!
//! `apply` is the pipeline's entry point (collect, decode, filter, fix headers);
//! `filter_bytes` is the pure core that tests and the bench drive directly.

mod body;
pub mod config;
mod csv_rows;
mod headers;
mod json;
mod policy;
mod rows;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::authn::identity::RoleSet;
use crate::grants::overlay::Works;
use crate::reason::Reason;

pub use headers::per_caller;
pub use policy::ResponsePolicy;

use policy::{Format, RowKey};
use rows::Judge;

/// Defined by the decision that computes it; filtering only reads it.
use crate::authz::Visibility;

/// Who is asking, as far as filtering cares.
#[derive(Clone, Copy)]
pub struct Viewer<'a> {
    pub visibility: &'a Visibility,
    /// Needed for policies keyed by work reference; without it such rows are all dropped.
    pub works: Option<Works<'a>>,
    pub roles: RoleSet,
}

/// A filtered body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    pub body: Bytes,
    pub kept: u64,
    pub dropped: u64,
    /// False when `body` is the input, untouched (error bodies without rows, callers the
    /// policy does not apply to).
    pub rewritten: bool,
}

/// What filtering did, for the `filtered_rows` metric and the decision log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterOutcome {
    pub kept: u64,
    pub dropped: u64,
    /// Decoding and filtering, after the body has arrived.
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("response body larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the upstream response body")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("unsupported content-encoding {0:?}")]
    Encoding(String),
    #[error("cannot decode the {coding} response body")]
    Decode {
        coding: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("response body is not UTF-8")]
    Utf8(#[source] std::str::Utf8Error),
    #[error("response body is not the expected JSON")]
    Json(#[source] serde_json::Error),
    #[error("response body has no rows array where the policy expects one")]
    NoRows,
    #[error("response body is not valid CSV: {0}")]
    Csv(&'static str),
    #[error("response body is not valid CSV")]
    CsvSyntax(#[source] csv::Error),
    #[error("CSV header has no single column {0:?}")]
    CsvColumn(String),
}

// === impl FilterError ===

impl FilterError {
    pub fn reason(&self) -> Reason {
        match self {
            FilterError::TooLarge { .. } => Reason::ResponseTooLarge,
            FilterError::Body(e) => crate::forward::body_timeout::reason_for(e.as_ref()),
            FilterError::Encoding(_)
            | FilterError::Decode { .. }
            | FilterError::Utf8(_)
            | FilterError::Json(_)
            | FilterError::NoRows
            | FilterError::Csv(_)
            | FilterError::CsvSyntax(_)
            | FilterError::CsvColumn(_) => Reason::ResponseUnfilterable,
        }
    }
}

/// For routes with a response policy: ask the upstream for an unencoded body, so filtering
/// does not pay for decompression (encoded answers are still decoded).
pub fn prepare_request_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
}

/// Filters an upstream response for the caller. The answer has the decoded (never
/// re-encoded) body, a recomputed Content-Length and no Content-Encoding or Transfer-Encoding.
/// Do not call it for answers to HEAD requests (they have no body to filter). It waits for
/// the whole body: run it under the route's request timeout.
pub async fn apply<B>(
    policy: &ResponsePolicy,
    visibility: &Visibility,
    works: Option<Works<'_>>,
    caller_roles: RoleSet,
    response: Response<B>,
) -> Result<(Response<Full<Bytes>>, FilterOutcome), FilterError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, incoming) = response.into_parts();
    let collected = body::collect(&parts.headers, incoming, policy.max_body_bytes).await?;
    // Filter time, not the upstream's: the clock starts once the body is in.
    let started = Instant::now();
    let decoded = body::decode(&parts.headers, collected, policy.max_body_bytes)?;
    let caller = Viewer {
        visibility,
        works,
        roles: caller_roles,
    };
    let filtered = filter_bytes(policy, &caller, parts.status, decoded)?;

    let headers = &mut parts.headers;
    headers.remove(header::CONTENT_ENCODING);
    headers.remove(header::TRANSFER_ENCODING);
    // Validators and digests described the upstream's bytes, not these; and whatever went
    // through a policy is this caller's alone.
    per_caller(headers);
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(filtered.body.len()),
    );
    let outcome = FilterOutcome {
        kept: filtered.kept,
        dropped: filtered.dropped,
        elapsed: started.elapsed(),
    };
    Ok((
        Response::from_parts(parts, Full::new(filtered.body)),
        outcome,
    ))
}

/// The pure core: filters a decoded body. Non-2xx bodies without rows (error bodies) and
/// bodies of 204/304 pass untouched; everything else must parse as the configured format.
pub fn filter_bytes(
    policy: &ResponsePolicy,
    caller: &Viewer<'_>,
    status: StatusCode,
    body: Bytes,
) -> Result<Filtered, FilterError> {
    let untouched = |body: Bytes| Filtered {
        body,
        kept: 0,
        dropped: 0,
        rewritten: false,
    };
    if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
        || (body.is_empty() && !status.is_success())
    {
        return Ok(untouched(body));
    }
    let redacts = policy.redacts_for(caller.roles);
    match &policy.format {
        Format::JsonRows {
            key,
            plain,
            redacted,
        } => {
            let judge = Judge {
                key,
                visibility: caller.visibility,
                works: caller.works,
            };
            let plan = if redacts { redacted } else { plain };
            let text = std::str::from_utf8(&body).map_err(FilterError::Utf8)?;
            let out = match json::rewrite(text, plan, &judge) {
                Ok(out) if out.rows_found => out,
                // An error answer is JSON without the rows array: it holds no rows and
                // passes byte for byte (one that does carry rows is filtered above).
                Ok(_) | Err(_) if !status.is_success() && is_json(&body) => {
                    return Ok(untouched(body));
                }
                Ok(_) => return Err(FilterError::NoRows),
                Err(e) => return Err(FilterError::Json(e)),
            };
            Ok(Filtered {
                body: out.body.into(),
                kept: out.kept,
                dropped: out.dropped,
                rewritten: true,
            })
        }
        Format::Csv { key } => {
            if !status.is_success() && is_json(&body) {
                return Ok(untouched(body));
            }
            let judge = Judge {
                key,
                visibility: caller.visibility,
                works: caller.works,
            };
            let out = csv_rows::filter(&body, &judge)?;
            Ok(Filtered {
                body: out.body.into(),
                kept: out.kept,
                dropped: out.dropped,
                rewritten: true,
            })
        }
        Format::JsonRedact { redacted } => {
            if !redacts || !status.is_success() {
                return Ok(untouched(body));
            }
            // The plan has no rows node, so the judge is never asked.
            static NO_KEY: RowKey = RowKey::WorkReference(String::new());
            let judge = Judge {
                key: &NO_KEY,
                visibility: &Visibility::All,
                works: None,
            };
            let text = std::str::from_utf8(&body).map_err(FilterError::Utf8)?;
            let out = json::rewrite(text, redacted, &judge).map_err(FilterError::Json)?;
            Ok(Filtered {
                body: out.body.into(),
                kept: 0,
                dropped: 0,
                rewritten: true,
            })
        }
    }
}

fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

#[cfg(test)]
mod tests;
