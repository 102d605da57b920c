//! OpenTelemetry through real sockets: a loopback OTLP/HTTP collector receives the exported
//! spans (protobuf, decoded here), the upstream receives the W3C trace context, and the decision
//! log carries the trace id beside the decision id.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;

const GRANTS: &str = include_str!("fixtures/grants/integrity.json");
const ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, Contractor]}
        access: {read_work: {path: workReferenceNumber}}
"#;

/// An OTLP/HTTP endpoint on loopback keeping every request body; answers `status`.
struct Collector {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Collector {
    async fn start(status: StatusCode) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
        let kept = bodies.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            let ctype = req
                                .headers()
                                .get("content-type")
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            kept.lock().unwrap().push((ctype, body));
                            let mut resp = Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = status;
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector { addr, bodies }
    }

    fn spans(&self) -> Vec<Span> {
        let mut out = Vec::new();
        for (ctype, body) in self.bodies.lock().unwrap().iter() {
            assert_eq!(ctype, "application/x-protobuf");
            let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
            for rs in request.resource_spans {
                let service = rs.resource.unwrap().attributes;
                assert_eq!(service[0].key, "service.name");
                for ss in rs.scope_spans {
                    out.extend(ss.spans);
                }
            }
        }
        out
    }

    fn raw(&self) -> Vec<u8> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, b)| b.to_vec())
            .collect()
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn world(collector: &Collector, extra_otel: &str) -> (World, tempfile::NamedTempFile) {
    let mut grants = tempfile::NamedTempFile::new().unwrap();
    grants.write_all(GRANTS.as_bytes()).unwrap();
    let extra = format!(
        "grants:\n  source:\n    file:\n      path: {}\n      poll_interval: 1s\n  max_age: 1h\n\
         check:\n  addr: 127.0.0.1:0\n\
         otel:\n  endpoint: http://{}/v1/traces\n  flush_interval: 20ms\n{extra_otel}",
        grants.path().display(),
        collector.addr
    );
    (World::start(ROUTES, &extra).await, grants)
}

fn request(path: &str, token: &str, traceparent: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::get(path)
        .header("host", "gw.test")
        .header("authorization", format!("Bearer {token}"))
        .header("tracestate", "vendor=abc");
    if let Some(tp) = traceparent {
        b = b.header("traceparent", tp);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn spans_reach_the_collector_and_the_trace_continues_upstream() {
    let collector = Collector::start(StatusCode::OK).await;
    let (w, _grants) = world(&collector, "").await;
    let contractor = token(&claims("dig-1", "C901", &["Contractor"]));
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");

    // Allowed, in the caller's trace.
    let allowed = send(
        w.gw.addr,
        request(
            "/work/works/NW001?swaCode=7001",
            &contractor,
            Some(&traceparent),
        ),
    )
    .await;
    assert_eq!(allowed.status, 200);
    let seen = &w.upstream.seen()[0];
    let upstream_tp = seen.headers["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = upstream_tp.split('-').collect();
    assert_eq!((parts[0], parts[1], parts[3]), ("00", CALLER_TRACE, "01"));
    assert_ne!(parts[2], CALLER_SPAN, "our span is the upstream's parent");
    assert_eq!(seen.headers["tracestate"], "vendor=abc");

    // Denied, without a caller trace: a new one is started.
    let denied = send(w.gw.addr, request("/work/works/SG001", &contractor, None)).await;
    assert_eq!(denied.status, 403);

    // And one decided in check mode.
    let check = w.gw.check.as_ref().unwrap().addr;
    let checked = send(
        check,
        request(
            "/envoy/work/works/NW001",
            &token(&claims("user-a", "7001", &["Planner"])),
            Some(&traceparent),
        ),
    )
    .await;
    assert_eq!(checked.status, 200);

    assert!(
        eventually(PATIENCE, || async { collector.spans().len() >= 3 }).await,
        "spans not exported: {:?}",
        collector.spans()
    );
    let spans = collector.spans();
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|s| attr(s, "streetgate.decision_id").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no span for decision {id}"))
    };
    let id = |r: &Reply| {
        r.headers["x-streetgate-decision-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };

    let a = by_id(&id(&allowed));
    assert_eq!(hex(&a.trace_id), CALLER_TRACE);
    assert_eq!(hex(&a.parent_span_id), CALLER_SPAN);
    assert_eq!(
        hex(&a.span_id),
        parts[2],
        "the span exported is the one propagated"
    );
    assert_eq!(a.trace_state, "vendor=abc");
    assert_eq!(a.kind, 2, "server span");
    assert!(a.end_time_unix_nano >= a.start_time_unix_nano && a.start_time_unix_nano > 0);
    assert_eq!(attr(a, "streetgate.route").as_deref(), Some("GetWork"));
    assert_eq!(attr(a, "streetgate.decision").as_deref(), Some("allow"));
    assert_eq!(
        attr(a, "streetgate.reason").as_deref(),
        Some("workstream_read")
    );
    assert_eq!(
        attr(a, "streetgate.acting_organisation").as_deref(),
        Some("7001")
    );
    assert_eq!(attr(a, "streetgate.snapshot_version").as_deref(), Some("1"));
    assert_eq!(attr(a, "streetgate.mode").as_deref(), Some("proxy"));
    assert_eq!(attr(a, "http.response.status_code").as_deref(), Some("200"));

    let d = by_id(&id(&denied));
    assert_ne!(hex(&d.trace_id), CALLER_TRACE);
    assert_ne!(d.trace_id, vec![0; 16]);
    assert!(d.parent_span_id.is_empty(), "a new trace has no parent");
    assert_eq!(attr(d, "streetgate.decision").as_deref(), Some("deny"));
    assert_eq!(
        attr(d, "streetgate.reason").as_deref(),
        Some("workstream_no_access")
    );

    let c = by_id(&id(&checked));
    assert_eq!(attr(c, "streetgate.mode").as_deref(), Some("check"));
    assert_eq!(hex(&c.trace_id), CALLER_TRACE);
    assert_eq!(
        attr(c, "streetgate.reason").as_deref(),
        Some("workstream_read")
    );

    // Never the token (nor any part of it), nor the user.
    let raw = collector.raw();
    for secret in [
        contractor.as_str(),
        contractor.split('.').nth(2).unwrap(),
        "dig-1",
        "Bearer",
    ] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} exported"
        );
    }
    let scrape = metrics(&w.gw).await;
    assert!(sample(&scrape, "streetgate_otel_spans_exported_total") >= 3.0);
}

#[tokio::test]
async fn a_failing_collector_drops_and_counts_spans_and_requests_do_not_wait() {
    let collector = Collector::start(StatusCode::SERVICE_UNAVAILABLE).await;
    let (w, _grants) = world(&collector, "  max_batch_spans: 2\n  max_queue_spans: 4\n").await;
    let t = token(&claims("user-a", "7001", &["Planner"]));
    for _ in 0..6 {
        let reply = send(w.gw.addr, request("/work/works/NW001", &t, None)).await;
        assert_eq!(reply.status, 200);
    }
    let counted = eventually(PATIENCE, || async {
        let scrape = metrics(&w.gw).await;
        sample(
            &scrape,
            r#"streetgate_otel_spans_dropped_total{reason="export_failed"}"#,
        ) + sample(
            &scrape,
            r#"streetgate_otel_spans_dropped_total{reason="queue_full"}"#,
        ) >= 6.0
    })
    .await;
    assert!(counted, "{}", metrics(&w.gw).await);
    assert_eq!(
        sample(
            &metrics(&w.gw).await,
            "streetgate_otel_spans_exported_total"
        ),
        0.0
    );
}

#[test]
fn otel_config_is_validated_with_locations() {
    let yaml = config_yaml(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2/jwks",
        DEFAULT_ROUTES,
        "otel:\n  endpoint: collector:4318\n  max_batch_spans: 0\n  flush_interval: 0s\n",
    );
    let problems = streetgate::config::Config::from_yaml(&yaml)
        .unwrap_err()
        .to_string();
    for expected in [
        "otel.endpoint",
        "otel.max_batch_spans",
        "otel.flush_interval",
    ] {
        assert!(
            problems.contains(expected),
            "{expected} missing in {problems}"
        );
    }
}
