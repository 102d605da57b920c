//! The one place where failures become HTTP responses. Every variant maps explicitly to a
//! stable reason; the detail goes to the log, never to the client.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;

use crate::forward::ForwardError;
use crate::listener::BoxError;
use crate::reason::Reason;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A check or decision said no; the reason says why.
    #[error("rejected: {0}")]
    Rejected(Reason),
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// Over a per-IP or per-user rate; the bucket says when the next request would pass.
    #[error("rate limited for {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Reading an upstream body we buffer (created-work collection) failed or stalled.
    #[error("reading the response body of upstream {api} failed")]
    UpstreamBody {
        api: String,
        #[source]
        source: BoxError,
    },
    /// A body the rule reads was refused (media type, strict parse, size, time).
    #[error(transparent)]
    Body(#[from] crate::body::BodyError),
    #[error("filtering the response failed")]
    Filter(#[source] crate::filter::FilterError),
}

impl ProxyError {
    pub fn reason(&self) -> Reason {
        match self {
            ProxyError::Rejected(reason) => *reason,
            // A streamed request body that outgrew the limit surfaces as an upstream error.
            ProxyError::Forward(ForwardError::Unreachable { source, .. })
                if body_too_large(source) =>
            {
                Reason::BodyTooLarge
            }
            // So does a streamed request body the client stopped sending.
            ProxyError::Forward(ForwardError::Unreachable { source, .. })
                if crate::forward::body_timeout::is_timeout(source) =>
            {
                Reason::BodyTimeout
            }
            ProxyError::Forward(ForwardError::Unreachable { .. }) => Reason::UpstreamUnavailable,
            ProxyError::Forward(ForwardError::Timeout { .. }) => Reason::UpstreamTimeout,
            ProxyError::RateLimited { .. } => Reason::RateLimited,
            ProxyError::UpstreamBody { source, .. } => {
                crate::forward::body_timeout::reason_for(source.as_ref())
            }
            ProxyError::Filter(e) => e.reason(),
            ProxyError::Body(e) => e.reason(),
        }
    }
}

impl ProxyError {
    /// How long a client should wait before retrying, for errors that know.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProxyError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

fn body_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}

impl From<Reason> for ProxyError {
    fn from(reason: Reason) -> Self {
        ProxyError::Rejected(reason)
    }
}

/// The response for a failed request.
pub fn error_response(error: &ProxyError, decision_id: &str) -> Response<Full<Bytes>> {
    build(error.reason(), error.retry_after(), decision_id)
}

/// The response for a rejection known only by its reason.
pub fn rejection(reason: Reason, decision_id: &str) -> Response<Full<Bytes>> {
    build(reason, None, decision_id)
}

/// The JSON body every rejection carries: `{"error", "reason", "decision_id"}`; a 429 also
/// carries `Retry-After` in whole seconds, rounded up (at least 1).
fn build(
    reason: Reason,
    retry_after: Option<Duration>,
    decision_id: &str,
) -> Response<Full<Bytes>> {
    let status = reason.status();
    let body = format!(
        r#"{{"error":"{}","reason":"{}","decision_id":"{}"}}"#,
        status.canonical_reason().unwrap_or("Error"),
        reason.as_str(),
        decision_id,
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(id) = HeaderValue::from_str(decision_id) {
        headers.insert(crate::forward::headers::DECISION_ID, id);
    }
    if reason == Reason::RateLimited {
        let wait = retry_after.unwrap_or(Duration::from_secs(1));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(wait)),
        );
    }
    response
}

/// Whole seconds, rounded up, at least 1 (`Retry-After: 0` would invite an immediate retry).
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let ms = Duration::from_millis;
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(ms(1)), 1);
        assert_eq!(retry_after_secs(ms(1000)), 1);
        assert_eq!(retry_after_secs(ms(1001)), 2);
        assert_eq!(retry_after_secs(ms(4200)), 5);
    }

    #[test]
    fn rate_limited_answer_carries_the_buckets_wait() {
        let limited = ProxyError::RateLimited {
            retry_after: Duration::from_millis(2500),
        };
        let resp = error_response(&limited, "id");
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn body_errors_map_to_their_reasons() {
        use crate::body::BodyError;
        let cases = [
            (
                BodyError::UnsupportedMediaType("x"),
                415,
                "unsupported_media_type",
            ),
            (BodyError::TooLarge, 413, "body_too_large"),
            (BodyError::ConnectionBudget, 413, "body_too_large"),
            (BodyError::Timeout, 408, "body_timeout"),
        ];
        for (error, status, code) in cases {
            let reason = ProxyError::from(error).reason();
            assert_eq!((reason.status().as_u16(), reason.as_str()), (status, code));
        }
        let invalid = crate::body::strict::parse(b"{").unwrap_err();
        assert_eq!(ProxyError::from(invalid).reason(), Reason::BadBody);
    }

    #[tokio::test]
    async fn body_is_stable_json() {
        let resp = rejection(Reason::WorkstreamNoAccess, "abc123");
        assert_eq!(resp.status(), 403);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "Forbidden");
        assert_eq!(v["reason"], "workstream_no_access");
        assert_eq!(v["decision_id"], "abc123");
    }
}
