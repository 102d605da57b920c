use super::*;
use crate::authn::identity::Role;
use crate::codes::{SwaCode, Workstream};
use crate::filter::config::{RawFilter, RawRedact, RawResponsePolicy, RawRowKey};
use crate::grants::overlay::CreatedWorks;
use crate::grants::snapshot::{Snapshot, WorkInfo};

fn swa(s: &str) -> SwaCode {
    SwaCode::parse(s).unwrap()
}
fn ws(s: &str) -> Workstream {
    Workstream::parse(s).unwrap()
}

fn policy(rows: &str, key: RawRowKey, redact: &[&str]) -> ResponsePolicy {
    ResponsePolicy::try_from(&RawResponsePolicy {
        filter: Some(RawFilter::Json {
            rows: rows.into(),
            by: key,
        }),
        redact: (!redact.is_empty()).then(|| RawRedact {
            fields: redact.iter().map(|s| s.to_string()).collect(),
            unless_role: "StreetWorksAdmin".into(),
        }),
        max_body_bytes: 1 << 20,
        pagination: Default::default(),
    })
    .unwrap()
}

fn by_fields() -> RawRowKey {
    RawRowKey {
        workstream_field: Some("prefix".into()),
        organisation_field: Some("swa_code".into()),
        work_reference_field: None,
        contract_field: None,
    }
}

fn by_wrn() -> RawRowKey {
    RawRowKey {
        workstream_field: None,
        organisation_field: None,
        work_reference_field: Some("work_reference_number".into()),
        contract_field: None,
    }
}

fn planner_7001_001() -> Visibility {
    Visibility::Workstreams {
        organisation: swa("7001"),
        readable: vec![ws("001")],
    }
}

fn run(
    policy: &ResponsePolicy,
    visibility: &Visibility,
    roles: &[Role],
    status: u16,
    body: &str,
) -> Result<Filtered, FilterError> {
    let snapshot = Snapshot::default();
    let created = CreatedWorks::default();
    for (wrn, org, stream) in [
        ("W1", "7001", "001"),
        ("W2", "7001", "002"),
        ("W3", "7002", "001"),
    ] {
        created.insert(
            wrn,
            WorkInfo {
                promoter: swa(org),
                highway_authority: swa("4020"),
                workstream: ws(stream),
            },
        );
    }
    let caller = Viewer {
        visibility,
        works: Some(Works {
            snapshot: &snapshot,
            created: &created,
        }),
        roles: RoleSet::of(roles),
    };
    filter_bytes(
        policy,
        &caller,
        StatusCode::from_u16(status).unwrap(),
        Bytes::copy_from_slice(body.as_bytes()),
    )
}

fn text(f: &Filtered) -> &str {
    std::str::from_utf8(&f.body).unwrap()
}

#[test]
fn keeps_readable_rows_by_fields_and_copies_the_rest_verbatim() {
    let p = policy("/rows", by_fields(), &[]);
    let body = r#"{"pagination": {"total_rows": 3, "has_next_page": false},
        "rows": [ {"prefix":"001","swa_code":"7001","name":"a"} ,
        {"prefix":"002","swa_code":"7001"}, {"swa_code":"7002","prefix":"001"},
        {"prefix":"001"}, 5, {"prefix":"001","swa_code":"7001","name":"b \"q\""}]}"#;
    let out = run(&p, &planner_7001_001(), &[Role::Planner], 200, body).unwrap();
    assert_eq!(
        text(&out),
        r#"{"pagination":{"has_next_page":false},"rows":[{"prefix":"001","swa_code":"7001","name":"a"},{"prefix":"001","swa_code":"7001","name":"b \"q\""}]}"#
    );
    assert_eq!((out.kept, out.dropped), (2, 4));
}

#[test]
fn keeps_readable_rows_by_work_reference() {
    let p = policy("/rows", by_wrn(), &[]);
    let body = r#"{"rows":[{"work_reference_number":"W1"},{"work_reference_number":"W2"},
        {"work_reference_number":"W3"},{"work_reference_number":"W404"},
        {"work_reference_number":"W\u0031"},{"work_reference_number":null}]}"#;
    let out = run(&p, &planner_7001_001(), &[Role::Planner], 200, body).unwrap();
    assert_eq!(
        text(&out),
        r#"{"rows":[{"work_reference_number":"W1"},{"work_reference_number":"W\u0031"}]}"#
    );
    assert_eq!((out.kept, out.dropped), (2, 4));
}

#[test]
fn all_visibility_keeps_every_row() {
    let p = policy("", by_wrn(), &[]);
    let body = r#"[{"work_reference_number":"W404"},{"x":1}]"#;
    let out = run(&p, &Visibility::All, &[Role::HighwayAuthority], 200, body).unwrap();
    assert_eq!(text(&out), body);
    assert_eq!((out.kept, out.dropped), (2, 0));
}

#[test]
fn a_duplicated_key_member_refuses_the_body() {
    // First-wins and last-wins readers would disagree about whose row it is (found by the
    // json_filter fuzz target's differential against serde_json).
    let p = policy("", by_wrn(), &[]);
    for body in [
        r#"[{"work_reference_number":"W1","work_reference_number":"W2"}]"#,
        r#"[{"work_reference_number":"W2","work_reference_number":"W1"}]"#,
        r#"[{"work_reference_number":"W1","work_reference_numb\u0065r":"W2"}]"#,
    ] {
        let err = run(&p, &planner_7001_001(), &[Role::Planner], 200, body).unwrap_err();
        assert_eq!(err.reason(), Reason::ResponseUnfilterable, "{body}");
    }
}

#[test]
fn a_duplicated_or_escaped_rows_member_cannot_smuggle_rows() {
    let p = policy("/rows", by_wrn(), &[]);
    let body = r#"{"rows":[],"r\u006fws":[{"work_reference_number":"W2"}]}"#;
    let err = run(&p, &planner_7001_001(), &[Role::Planner], 200, body).unwrap_err();
    assert_eq!(err.reason(), Reason::ResponseUnfilterable);
}

#[test]
fn malformed_and_misshapen_bodies_are_unfilterable() {
    let p = policy("/rows", by_wrn(), &[]);
    let v = planner_7001_001();
    for body in [
        r#"{"rows":[{"work_reference_number":"W1"}"#,
        r#"{"rows":[{"work_reference_number":"W1"}]} trailing"#,
        r#"{"rows":{"work_reference_number":"W1"}}"#,
        r#"{"pagination":{}}"#,
        r#"[{"work_reference_number":"W1"}]"#,
        "",
        "\u{0}",
    ] {
        let err = run(&p, &v, &[Role::Planner], 200, body).unwrap_err();
        assert_eq!(err.reason(), Reason::ResponseUnfilterable, "{body:?}");
    }
}

#[test]
fn error_bodies_without_rows_pass_untouched_but_rows_are_filtered() {
    let p = policy("/rows", by_wrn(), &[]);
    let v = planner_7001_001();
    let error = r#"{ "message": "nope", "error": 400 }"#;
    let out = run(&p, &v, &[Role::Planner], 400, error).unwrap();
    assert_eq!(text(&out), error, "byte for byte");
    assert!(!out.rewritten);
    for error in [
        r#"{"rows": null, "message": "x"}"#,
        r#"{"rows": {"a": 1}}"#,
        r#"["an", "array"]"#,
        r#""a string""#,
        r#"{"error": {"rows": [1]}}"#,
    ] {
        let out = run(&p, &v, &[Role::Planner], 422, error).unwrap();
        assert_eq!(text(&out), error);
    }
    assert_eq!(run(&p, &v, &[Role::Planner], 404, "").unwrap().body, "");
    let with_rows = r#"{"rows":[{"work_reference_number":"W2"}]}"#;
    let out = run(&p, &v, &[Role::Planner], 500, with_rows).unwrap();
    assert_eq!(text(&out), r#"{"rows":[]}"#);
    let err = run(&p, &v, &[Role::Planner], 502, "<html>").unwrap_err();
    assert_eq!(err.reason(), Reason::ResponseUnfilterable);
}

#[test]
fn redaction_removes_fields_unless_the_role_is_held() {
    let p = policy(
        "/rows",
        by_wrn(),
        &[
            "rows[].draft_invoice_amount",
            "rows[].s74[].final_agreed_amount",
            "meta.cost",
        ],
    );
    let body = r#"{"meta":{"cost":1,"n":2},"rows":[
        {"work_reference_number":"W1","draft_invoice_amount":120.5,"street":"x"},
        {"work_reference_number":"W1","s74":[{"final_agreed_amount":3,"k":1},null]},
        {"work_reference_number":"W1","s74":null,"draft_invoice_amoun\u0074":9},
        {"work_reference_number":"W1","street":"plain"}]}"#;
    let v = Visibility::All;
    let out = run(&p, &v, &[Role::Planner], 200, body).unwrap();
    assert_eq!(
        text(&out),
        r#"{"meta":{"n":2},"rows":[{"work_reference_number":"W1","street":"x"},{"work_reference_number":"W1","s74":[{"k":1},null]},{"work_reference_number":"W1","s74":null},{"work_reference_number":"W1","street":"plain"}]}"#
    );
    let out = run(&p, &v, &[Role::Planner, Role::StreetWorksAdmin], 200, body).unwrap();
    assert!(text(&out).contains(r#""draft_invoice_amount":120.5"#));
    assert!(text(&out).contains(r#""cost":1"#));
    assert_eq!(out.kept, 4);
}

#[test]
fn redaction_only_policy() {
    let p = ResponsePolicy::try_from(&RawResponsePolicy {
        filter: None,
        redact: Some(RawRedact {
            fields: vec!["draft_invoice_amount".into(), "final_agreed_amount".into()],
            unless_role: "StreetWorksAdmin".into(),
        }),
        max_body_bytes: 1024,
        pagination: Default::default(),
    })
    .unwrap();
    let body = r#"{"section_74_reference_number":"S1","draft_invoice_amount":10,"final_agreed_amount":null}"#;
    let out = run(&p, &Visibility::All, &[Role::Planner], 200, body).unwrap();
    assert_eq!(text(&out), r#"{"section_74_reference_number":"S1"}"#);
    let admin = [Role::Admin, Role::StreetWorksAdmin];
    let out = run(&p, &Visibility::All, &admin, 200, body).unwrap();
    assert_eq!(text(&out), body);
    assert!(!out.rewritten);
    let err = run(&p, &Visibility::All, &[Role::Planner], 200, "{").unwrap_err();
    assert_eq!(err.reason(), Reason::ResponseUnfilterable);
}

#[test]
fn csv_error_bodies_in_json_pass() {
    let p = ResponsePolicy::try_from(&RawResponsePolicy {
        filter: Some(RawFilter::Csv { by: by_wrn() }),
        redact: None,
        max_body_bytes: 1024,
        pagination: Default::default(),
    })
    .unwrap();
    let v = planner_7001_001();
    let out = run(&p, &v, &[Role::Planner], 404, r#"{"message":"gone"}"#).unwrap();
    assert!(!out.rewritten);
    let out = run(
        &p,
        &v,
        &[Role::Planner],
        200,
        "work_reference_number,x\nW1,1\nW2,2\n",
    )
    .unwrap();
    assert_eq!(text(&out), "work_reference_number,x\nW1,1\n");
    let err = run(&p, &v, &[Role::Planner], 200, r#"{"message":"x"}"#).unwrap_err();
    assert_eq!(err.reason(), Reason::ResponseUnfilterable);
}

#[test]
fn rows_under_a_nested_pointer() {
    let p = policy("/data/items", by_wrn(), &["data.items[].secret"]);
    let body = r#"{"data":{"count":3,"items":[{"work_reference_number":"W1","secret":1},
        {"work_reference_number":"W3","secret":2}]},"next":null}"#;
    let out = run(&p, &planner_7001_001(), &[Role::Planner], 200, body).unwrap();
    assert_eq!(
        text(&out),
        r#"{"data":{"count":3,"items":[{"work_reference_number":"W1"}]},"next":null}"#
    );
    let err = run(
        &p,
        &planner_7001_001(),
        &[Role::Planner],
        200,
        r#"{"data":[]}"#,
    )
    .unwrap_err();
    assert_eq!(err.reason(), Reason::ResponseUnfilterable);
}

#[test]
fn pagination_counts_are_removed_or_recomputed() {
    let body = r#"{"pagination": {"total_rows": 40, "total_pages": 4, "has_next_page": true},
        "rows": [{"work_reference_number":"W1"},{"work_reference_number":"W2"},{"work_reference_number":"W9"}]}"#;
    let v = planner_7001_001();
    let p = policy("/rows", by_wrn(), &[]);
    let out = run(&p, &v, &[Role::Planner], 200, body).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        json["pagination"],
        serde_json::json!({"has_next_page": true})
    );

    let mut raw = RawResponsePolicy {
        filter: Some(RawFilter::Json {
            rows: "/rows".into(),
            by: by_wrn(),
        }),
        redact: None,
        max_body_bytes: 1 << 20,
        pagination: crate::filter::config::RawPagination::Recompute,
    };
    let p = ResponsePolicy::try_from(&raw).unwrap();
    // Counts before and after the rows: both see the final count.
    for body in [
        body.to_owned(),
        r#"{"rows": [{"work_reference_number":"W1"}], "pagination": {"total_rows": 40}}"#.into(),
    ] {
        let out = run(&p, &v, &[Role::Planner], 200, &body).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(json["pagination"]["total_rows"], out.kept, "{body}");
        assert_eq!(json["rows"].as_array().unwrap().len() as u64, out.kept);
    }
    // A nested rows pointer: pagination beside the rows array.
    raw.filter = Some(RawFilter::Json {
        rows: "/data/rows".into(),
        by: by_wrn(),
    });
    raw.pagination = crate::filter::config::RawPagination::Remove;
    let p = ResponsePolicy::try_from(&raw).unwrap();
    let body = r#"{"data": {"rows": [], "pagination": {"total_rows": 9}}, "pagination": {"total_rows": 1}}"#;
    let json: serde_json::Value =
        serde_json::from_slice(&run(&p, &v, &[Role::Planner], 200, body).unwrap().body).unwrap();
    assert_eq!(json["data"]["pagination"], serde_json::json!({}));
    assert_eq!(
        json["pagination"]["total_rows"], 1,
        "only the rows' sibling is touched"
    );
}
