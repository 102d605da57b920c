//! Street Manager-shaped reporting bodies (`PermitReportingResponse` in the reporting spec,
//! rows of `PermitSummaryResponse`) for the filter tests and bench.
#![allow(dead_code)]

use serde_json::{Value, json};
use streetgate::grants::codes::{SwaCode, Workstream};
use streetgate::grants::overlay::CreatedWorks;
use streetgate::grants::snapshot::WorkInfo;

/// One generated permit row and the truth about it.
#[derive(Debug, Clone)]
pub struct Row {
    pub work_reference_number: String,
    pub promoter: &'static str,
    pub workstream: &'static str,
    /// In the works index (unknown works must be dropped for workstream-limited callers).
    pub known: bool,
}

pub const PROMOTERS: [&str; 2] = ["7001", "7002"];
pub const WORKSTREAMS: [&str; 4] = ["001", "002", "003", "000"];

/// `n` rows spread over promoters and workstreams; every 13th work is unknown.
pub fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            work_reference_number: format!("NW{:03}{:08}", i % 7, i),
            promoter: PROMOTERS[i % PROMOTERS.len()],
            workstream: WORKSTREAMS[(i / 2) % WORKSTREAMS.len()],
            known: i % 13 != 5,
        })
        .collect()
}

/// Registers the known rows' works in an overlay (the test-side works index).
pub fn works_index(rows: &[Row]) -> CreatedWorks {
    let created = CreatedWorks::default();
    for row in rows.iter().filter(|r| r.known) {
        created.insert(
            &row.work_reference_number,
            WorkInfo {
                promoter: SwaCode::parse(row.promoter).unwrap(),
                highway_authority: SwaCode::parse("4020").unwrap(),
                workstream: Workstream::parse(row.workstream).unwrap(),
            },
        );
    }
    created
}

/// A `PermitSummaryResponse` with every required field, plus the section 74 financial fields
/// (`draft_invoice_amount`, `final_agreed_amount` from the work API's `Section74Response`)
/// that the redaction tests remove.
pub fn permit_row(i: usize, row: &Row) -> Value {
    json!({
        "work_reference_number": row.work_reference_number,
        "permit_reference_number": format!("{}-01", row.work_reference_number),
        "promoter_swa_code": row.promoter,
        "promoter_organisation": if row.promoter == "7001" { "Northern Water" } else { "Eastern Gas" },
        "highway_authority": "Leeds City Council",
        "works_coordinates": {"type": "Point", "coordinates": [430000.5 + i as f64, 433000.25]},
        "location_description": format!("Outside number {}, \"the old mill\", near the junction", i % 300),
        "street": "Kirkstall Road",
        "town": "Leeds",
        "area": "West Yorkshire",
        "work_category": "standard",
        "work_category_string": "Standard",
        "description_of_work": "Replace 12m of 90mm PE main; excavation in carriageway\nand footway",
        "traffic_management_type": "some_carriageway_incursion",
        "traffic_management_type_string": "Some carriageway incursion",
        "assessment_status": null,
        "assessment_status_string": null,
        "proposed_start_date": "2026-11-30T00:00:00.000Z",
        "proposed_end_date": "2026-12-04T00:00:00.000Z",
        "proposed_start_time": null,
        "proposed_end_time": null,
        "actual_start_date": null,
        "actual_end_date": null,
        "status": "submitted",
        "status_string": "Submitted",
        "work_status": "planned",
        "work_status_string": "Planned",
        "deadline_date": "2026-11-25T00:00:00.000Z",
        "date_created": "2026-11-20T09:14:03.120Z",
        "status_changed_date": "2026-11-20T09:14:03.120Z",
        "usrn": 8400000 + i,
        "is_active_permit": true,
        "permit_conditions": [{"condition": "NCT01a", "comment": "Work between 09:30 and 15:30"}],
        "road_category": 3,
        "is_traffic_sensitive": i.is_multiple_of(3),
        "has_no_final_reinstatement": false,
        "is_deemed": false,
        "excavation_carried_out": true,
        "is_early_start": false,
        "is_high_impact_traffic_management": false,
        "is_lane_rental": false,
        "lane_rental_assessment_outcome": null,
        "lane_rental_assessment_outcome_string": null,
        "lane_rental_charges_not_agreed": false,
        "lane_rental_charges_potentially_apply": false,
        "draft_invoice_amount": 1250.5 + i as f64,
        "final_agreed_amount": null
    })
}

/// A whole `PermitReportingResponse` body with `pagination` first, as Street Manager sends it.
pub fn permit_reporting_body(rows: &[Row]) -> String {
    let rows_json: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| permit_row(i, r).to_string())
        .collect();
    format!(
        "{{\"pagination\":{},\"rows\":[{}]}}",
        pagination(rows.len()),
        rows_json.join(",")
    )
}

pub fn pagination(total: usize) -> String {
    format!("{{\"total_rows\":{total},\"has_next_page\":true}}")
}

/// A data export CSV of the same rows, with quoted commas, quotes and newlines in fields.
pub fn export_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "Work reference number,Permit reference number,Promoter SWA code,Location description,Description of work\r\n",
    );
    for (i, r) in rows.iter().enumerate() {
        out.push_str(&format!(
            "{},{}-01,{},\"Outside number {}, \"\"the old mill\"\"\",\"Replace main\nin footway\"\r\n",
            r.work_reference_number,
            r.work_reference_number,
            r.promoter,
            i % 300
        ));
    }
    out
}
