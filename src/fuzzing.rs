//! Fuzz entry points: one function per target, each taking raw bytes and panicking only when a
//! property is broken. The cargo-fuzz targets in `fuzz/` call these, and on stable
//! `tests/fuzz_corpora.rs` replays every stored corpus and regression input through the same
//! functions, so a crash found once stays a test for good.
//!
//! Where a reference implementation exists the property is differential: the JSON row filter is
//! held to serde_json's reading of each row, the CSV filter to the csv crate's, and an accepted
//! path to the segments a plain percent-decoder sees.

#![allow(
    clippy::expect_used,
    reason = "fuzz properties: a panic is the finding"
)]

use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};

use crate::authn::config::ClaimNames;
use crate::authn::extract::{TokenSource, extract};
use crate::authn::identity::RoleSet;
use crate::authn::keys::AlgSet;
use crate::authn::verify::{Keys, Policy};
use crate::authz::Visibility;
use crate::codes::{SwaCode, Workstream};
use crate::config::Config;
use crate::filter::config::RawResponsePolicy;
use crate::filter::{ResponsePolicy, Viewer, filter_bytes};
use crate::grants::snapshot::Snapshot;
use crate::listener::framing::{Tracker, Verdict, Verdicts};
use crate::normalize;

/// A fuzz entry point: panics only when its property is broken.
pub type Target = fn(&[u8]);

/// The targets, by the name of their corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("path", path),
    ("token", token),
    ("json_filter", json_filter),
    ("csv_filter", csv_filter),
    ("snapshot", snapshot),
    ("config", config),
    ("native_head", native_head),
    ("chunked_body", chunked_body),
];

/// Request-target checks. Every accepted path splits into the same segments before and after
/// percent-decoding, and no decoded segment can be decoded or split again downstream: no dot
/// segment, no `/ \ ? # ;`, no control character, no `%` that a second decoder would read.
pub fn path(data: &[u8]) {
    let Ok(uri) = Uri::try_from(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("gw.example"));
    let Ok(target) = normalize::check(&Method::GET, &uri, Version::HTTP_11, &headers) else {
        return;
    };
    let raw: Vec<&str> = target.path.split('/').collect();
    let decoded = normalize::decode_strict(target.path.as_bytes())
        .unwrap_or_else(|| panic!("accepted path {:?} does not decode", target.path));
    let decoded = String::from_utf8(decoded)
        .unwrap_or_else(|_| panic!("accepted path {:?} is not UTF-8", target.path));
    let plain: Vec<&str> = decoded.split('/').collect();
    assert_eq!(
        raw.len(),
        plain.len(),
        "{:?}: an escape hid a slash",
        target.path
    );
    let last = plain.len() - 1;
    for (i, segment) in plain.iter().enumerate().skip(1) {
        // A trailing slash is a route of its own; an empty segment anywhere else is not.
        assert!(
            !(matches!(*segment, "." | "..") || segment.is_empty() && i != last),
            "{:?}: empty or dot segment",
            target.path
        );
        assert!(
            !segment.contains(['\\', '?', '#', ';', '%']) && !segment.chars().any(char::is_control),
            "{:?}: decoded segment {segment:?} can be split or decoded again downstream",
            target.path
        );
    }
    // The query, if accepted, splits into pairs without panicking.
    if let Some(q) = target.query {
        for (k, v) in normalize::query_pairs(q) {
            let _ = (k.len(), v.len());
        }
    }
}

/// The HS256 secret the token target signs with, so claims checking is reached.
const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-sec";

static POLICY: LazyLock<Policy> = LazyLock::new(|| Policy {
    algorithms: AlgSet::EMPTY
        .with(jsonwebtoken::Algorithm::HS256)
        .with(jsonwebtoken::Algorithm::RS256),
    issuer: "https://issuer.example".into(),
    audience: "street-manager".into(),
    leeway: 5,
    claims: ClaimNames::default(),
    model: crate::model::Model::StreetManager,
});

/// Token extraction and parsing. The input is header lines (`name: value`), optionally
/// followed by a line `---` and a claims document: then a token with those claims is signed
/// and verified, so the claim checks see arbitrary JSON. Nothing may panic, and an identity
/// that verifies carries a SWA-code organisation and a non-empty subject.
pub fn token(data: &[u8]) {
    let (head, claims) = match find(data, b"\n---\n") {
        Some(i) => (&data[..i], Some(&data[i + 5..])),
        None => (data, None),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let sources = [
        TokenSource::Header(HeaderName::from_static("token")),
        TokenSource::Bearer,
    ];
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET);
    if let Ok(token) = extract(&headers, &sources, 8192) {
        assert!(token.len() <= 8192, "a token over the limit was extracted");
        if let Ok(parsed) = POLICY.parse(token) {
            let _ = POLICY.verify(&parsed, Keys::Secret(&key), 1_700_000_000);
        }
    }
    if let Some(claims) = claims {
        let header = base64_url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let signing_input = format!("{header}.{}", base64_url(claims));
        let Ok(signature) = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
            jsonwebtoken::Algorithm::HS256,
        ) else {
            return;
        };
        let token = format!("{signing_input}.{signature}");
        if let Ok(identity) = POLICY.verify_token(&token, Keys::Secret(&key), 1_700_000_000) {
            assert!(!identity.subject.is_empty(), "empty subject accepted");
            assert!(
                SwaCode::parse(&identity.organisation).is_some(),
                "organisation {:?} is not a SWA code",
                identity.organisation
            );
            assert!(
                identity.roles.validate().is_ok(),
                "invalid role set accepted"
            );
            assert!(
                identity.expires_at > 1_700_000_000 - 5,
                "expired token accepted"
            );
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The caller the filter targets judge for: organisation 7001, workstreams 001 and 003.
fn visibility() -> Visibility {
    Visibility::Workstreams {
        organisation: SwaCode::parse("7001").expect("literal"),
        readable: vec![
            Workstream::parse("001").expect("literal"),
            Workstream::parse("003").expect("literal"),
        ],
    }
}

/// Filters `data` for the caller of `visibility()`; None when the filter refuses the body.
fn filter_for_caller(policy: &ResponsePolicy, data: &[u8]) -> Option<crate::filter::Filtered> {
    let visibility = visibility();
    let caller = Viewer {
        visibility: &visibility,
        works: None,
        roles: RoleSet::EMPTY,
    };
    filter_bytes(
        policy,
        &caller,
        StatusCode::OK,
        Bytes::copy_from_slice(data),
    )
    .ok()
}

fn response_policy(yaml: &str) -> ResponsePolicy {
    let raw: RawResponsePolicy = crate::config::from_yaml_str(yaml).expect("fuzz policy parses");
    ResponsePolicy::try_from(&raw).expect("fuzz policy compiles")
}

static JSON_POLICY: LazyLock<ResponsePolicy> = LazyLock::new(|| {
    response_policy(
        "filter: {json: {rows: /rows, organisation_field: swa_code, workstream_field: prefix}}\n",
    )
});

/// Whether serde_json's reading of a row says the caller may see it.
fn row_visible(row: &serde_json::Value) -> bool {
    let field = |name| row.get(name).and_then(serde_json::Value::as_str);
    matches!(
        (field("swa_code"), field("prefix")),
        (Some("7001"), Some("001" | "003"))
    )
}

/// The JSON row filter against serde_json: either the body is refused, or the filtered body
/// is exactly serde_json's reading of the input with the invisible rows removed. A row whose
/// key fields serde_json reads one way and the filter another would show up here.
pub fn json_filter(data: &[u8]) {
    let Some(filtered) = filter_for_caller(&JSON_POLICY, data) else {
        return;
    };
    let mut expected: serde_json::Value = match serde_json::from_slice(data) {
        Ok(value) => value,
        // Valid JSON that a `Value` cannot hold (a number beyond f64, such as 1e400): the
        // reference has no reading to compare with, so the output need only be valid JSON.
        Err(e) if serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok() => {
            let out = serde_json::from_slice::<serde::de::IgnoredAny>(&filtered.body);
            assert!(out.is_ok(), "filter produced invalid JSON ({e})");
            return;
        }
        Err(e) => panic!("filter accepted a body serde_json refuses: {e}"),
    };
    let rows = expected
        .pointer_mut("/rows")
        .and_then(serde_json::Value::as_array_mut)
        .expect("filter accepted a body without a rows array");
    let before = rows.len();
    rows.retain(row_visible);
    let kept = rows.len() as u64;
    // The policy's default `pagination: remove`: counts of the unfiltered rows never leave.
    if let Some(pagination) = expected
        .get_mut("pagination")
        .and_then(serde_json::Value::as_object_mut)
    {
        for count in ["total_rows", "total_pages", "total_count", "total"] {
            pagination.remove(count);
        }
    }
    let output: serde_json::Value = serde_json::from_slice(&filtered.body)
        .unwrap_or_else(|e| panic!("filter produced invalid JSON: {e}"));
    assert_eq!(output, expected, "filter and serde_json disagree");
    assert_eq!(filtered.kept, kept, "kept count");
    assert_eq!(filtered.kept + filtered.dropped, before as u64, "row count");
}

static CSV_POLICY: LazyLock<ResponsePolicy> = LazyLock::new(|| {
    response_policy("filter: {csv: {organisation_field: swa_code, workstream_field: prefix}}\n")
});

/// The CSV row filter against the csv crate: either the body is refused, or every record the
/// filter keeps is one the csv crate reads as visible, in order, and none visible is lost.
pub fn csv_filter(data: &[u8]) {
    let Some(filtered) = filter_for_caller(&CSV_POLICY, data) else {
        return;
    };
    let records = |bytes: &[u8]| -> Vec<csv::ByteRecord> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        reader
            .byte_records()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| {
                panic!("filter accepted or produced CSV the csv crate refuses: {e}")
            })
    };
    let input = records(data);
    let output = records(&filtered.body);
    let Some(header) = input.first() else {
        assert!(output.is_empty(), "rows out of an empty body");
        return;
    };
    let column = |name: &str| header.iter().position(|h| h == name.as_bytes());
    let (Some(org), Some(ws)) = (column("swa_code"), column("prefix")) else {
        panic!("filter accepted CSV without its key columns");
    };
    let visible = |r: &&csv::ByteRecord| {
        matches!(
            (r.get(org), r.get(ws)),
            (Some(b"7001"), Some(b"001" | b"003"))
        )
    };
    let expected: Vec<&csv::ByteRecord> = std::iter::once(header)
        .chain(input[1..].iter().filter(visible))
        .collect();
    let output: Vec<&csv::ByteRecord> = output.iter().collect();
    assert_eq!(output, expected, "filter and the csv crate disagree");
}

/// The snapshot parser and validator: nothing panics, and a document that parses and validates
/// builds a snapshot whose counts match it.
pub fn snapshot(data: &[u8]) {
    split_load_is_one_threads(data);
    let Ok(built) = Snapshot::from_json(data, None) else {
        return;
    };
    // The streaming loader accepts nothing a plain parse of the format refuses.
    let doc: crate::grants::format::GrantsDocument<'_> =
        serde_json::from_slice(data).unwrap_or_else(|e| panic!("loaded, yet not v1: {e}"));
    {
        assert!(
            built.user_count() <= doc.users.len(),
            "more users than the document"
        );
        assert!(
            built.work_count() <= doc.works.len(),
            "more works than the document"
        );
    }
}

/// The streamed load with its users and works parsed in chunks on every core comes to what
/// the one-thread stream load comes to: the same snapshot, or the same error at the same
/// place (give or take a byte: serde's stream parser counts a byte it has peeked at, the
/// slice parser that parses the chunks does not).
fn split_load_is_one_threads(data: &[u8]) {
    let (one, at) = outcome(Snapshot::from_reader_in_one_thread(data));
    for chunk_bytes in [3, 1 << 20] {
        let (split, split_at) = outcome(Snapshot::from_reader_in_chunks(data, chunk_bytes));
        assert_eq!(split, one, "chunks of {chunk_bytes}");
        assert!(
            within_a_byte(data, split_at, at),
            "chunks of {chunk_bytes}: at {split_at:?} against {at:?}: {one}"
        );
    }
}

/// Two of serde's positions (line, column) in `doc` are at most a byte apart. Column 0 is
/// the newline ending the line before (the stream parser's count after reading it).
pub fn within_a_byte(doc: &[u8], a: (usize, usize), b: (usize, usize)) -> bool {
    let offset = |(line, column): (usize, usize)| -> Option<usize> {
        let line_start = if line <= 1 {
            0
        } else {
            doc.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(line - 2)
                .map(|(i, _)| i + 1)?
        };
        Some(line_start + column)
    };
    match (offset(a), offset(b)) {
        (Some(a), Some(b)) => a.abs_diff(b) <= 1,
        _ => a == b,
    }
}

/// A load's outcome, as text to compare, and where a JSON error is.
fn outcome(loaded: Result<Snapshot, crate::grants::SnapshotError>) -> (String, (usize, usize)) {
    use crate::grants::SnapshotError;
    match loaded {
        Ok(s) => {
            let mut users: Vec<String> = s
                .users
                .iter()
                .map(|(sub, u)| format!("{sub}={u:?}"))
                .collect();
            users.sort_unstable();
            let works = (s.work_count(), s.user_count(), s.version);
            (format!("{works:?} {users:?}"), (0, 0))
        }
        Err(SnapshotError::Json(e)) => (
            format!("json {} {}", e.path(), e.message()),
            (e.line(), e.column()),
        ),
        Err(e) => (format!("{e} / {e:?}"), (0, 0)),
    }
}

/// The config loader: nothing panics, and a config that validates validates again from its
/// own text (loading is deterministic).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if Config::from_yaml(text).is_ok() {
        assert!(
            Config::from_yaml(text).is_ok(),
            "validation is not deterministic"
        );
    }
}

/// The head size cap and header count the HTTP/1 targets give the native loop, hyper and the guard.
const CAP: usize = 8192;
const MAX_HEADERS: usize = 100;

/// The native HTTP/1 loop's reading of a request head against the framing guard's. A head the
/// native loop serves itself (it bypasses hyper and the guard) must be one the guard passes
/// with no body: the guard, fed the same head and then a second request, passes both. A body
/// the native loop missed would make the second request the guard's body, or be refused.
pub fn native_head(data: &[u8]) {
    let Some((len, request)) = crate::listener::native::plain_request(data, CAP, MAX_HEADERS)
    else {
        return;
    };
    let headers = request.headers();
    assert!(
        !headers.contains_key(header::TRANSFER_ENCODING),
        "a transfer-encoded head was served natively"
    );
    let lengths: Vec<_> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
    assert!(
        lengths.is_empty() || lengths == [HeaderValue::from_static("0")],
        "a head with a body was served natively: {lengths:?}"
    );
    assert!(
        guard_passes_both(&[&data[..len]]),
        "the guard reads {:?} otherwise",
        String::from_utf8_lossy(&data[..len])
    );
    let native = (
        request.method().clone(),
        request.uri().clone(),
        request.version(),
        request.headers().clone(),
    );
    assert_eq!(
        Some(native),
        hyper_reads(&data[..len], CAP, MAX_HEADERS),
        "hyper reads {:?} otherwise",
        String::from_utf8_lossy(&data[..len])
    );
}

/// The request hyper's HTTP/1 server, built as the listener builds it, hands its service for
/// the head `head`; None if it refuses it.
fn hyper_reads(
    head: &[u8],
    cap: usize,
    max_headers: usize,
) -> Option<(Method, Uri, Version, HeaderMap)> {
    use std::sync::Mutex;
    use tokio::io::AsyncWriteExt;

    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    });
    let seen = std::sync::Arc::new(Mutex::new(None));
    let service = {
        let seen = seen.clone();
        hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let parts = (
                request.method().clone(),
                request.uri().clone(),
                request.version(),
                request.headers().clone(),
            );
            *seen.lock().expect("not poisoned") = Some(parts);
            async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) }
        })
    };
    RUNTIME.block_on(async {
        let (mut client, server) = tokio::io::duplex(cap * 2);
        client
            .write_all(head)
            .await
            .expect("the duplex takes the head");
        client.shutdown().await.expect("half close");
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.max_buf_size(cap.max(8192)).max_headers(max_headers);
        let serving = builder.serve_connection(hyper_util::rt::TokioIo::new(server), service);
        // The answer is read and dropped as it comes, so hyper never waits on a full pipe.
        let reading = async {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut client, &mut sink).await;
        };
        let _ = tokio::join!(serving, reading);
    });
    seen.lock().expect("not poisoned").take()
}

/// The native upstream client's chunked decoder: the same data and the same end wherever the
/// reads split the stream, and where it accepts a body, the framing guard (which follows
/// hyper's chunked decoder) ends the body at the same byte.
pub fn chunked_body(data: &[u8]) {
    use crate::forward::native::decode_chunked;
    let whole = decode_chunked(data, data.len());
    for piece in [1, 3, 7] {
        assert_eq!(
            decode_chunked(data, piece),
            whole,
            "reads of {piece} bytes decode otherwise"
        );
    }
    let Some((_, taken)) = whole else {
        return;
    };
    let head = b"POST /up HTTP/1.1\r\nhost: gw.example\r\ntransfer-encoding: chunked\r\n\r\n";
    assert!(
        guard_passes_both(&[head, &data[..taken]]),
        "hyper ends the body {:?} elsewhere",
        String::from_utf8_lossy(&data[..taken])
    );
}

/// Feeds the framing guard `first` (one request, in pieces) and then a plain second request:
/// whether it passes both, i.e. the first request ended where its last piece does.
fn guard_passes_both(first: &[&[u8]]) -> bool {
    let verdicts = Verdicts::default();
    let mut tracker = Tracker::new(CAP, MAX_HEADERS, verdicts.clone());
    for piece in first {
        tracker.observe(piece);
    }
    tracker.observe(b"GET /next HTTP/1.1\r\nhost: gw.example\r\n\r\n");
    (verdicts.next(), verdicts.next()) == (Verdict::Pass, Verdict::Pass)
}
