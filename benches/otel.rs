//! The request path's cost of tracing: starting a span from the caller's `traceparent` (or a new
//! trace), writing the context into the upstream request's headers, and finishing the span into
//! the bounded export queue, while the export task drains it to a loopback OTLP endpoint. The
//! protobuf encoding and the export run on that task, off the request path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use streetgate::config::from_yaml_str;
use streetgate::telemetry::decision_log::DecisionRecord;
use streetgate::telemetry::metrics::Metrics;
use streetgate::telemetry::otel::{RawOtel, Span, Tracer};

fn collector(rt: &tokio::runtime::Runtime) -> std::net::SocketAddr {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |req: http::Request<hyper::body::Incoming>| async move {
                            use http_body_util::BodyExt;
                            let _ = req.into_body().collect().await;
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::new()),
                            ))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = collector(&rt);
    let config: RawOtel = from_yaml_str(&format!(
        "endpoint: http://{addr}/v1/traces\nflush_interval: 100ms\n"
    ))
    .unwrap();
    let metrics = Metrics::new();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let tracer = {
        let _guard = rt.enter();
        Tracer::start(&config, &metrics, stop_rx)
    };
    let mut caller = HeaderMap::new();
    caller.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    caller.insert("tracestate", HeaderValue::from_static("vendor=abc"));
    let mut group = c.benchmark_group("otel");
    for (name, headers) in [("continue_trace", caller), ("new_trace", HeaderMap::new())] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut record = DecisionRecord::new(
                    "01a22e05-b678-7000-b6b9-1c898fb150e6".into(),
                    &Method::GET,
                    Instant::now(),
                    std::time::SystemTime::now(),
                );
                record.route = Some("work.GetWork".into());
                record.status = 200;
                let span = Span::begin(black_box(&headers), "proxy");
                let mut upstream = HeaderMap::new();
                span.context.inject(&mut upstream);
                record.trace = Some(Box::new(span));
                tracer.finish(&mut record);
                black_box(upstream);
            })
        });
    }
    group.finish();
    let scrape = metrics.render();
    for line in scrape
        .lines()
        .filter(|l| l.starts_with("streetgate_otel_spans"))
    {
        eprintln!("{line}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
