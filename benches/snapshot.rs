//! Building a grants snapshot from JSON at the size issue 6 budgets for (1M works, 100k users
//! in ≤ 3 s, ≤ 120 bytes resident per work), and the lookups the decision makes on it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use streetgate::grants::Snapshot;
use streetgate::grants::codes::{SwaCode, Workstream};
use streetgate::grants::synthetic::{synthetic_document, work_reference};

const ORGS: usize = 400;
const USERS: usize = 100_000;
const WORKS: usize = 1_000_000;

/// Resident set size in bytes, from /proc (Linux only; 0 elsewhere).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Printed once: what one snapshot of the full size keeps resident.
fn report_memory(json: &[u8]) {
    let before = rss();
    let started = Instant::now();
    let snapshot = Snapshot::from_json(json, None).expect("synthetic document is valid");
    let took = started.elapsed();
    let after = rss();
    let per_work = |bytes: usize| bytes as f64 / WORKS as f64;
    println!(
        "snapshot of {WORKS} works, {USERS} users ({} MB JSON): built in {took:.2?}; \
         resident +{:.1} MB = {:.1} bytes/work (all indexes, users included); \
         work index {:.1} bytes/work",
        json.len() / 1_000_000,
        (after.saturating_sub(before)) as f64 / 1e6,
        per_work(after.saturating_sub(before)),
        per_work(snapshot.work_index_bytes()),
    );
    drop(black_box(snapshot));
    println!(
        "after dropping it: {:.1} MB still resident above the start (allocator retention)",
        rss().saturating_sub(before) as f64 / 1e6
    );
}

fn build(c: &mut Criterion) {
    let json = synthetic_document(ORGS, USERS, WORKS);
    report_memory(&json);
    let mut group = c.benchmark_group("snapshot_build");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(40));
    group.bench_function("1M works 100k users", |b| {
        b.iter(|| Snapshot::from_json(black_box(&json), None).expect("valid"))
    });
    group.finish();
}

fn lookups(c: &mut Criterion) {
    let json = synthetic_document(ORGS, USERS, WORKS);
    let snapshot = Snapshot::from_json(&json, None).expect("valid");
    drop(json);
    let refs: Vec<String> = (0..1024).map(|i| work_reference(i * 977)).collect();
    let promoter = SwaCode::parse("0001").expect("code");
    let ws = Workstream::parse("001").expect("code");
    let mut group = c.benchmark_group("snapshot_lookup");
    let mut i = 0;
    group.bench_function("work hit", |b| {
        b.iter(|| {
            i = (i + 1) % refs.len();
            black_box(snapshot.work(black_box(&refs[i])))
        })
    });
    group.bench_function("work miss", |b| {
        b.iter(|| black_box(snapshot.work(black_box("ZZ99999999999"))))
    });
    group.bench_function("access", |b| {
        b.iter(|| black_box(snapshot.access(black_box("user-1"), promoter, ws)))
    });
    group.finish();
}

criterion_group!(benches, build, lookups);
criterion_main!(benches);
