//! The metrics SREs are told about exist from the first scrape: every series documented in
//! docs/operations.md with fixed label values is there at zero before anything happened, and
//! so are both row outcomes of every filtered route. An alert on any of them never reads
//! "no data".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure with its location"
)]

mod common;
use common::*;

const ROUTES: &str = r#"
      - id: Status
        route: GET /status
        allow: public
      - id: ListPermits
        route: GET /permits
        allow: {roles: [Planner]}
        access: filtered
        response:
          filter: {json: {rows: /rows, work_reference_field: work_reference_number}}
      - id: GetSection74
        route: GET /section74s/{ref}
        allow: {roles: [Planner]}
        response:
          redact: {fields: [final_agreed_amount]}
"#;

/// One documented metric: its name and, per label, the values the table lists (empty when the
/// values come from the config, like `route`).
struct Documented {
    name: String,
    labels: Vec<(String, Vec<String>)>,
    /// Registered only when its feature is configured ("with otel configured").
    conditional: bool,
}

/// The rows of the metrics table in docs/operations.md.
fn documented() -> Vec<Documented> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let mut out = Vec::new();
    for line in doc.lines() {
        let Some(rest) = line.strip_prefix("| `streetgate_") else {
            continue;
        };
        let (name, cells) = rest.split_once('`').unwrap();
        let labels_cell = cells.trim_start_matches(" |").trim_end_matches('|').trim();
        let mut labels = Vec::new();
        // "`route`, `decision` (allow, deny, shadow_deny), `reason`"
        let parts: Vec<&str> = labels_cell.split('`').collect();
        // Odd parts are label names; the part after each may hold "(value, value)".
        for i in (1..parts.len()).step_by(2) {
            let tail = parts.get(i + 1).copied().unwrap_or_default();
            let values = match (tail.find('('), tail.find(')')) {
                (Some(open), Some(close)) => tail[open + 1..close]
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            labels.push((parts[i].to_owned(), values));
        }
        out.push(Documented {
            name: format!("streetgate_{name}"),
            labels,
            conditional: labels_cell.contains("configured)") || labels_cell.contains("configured;"),
        });
    }
    assert!(
        out.len() >= 10,
        "metrics table not found in docs/operations.md"
    );
    out
}

/// The series is in the scrape (`sample` fails the test otherwise) with a number. Nothing has
/// been requested, so only start-up itself (the first snapshot load) can have counted.
fn present(scrape: &str, series: &str) {
    assert!(sample(scrape, series).is_finite(), "{series}");
}

#[tokio::test]
async fn a_fresh_scrape_lists_every_documented_series_at_zero() {
    let grants = format!(
        "grants:\n  source:\n    file:\n      path: {}\n      poll_interval: 1h\n  max_age: 1h\n",
        fixture("grants/integrity.json").display()
    );
    let World { gw, upstream, .. } = World::start(ROUTES, &grants).await;
    let scrape = metrics(&gw).await;
    assert_eq!(upstream.count(), 0);
    let mut checked = 0;
    for metric in documented() {
        if metric.conditional {
            assert!(
                !scrape.contains(&format!("# TYPE {} ", metric.name)),
                "{} is documented as conditional but exported without its feature",
                metric.name
            );
            continue;
        }
        let label_names: Vec<&str> = metric.labels.iter().map(|(l, _)| l.as_str()).collect();
        match label_names.as_slice() {
            // Plain series: gauges, process-wide counters, the decision-time histogram.
            [] => {
                let series = if scrape.contains(&format!("# TYPE {} histogram", metric.name)) {
                    format!("{}_count", metric.name)
                } else {
                    metric.name.clone()
                };
                present(&scrape, &series);
                checked += 1;
            }
            // Fixed-enum labels (result, direction): every value at zero.
            [label] if !metric.labels[0].1.is_empty() => {
                for value in &metric.labels[0].1 {
                    let series = format!("{}{{{label}=\"{value}\"}}", metric.name);
                    present(&scrape, &series);
                    checked += 1;
                }
            }
            // One series per worker thread, created as each worker starts.
            ["worker"] => {
                present(&scrape, &format!("{}{{worker=\"0\"}}", metric.name));
                checked += 1;
            }
            // Rows of every filtered route (any route with a response policy).
            ["route", "outcome"] => {
                let outcomes = &metric.labels[1].1;
                assert_eq!(outcomes, &["kept", "dropped"], "{}", metric.name);
                for route in ["ListPermits", "GetSection74"] {
                    for outcome in outcomes {
                        // Nothing was requested, so nothing was kept or dropped.
                        let series =
                            format!("{}{{outcome=\"{outcome}\",route=\"{route}\"}}", metric.name);
                        assert_eq!(sample(&scrape, &series), 0.0, "{series}");
                        checked += 1;
                    }
                }
                assert!(
                    !scrape.contains(&format!(
                        "{}{{outcome=\"kept\",route=\"Status\"}}",
                        metric.name
                    )),
                    "an unfiltered route has no row series"
                );
            }
            // Per route and decision or status: these appear with a route's first request
            // (route × reason × decision is too many series to create up front); the
            // documentation says so.
            ["route", ..] => {}
            // Labelled by integrators the snapshot names: a series appears with each one's first
            // decision (the documentation says so).
            ["integrator", ..] => {}
            other => panic!("{}: labels {other:?} not covered by this test", metric.name),
        }
    }
    assert!(checked >= 20, "only {checked} series checked");
}

#[test]
fn the_documentation_says_which_series_appear_with_traffic() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    assert!(
        doc.contains("appear with a route's first request"),
        "docs/operations.md must say which series are not there from the start"
    );
}
