//! Envoy ext_authz over gRPC (`envoy.service.auth.v3.Authorization/Check`), the mode Istio's
//! `CUSTOM` action uses. The `CheckRequest`'s HTTP attributes become the original request and
//! go through the same pipeline as proxy mode (`Gateway::check`).

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context;
use envoy_types::pb::google::rpc;
use http::header::{HeaderMap, HeaderName};
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::proxy::{self, CheckAnswer, Gateway};
use crate::reason::Reason;

/// gRPC status codes (google.rpc.Code).
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const UNAUTHENTICATED: i32 = 16;
const INVALID_ARGUMENT: i32 = 3;
const UNAVAILABLE: i32 = 14;

/// Serves the Authorization service on `listener` until `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    mut shutdown: watch::Receiver<bool>,
) {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let served = tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(Check(gateway)))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "check gRPC listener failed");
    }
}

struct Check(Arc<Gateway>);

#[tonic::async_trait]
impl Authorization for Check {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let http = request
            .into_inner()
            .attributes
            .and_then(|a| a.request)
            .and_then(|r| r.http)
            .unwrap_or_default();
        let answer = match original(http) {
            Ok(request) => self.0.check(request).await,
            Err((method, reason)) => CheckAnswer::Deny(self.0.check_refused(&method, reason)),
        };
        Ok(tonic::Response::new(respond(answer).await))
    }
}

/// The original request from the HTTP attributes Envoy reports.
fn original(
    http: attribute_context::HttpRequest,
) -> Result<proxy::CheckRequest, (http::Method, Reason)> {
    let method = http::Method::from_bytes(http.method.as_bytes())
        .map_err(|_| (http::Method::GET, Reason::BadTarget))?;
    let uri =
        http::Uri::try_from(http.path.as_str()).map_err(|_| (method.clone(), Reason::BadTarget))?;
    let mut headers = HeaderMap::new();
    // `header_map` (with `encode_raw_headers`) keeps repeated headers apart; the older `headers`
    // map joins them with commas.
    let pairs: Vec<(String, Vec<u8>)> = match http.header_map {
        Some(map) => map
            .headers
            .into_iter()
            .map(|h| {
                let value = if h.raw_value.is_empty() {
                    h.value.into_bytes()
                } else {
                    h.raw_value
                };
                (h.key, value)
            })
            .collect(),
        None => http
            .headers
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect(),
    };
    for (name, value) in pairs {
        if name.starts_with(':') {
            continue; // pseudo-headers: method, path and host are the fields above
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(&value),
        ) else {
            return Err((method, Reason::BadFraming));
        };
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::HOST)
        && let Ok(host) = http::HeaderValue::from_str(&http.host)
        && !http.host.is_empty()
    {
        headers.insert(http::header::HOST, host);
    }
    let body = if http.raw_body.is_empty() {
        Bytes::from(http.body.into_bytes())
    } else {
        Bytes::from(http.raw_body)
    };
    // `size` is the original body's length (-1 when unknown): more than was sent is a cut.
    let partial = headers
        .get("x-envoy-auth-partial-body")
        .is_some_and(|v| v == "true")
        || usize::try_from(http.size).is_ok_and(|size| size > body.len());
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.headers = headers;
    Ok(proxy::CheckRequest {
        parts,
        body,
        cut: partial.then_some(Reason::BodyTooLarge),
    })
}

async fn respond(answer: CheckAnswer) -> CheckResponse {
    match answer {
        CheckAnswer::Allow(allowed) => {
            let headers = allowed
                .set
                .into_iter()
                .map(|(name, value)| header_option(name.as_str(), value.as_bytes()))
                .collect();
            let headers_to_remove = allowed
                .remove
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect();
            CheckResponse {
                status: Some(rpc::Status {
                    code: OK,
                    ..Default::default()
                }),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers,
                    headers_to_remove,
                    ..Default::default()
                })),
                ..Default::default()
            }
        }
        CheckAnswer::Deny(response) => {
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let headers = parts
                .headers
                .iter()
                .map(|(name, value)| header_option(name.as_str(), value.as_bytes()))
                .collect();
            let code = match parts.status.as_u16() {
                401 => UNAUTHENTICATED,
                400 | 413 | 415 => INVALID_ARGUMENT,
                500..=599 => UNAVAILABLE,
                _ => PERMISSION_DENIED,
            };
            CheckResponse {
                status: Some(rpc::Status {
                    code,
                    ..Default::default()
                }),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus {
                        code: i32::from(parts.status.as_u16()),
                    }),
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                })),
                ..Default::default()
            }
        }
    }
}

/// A header Envoy sets, replacing any value the client sent.
fn header_option(name: &str, value: &[u8]) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}
