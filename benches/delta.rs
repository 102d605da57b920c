//! Applying a 1,000-change delta (600 works changed, 200 added, 100 deleted, 100 users'
//! grants replaced) to a national-scale snapshot: 3M works, 300k users, 10k organisations.
//! Parse, validation and the copy of the touched shards are all in the figure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use streetgate::grants::synthetic::{synthetic_delta, synthetic_document};
use streetgate::grants::{Snapshot, load_delta};

const ORGS: usize = 10_000;
const USERS: usize = 300_000;
const WORKS: usize = 3_000_000;

fn delta(c: &mut Criterion) {
    let snapshot = {
        let json = synthetic_document(ORGS, USERS, WORKS);
        Snapshot::from_json(&json, None).expect("synthetic document is valid")
    };
    let text = synthetic_delta(snapshot.version, 0, WORKS, USERS);
    let mut group = c.benchmark_group("snapshot_delta");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("1000 changes on 3M works 300k users", |b| {
        b.iter(|| {
            let doc = load_delta(black_box(text.as_bytes())).expect("valid delta");
            snapshot.apply_delta(&doc).expect("applies")
        })
    });
    group.finish();
}

criterion_group!(benches, delta);
criterion_main!(benches);
