//! Forwarding to the upstream API: per-worker connection pools per API (`pool`), connect and response-head
//! timeouts, bodies streamed both ways.

pub mod body_timeout;
pub mod headers;
pub mod pool;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;

use self::body_timeout::TimedBody;
use self::pool::Pool;
use crate::reason::Reason;

/// A client body streams on, size-capped and failing when the client stalls for
/// `listen.body_read_timeout`; a body the decision had to read is sent buffered.
pub type RequestBody = Either<TimedBody<Limited<Incoming>>, Full<Bytes>>;

/// The upstream's response body, failing when it stalls for `body_timeout`.
pub type UpstreamBody = TimedBody<Incoming>;

/// An upstream API and how to reach it.
#[derive(Debug, Clone)]
pub struct Api {
    pub name: String,
    /// Normalised: starts with `/`, no trailing `/`; empty when the API has no prefix.
    pub prefix: String,
    pub strip_prefix: bool,
    /// `scheme://authority` of the upstream; the request path is appended.
    pub upstream: Uri,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Idle timeout between frames of the upstream response body.
    pub body_timeout: Duration,
}

/// Why a request found no upstream response head.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("upstream {api} unreachable")]
    Unreachable {
        api: String,
        #[source]
        source: pool::SendError,
    },
    #[error("upstream {api} gave no response head within {timeout:?}")]
    Timeout { api: String, timeout: Duration },
}

pub struct Upstream {
    name: String,
    scheme_authority: String,
    /// The same, parsed once: with the client's path and query they make the request URI.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    prefix_len: usize,
    timeout: Duration,
    body_timeout: Duration,
    pool: Pool,
}

impl Upstream {
    pub fn new(api: &Api) -> Upstream {
        let scheme = api.upstream.scheme_str().unwrap_or("http");
        let authority = api
            .upstream
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_default();
        Upstream {
            name: api.name.clone(),
            scheme_authority: format!("{scheme}://{authority}"),
            scheme: api
                .upstream
                .scheme()
                .cloned()
                .unwrap_or(http::uri::Scheme::HTTP),
            authority: api
                .upstream
                .authority()
                .cloned()
                .unwrap_or(http::uri::Authority::from_static("localhost")),
            prefix_len: if api.strip_prefix {
                api.prefix.len()
            } else {
                0
            },
            timeout: api.request_timeout,
            body_timeout: api.body_timeout,
            pool: Pool::new(&api.upstream, api.connect_timeout),
        }
    }

    /// The upstream URI for a checked path and query of `client`'s URI: the same bytes the
    /// decision saw (minus the API prefix when the operator asked for it to be stripped).
    /// Unstripped, they are the client's own, shared rather than copied and parsed again.
    pub fn uri_for(&self, client: &Uri, path: &str, query: Option<&str>) -> Result<Uri, Reason> {
        if let Some(same) = client.path_and_query()
            && self.prefix_len == 0
            && same.path() == path
            && same.query() == query
        {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(self.scheme.clone());
            parts.authority = Some(self.authority.clone());
            parts.path_and_query = Some(same.clone());
            return Uri::from_parts(parts).map_err(|_| Reason::BadPath);
        }
        let path = match &path[self.prefix_len..] {
            "" => "/",
            rest => rest,
        };
        let mut uri = String::with_capacity(self.scheme_authority.len() + path.len() + 64);
        uri.push_str(&self.scheme_authority);
        uri.push_str(path);
        if let Some(q) = query {
            uri.push('?');
            uri.push_str(q);
        }
        // From the owned bytes: `parse()` would copy them once more.
        Uri::from_maybe_shared(Bytes::from(uri)).map_err(|_| Reason::BadPath)
    }

    /// How long the upstream may take to send its response head.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends the request and waits (bounded) for the response head; the body then streams,
    /// each wait for more of it bounded by `body_timeout`. `now` is the caller's latest clock
    /// read: the head's deadline and the pool's idle checks count from it.
    pub async fn send(
        &self,
        request: Request<RequestBody>,
        now: std::time::Instant,
    ) -> Result<Response<UpstreamBody>, ForwardError> {
        let deadline = tokio::time::Instant::from_std(now) + self.timeout;
        match tokio::time::timeout_at(deadline, self.pool.send(request, now)).await {
            Ok(Ok(response)) => Ok(response.map(|b| TimedBody::new(b, self.body_timeout))),
            Ok(Err(source)) => Err(ForwardError::Unreachable {
                api: self.name.clone(),
                source,
            }),
            Err(_) => Err(ForwardError::Timeout {
                api: self.name.clone(),
                timeout: self.timeout,
            }),
        }
    }
}
