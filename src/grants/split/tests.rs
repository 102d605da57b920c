use super::Region;

#[test]
fn positions_before_the_array_stay_and_after_it_move_by_what_was_taken() {
    // `"works":[` opens at 3:10; the array closed at 7:4.
    let region = Region {
        open: (3, 10),
        close: (7, 4),
        closed: true,
    };
    assert_eq!(region.position(1, 50), (1, 50));
    assert_eq!(region.position(3, 10), (3, 10));
    // serde's closer at 3:11 is the document's at 7:4; what follows on the line follows it.
    assert_eq!(region.position(3, 11), (7, 4));
    assert_eq!(region.position(3, 15), (7, 8));
    assert_eq!(region.position(4, 2), (8, 2));
}

#[test]
fn an_array_the_stream_ended_in_puts_serdes_eof_at_the_end() {
    let region = Region {
        open: (1, 20),
        close: (1, 5000),
        closed: false,
    };
    assert_eq!(region.position(1, 20), (1, 5000));
    assert_eq!(region.position(1, 21), (1, 5000));
    assert_eq!(region.position(1, 3), (1, 3));
}

// === the split load against one thread ===

use crate::grants::SnapshotError;
use crate::grants::load::{Loaded, load_in_chunks, load_in_one_thread};

const ORGS: &str = r#""organisations":[{"swa_code":"0000","name":"P","kind":"promoter","status":"active","workstreams":["001","002"]},{"swa_code":"H000","name":"H","kind":"highway_authority","status":"active"}]"#;

fn work(wrn: &str) -> String {
    format!(
        r#"{{"work_reference_number":"{wrn}","promoter":"0000","highway_authority":"H000","workstream":"001"}}"#
    )
}

fn works(n: usize, sep: &str) -> String {
    (0..n)
        .map(|i| work(&format!("SW{i:05}")))
        .collect::<Vec<_>>()
        .join(sep)
}

fn user(sub: &str, grants: &str) -> String {
    format!(
        r#"{{"sub":"{sub}","organisation":"0000","tokens_valid_after":"2026-11-23T06:00:00Z","workstreams":{{"0000":{{{grants}}}}}}}"#
    )
}

fn users(n: usize, sep: &str) -> String {
    (0..n)
        .map(|i| user(&format!("u{i}"), r#""001":"read-only","002":"no-access""#))
        .collect::<Vec<_>>()
        .join(sep)
}

fn doc(body: &str) -> String {
    format!(r#"{{"version":1,"generated_at":"2026-11-23T07:00:00Z",{body}}}"#)
}

/// What a load came to, in enough detail to tell two apart: the error whole (its column
/// apart), or the counts and every listed work.
fn outcome(result: Result<Loaded, SnapshotError>, refs: &[String]) -> (String, (usize, usize)) {
    match result {
        Ok(Loaded::Full(s)) => {
            let mut out = format!("works={} users={}", s.work_count(), s.user_count());
            for r in refs {
                out.push_str(&format!(" {r}={:?}", s.work(r)));
            }
            for i in 0..12 {
                let sub = format!("u{i}");
                out.push_str(&format!(" {sub}={:?}", s.user(&sub)));
            }
            (out, (0, 0))
        }
        Ok(other) => (format!("{other:?}"), (0, 0)),
        Err(SnapshotError::Json(e)) => (
            format!("json {}: {}", e.path(), e.message()),
            (e.line(), e.column()),
        ),
        Err(e) => (format!("{e} / {e:?}"), (0, 0)),
    }
}

fn refs(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SW{i:05}")).collect()
}

/// Loads `doc` in one thread and split in chunks of several sizes: the same outcome each
/// time. serde's stream parser counts a byte it has peeked at, its slice parser (which parses
/// the chunks) does not: an error's position may be one byte apart, nothing else.
fn same(doc: &str) -> String {
    let refs = refs(40);
    let (one, at) = outcome(load_in_one_thread(doc.as_bytes()), &refs);
    for chunk in [1, 2, 7, 64, 300, 1 << 20] {
        let (split, split_at) = outcome(load_in_chunks(doc.as_bytes(), chunk), &refs);
        assert_eq!(split, one, "chunks of {chunk}: {doc}");
        assert!(
            crate::fuzzing::within_a_byte(doc.as_bytes(), split_at, at),
            "chunks of {chunk}: at {split_at:?}, not {at:?}: {one}: {doc}"
        );
    }
    one
}

#[test]
fn well_formed_documents_load_the_same_split_or_not() {
    for body in [
        format!("{ORGS},\"users\":[],\"works\":[{}]", works(40, ",")),
        format!("{ORGS},\"works\":[{}],\"users\":[]", works(40, ",\n  ")),
        format!(
            "{ORGS},\n\"works\" :\n [ \n{} \n ] ,\"users\":[]",
            works(40, " ,\r\n\t")
        ),
        format!("{ORGS},\"works\":[],\"users\":[]"),
        format!("{ORGS},\"works\":[ \n ],\"users\":[]"),
        // Before the organisations: held by serde, not split.
        format!("\"works\":[{}],{ORGS},\"users\":[]", works(40, ",")),
        // A key written with escapes is the same key to serde; the splitter passes it.
        format!("{ORGS},\"w\\u006frks\":[{}],\"users\":[]", works(40, ",")),
        // Strings that hold what the splitter looks for.
        format!(
            "{ORGS},\"users\":[],\"works\":[{},{},{}]",
            work("A,\\\"]}works\\\\"),
            work("[\\\"works\\\":["),
            works(10, ",")
        ),
    ] {
        let one = same(&doc(&body));
        assert!(one.starts_with("works="), "{one}");
    }
}

#[test]
fn problems_are_listed_the_same_split_or_not() {
    let bad = r#"{"work_reference_number":"SW00003","promoter":"9999","highway_authority":"0000","workstream":"001"}"#;
    let body = format!(
        "{ORGS},\"works\":[{},{bad},{},{}],\"users\":[{{\"sub\":\"u\",\"organisation\":\"7777\"}}]",
        works(10, ","),
        works(10, ","),
        work("")
    );
    let one = same(&doc(&body));
    assert!(one.contains("duplicate work"), "{one}");
    assert!(one.contains("works[10].promoter"), "{one}");
    assert!(one.contains("works[21].work_reference_number"), "{one}");
}

#[test]
fn broken_works_arrays_are_refused_with_the_same_error_split_or_not() {
    let w = works(6, ",");
    for works_json in [
        format!("[{w},]"),
        format!("[{w}, \n ]"),
        format!("[,{w}]"),
        format!("[ , {w}]"),
        format!("[{w},,{w}]"),
        format!("[{w}, \n ,{w}]"),
        format!("[{w} {w}]"),
        format!("[{w}}}"),
        format!("[{w}"),
        format!("[{w},"),
        "[1]".into(),
        format!("[{w},\"x\",{w}]"),
        format!("[{w},[{w}],{w}]"),
        format!("[{w},{{\"work_reference_number\":\"X\"}}]"),
        format!(
            "[{w},{{\"work_reference_number\":\"X\",\"promoter\":\"0000\",\"highway_authority\":\"H000\",\"workstream\":\"001\",\"extra\":1}}]"
        ),
        format!("[{w},{{\"work_reference_number\":1}}]"),
        format!("[{w},{{\"work_reference_number\":\"X\" \"promoter\":\"0000\"}}]"),
        format!("[{w},{{\"work_reference_number\":\"unterminated}}]"),
    ] {
        for rest in [",\"users\":[]}", ",\n\"users\":[]}", "}"] {
            let d = format!(
                r#"{{"version":1,"generated_at":"2026-11-23T07:00:00Z",{ORGS},"works":{works_json}{rest}"#
            );
            let one = same(&d);
            assert!(!one.starts_with("works="), "accepted: {d}");
        }
    }
}

#[test]
fn errors_after_the_array_keep_their_place_in_the_document() {
    let w = works(12, ",\n");
    for rest in [
        ",\"users\":5}",
        ",\n \"users\":[{\"sub\":1}]}",
        "} trailing",
        "}\n\n  x",
        ",\"works\":[]}",
        ",\"nope\":1}",
        ",\"users\":[]",
    ] {
        let d = doc(&format!("{ORGS},\"works\":[{w}]{rest}"));
        let d = d.strip_suffix('}').unwrap_or(&d);
        let one = same(d);
        assert!(!one.starts_with("works="), "accepted: {d}");
    }
}

#[test]
fn a_document_cut_anywhere_in_its_works_is_refused_alike() {
    let full = doc(&format!(
        "{ORGS},\"works\":[{}],\"users\":[]",
        works(5, ", ")
    ));
    let from = full.find("\"works\"").unwrap_or(0);
    for end in from..full.len() {
        let one = same(&full[..end]);
        assert!(!one.starts_with("works="), "accepted a cut at {end}");
    }
}

#[test]
fn users_load_the_same_split_or_not() {
    let w = works(5, ",");
    for body in [
        format!("{ORGS},\"users\":[{}],\"works\":[{w}]", users(12, ",")),
        format!(
            "{ORGS},\"works\":[{w}],\"users\":[\n{}\n]",
            users(12, " ,\n ")
        ),
        format!("{ORGS},\"users\":[],\"works\":[{w}]"),
        // Before the organisations: held by serde, not split.
        format!("\"users\":[{}],{ORGS},\"works\":[{w}]", users(12, ",")),
        // A repeated subject replaces the one before, and is reported.
        format!(
            "{ORGS},\"users\":[{},{}],\"works\":[{w}]",
            users(12, ","),
            user("u3", r#""002":"read-only""#)
        ),
        // Problems: an unknown organisation, a bad level, an empty subject.
        format!(
            "{ORGS},\"users\":[{},{{\"sub\":\"x\",\"organisation\":\"7777\"}},{},{}],\"works\":[{w}]",
            users(4, ","),
            user("y", r#""001":"everything""#),
            user("", r#""001":"read-only""#)
        ),
    ] {
        same(&doc(&body));
    }
}

#[test]
fn broken_users_arrays_are_refused_with_the_same_error_split_or_not() {
    let u = users(5, ",");
    for users_json in [
        format!("[{u},]"),
        format!("[,{u}]"),
        format!("[{u},,{u}]"),
        format!("[{u}}}"),
        format!("[{u}"),
        "[1]".into(),
        format!("[{u},{{\"sub\":\"z\"}}]"),
        format!("[{u},{{\"sub\":\"z\",\"organisation\":\"0000\",\"extra\":1}}]"),
        format!("[{u},{{\"sub\":\"z\",\"organisation\":\"0000\",\"workstreams\":[}}]"),
    ] {
        for rest in [",\"works\":[]}", "}"] {
            let d = format!(
                r#"{{"version":1,"generated_at":"2026-11-23T07:00:00Z",{ORGS},"users":{users_json}{rest}"#
            );
            let one = same(&d);
            assert!(!one.starts_with("works="), "accepted: {d}");
        }
    }
}

#[test]
fn taking_an_array_out_and_putting_it_back_are_inverse() {
    let region = Region {
        open: (3, 10),
        close: (7, 4),
        closed: true,
    };
    for at in [(1, 1), (3, 10), (7, 4), (7, 9), (9, 2)] {
        assert_eq!(
            region.position(region.collapse(at).0, region.collapse(at).1),
            at
        );
    }
}

#[test]
fn a_raw_newline_in_a_string_is_refused_alike() {
    for d in [
        doc(&format!(
            "{ORGS},\"users\":[{{\"sub\":\"u\",\"organisation\":\"0000\",\"workstreams\":{{\"0000\":{{\"00\n1\":\"read-only\"}}}}}}],\"works\":[]"
        )),
        doc(&format!(
            "{ORGS},\"users\":[{{\"sub\":\"u\n\",\"organisation\":\"0000\"}}],\"works\":[]"
        )),
        doc(&format!(
            "{ORGS},\n\"works\":[{{\"work_reference_number\":\"a\nb\"}}],\"users\":[]"
        )),
    ] {
        let one = same(&d);
        assert!(one.contains("control character"), "{one}");
    }
}
