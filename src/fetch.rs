//! A small HTTP(S) GET for control-plane documents (JWKS, grants snapshots): pooled client,
//! conditional requests, and bounds on everything a misbehaving server could stretch: the
//! connect takes at most `timeout`, and so does the whole exchange (head and body); a declared
//! Content-Length over the size cap is refused before reading, and a body that grows past it
//! while streaming is cut off. Redirects are not followed: the configured URL is the one
//! trusted for keys and grants, so a 3xx is a failed fetch (the previous document stays in
//! force). Not used on the request path.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Clone)]
pub struct Fetcher {
    client: Client<Https, Empty<Bytes>>,
    timeout: Duration,
    max_body: usize,
}

#[derive(Debug)]
pub enum Fetched {
    /// 304: the document is unchanged since `etag`.
    NotModified,
    Body {
        body: Bytes,
        etag: Option<HeaderValue>,
    },
}

/// A response as `Fetcher::request` read it: the head, and the body (as sent, still encoded)
/// only for a 2xx.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("request failed: {0}")]
    Request(#[source] hyper_util::client::legacy::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("redirect ({0}) not followed")]
    Redirect(StatusCode),
    #[error("unexpected status {0}")]
    Status(StatusCode),
    #[error("declared body of {declared} bytes is over the {limit}-byte limit")]
    TooLarge { declared: u64, limit: usize },
    #[error("body larger than {0} bytes or unreadable")]
    Body(usize),
}

impl Fetcher {
    pub fn new(timeout: Duration, max_body: usize) -> Fetcher {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Fetcher {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
            max_body,
        }
    }

    /// GET `url`; with `etag`, sends `If-None-Match` and reports 304 as `NotModified`. Any
    /// other status than 200 is an error.
    pub async fn get(&self, url: &str, etag: Option<&HeaderValue>) -> Result<Fetched, FetchError> {
        let mut headers = HeaderMap::new();
        if let Some(tag) = etag {
            headers.insert(header::IF_NONE_MATCH, tag.clone());
        }
        let answer = self.request(url, headers, self.timeout).await?;
        match answer.status {
            StatusCode::NOT_MODIFIED if etag.is_some() => Ok(Fetched::NotModified),
            StatusCode::OK => Ok(Fetched::Body {
                etag: answer.headers.get(header::ETAG).cloned(),
                body: answer.body,
            }),
            other => Err(FetchError::Status(other)),
        }
    }

    /// GET `url` with `headers`, allowing `timeout` for the whole exchange (a long-poll needs
    /// more than `get`'s). Any status but a redirect is an answer; the body is read only for
    /// a 2xx, under the size cap.
    pub async fn request(
        &self,
        url: &str,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<Answer, FetchError> {
        let uri: Uri = url.parse().map_err(|_| FetchError::Url(url.to_owned()))?;
        let mut req = Request::get(uri)
            .body(Empty::new())
            .map_err(|_| FetchError::Url(url.to_owned()))?;
        *req.headers_mut() = headers;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(FetchError::Request)?;
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                return Err(FetchError::Redirect(status));
            }
            let headers = resp.headers().clone();
            if !status.is_success() {
                return Ok(Answer {
                    status,
                    headers,
                    body: Bytes::new(),
                });
            }
            let declared = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(declared) = declared.filter(|&n| n > self.max_body as u64) {
                return Err(FetchError::TooLarge {
                    declared,
                    limit: self.max_body,
                });
            }
            let body = Limited::new(resp.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|_| FetchError::Body(self.max_body))?
                .to_bytes();
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| FetchError::Timeout(timeout))?
    }
}
