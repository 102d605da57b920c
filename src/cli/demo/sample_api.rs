//! A tiny stand-in for the Street Manager work API, so the demo has something to protect. It
//! trusts whatever reaches it, exactly like the legacy APIs streetgate is deployed beside.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub async fn start() -> std::io::Result<SocketAddr> {
    serve(false).await
}

/// The contracts scenario's API: a contract list of every contract, and `ok` to the rest.
pub async fn start_contracts() -> std::io::Result<SocketAddr> {
    serve(true).await
}

async fn serve(contracts: bool) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |req| async move {
                    if contracts {
                        answer_contracts(&req)
                    } else {
                        answer(req).await
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn answer_contracts(req: &Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = header(req, "x-streetgate-user");
    let json = if req.method() == Method::GET && req.uri().path() == "/api/contracts" {
        serde_json::json!({"rows": [{"contract_id": "K1", "title": "Ring road"},
                                    {"contract_id": "K2", "title": "Depot"}]})
    } else {
        serde_json::json!({"ok": true, "path": req.uri().path(), "served_to": user})
    };
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = header(&req, "x-streetgate-user");
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, json) = match (&method, segments.as_slice()) {
        (&Method::GET, ["work", "status"]) => (StatusCode::OK, serde_json::json!({"status": "ok"})),
        (&Method::GET, ["work", "works", wrn]) => (
            StatusCode::OK,
            serde_json::json!({"work_reference_number": wrn, "street": "Briggate, Leeds",
                               "work_status": "planned", "served_to": user}),
        ),
        (&Method::GET, ["work", "works", wrn, "permits", prn]) => (
            StatusCode::OK,
            serde_json::json!({"work_reference_number": wrn, "permit_reference_number": prn,
                               "permit_status": "granted"}),
        ),
        (&Method::PUT, ["work", "works", wrn, "cancel"]) => (
            StatusCode::OK,
            serde_json::json!({"work_reference_number": wrn, "work_status": "cancelled"}),
        ),
        (&Method::POST, ["work", "works"]) => {
            let sent: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let ws = sent["workstream_prefix"].as_str().unwrap_or("000");
            (
                StatusCode::CREATED,
                serde_json::json!({"work_reference_number": format!("NW{ws}999999")}),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found"}),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn header(req: &Request<Incoming>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}
