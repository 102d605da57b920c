//! One decision-log line: formatted by hand into a buffer (what the data path does), side by
//! side with the same fields through tracing-subscriber's JSON layer (what it did before).
//! Goal: about 1 µs per line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use streetgate::reason::Reason;
use streetgate::telemetry::decision_log::{DecisionRecord, format_line};

fn record() -> DecisionRecord {
    let mut r = DecisionRecord::new(
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        &Method::GET,
        Instant::now(),
        std::time::SystemTime::now(),
    );
    r.route = Some("GetWork".into());
    r.user = Some("planner-0000-0001@example.gov.uk".into());
    r.organisation = Some("0000".into());
    r.reason = Some(Reason::WorkstreamRead);
    r.status = 200;
    r
}

fn bench(c: &mut Criterion) {
    let r = record();
    let mut out = Vec::with_capacity(64 * 1024);
    c.bench_function("decision_log/format_line", |b| {
        b.iter(|| {
            if out.len() > 60 * 1024 {
                out.clear();
            }
            format_line(
                &mut out,
                black_box(&r),
                Reason::WorkstreamRead,
                SystemTime::now(),
            );
        })
    });

    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("decision_log/tracing_json (before)", |b| {
            b.iter(|| {
                let r = black_box(&r);
                tracing::info!(
                    target: "streetgate::decision",
                    decision_id = %r.decision_id,
                    route = r.route.as_deref().unwrap_or("_unmatched"),
                    method = %r.method,
                    user = r.user.as_deref(),
                    organisation = r.organisation.as_deref(),
                    acting_organisation = Option::<&str>::None,
                    decision = "allow",
                    reason = "workstream_read",
                    latency_us = r.started.elapsed().as_micros() as u64,
                    status = r.status,
                    filter_us = Option::<u64>::None,
                );
            })
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
