//! Deterministic, realistic grants documents for benchmarks and load tests: promoters with a
//! handful of workstreams and a contractor or two, highway authorities, users with grants on
//! their own or a contracted promoter's workstreams, and works spread over all of them.

use std::fmt::Write;

/// Workstreams per promoter besides the default "000".
const WORKSTREAMS: usize = 5;

/// A valid format v1 document (version 1) with `orgs` organisations (half promoters, a quarter
/// highway authorities, a quarter contractors; at least one of each), `users` users and
/// `works` works. Work `i` has reference `work_reference(i)`; user `i` has sub `user-{i}`.
pub fn synthetic_document(orgs: usize, users: usize, works: usize) -> Vec<u8> {
    synthetic_document_version(1, orgs, users, works)
}

/// As `synthetic_document`, with the given version.
pub fn synthetic_document_version(
    version: u64,
    orgs: usize,
    users: usize,
    works: usize,
) -> Vec<u8> {
    let promoters = (orgs / 2).max(1);
    let authorities = (orgs / 4).max(1);
    let contractors = orgs.saturating_sub(promoters + authorities).max(1);
    let mut out = String::with_capacity(200 * works + 150 * users + 200 * orgs + 128);
    let _ = write!(
        out,
        r#"{{"version":{version},"generated_at":"2026-11-23T07:00:00Z","organisations":["#
    );
    for p in 0..promoters {
        sep(&mut out, p);
        let ws: Vec<String> = (0..=WORKSTREAMS).map(|w| format!("\"{w:03}\"")).collect();
        let _ = write!(
            out,
            r#"{{"swa_code":"{}","name":"Promoter {p}","kind":"promoter","status":"active","workstreams":[{}],"contractors":["{}"]}}"#,
            promoter(p),
            ws.join(","),
            contractor(p % contractors),
        );
    }
    for a in 0..authorities {
        let _ = write!(
            out,
            r#",{{"swa_code":"{}","name":"Authority {a}","kind":"highway_authority","status":"active"}}"#,
            authority(a),
        );
    }
    for c in 0..contractors {
        let _ = write!(
            out,
            r#",{{"swa_code":"{}","name":"Contractor {c}","kind":"contractor","status":"active"}}"#,
            contractor(c),
        );
    }
    out.push_str(r#"],"users":["#);
    for u in 0..users {
        sep(&mut out, u);
        // Every fifth user works for a contractor, with grants from a promoter it serves.
        let (own, grants_for) = if u % 5 == 4 {
            let p = (u / 5) % promoters;
            (contractor(p % contractors), promoter(p))
        } else {
            let p = u % promoters;
            (promoter(p), promoter(p))
        };
        let _ = write!(
            out,
            r#"{{"sub":"user-{u}","organisation":"{own}","tokens_valid_after":"2026-11-23T06:00:00Z","workstreams":{{"{grants_for}":{{"#
        );
        for (k, w) in (1..=WORKSTREAMS).filter(|w| (u + w) % 2 == 0).enumerate() {
            sep(&mut out, k);
            let level = ["full-write", "read-only", "no-access"][(u + w) % 3];
            let _ = write!(out, r#""{w:03}":"{level}""#);
        }
        out.push_str("}}}");
    }
    out.push_str(r#"],"works":["#);
    for i in 0..works {
        sep(&mut out, i);
        let _ = write!(
            out,
            r#"{{"work_reference_number":"{}","promoter":"{}","highway_authority":"{}","workstream":"{:03}"}}"#,
            work_reference(i),
            promoter(i % promoters),
            authority(i % authorities),
            i % (WORKSTREAMS + 1),
        );
    }
    out.push_str("]}");
    out.into_bytes()
}

/// The reference of synthetic work `i`: shaped like Street Manager's (two letters, 11 digits).
pub fn work_reference(i: usize) -> String {
    format!("SW{i:011}")
}

/// A delta of 1,000 changes on version `since` of `synthetic_document(10_000, users, works)`
/// (for benchmarks): 600 works moved to another workstream, 200 new works, up to 100 works
/// deleted and up to 100 promoter users' grants replaced. `round` varies which.
pub fn synthetic_delta(since: u64, round: usize, works: usize, users: usize) -> String {
    let mut upserted = std::collections::HashSet::new();
    let mut upsert_works = Vec::new();
    for k in 0..600 {
        let i = (round * 7_919 + k * 4_999) % works;
        upserted.insert(i);
        upsert_works.push(format!(
            r#"{{"work_reference_number":"{}","promoter":"{}","highway_authority":"{}","workstream":"{:03}"}}"#,
            work_reference(i),
            promoter(0),
            authority(0),
            (round + k) % (WORKSTREAMS + 1)
        ));
    }
    for k in 0..200 {
        upsert_works.push(format!(
            r#"{{"work_reference_number":"NEW{round:06}{k:04}","promoter":"{}","highway_authority":"{}","workstream":"001"}}"#,
            promoter(0),
            authority(0),
        ));
    }
    let deletes: std::collections::BTreeSet<usize> = (0..100)
        .map(|k| (round * 104_729 + k * 29_989 + 1) % works)
        .filter(|i| !upserted.contains(i))
        .collect();
    let deletes: Vec<String> = deletes
        .iter()
        .map(|&i| format!("\"{}\"", work_reference(i)))
        .collect();
    let promoters = 5_000;
    let subs: std::collections::BTreeSet<usize> = (0..100)
        .map(|k| (round * 131 + k * 2_999) % users)
        .filter(|u| u % 5 != 4)
        .collect();
    let upsert_users: Vec<String> = subs
        .iter()
        .map(|&u| {
            let own = promoter(u % promoters);
            format!(
                r#"{{"sub":"user-{u}","organisation":"{own}","workstreams":{{"{own}":{{"001":"read-only"}}}}}}"#
            )
        })
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"{{"version":{},"since":{since},"generated_at":"2026-11-30T12:00:00Z","upsert":{{"works":[{}],"users":[{}]}},"delete":{{"works":[{}]}}}}"#,
        since + 1,
        upsert_works.join(","),
        upsert_users.join(","),
        deletes.join(",")
    );
    out
}

fn sep(out: &mut String, i: usize) {
    if i > 0 {
        out.push(',');
    }
}

fn promoter(i: usize) -> String {
    format!("{:04}", i % 10_000)
}

fn authority(i: usize) -> String {
    lettered('H', i)
}

fn contractor(i: usize) -> String {
    lettered('C', i)
}

/// `first` then 3 digits, moving to the next letters past 1,000 (up to 5,000: H..L, C..G).
fn lettered(first: char, i: usize) -> String {
    let letter = u8::try_from(i / 1_000 % 5).unwrap_or(0) + first as u8;
    format!("{}{:03}", letter as char, i % 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::SwaCode;
    use crate::grants::Snapshot;

    #[test]
    fn valid_deterministic_and_complete() {
        let doc = synthetic_document(20, 200, 3000);
        assert_eq!(doc, synthetic_document(20, 200, 3000));
        let s = Snapshot::from_json(&doc, None).unwrap();
        assert_eq!((s.user_count(), s.work_count()), (200, 3000));
        assert!(s.work(&work_reference(2999)).is_some());
        assert!(s.work(&work_reference(3000)).is_none());
        let contractor_user = s.user("user-4").unwrap();
        assert_eq!(contractor_user.organisation, SwaCode::parse("C000"));
        assert!(s.has_contract(
            SwaCode::parse("0000").unwrap(),
            SwaCode::parse("C000").unwrap()
        ));
    }

    #[test]
    fn tiny_counts_still_valid() {
        for (o, u, w) in [(0, 0, 0), (1, 1, 1), (3, 7, 11)] {
            Snapshot::from_json(&synthetic_document(o, u, w), None).unwrap();
        }
    }

    #[test]
    fn synthetic_deltas_apply_in_a_chain() {
        let (works, users) = (20_000, 3_000);
        let mut s = Snapshot::from_json(&synthetic_document(10_000, users, works), None).unwrap();
        for round in 0..3 {
            let text = synthetic_delta(s.version, round, works, users);
            let doc = crate::grants::load_delta(text.as_bytes()).unwrap();
            s = s
                .apply_delta(&doc)
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
        assert_eq!(s.version, 4);
    }
}
