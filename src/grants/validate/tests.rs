use crate::grants::Snapshot;
use crate::grants::SnapshotError;

/// docs/model.md's example document, extended with a second authority and a contractor user.
pub(crate) const GOOD: &str = r#"{
  "version": 1842,
  "generated_at": "2026-11-23T07:00:00Z",
  "organisations": [
    {"swa_code": "7001", "name": "Northern Water", "kind": "promoter", "status": "active",
     "workstreams": ["000", "001", "002", "003", "004"], "contractors": ["C901"]},
    {"swa_code": "4020", "name": "Leeds City Council", "kind": "highway_authority", "status": "active"},
    {"swa_code": "4030", "name": "Bradford Council", "kind": "highway_authority", "status": "suspended",
     "workstreams": ["000"]},
    {"swa_code": "C901", "name": "Dig Ltd", "kind": "contractor", "status": "active"}
  ],
  "users": [
    {"sub": "user-a", "organisation": "7001", "tokens_valid_after": "2026-11-23T06:00:00Z",
     "workstreams": {"7001": {"001": "full-write", "002": "full-write", "003": "no-access"}}},
    {"sub": "dig-1", "organisation": "C901",
     "workstreams": {"7001": {"001": "read-only"}}}
  ],
  "works": [
    {"work_reference_number": "NW00112345678", "promoter": "7001", "highway_authority": "4020",
     "workstream": "001"},
    {"work_reference_number": "BC00000000001", "promoter": "4030", "highway_authority": "4030",
     "workstream": "000"}
  ]
}"#;

/// Every (location, message) validation reports for `json`, checked against the version in force.
fn problems(json: &str, in_force: Option<u64>) -> Vec<(String, String)> {
    match Snapshot::from_json(json.as_bytes(), in_force) {
        Ok(_) => vec![],
        Err(SnapshotError::Invalid(problems)) => problems
            .iter()
            .map(|p| (p.location.clone(), p.message.clone()))
            .collect(),
        Err(e) => panic!("not a document: {e}"),
    }
}

fn locations(json: &str) -> Vec<String> {
    problems(json, None).into_iter().map(|(l, _)| l).collect()
}

#[test]
fn good_document_has_no_problems() {
    assert_eq!(problems(GOOD, None), vec![]);
    assert_eq!(problems(GOOD, Some(1841)), vec![]);
}

#[test]
fn version_must_grow() {
    for in_force in [1842, 1843, u64::MAX] {
        let p = problems(GOOD, Some(in_force));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "version");
        assert!(p[0].1.contains("not above"), "{}", p[0].1);
    }
}

#[test]
fn malformed_codes_and_timestamps() {
    let json = GOOD
        .replace(
            r#""generated_at": "2026-11-23T07:00:00Z""#,
            r#""generated_at": "today""#,
        )
        .replace(r#""2026-11-23T06:00:00Z""#, r#""2026-11-23""#)
        .replace(r#""swa_code": "4020""#, r#""swa_code": "40200""#)
        .replace(r#""004"]"#, r#""04"]"#);
    assert_eq!(
        locations(&json),
        vec![
            "generated_at",
            "organisations[0].workstreams[4]",
            "organisations[1].swa_code",
            "users[0].tokens_valid_after",
            // 4020 no longer exists, so the work naming it is dangling.
            "works[0].highway_authority",
        ]
    );
}

#[test]
fn duplicates() {
    let json = GOOD
        .replace(r#""swa_code": "4030""#, r#""swa_code": "4020""#)
        .replace(r#""sub": "dig-1""#, r#""sub": "user-a""#)
        .replace("BC00000000001", "NW00112345678")
        .replace(
            r#""004"], "contractors": ["C901"]"#,
            r#""004", "001"], "contractors": ["C901", "C901"]"#,
        )
        .replace(
            r#"{"7001": {"001": "read-only"}}"#,
            r#"{"7001": {"001": "read-only", "001": "full-write"}, "7001": {}}"#,
        );
    let p = problems(&json, None);
    let locs: Vec<&str> = p.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        locs,
        vec![
            "organisations[0].workstreams[5]",
            "organisations[2].swa_code",
            "organisations[0].contractors[1]",
            "users[1].sub",
            "users[1].workstreams.7001.001",
            "users[1].workstreams.7001",
            "works[1].work_reference_number",
            // 4030 was renamed to the duplicate 4020, so it is unknown now.
            "works[1].promoter",
            "works[1].highway_authority",
        ],
        "{p:?}"
    );
    assert!(p[..7].iter().all(|(_, m)| m.contains("duplicate")), "{p:?}");
}

#[test]
fn unknown_and_wrong_kind_organisations() {
    let json = GOOD
        .replace(
            r#""contractors": ["C901"]"#,
            r#""contractors": ["C902", "4020"]"#,
        )
        .replace(r#""organisation": "C901""#, r#""organisation": "C999""#)
        .replace(
            r#""workstreams": {"7001": {"001": "read-only"}}"#,
            r#""workstreams": {"8001": {"001": "read-only"}}"#,
        )
        .replace(r#""promoter": "7001""#, r#""promoter": "C901""#)
        .replace(
            r#""highway_authority": "4030""#,
            r#""highway_authority": "7001""#,
        );
    let p = problems(&json, None);
    let locs: Vec<&str> = p.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        locs,
        vec![
            "organisations[0].contractors[0]",
            "organisations[0].contractors[1]",
            "users[1].organisation",
            "users[1].workstreams.8001",
            "works[0].promoter",
            // A contractor has no workstreams, so none can be named.
            "works[0].workstream",
            "works[1].highway_authority",
        ],
        "{p:?}"
    );
    assert!(p[0].1.contains("unknown organisation"));
    assert!(p[1].1.contains("not a contractor"));
    assert!(p[4].1.contains("contractor, not a promoter"));
    assert!(p[6].1.contains("not a highway authority"));
}

#[test]
fn workstreams_must_belong_to_the_organisation() {
    let json = GOOD
        .replace(r#""001": "read-only""#, r#""009": "read-only""#)
        .replace(r#""workstream": "001""#, r#""workstream": "005""#)
        .replace(r#""workstream": "000""#, r#""workstream": "0000""#);
    assert_eq!(
        locations(&json),
        vec![
            "users[1].workstreams.7001.009",
            "works[0].workstream",
            "works[1].workstream",
        ]
    );
}

#[test]
fn bad_access_levels_all_reported() {
    let json = GOOD
        .replace(r#""002": "full-write""#, r#""002": "write""#)
        .replace(r#""001": "read-only""#, r#""001": "READ-ONLY""#);
    let p = problems(&json, None);
    assert_eq!(
        p.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        vec![
            "users[0].workstreams.7001.002",
            "users[1].workstreams.7001.001"
        ]
    );
    assert!(p[0].1.contains("not an access level"));
}

#[test]
fn unreadable_grants_are_reported_per_user() {
    let json = GOOD
        .replace(r#""002": "full-write""#, r#""002": 2"#)
        .replace(
            r#""workstreams": {"7001": {"001": "read-only"}}"#,
            r#""workstreams": ["001"]"#,
        );
    let p = problems(&json, None);
    assert_eq!(
        p.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        vec!["users[0].workstreams", "users[1].workstreams"],
        "{p:?}"
    );
}

#[test]
fn contractor_with_workstreams_and_empty_identifiers() {
    let json = GOOD
        .replace(
            r#""kind": "contractor", "status": "active"}"#,
            r#""kind": "contractor", "status": "active", "workstreams": ["001"]}"#,
        )
        .replace(r#""sub": "dig-1""#, r#""sub": """#)
        .replace("NW00112345678", "");
    assert_eq!(
        locations(&json),
        vec![
            "organisations[3].workstreams",
            "users[1].sub",
            "works[0].work_reference_number",
        ]
    );
}

#[test]
fn every_problem_at_once_and_capped() {
    let mut works = String::new();
    for i in 0..250 {
        if i > 0 {
            works.push(',');
        }
        works.push_str(&format!(
            r#"{{"work_reference_number": "X{i}", "promoter": "9999", "highway_authority": "4020", "workstream": "001"}}"#
        ));
    }
    let json = format!(
        r#"{{"version": 1, "generated_at": "2026-11-23T07:00:00Z", "organisations": [
        {{"swa_code": "4020", "name": "L", "kind": "highway_authority", "status": "active"}}],
        "works": [{works}]}}"#
    );
    let p = problems(&json, None);
    assert_eq!(p.len(), 101);
    assert!(
        p[..100]
            .iter()
            .all(|(_, m)| m.contains("unknown organisation"))
    );
    assert_eq!(
        p[100],
        ("(document)".into(), "150 more problems not listed".into())
    );
}

#[test]
fn serde_rejects_what_cannot_be_read() {
    for bad in [
        GOOD.replace(r#""kind": "promoter""#, r#""kind": "utility""#),
        GOOD.replace(r#""status": "active""#, r#""status": "on""#),
        GOOD.replace(r#""version": 1842"#, r#""version": -1"#),
        GOOD.replace(r#""version": 1842,"#, ""),
        GOOD.replace(r#""version": 1842"#, r#""version": 1842, "version": 1843"#),
        GOOD.replace(
            r#""name": "Dig Ltd""#,
            r#""name": "Dig Ltd", "colour": "red""#,
        ),
        GOOD.replace("]\n}", "]\n"),
        format!("{GOOD} {{}}"),
    ] {
        assert!(
            !matches!(
                Snapshot::from_json(bad.as_bytes(), None),
                Ok(_) | Err(SnapshotError::Invalid(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn entries_before_the_organisations_get_the_same_checks() {
    // The same problems as `duplicates`, with `organisations` listed last: users and works
    // wait (raw) for the organisations, then get every check.
    let json = GOOD
        .replace(r#""swa_code": "4030""#, r#""swa_code": "4020""#)
        .replace(r#""sub": "dig-1""#, r#""sub": "user-a""#)
        .replace("BC00000000001", "NW00112345678");
    let in_order = problems(&json, None);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let reordered = format!(
        r#"{{"works": {}, "users": {}, "version": 1842, "generated_at": "2026-11-23T07:00:00Z",
            "organisations": {}}}"#,
        v["works"], v["users"], v["organisations"]
    );
    let mut a: Vec<_> = in_order.into_iter().map(|(l, _)| l).collect();
    let mut b: Vec<_> = problems(&reordered, None)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert!(!a.is_empty());
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let good: serde_json::Value = serde_json::from_str(GOOD).unwrap();
    let reordered = format!(
        r#"{{"users": {}, "works": {}, "organisations": {}, "version": 1, "generated_at": "2026-11-23T07:00:00Z"}}"#,
        good["users"], good["works"], good["organisations"]
    );
    assert_eq!(problems(&reordered, None), vec![]);
}

/// Works are indexed in batches of 64k: a repeat found in a later batch, in the same batch,
/// and one next to another problem are all reported at their own work, in document order,
/// and the streamed load (a reader, not a slice) reports the same.
#[test]
fn duplicate_works_across_index_batches_are_reported_in_document_order() {
    let works = 70_000;
    let doc =
        String::from_utf8(crate::grants::synthetic::synthetic_document(10, 5, works)).unwrap();
    let wrn = |i: usize| crate::grants::synthetic::work_reference(i);
    let doc = doc
        // 69,990 repeats 3 (an earlier batch); 10 repeats 9 (the same batch).
        .replace(&format!("\"{}\"", wrn(69_990)), &format!("\"{}\"", wrn(3)))
        .replace(&format!("\"{}\"", wrn(10)), &format!("\"{}\"", wrn(9)))
        // 20 has another problem besides.
        .replace(
            &format!(
                "{{\"work_reference_number\":\"{}\",\"promoter\":\"0000\"",
                wrn(20)
            ),
            &format!(
                "{{\"work_reference_number\":\"{}\",\"promoter\":\"9999\"",
                wrn(9)
            ),
        );
    let expected = vec![
        "works[10].work_reference_number".to_owned(),
        "works[20].work_reference_number".to_owned(),
        "works[20].promoter".to_owned(),
        "works[69990].work_reference_number".to_owned(),
    ];
    let locations = |p: Vec<(String, String)>| p.into_iter().map(|(l, _)| l).collect::<Vec<_>>();
    assert_eq!(locations(problems(&doc, None)), expected);
    let streamed: Vec<String> = match Snapshot::from_reader(doc.as_bytes(), None) {
        Err(SnapshotError::Invalid(p)) => p.iter().map(|p| p.location.clone()).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(streamed, expected);
}

/// A work is read into reused buffers, not derived: its field rules and errors are still the
/// derived ones, with the path of the work, from a stream and from a slice alike.
#[test]
fn malformed_works_are_refused_with_their_path() {
    let work = r#"{"work_reference_number":"SW00000000001","promoter":"0000","highway_authority":"H000","workstream":"001"}"#;
    for (bad, error, path) in [
        (
            work.replace(
                r#""workstream":"001""#,
                r#""workstream":"001","colour":"red""#,
            ),
            "unknown field `colour`",
            "works[1]",
        ),
        (
            work.replace(
                r#""promoter":"0000""#,
                r#""promoter":"0000","promoter":"0001""#,
            ),
            "duplicate field `promoter`",
            "works[1]",
        ),
        (
            work.replace(r#","workstream":"001""#, ""),
            "missing field `workstream`",
            "works[1]",
        ),
        (
            work.replace(r#""promoter":"0000""#, r#""promoter":7"#),
            "expected a string",
            "works[1].promoter",
        ),
        (
            r#"["SW1"]"#.to_owned(),
            "expected struct WorkDoc",
            "works[1]",
        ),
    ] {
        let doc = format!(
            r#"{{"version":1,"generated_at":"2026-11-23T07:00:00Z","organisations":[{{"swa_code":"0000","name":"P","kind":"promoter","status":"active","workstreams":["001"]}},{{"swa_code":"H000","name":"H","kind":"highway_authority","status":"active"}}],"users":[],"works":[{},{bad}]}}"#,
            work.replace("01\",", "02\",")
        );
        for result in [
            Snapshot::from_json(doc.as_bytes(), None),
            Snapshot::from_reader(doc.as_bytes(), None),
        ] {
            match result {
                Err(SnapshotError::Json(e)) => {
                    assert!(e.to_string().contains(error), "{bad}: {e}");
                    assert!(
                        e.path().to_string().starts_with(path),
                        "{bad}: {}",
                        e.path()
                    );
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
