//! The publisher's HTTP answers, exactly the delta / long-poll contract (docs/publish.md):
//! `<base>` (newest full document, ETag/304), `<base>?since=V` (delta, 304 or 410), both
//! long-polled with `Prefer: wait=N`; `<base>/versions/N` and `<base>/deltas/A-B`, immutable
//! for caches; `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use crate::listener::ClientBody;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;

use super::catalog::{Catalog, Since};
use super::encoded::{Encoded, Encoding};
use super::metrics::PublishMetrics;
use crate::listener::ConnInfo;
use crate::listener::Handler;
use crate::reason::Reason;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";
/// Bodies up to this size (deltas of a few thousand entries) are compressed on the runtime:
/// it takes well under a millisecond.
const INLINE_COMPRESS: usize = 256 * 1024;

pub struct Publisher {
    pub catalog: Arc<Catalog>,
    pub metrics: PublishMetrics,
    /// The moving endpoint's path, e.g. `/grants`.
    pub base: String,
    /// Longest `Prefer: wait` honoured.
    pub max_wait: Duration,
}

/// The `kind` label of the request metric.
#[derive(Clone, Copy)]
enum Kind {
    Full,
    Delta,
    Version,
    DeltaUrl,
    Other,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Delta => "delta",
            Kind::Version => "version",
            Kind::DeltaUrl => "delta_url",
            Kind::Other => "other",
        }
    }
}

type Reply = Response<Full<Bytes>>;

impl Handler for Publisher {
    type Body = Full<Bytes>;

    async fn handle(&self, _conn: ConnInfo, request: Request<ClientBody>) -> Reply {
        let encoding = Encoding::negotiate(request.headers().get(header::ACCEPT_ENCODING));
        let (kind, resp) = self.route(&request, encoding).await;
        let status = resp.status();
        let sent_encoding = match resp.headers().get(header::CONTENT_ENCODING) {
            Some(_) => encoding.as_str(),
            None => "identity",
        };
        self.metrics
            .requests
            .with_label_values(&[kind.as_str(), sent_encoding, status.as_str()])
            .inc();
        if request.method() != Method::HEAD {
            let len = http_body::Body::size_hint(resp.body()).exact().unwrap_or(0);
            self.metrics
                .bytes_sent
                .with_label_values(&[kind.as_str()])
                .inc_by(len);
        }
        resp
    }

    fn refuse(&self, _conn: &ConnInfo, _method: &Method, reason: Reason) -> Reply {
        text(reason.status(), &format!("{}\n", reason.as_str()))
    }
}

impl Publisher {
    async fn route(&self, req: &Request<ClientBody>, encoding: Encoding) -> (Kind, Reply) {
        let path = req.uri().path();
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (
                Kind::Other,
                text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"),
            );
        }
        match path {
            "/healthz" => return (Kind::Other, text(StatusCode::OK, "ok\n")),
            "/readyz" if self.catalog.latest().is_some() => {
                return (Kind::Other, text(StatusCode::OK, "ready\n"));
            }
            "/readyz" => {
                return (
                    Kind::Other,
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no snapshot published yet\n",
                    ),
                );
            }
            "/metrics" => {
                let mut resp = text(StatusCode::OK, &self.metrics.render());
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                return (Kind::Other, resp);
            }
            _ => {}
        }
        if path == self.base {
            return self.moving(req, encoding).await;
        }
        let Some(rest) = path
            .strip_prefix(self.base.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return (Kind::Other, text(StatusCode::NOT_FOUND, "not found\n"));
        };
        if let Some(n) = rest.strip_prefix("versions/") {
            let found = parse_version(n).and_then(|n| self.catalog.version(n));
            return match found {
                Some(v) => (
                    Kind::Version,
                    self.body(req, &v.full, encoding, IMMUTABLE).await,
                ),
                None => (
                    Kind::Version,
                    text(StatusCode::NOT_FOUND, "no such version\n"),
                ),
            };
        }
        if let Some(pair) = rest.strip_prefix("deltas/") {
            let Some((a, b)) = pair
                .split_once('-')
                .and_then(|(a, b)| Some((parse_version(a)?, parse_version(b)?)))
            else {
                return (
                    Kind::DeltaUrl,
                    text(StatusCode::NOT_FOUND, "no such delta\n"),
                );
            };
            let catalog = Arc::clone(&self.catalog);
            let found = tokio::task::spawn_blocking(move || catalog.delta(a, b)).await;
            return match found {
                Ok(Ok(Some(d))) => (
                    Kind::DeltaUrl,
                    self.body(req, &d, encoding, IMMUTABLE).await,
                ),
                Ok(Ok(None)) => (
                    Kind::DeltaUrl,
                    text(StatusCode::NOT_FOUND, "no such delta\n"),
                ),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot compute a delta");
                    (
                        Kind::DeltaUrl,
                        text(StatusCode::INTERNAL_SERVER_ERROR, "delta failed\n"),
                    )
                }
                Err(_) => (
                    Kind::DeltaUrl,
                    text(StatusCode::INTERNAL_SERVER_ERROR, "delta failed\n"),
                ),
            };
        }
        (Kind::Other, text(StatusCode::NOT_FOUND, "not found\n"))
    }

    /// `<base>` and `<base>?since=V`, long-polled when asked.
    async fn moving(&self, req: &Request<ClientBody>, encoding: Encoding) -> (Kind, Reply) {
        let since = match since_param(req.uri().query()) {
            Ok(s) => s,
            Err(()) => {
                let kind = Kind::Delta;
                return (
                    kind,
                    text(
                        StatusCode::BAD_REQUEST,
                        "since must be one version number\n",
                    ),
                );
            }
        };
        let wait = prefer_wait(req.headers()).map(|w| w.min(self.max_wait));
        let if_none_match = req.headers().get(header::IF_NONE_MATCH);
        let kind = if since.is_some() {
            Kind::Delta
        } else {
            Kind::Full
        };
        let mut waited = false;
        loop {
            // Read before the catalog, so a version published in between ends the wait at once.
            let seen = *self.catalog.subscribe().borrow();
            // What the client already has, if that is still the latest.
            let answer = match since {
                Some(v) => match self.since(v).await {
                    // (`since` builds what is unbuilt, so `Unbuilt` never comes back.)
                    Since::Gone | Since::Unbuilt => {
                        return (
                            kind,
                            text(
                                StatusCode::GONE,
                                "version not retained; fetch the full document\n",
                            ),
                        );
                    }
                    Since::Current => None,
                    Since::Answer(doc) if if_none_match == Some(&doc.etag) => None,
                    Since::Answer(doc) => Some(doc),
                },
                None => match self.catalog.latest() {
                    None => {
                        return (
                            kind,
                            text(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "no snapshot published yet\n",
                            ),
                        );
                    }
                    Some(v) if if_none_match == Some(&v.full.etag) => None,
                    Some(v) => Some(Arc::clone(&v.full)),
                },
            };
            match (answer, wait) {
                (Some(doc), _) => {
                    let mut resp = self.body(req, &doc, encoding, NO_CACHE).await;
                    applied(&mut resp, waited, wait);
                    return (kind, resp);
                }
                (None, Some(w)) if !waited && !w.is_zero() => {
                    waited = true;
                    self.hold(seen, w).await;
                }
                (None, _) => {
                    let mut resp = not_modified(if_none_match);
                    applied(&mut resp, waited, wait);
                    return (kind, resp);
                }
            }
        }
    }

    /// The answer to `?since=v`, building its delta off the runtime when it is not built yet
    /// (a poller further behind than the previous version; the first one builds it for all).
    async fn since(&self, v: u64) -> Since {
        match self.catalog.since(v) {
            Since::Unbuilt => {
                let catalog = Arc::clone(&self.catalog);
                tokio::task::spawn_blocking(move || catalog.since_built(v))
                    .await
                    .unwrap_or(Since::Gone)
            }
            ready => ready,
        }
    }

    /// `doc` in `encoding`, or 304 for its ETag. An encoding not made yet is made now, once:
    /// in place for a small body (a delta), off the runtime for a full document.
    async fn body(
        &self,
        req: &Request<ClientBody>,
        doc: &Arc<Encoded>,
        encoding: Encoding,
        cache: &'static str,
    ) -> Reply {
        if req.headers().get(header::IF_NONE_MATCH) == Some(&doc.etag) {
            let mut resp = not_modified(Some(&doc.etag));
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            return resp;
        }
        let compressions = &self.metrics.compressions;
        let (sent, bytes) = match doc.ready(encoding) {
            Some(ready) => ready,
            None if doc.identity_len() <= INLINE_COMPRESS => doc.encode(encoding, compressions),
            None => {
                let (doc2, c) = (Arc::clone(doc), compressions.clone());
                match tokio::task::spawn_blocking(move || doc2.encode(encoding, &c)).await {
                    Ok(encoded) => encoded,
                    Err(_) => doc.encode(Encoding::Identity, compressions),
                }
            }
        };
        let mut resp = Response::new(Full::new(bytes));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::ETAG, doc.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if sent != Encoding::Identity {
            h.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(sent.as_str()),
            );
        }
        resp
    }

    /// Waits up to `wait` for a version newer than `seen`.
    async fn hold(&self, seen: u64, wait: Duration) {
        let mut latest = self.catalog.subscribe();
        let _waiting = Waiting::new(&self.metrics.long_polls_waiting);
        let _ = tokio::time::timeout(wait, latest.wait_for(|v| *v > seen)).await;
    }
}

/// Counts a held long-poll until it ends, however it ends (a client that hangs up drops it).
struct Waiting<'a>(&'a prometheus::IntGauge);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Waiting<'a> {
        gauge.inc();
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `Preference-Applied` when the wait was honoured.
fn applied(resp: &mut Reply, waited: bool, wait: Option<Duration>) {
    if let (true, Some(w)) = (waited, wait)
        && let Ok(v) = HeaderValue::from_str(&format!("wait={}", w.as_secs()))
    {
        resp.headers_mut().insert("preference-applied", v);
    }
}

fn parse_version(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `since` from the query: absent, or exactly one decimal version.
fn since_param(query: Option<&str>) -> Result<Option<u64>, ()> {
    let mut found = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "since" {
            if found.is_some() {
                return Err(());
            }
            found = Some(parse_version(value).ok_or(())?);
        }
    }
    Ok(found)
}

/// `Prefer: wait=N` (RFC 7240), in any of the header's comma-separated preferences.
fn prefer_wait(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| {
            let (name, value) = p.split(';').next()?.split_once('=')?;
            (name.trim().eq_ignore_ascii_case("wait"))
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
        .next()
        .map(Duration::from_secs)
}

fn not_modified(etag: Option<&HeaderValue>) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NOT_MODIFIED;
    if let Some(tag) = etag {
        resp.headers_mut().insert(header::ETAG, tag.clone());
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    resp
}

fn text(status: StatusCode, body: &str) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_prefer_are_parsed_strictly() {
        assert_eq!(since_param(None), Ok(None));
        assert_eq!(since_param(Some("since=42")), Ok(Some(42)));
        assert_eq!(since_param(Some("x=1&since=7")), Ok(Some(7)));
        assert_eq!(since_param(Some("since=")), Err(()));
        assert_eq!(since_param(Some("since=-1")), Err(()));
        assert_eq!(since_param(Some("since=+1")), Err(()));
        assert_eq!(since_param(Some("since=1&since=2")), Err(()));
        assert_eq!(since_param(Some("since=99999999999999999999999")), Err(()));
        let mut h = http::HeaderMap::new();
        assert_eq!(prefer_wait(&h), None);
        h.insert("prefer", HeaderValue::from_static("respond-async, wait=5"));
        assert_eq!(prefer_wait(&h), Some(Duration::from_secs(5)));
        h.insert("prefer", HeaderValue::from_static("wait=abc"));
        assert_eq!(prefer_wait(&h), None);
    }
}
