//! The streamed load of a full document: the same snapshot and the same problems however the
//! indexes were sized (a size hint that is right, missing, or lying small or huge).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure with its location"
)]

use streetgate::grants::synthetic::{synthetic_document, work_reference};
use streetgate::grants::{Snapshot, SnapshotError};

/// More works than one batch (64k), so the index is sized from the first batch.
const WORKS: usize = 100_000;
const USERS: usize = 3_000;

fn hints(len: u64) -> [Option<u64>; 7] {
    [
        None,
        Some(0),
        Some(1),
        Some(len / 10),
        Some(len),
        Some(len * 100),
        Some(u64::MAX),
    ]
}

fn load(doc: &[u8], hint: Option<u64>) -> Result<Snapshot, SnapshotError> {
    match hint {
        None => Snapshot::from_reader(doc, None),
        Some(h) => Snapshot::from_reader_sized(doc, None, h),
    }
}

#[test]
fn any_size_hint_loads_the_same_snapshot() {
    let doc = synthetic_document(100, USERS, WORKS);
    let reference = Snapshot::from_json(&doc, None).unwrap();
    for hint in hints(doc.len() as u64) {
        let s = load(&doc, hint).unwrap();
        assert_eq!(s.work_count(), WORKS, "{hint:?}");
        assert_eq!(s.user_count(), USERS, "{hint:?}");
        for i in (0..WORKS).step_by(7) {
            let wrn = work_reference(i);
            assert_eq!(s.work(&wrn), reference.work(&wrn), "{hint:?} {wrn}");
            assert!(s.work(&wrn).is_some(), "{hint:?} {wrn}");
        }
        assert_eq!(s.work("SW99999999999"), None, "{hint:?}");
        for u in (0..USERS).step_by(11) {
            let sub = format!("user-{u}");
            assert_eq!(
                s.user(&sub).map(|u| u.organisation),
                reference.user(&sub).map(|u| u.organisation),
                "{hint:?} {sub}"
            );
        }
    }
}

/// Duplicates in the first batch, across batches and in the last one, plus a bad field:
/// reported in document order with their paths, whatever the hint.
#[test]
fn any_size_hint_reports_the_same_problems_in_document_order() {
    let text = String::from_utf8(synthetic_document(100, 10, WORKS)).unwrap();
    let text = text
        .replacen(&work_reference(70_000), &work_reference(3), 1)
        .replacen(&work_reference(99_999), &work_reference(80_000), 1)
        .replacen(&work_reference(10), &work_reference(9), 1)
        .replacen(r#""workstream":"005"}"#, r#""workstream":"5"}"#, 1);
    let problems = |hint| match load(text.as_bytes(), hint) {
        Err(SnapshotError::Invalid(p)) => p.to_string(),
        other => panic!("{hint:?}: {:?}", other.map(|s| s.work_count())),
    };
    let expected = problems(None);
    let at = |needle: &str| {
        expected
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {expected}"))
    };
    assert!(at("works[5].workstream") < at("works[10].work_reference_number"));
    assert!(at("works[10].work_reference_number") < at("works[70000].work_reference_number"));
    assert!(at("works[70000]") < at("works[99999].work_reference_number"));
    for hint in hints(text.len() as u64) {
        assert_eq!(problems(hint), expected, "{hint:?}");
    }
}

/// Works in four batches (the last partial), with problems in each and a duplicate of an
/// earlier batch's work; then a variant with `users` after `works`, whose problems must
/// come after every work's.
fn bad_documents() -> Vec<String> {
    let works = 200_000;
    let text = String::from_utf8(synthetic_document(100, 50, works)).unwrap();
    let bad = text
        .replacen(&work_reference(65_000), &work_reference(12), 1)
        .replacen(&work_reference(140_000), &work_reference(139_999), 1)
        .replacen(&work_reference(199_999), &work_reference(70_000), 1)
        .replacen(r#""workstream":"005"}"#, r#""workstream":"5"}"#, 1);
    let users_at = bad.find(r#","users":["#).unwrap();
    let works_at = bad.find(r#","works":["#).unwrap();
    let users = bad[users_at..works_at].replacen(r#""sub":"user-7""#, r#""sub":"user-3""#, 1);
    let works_last = format!(
        "{}{}{}}}",
        &bad[..users_at],
        &bad[works_at..bad.len() - 1],
        users
    );
    vec![bad, works_last]
}

#[test]
fn indexing_on_a_second_thread_builds_the_same_snapshot() {
    let doc = synthetic_document(100, USERS, 200_000);
    let one = Snapshot::from_reader_in_one_thread(&doc[..]).unwrap();
    let two = Snapshot::from_reader(&doc[..], None).unwrap();
    assert_eq!((two.work_count(), two.user_count()), (200_000, USERS));
    for i in 0..200_000 {
        let wrn = work_reference(i);
        assert_eq!(two.work(&wrn), one.work(&wrn), "{wrn}");
    }
}

#[test]
fn indexing_on_a_second_thread_reports_problems_in_document_order() {
    for (n, doc) in bad_documents().iter().enumerate() {
        let problems = |s: Result<Snapshot, SnapshotError>| match s {
            Err(SnapshotError::Invalid(p)) => p.to_string(),
            other => panic!("document {n}: {:?}", other.map(|s| s.work_count())),
        };
        let one = problems(Snapshot::from_reader_in_one_thread(doc.as_bytes()));
        let two = problems(Snapshot::from_reader(doc.as_bytes(), None));
        assert_eq!(two, one, "document {n}");
        let sized = problems(Snapshot::from_reader_sized(
            doc.as_bytes(),
            None,
            doc.len() as u64,
        ));
        assert_eq!(sized, one, "document {n}");
        let at = |needle: &str| {
            one.find(needle)
                .unwrap_or_else(|| panic!("document {n}: {needle} not in {one}"))
        };
        let order = [
            "works[5].workstream",
            "works[65000].work_reference_number",
            "works[140000].work_reference_number",
            "works[199999].work_reference_number",
        ];
        for pair in order.windows(2) {
            assert!(at(pair[0]) < at(pair[1]), "document {n}: {pair:?} in {one}");
        }
        if n == 1 {
            assert!(at("works[199999]") < at("users[7].sub"), "{one}");
        }
    }
}
