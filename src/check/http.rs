//! The HTTP decision API on `check.addr`:
//! - `/envoy/...`: Envoy ext_authz HTTP mode with `path_prefix: /envoy`. The method, path,
//!   headers (and, with `with_request_body`, the body) are the original request's.
//! - `/forward-auth`: ingress-nginx `auth-url`, nginx `auth_request`, Traefik `forwardAuth`.
//!   The original method and target come in `X-Original-*` / `X-Forwarded-*` headers, which
//!   are believed only from `check.trusted_proxies`; anyone else is refused with
//!   `check_peer_untrusted` and nothing is decided.
//!
//! Allow is 200 with the identity headers to set upstream and, in
//! `x-envoy-auth-headers-to-remove`, the client headers to strip. Deny is the rejection proxy
//! mode gives: same status, JSON body and headers.

use std::sync::Arc;
use std::time::Duration;

use crate::listener::ClientBody;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Full, Limited};

use super::original;
use crate::listener::ConnInfo;
use crate::listener::Handler;
use crate::proxy::{CheckAnswer, CheckRequest, Gateway, ProxyBody};
use crate::reason::Reason;

/// Envoy's `path_prefix` for the HTTP ext_authz service.
pub const ENVOY_PREFIX: &str = "/envoy";
pub const FORWARD_AUTH_PATH: &str = "/forward-auth";
/// Envoy sets it when `allow_partial_message` let it send a body cut at `max_request_bytes`.
const PARTIAL_BODY: HeaderName = HeaderName::from_static("x-envoy-auth-partial-body");
pub const HEADERS_TO_REMOVE: HeaderName = HeaderName::from_static("x-envoy-auth-headers-to-remove");

pub struct CheckHttp(pub Arc<Gateway>);

impl Handler for CheckHttp {
    type Body = ProxyBody;

    async fn handle(&self, conn: ConnInfo, request: Request<ClientBody>) -> Response<ProxyBody> {
        answer(&self.0, conn, request).await.map(Either::Right)
    }

    fn refuse(&self, _conn: &ConnInfo, method: &Method, reason: Reason) -> Response<ProxyBody> {
        self.0.check_refused(method, reason).map(Either::Right)
    }
}

async fn answer(
    gateway: &Gateway,
    conn: ConnInfo,
    request: Request<ClientBody>,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path();
    if path == FORWARD_AUTH_PATH {
        let trusted = {
            let runtime = gateway.runtime.load();
            runtime
                .config
                .check
                .as_ref()
                .is_some_and(|c| c.trusted(conn.peer.ip()))
        };
        if !trusted {
            return gateway.check_refused(&parts.method, Reason::CheckPeerUntrusted);
        }
        let (method, uri) = match original::reported(&parts.headers) {
            Ok(reported) => reported,
            Err(reason) => return gateway.check_refused(&parts.method, reason),
        };
        parts.method = method;
        keep_host(&mut parts);
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        // The subrequest's own framing describes no body of the original request.
        parts.headers.remove(http::header::CONTENT_LENGTH);
        parts.headers.remove(http::header::TRANSFER_ENCODING);
        let request = CheckRequest {
            parts,
            body: Bytes::new(),
            cut: Some(Reason::BodyRequiresProxy),
        };
        return respond(gateway.check(request).await);
    }
    let Some(original) = path
        .strip_prefix(ENVOY_PREFIX)
        .filter(|rest| rest.starts_with('/'))
    else {
        return gateway.check_refused(&parts.method, Reason::RouteNotFound);
    };
    let target = match parts.uri.query() {
        Some(q) => format!("{original}?{q}"),
        None => original.to_owned(),
    };
    let Ok(uri) = Uri::try_from(target) else {
        return gateway.check_refused(&parts.method, Reason::BadTarget);
    };
    keep_host(&mut parts);
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let (max_body, timeout) = {
        let runtime = gateway.runtime.load();
        let l = &runtime.config.listen;
        (
            usize::try_from(l.max_body_bytes).unwrap_or(usize::MAX),
            l.body_read_timeout,
        )
    };
    let (body, mut cut) = read_body(body, max_body, timeout).await;
    if parts
        .headers
        .get(&PARTIAL_BODY)
        .is_some_and(|v| v == "true")
    {
        cut = Some(Reason::BodyTooLarge);
    }
    respond(gateway.check(CheckRequest { parts, body, cut }).await)
}

/// An HTTP/2 check request names its host in `:authority`; the reported request is decided as
/// HTTP/1.1 with that host.
fn keep_host(parts: &mut http::request::Parts) {
    if !parts.headers.contains_key(http::header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(http::header::HOST, host);
    }
}

/// The body Envoy sent along (`with_request_body`), bounded like proxy mode's.
async fn read_body(body: ClientBody, max: usize, timeout: Duration) -> (Bytes, Option<Reason>) {
    match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => (collected.to_bytes(), None),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            (Bytes::new(), Some(Reason::BodyTooLarge))
        }
        Ok(Err(_)) | Err(_) => (Bytes::new(), Some(Reason::BodyTimeout)),
    }
}

fn respond(answer: CheckAnswer) -> Response<Full<Bytes>> {
    match answer {
        CheckAnswer::Deny(response) => response,
        CheckAnswer::Allow(allowed) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::OK;
            let headers = response.headers_mut();
            for (name, value) in allowed.set {
                headers.insert(name, value);
            }
            if !allowed.remove.is_empty() {
                let names: Vec<&str> = allowed.remove.iter().map(HeaderName::as_str).collect();
                if let Ok(v) = HeaderValue::from_str(&names.join(",")) {
                    headers.insert(HEADERS_TO_REMOVE, v);
                }
            }
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
            response
        }
    }
}
