use crate::codes::SwaCode;
use crate::grants::Snapshot;
use crate::grants::SnapshotError;
use crate::grants::format::AccessLevel;
use crate::grants::load::{Loaded, load};
use crate::grants::validate::tests::GOOD;

fn base() -> Snapshot {
    Snapshot::from_json(GOOD.as_bytes(), None).unwrap()
}

fn delta(body: &str) -> String {
    format!(r#"{{"version": 1843, "since": 1842, "generated_at": "2026-11-23T08:00:00Z", {body}}}"#)
}

fn apply(base: &Snapshot, json: &str) -> Result<Snapshot, SnapshotError> {
    match load(json.as_bytes(), Some(base.version), None)? {
        Loaded::Delta(d) => base.apply_delta(&d),
        _ => panic!("not a delta: {json}"),
    }
}

/// Locations of the problems a refused delta reports.
fn refused(json: &str) -> Vec<String> {
    let base = base();
    match apply(&base, json) {
        Err(SnapshotError::Invalid(p)) => p.iter().map(|p| p.location.clone()).collect(),
        other => panic!("not refused as invalid: {other:?}"),
    }
}

const USER_A_REVOKED: &str = r#"{"sub": "user-a", "organisation": "7001",
    "tokens_valid_after": "2026-11-23T07:30:00Z",
    "workstreams": {"7001": {"001": "read-only"}}}"#;

#[test]
fn upserts_and_deletes_land_and_the_base_is_untouched() {
    let base = base();
    let json = delta(&format!(
        r#""upsert": {{"users": [{USER_A_REVOKED}],
            "works": [{{"work_reference_number": "NW9", "promoter": "7001",
                        "highway_authority": "4020", "workstream": "002"}}]}},
           "delete": {{"users": ["dig-1"], "works": ["BC00000000001"]}}"#
    ));
    let next = apply(&base, &json).unwrap();
    let swa = SwaCode::parse("7001").unwrap();
    let ws = crate::codes::Workstream::parse("001").unwrap();
    assert_eq!(next.version, 1843);
    assert_eq!(next.access("user-a", swa, ws), AccessLevel::ReadOnly);
    assert_eq!(base.access("user-a", swa, ws), AccessLevel::FullWrite);
    assert!(next.user("dig-1").is_none() && base.user("dig-1").is_some());
    assert!(next.work("NW9").is_some() && base.work("NW9").is_none());
    assert!(next.work("BC00000000001").is_none() && base.work("BC00000000001").is_some());
    assert_eq!((next.work_count(), next.user_count()), (2, 1));
    assert!(next.work("NW00112345678").is_some());
}

#[test]
fn an_empty_delta_only_moves_the_version() {
    let next = apply(&base(), &delta(r#""upsert": {}"#)).unwrap();
    assert_eq!(
        (next.version, next.work_count(), next.user_count()),
        (1843, 2, 2)
    );
}

#[test]
fn a_delta_on_another_version_does_not_apply() {
    let json = r#"{"version": 1850, "since": 1841, "generated_at": "2026-11-23T08:00:00Z"}"#;
    assert!(matches!(
        apply(&base(), json),
        Err(SnapshotError::DeltaBase {
            since: 1841,
            in_force: Some(1842)
        })
    ));
}

#[test]
fn header_problems() {
    let base = base();
    let json = r#"{"version": 1842, "since": 1842, "generated_at": "yesterday"}"#;
    let Err(SnapshotError::Invalid(p)) = apply(&base, json) else {
        panic!("accepted")
    };
    let at: Vec<_> = p.iter().map(|p| p.location.as_str()).collect();
    assert_eq!(at, ["version", "generated_at"]);
}

#[test]
fn upserted_entries_are_checked_like_a_full_documents() {
    let json = delta(
        r#""upsert": {
          "organisations": [{"swa_code": "C902", "name": "X", "kind": "contractor", "status": "active",
                             "workstreams": ["001"]},
                            {"swa_code": "7002", "name": "Y", "kind": "promoter", "status": "active",
                             "workstreams": ["000"], "contractors": ["4020", "9999"]}],
          "users": [{"sub": "", "organisation": "9999"},
                    {"sub": "u2", "organisation": "7001", "workstreams": {"7001": {"009": "read-only", "001": "all"}}},
                    {"sub": "u2", "organisation": "7001"}],
          "works": [{"work_reference_number": "W1", "promoter": "C901", "highway_authority": "7001", "workstream": "001"},
                    {"work_reference_number": "W1", "promoter": "7001", "highway_authority": "4020", "workstream": "00x"}]}"#,
    );
    assert_eq!(
        refused(&json),
        [
            "upsert.organisations[0].workstreams",
            "upsert.organisations[1].contractors[0]",
            "upsert.organisations[1].contractors[1]",
            "upsert.users[0].sub",
            "upsert.users[0].organisation",
            "upsert.users[1].workstreams.7001.009",
            "upsert.users[1].workstreams.7001.001",
            "upsert.users[2].sub",
            "upsert.works[0].promoter",
            "upsert.works[0].highway_authority",
            "upsert.works[0].workstream",
            "upsert.works[1].work_reference_number",
            "upsert.works[1].workstream",
        ]
    );
}

#[test]
fn deletes_must_name_present_keys_once_and_not_also_upsert_them() {
    let json = delta(&format!(
        r#""upsert": {{"users": [{USER_A_REVOKED}]}},
           "delete": {{"users": ["user-a", "ghost", "dig-1", "dig-1"],
                       "works": ["NOPE"], "organisations": ["99"]}}"#
    ));
    assert_eq!(
        refused(&json),
        [
            "delete.organisations[0]",
            "delete.users[0]",
            "delete.users[1]",
            "delete.users[3]",
            "delete.works[0]",
        ]
    );
}

#[test]
fn removing_an_organisation_still_referenced_is_refused() {
    // 4030 is a work's promoter and authority; C901 is 7001's contractor and dig-1's employer.
    let json = delta(r#""delete": {"organisations": ["4030", "C901"]}"#);
    let mut at = refused(&json);
    at.sort();
    assert_eq!(
        at,
        [
            r#"organisations[7001].contractors"#,
            r#"users["dig-1"].organisation"#,
            r#"works["BC00000000001"].highway_authority"#,
            r#"works["BC00000000001"].promoter"#,
        ]
    );
    // Deleting what refers to them too makes it whole again.
    let json = delta(
        r#""upsert": {"organisations": [{"swa_code": "7001", "name": "Northern Water",
              "kind": "promoter", "status": "active", "workstreams": ["000", "001", "002", "003", "004"]}]},
           "delete": {"organisations": ["4030", "C901"], "users": ["dig-1"], "works": ["BC00000000001"]}"#,
    );
    let next = apply(&base(), &json).unwrap();
    assert!(next.organisation(SwaCode::parse("C901").unwrap()).is_none());
}

#[test]
fn narrowing_an_organisation_rechecks_what_refers_to_it() {
    // 7001 loses workstream 001 (user-a's and dig-1's grants, work NW001...) and 4020 stops
    // being a highway authority.
    let json = delta(
        r#""upsert": {"organisations": [
            {"swa_code": "7001", "name": "Northern Water", "kind": "promoter", "status": "active",
             "workstreams": ["000", "002", "003", "004"], "contractors": ["C901"]},
            {"swa_code": "4020", "name": "Leeds", "kind": "promoter", "status": "active"}]}"#,
    );
    let mut at = refused(&json);
    at.sort();
    assert_eq!(
        at,
        [
            r#"users["dig-1"].workstreams.7001.001"#,
            r#"users["user-a"].workstreams.7001.001"#,
            r#"works["NW00112345678"].highway_authority"#,
            r#"works["NW00112345678"].workstream"#,
        ]
    );
    // A change of name or status alone is no narrowing.
    let json = delta(
        r#""upsert": {"organisations": [
            {"swa_code": "7001", "name": "NW", "kind": "promoter", "status": "suspended",
             "workstreams": ["000", "001", "002", "003", "004", "005"], "contractors": ["C901"]}]}"#,
    );
    assert!(apply(&base(), &json).is_ok());
}

#[test]
fn a_document_is_either_full_or_a_delta() {
    for json in [
        r#"{"version": 2, "since": 1, "generated_at": "2026-11-23T08:00:00Z", "works": []}"#,
        r#"{"works": [], "version": 2, "since": 1, "generated_at": "2026-11-23T08:00:00Z"}"#,
        r#"{"version": 2, "generated_at": "2026-11-23T08:00:00Z", "upsert": {}}"#,
    ] {
        assert!(
            matches!(
                load(json.as_bytes(), None, None),
                Err(SnapshotError::Mixed(_))
            ),
            "{json}"
        );
    }
    for json in [
        r#"{"version": 2, "since": 1, "generated_at": "x", "upsert": {"bogus": []}}"#,
        r#"{"version": 2, "since": 1, "since": 1, "generated_at": "x"}"#,
        r#"{"version": 2, "generated_at": "x", "works": [], "works": []}"#,
        r#"{"version": 2, "generated_at": "x", "extra": 1}"#,
        r#"{"generated_at": "x"}"#,
    ] {
        assert!(
            matches!(
                load(json.as_bytes(), None, None),
                Err(SnapshotError::Json(_))
            ),
            "{json}"
        );
    }
    assert!(matches!(
        load(GOOD.as_bytes(), None, None),
        Ok(Loaded::Full(_))
    ));
}
