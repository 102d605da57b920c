use crate::codes::{SwaCode, Workstream};
use crate::grants::format::{AccessLevel, OrgKind, OrgStatus};
use crate::grants::snapshot::{Snapshot, SnapshotError, WorkInfo};
use crate::grants::validate::tests::GOOD;

fn swa(s: &str) -> SwaCode {
    SwaCode::parse(s).unwrap()
}

fn ws(s: &str) -> Workstream {
    Workstream::parse(s).unwrap()
}

#[test]
fn builds_every_index() {
    let s = Snapshot::from_json(GOOD.as_bytes(), None).unwrap();
    assert_eq!(s.version, 1842);
    assert_eq!(s.generated_at, 1_795_417_200);
    assert_eq!((s.user_count(), s.work_count()), (2, 2));

    let nw = s.organisation(swa("7001")).unwrap();
    assert_eq!(&*nw.name, "Northern Water");
    assert_eq!((nw.kind, nw.status), (OrgKind::Promoter, OrgStatus::Active));
    assert_eq!(nw.workstreams.len(), 5);
    assert_eq!(
        s.organisation(swa("4030")).unwrap().status,
        OrgStatus::Suspended
    );
    assert!(s.organisation(swa("9999")).is_none());

    assert!(s.has_contract(swa("7001"), swa("C901")));
    assert!(!s.has_contract(swa("4020"), swa("C901")));
    assert!(!s.has_contract(swa("9999"), swa("C901")));

    let a = s.user("user-a").unwrap();
    assert_eq!(a.organisation, Some(swa("7001")));
    assert_eq!(a.tokens_valid_after, Some(1_795_417_200 - 3600));
    assert_eq!(s.user("dig-1").unwrap().tokens_valid_after, None);
    assert!(s.user("user-b").is_none());

    assert_eq!(
        s.access("user-a", swa("7001"), ws("001")),
        AccessLevel::FullWrite
    );
    assert_eq!(
        s.access("user-a", swa("7001"), ws("003")),
        AccessLevel::NoAccess
    );
    assert_eq!(
        s.access("user-a", swa("7001"), ws("004")),
        AccessLevel::NoAccess
    );
    assert_eq!(
        s.access("dig-1", swa("7001"), ws("001")),
        AccessLevel::ReadOnly
    );
    assert_eq!(
        s.access("dig-1", swa("C901"), ws("001")),
        AccessLevel::NoAccess
    );
    assert_eq!(
        s.access("nobody", swa("7001"), ws("001")),
        AccessLevel::NoAccess
    );

    assert_eq!(
        s.work("NW00112345678"),
        Some(WorkInfo {
            promoter: swa("7001"),
            highway_authority: swa("4020"),
            workstream: ws("001"),
        })
    );
    assert_eq!(s.work("NW00112345679"), None);
}

#[test]
fn invalid_document_is_not_built() {
    let bad = GOOD.replace(r#""workstream": "001""#, r#""workstream": "009""#);
    match Snapshot::from_json(bad.as_bytes(), None) {
        Err(SnapshotError::Invalid(p)) => assert_eq!(p.len(), 1),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Snapshot::from_json(GOOD.as_bytes(), Some(1842)),
        Err(SnapshotError::Invalid(_))
    ));
    assert!(matches!(
        Snapshot::from_json(b"{\"version\": 1", None),
        Err(SnapshotError::Json(_))
    ));
}

#[test]
fn json_error_names_its_path() {
    let bad = GOOD.replace(r#""kind": "contractor""#, r#""kind": "digger""#);
    let err = Snapshot::from_json(bad.as_bytes(), None).unwrap_err();
    assert!(err.to_string().contains("organisations[3].kind"), "{err}");
}

#[test]
fn escaped_strings_are_read() {
    // Escapes cannot be borrowed from the input; they must still parse.
    let json = GOOD.replace("NW00112345678", r"NW\u0030\u00301").replace(
        r#""7001": {"001": "read-only"}"#,
        r#""\u0037001": {"00\u0031": "read-\u006fnly"}"#,
    );
    assert_eq!(json.matches(r"\u00").count(), 5);
    let s = Snapshot::from_json(json.as_bytes(), None).unwrap();
    assert!(s.work("NW001").is_some());
    assert_eq!(
        s.access("dig-1", swa("7001"), ws("001")),
        AccessLevel::ReadOnly
    );
}
