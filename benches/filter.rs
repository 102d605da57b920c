//! Filtering a 10,000-row `PermitReportingResponse` (and the same rows as an export CSV).
//! Throughput is criterion's; peak memory is the process's peak RSS over one filter pass
//! (Linux `/proc/self/status` VmHWM, reset through `clear_refs`), printed once per case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]
#![recursion_limit = "256"]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::StatusCode;

use streetgate::authn::identity::{Role, RoleSet};
use streetgate::authz::Visibility;
use streetgate::filter::config::{RawFilter, RawRedact, RawResponsePolicy, RawRowKey};
use streetgate::filter::{ResponsePolicy, Viewer, filter_bytes};
use streetgate::grants::codes::{SwaCode, Workstream};
use streetgate::grants::overlay::Works;
use streetgate::grants::snapshot::Snapshot;

#[path = "../tests/filter_support/mod.rs"]
mod support;

const ROWS: usize = 10_000;

fn policy(filter: RawFilter, redact: bool) -> ResponsePolicy {
    ResponsePolicy::try_from(&RawResponsePolicy {
        filter: Some(filter),
        redact: redact.then(|| RawRedact {
            fields: vec![
                "rows[].draft_invoice_amount".into(),
                "rows[].final_agreed_amount".into(),
            ],
            unless_role: "StreetWorksAdmin".into(),
        }),
        max_body_bytes: 256 << 20,
        pagination: Default::default(),
    })
    .expect("bench policy compiles")
}

fn key(field: &str) -> RawRowKey {
    RawRowKey {
        workstream_field: None,
        organisation_field: None,
        work_reference_field: Some(field.into()),
        contract_field: None,
    }
}

/// Peak RSS growth (bytes) while running `f` once; `None` off Linux.
fn peak_growth(f: impl FnOnce()) -> Option<u64> {
    let read = |field: &str| -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    let before = read("VmRSS:")?;
    f();
    Some(read("VmHWM:")?.saturating_sub(before))
}

fn bench(c: &mut Criterion) {
    let rows = support::rows(ROWS);
    let created = support::works_index(&rows);
    let snapshot = Snapshot::default();
    let works = Works {
        snapshot: &snapshot,
        created: &created,
    };
    let planner = Visibility::Workstreams {
        organisation: SwaCode::parse("7001").expect("swa"),
        readable: vec![
            Workstream::parse("001").expect("ws"),
            Workstream::parse("002").expect("ws"),
        ],
    };
    let json = Bytes::from(support::permit_reporting_body(&rows));
    let csv = Bytes::from(support::export_csv(&rows));
    let json_rows = || RawFilter::Json {
        rows: "/rows".into(),
        by: key("work_reference_number"),
    };
    let cases = [
        (
            "json_planner",
            policy(json_rows(), false),
            &planner,
            RoleSet::of(&[Role::Planner]),
            &json,
        ),
        (
            "json_planner_redacted",
            policy(json_rows(), true),
            &planner,
            RoleSet::of(&[Role::Planner]),
            &json,
        ),
        (
            "json_highway_authority",
            policy(json_rows(), true),
            &Visibility::All,
            RoleSet::of(&[Role::HighwayAuthority, Role::StreetWorksAdmin]),
            &json,
        ),
        (
            "csv_planner",
            policy(
                RawFilter::Csv {
                    by: key("Work reference number"),
                },
                false,
            ),
            &planner,
            RoleSet::of(&[Role::Planner]),
            &csv,
        ),
    ];

    let mut group = c.benchmark_group("filter_10k_rows");
    for (name, policy, visibility, roles, body) in &cases {
        let caller = Viewer {
            visibility,
            works: Some(works),
            roles: *roles,
        };
        let run = || filter_bytes(policy, &caller, StatusCode::OK, Bytes::clone(body));
        let out = run().expect("bench body filters");
        let peak = peak_growth(|| {
            black_box(run().expect("bench body filters"));
        });
        println!(
            "{name}: body {} bytes, kept {} dropped {}, output {} bytes, peak RSS growth {}",
            body.len(),
            out.kept,
            out.dropped,
            out.body.len(),
            peak.map_or("n/a".into(), |p| format!("{p} bytes")),
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| b.iter(|| black_box(run())));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
