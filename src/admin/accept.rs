//! `POST /grants/accept?version=N` on the admin port: an operator puts in force the snapshot
//! the guard refused. Off (404) unless `grants.accept_token_file` is configured; the caller
//! proves it holds that token with `Authorization: Bearer <token>`.

use crate::listener::ClientBody;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;

use super::text;
use crate::grants::store::AcceptError;
use crate::proxy::Gateway;

pub(crate) fn accept(gateway: &Gateway, req: &Request<ClientBody>) -> Response<Full<Bytes>> {
    let (Some(guard), Some(store)) = (&gateway.guard, &gateway.grants) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    if !guard.accept_enabled() {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| guard.accepts(t)) {
        let mut resp = text(StatusCode::UNAUTHORIZED, "bearer token required\n");
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    let Some(version) = version_param(req.uri().query()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "version must be given once, as a decimal number\n",
        );
    };
    match store.accept(version, std::time::SystemTime::now()) {
        Ok(v) => text(StatusCode::OK, &format!("version {v} in force\n")),
        Err(e @ AcceptError::NotPending { .. }) => text(StatusCode::CONFLICT, &format!("{e}\n")),
        Err(e @ AcceptError::Poisoned) => {
            text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n"))
        }
    }
}

fn version_param(query: Option<&str>) -> Option<u64> {
    let mut found = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "version" {
            let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            if found.is_some() || !ok {
                return None;
            }
            found = Some(value.parse().ok()?);
        }
    }
    found
}
