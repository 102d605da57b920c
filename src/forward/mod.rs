//! Forwarding to the upstream API: per-worker connection pools per API (`pool`), connect and response-head
//! timeouts, bodies streamed both ways.

pub mod body_timeout;
pub mod headers;
pub mod native;
pub mod pool;

use std::time::Duration;

use crate::listener::ClientBody;
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use http_body_util::{Either, Full, Limited};

use self::body_timeout::TimedBody;
use self::pool::Pool;
use crate::reason::Reason;

/// A client body streams on, size-capped and failing when the client stalls for
/// `listen.body_read_timeout`; a body the decision had to read is sent buffered.
pub type RequestBody = Either<TimedBody<Limited<ClientBody>>, Full<Bytes>>;

/// The upstream's response body, failing when it stalls for `body_timeout`.
/// The upstream's response body, whichever client read it: hyper's (TLS upstreams, HTTP/2,
/// streamed request bodies, or `runtime.http1: hyper`) or the native one.
pub type ResponseBody = Either<hyper::body::Incoming, native::NativeBody>;
pub type UpstreamBody = TimedBody<ResponseBody>;

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
    /// Parsed once: with the client's path and query they make the request URI.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    prefix_len: usize,
    timeout: Duration,
    body_timeout: Duration,
    pool: Pool,
}

impl Upstream {
    /// `native`: HTTP/1 exchanges go through the native client where it can take them.
    pub fn new(api: &Api, native: bool) -> Upstream {
        Upstream {
            name: api.name.clone(),
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
            pool: Pool::new(&api.upstream, api.connect_timeout, native),
        }
    }

    /// The upstream URI for a checked path and query of `client`'s URI: the same bytes the
    /// decision saw (minus the API prefix when the operator asked for it to be stripped).
    /// Unstripped, they are the client's own, shared rather than copied and parsed again.
    pub fn uri_for(&self, client: &Uri, path: &str, query: Option<&str>) -> Result<Uri, Reason> {
        let path_and_query = match client.path_and_query() {
            Some(same) if self.prefix_len == 0 && same.path() == path && same.query() == query => {
                same.clone()
            }
            _ => self.stripped(path, query)?,
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|_| Reason::BadPath)
    }

    /// The path without the API prefix, and the query: one allocation, sized exactly, since
    /// `Bytes` from a `Vec` with spare capacity allocates again to share it.
    fn stripped(&self, path: &str, query: Option<&str>) -> Result<PathAndQuery, Reason> {
        let path = match &path[self.prefix_len..] {
            "" => "/",
            rest => rest,
        };
        let len = path.len() + query.map_or(0, |q| q.len() + 1);
        let mut text = Vec::with_capacity(len);
        text.extend_from_slice(path.as_bytes());
        if let Some(q) = query {
            text.push(b'?');
            text.extend_from_slice(q.as_bytes());
        }
        PathAndQuery::from_maybe_shared(Bytes::from(text)).map_err(|_| Reason::BadPath)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(prefix: &str, strip_prefix: bool) -> Upstream {
        Upstream::new(
            &Api {
                name: "work".into(),
                prefix: prefix.into(),
                strip_prefix,
                upstream: "http://10.0.0.7:8443".parse().unwrap(),
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
                body_timeout: Duration::from_secs(1),
            },
            false,
        )
    }

    fn uri_for(u: &Upstream, target: &str) -> String {
        let client: Uri = target.parse().unwrap();
        let (path, query) = (client.path(), client.query());
        u.uri_for(&client, path, query).unwrap().to_string()
    }

    #[test]
    fn the_upstream_uri_is_the_checked_target_behind_the_upstreams_authority() {
        let kept = upstream("/work", false);
        let stripped = upstream("/work", true);
        for (u, target, want) in [
            (
                &kept,
                "/work/works/NW1",
                "http://10.0.0.7:8443/work/works/NW1",
            ),
            (
                &kept,
                "/work/works/NW1?swaCode=7001&x=%20",
                "http://10.0.0.7:8443/work/works/NW1?swaCode=7001&x=%20",
            ),
            (
                &kept,
                "/work/works/NW1?",
                "http://10.0.0.7:8443/work/works/NW1?",
            ),
            (
                &stripped,
                "/work/works/NW1",
                "http://10.0.0.7:8443/works/NW1",
            ),
            (
                &stripped,
                "/work/works/NW1?swaCode=7001",
                "http://10.0.0.7:8443/works/NW1?swaCode=7001",
            ),
            (
                &stripped,
                "/work/works/NW1?",
                "http://10.0.0.7:8443/works/NW1?",
            ),
            (&stripped, "/work", "http://10.0.0.7:8443/"),
            (&stripped, "/work?a=1", "http://10.0.0.7:8443/?a=1"),
        ] {
            assert_eq!(uri_for(u, target), want, "{target}");
        }
    }
}
