//! The export task: batches from the bounded queue, each sent as one OTLP/HTTP protobuf
//! `ExportTraceServiceRequest` with a deadline. Nothing is retried: a batch that fails is
//! dropped and counted, so a dead collector costs memory only up to the queue bound.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode,
};
use prometheus::IntCounter;
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::{Finished, RawOtel};

pub(super) struct Counters {
    pub exported: IntCounter,
    pub failed: IntCounter,
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

pub(super) async fn run(
    mut queue: mpsc::Receiver<Finished>,
    config: RawOtel,
    counters: Counters,
    mut stop: watch::Receiver<bool>,
) {
    let Some(endpoint) = config.endpoint_uri() else {
        return; // validated at load: unreachable
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<Https, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut batch = Vec::with_capacity(config.max_batch_spans);
    let mut tick = tokio::time::interval(config.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            span = queue.recv() => match span {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= config.max_batch_spans {
                        send(&client, &endpoint, &config, &counters, &mut batch).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if !batch.is_empty() {
                    send(&client, &endpoint, &config, &counters, &mut batch).await;
                }
            }
            () = stopped(&mut stop) => {
                while let Ok(span) = queue.try_recv() {
                    batch.push(span);
                }
                break;
            }
        }
    }
    // What is left goes out once, in batches.
    while !batch.is_empty() {
        let rest = batch.split_off(batch.len().min(config.max_batch_spans));
        send(&client, &endpoint, &config, &counters, &mut batch).await;
        batch = rest;
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn send(
    client: &Client<Https, Full<Bytes>>,
    endpoint: &Uri,
    config: &RawOtel,
    counters: &Counters,
    batch: &mut Vec<Finished>,
) {
    let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
    let body = encode(&config.service_name, batch.drain(..));
    let request = Request::post(endpoint.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)));
    let ok = match request {
        Ok(request) => matches!(
            tokio::time::timeout(config.export_timeout, client.request(request)).await,
            Ok(Ok(response)) if response.status().is_success()
        ),
        Err(_) => false,
    };
    if ok {
        counters.exported.inc_by(n);
    } else {
        counters.failed.inc_by(n);
        tracing::warn!(spans = n, endpoint = %endpoint, "OTLP export failed; spans dropped");
    }
}

/// One `ExportTraceServiceRequest` for a batch of spans.
pub(super) fn encode(service_name: &str, spans: impl Iterator<Item = Finished>) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service_name)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "streetgate".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: spans.map(|f| span(&f)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    request.encode_to_vec()
}

fn span(f: &Finished) -> Span {
    let route = f.route.as_deref().unwrap_or("_unmatched");
    let mut attributes = vec![
        text("streetgate.mode", f.mode),
        text("streetgate.route", route),
        text("streetgate.decision_id", &f.decision_id),
        text("http.request.method", f.method.as_str()),
        int("http.response.status_code", i64::from(f.status)),
    ];
    if let Some(decision) = f.decision {
        attributes.push(text("streetgate.decision", decision));
    }
    if let Some(reason) = f.reason {
        attributes.push(text("streetgate.reason", reason.as_str()));
    }
    if let Some(acting) = &f.acting_organisation {
        attributes.push(text("streetgate.acting_organisation", acting));
    }
    if let Some(version) = f.snapshot_version {
        attributes.push(int(
            "streetgate.snapshot_version",
            i64::try_from(version).unwrap_or(i64::MAX),
        ));
    }
    let status = if f.status >= 500 {
        StatusCode::Error
    } else {
        StatusCode::Unset
    };
    Span {
        trace_id: f.context.trace_id.to_vec(),
        span_id: f.context.span_id.to_vec(),
        parent_span_id: f
            .context
            .parent_span_id
            .map(|p| p.to_vec())
            .unwrap_or_default(),
        trace_state: f
            .context
            .tracestate
            .as_ref()
            .and_then(|s| s.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        flags: u32::from(f.context.flags),
        name: format!("{} {route}", f.method),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: nanos(f.start),
        end_time_unix_nano: nanos(f.end),
        attributes,
        status: Some(Status {
            code: status as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}
