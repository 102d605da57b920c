//! The framing guard's per-read work on a keep-alive connection: one realistic request head
//! (the load test's, with its RS256 bearer token) read whole, as hyper reads it, after the
//! connection's first request.
#![allow(clippy::unwrap_used, reason = "bench code")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use streetgate::listener::framing::{Tracker, Verdicts};

fn bench(c: &mut Criterion) {
    let token = format!(
        "eyJ{}.eyJ{}.{}",
        "a".repeat(60),
        "b".repeat(400),
        "c".repeat(342)
    );
    let head = format!(
        "GET /work/works/SW00000000100 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    let verdicts = Verdicts::default();
    let mut tracker = Tracker::new(16384, 100, verdicts.clone());
    tracker.observe(head.as_bytes());
    verdicts.next();
    c.bench_function("framing/keep_alive_head", |b| {
        b.iter(|| {
            tracker.observe(black_box(head.as_bytes()));
            black_box(verdicts.next())
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
