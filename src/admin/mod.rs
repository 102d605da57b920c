//! The admin listener, on its own port: `/healthz` (the process answers), `/readyz` (keys and
//! grants are loaded and fresh), `/metrics` (Prometheus text), and `POST /grants/accept` (an
//! operator puts a snapshot the guard refused in force; `accept.rs`).

use std::sync::Arc;

use crate::listener::ClientBody;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;

mod accept;

use crate::listener::ConnInfo;
use crate::listener::Handler;
use crate::proxy::Gateway;
use crate::reason::Reason;

/// The admin endpoints, served by the shared listener code (same limits and timeouts as the
/// main listener).
pub struct Admin(pub Arc<Gateway>);

impl Handler for Admin {
    type Body = Full<Bytes>;

    async fn handle(&self, _conn: ConnInfo, request: Request<ClientBody>) -> Response<Full<Bytes>> {
        route(&self.0, &request)
    }

    fn refuse(&self, _conn: &ConnInfo, _method: &Method, reason: Reason) -> Response<Full<Bytes>> {
        text(reason.status(), &format!("{}\n", reason.as_str()))
    }
}

fn route(gateway: &Gateway, req: &Request<ClientBody>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/grants/accept" {
        return accept::accept(gateway, req);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let missing = gateway.not_ready();
            if missing.is_empty() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("not ready: {}\n", missing.join(", ")),
                )
            }
        }
        "/metrics" => {
            let mut resp = text(StatusCode::OK, &gateway.metrics.render());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

pub(crate) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
