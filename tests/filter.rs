//! Response filtering end to end: a real hyper upstream on loopback answers Street Manager-shaped
//! reporting and export bodies, a real hyper client fetches them, and `filter::apply` filters
//! them for a caller. Expectations come from the generated rows' own promoter and workstream,
//! not from the filter.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]
#![recursion_limit = "256"]

mod filter_support;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use filter_support::{Row, export_csv, pagination, permit_reporting_body, rows, works_index};
use streetgate::authn::identity::{Role, RoleSet};
use streetgate::authz::Visibility;
use streetgate::filter::config::{RawFilter, RawRedact, RawResponsePolicy, RawRowKey};
use streetgate::filter::{
    FilterError, FilterOutcome, ResponsePolicy, apply, prepare_request_headers,
};
use streetgate::grants::codes::{SwaCode, Workstream};
use streetgate::grants::overlay::{CreatedWorks, Works};
use streetgate::grants::snapshot::Snapshot;
use streetgate::reason::Reason;

// --- the upstream ---

/// How the upstream sends one canned answer.
#[derive(Clone)]
struct Canned {
    status: StatusCode,
    content_type: &'static str,
    encoding: Option<&'static str>,
    /// Sent in this many frames without a Content-Length (chunked) when above 1.
    chunks: usize,
    body: Bytes,
}

impl Canned {
    fn json(body: impl Into<Bytes>) -> Canned {
        Canned {
            status: StatusCode::OK,
            content_type: "application/json",
            encoding: None,
            chunks: 1,
            body: body.into(),
        }
    }
    fn csv(body: impl Into<Bytes>) -> Canned {
        Canned {
            content_type: "text/csv",
            ..Canned::json(body)
        }
    }
    fn status(self, status: u16) -> Canned {
        Canned {
            status: StatusCode::from_u16(status).unwrap(),
            ..self
        }
    }
    fn chunked(self, chunks: usize) -> Canned {
        Canned { chunks, ..self }
    }
    fn gzip(self) -> Canned {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&self.body).unwrap();
        Canned {
            encoding: Some("gzip"),
            body: gz.finish().unwrap().into(),
            ..self
        }
    }
}

struct ChunkedBody(VecDeque<Bytes>);

impl Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

struct Upstream {
    addr: SocketAddr,
    /// Request headers seen, by path.
    seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

async fn upstream(answers: HashMap<&'static str, Canned>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answers = Arc::new(answers);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let answers = answers.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let path = req.uri().path().to_owned();
                    log.lock()
                        .unwrap()
                        .push((path.clone(), req.headers().clone()));
                    let canned = answers.get(path.as_str()).cloned();
                    async move {
                        let canned = canned.unwrap_or_else(|| Canned::json("{}").status(404));
                        let mut builder = Response::builder()
                            .status(canned.status)
                            .header(header::CONTENT_TYPE, canned.content_type)
                            .header(header::ETAG, "\"upstream\"");
                        if let Some(enc) = canned.encoding {
                            builder = builder.header(header::CONTENT_ENCODING, enc);
                        }
                        let body: BoxBody<Bytes, Infallible> = if canned.chunks > 1 {
                            let size = canned.body.len().div_ceil(canned.chunks).max(1);
                            let parts = canned
                                .body
                                .chunks(size)
                                .map(Bytes::copy_from_slice)
                                .collect();
                            ChunkedBody(parts).boxed()
                        } else {
                            Full::new(canned.body).boxed()
                        };
                        Ok::<_, Infallible>(builder.body(body).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream { addr, seen }
}

async fn fetch(upstream: &Upstream, path: &str) -> Response<Incoming> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::get(format!("http://{}{path}", upstream.addr))
        .body(Empty::new())
        .unwrap();
    prepare_request_headers(req.headers_mut());
    client.request(req).await.unwrap()
}

// --- policies and callers ---

fn by_wrn(field: &str) -> RawRowKey {
    RawRowKey {
        workstream_field: None,
        organisation_field: None,
        work_reference_field: Some(field.into()),
        contract_field: None,
    }
}

fn json_policy(redact: bool, max_body_bytes: u64) -> ResponsePolicy {
    ResponsePolicy::try_from(&RawResponsePolicy {
        filter: Some(RawFilter::Json {
            rows: "/rows".into(),
            by: by_wrn("work_reference_number"),
        }),
        redact: redact.then(|| RawRedact {
            fields: vec![
                "rows[].draft_invoice_amount".into(),
                "rows[].final_agreed_amount".into(),
            ],
            unless_role: "StreetWorksAdmin".into(),
        }),
        max_body_bytes,
        pagination: Default::default(),
    })
    .unwrap()
}

fn csv_policy() -> ResponsePolicy {
    ResponsePolicy::try_from(&RawResponsePolicy {
        filter: Some(RawFilter::Csv {
            by: by_wrn("Work reference number"),
        }),
        redact: None,
        max_body_bytes: 1 << 24,
        pagination: Default::default(),
    })
    .unwrap()
}

fn limited(org: &str, readable: &[&str]) -> Visibility {
    Visibility::Workstreams {
        organisation: SwaCode::parse(org).unwrap(),
        readable: readable
            .iter()
            .map(|w| Workstream::parse(w).unwrap())
            .collect(),
    }
}

/// The independent answer: the rows a caller may read, in order.
fn expected(rows: &[Row], visibility: &Visibility) -> Vec<String> {
    rows.iter()
        .filter(|r| match visibility {
            Visibility::All => true,
            Visibility::Workstreams {
                organisation,
                readable,
            } => {
                r.known
                    && r.promoter == organisation.as_str()
                    && readable.iter().any(|w| w.as_str() == r.workstream)
            }
            // Work rows are never keyed by contract.
            Visibility::Contracts(_) => false,
        })
        .map(|r| r.work_reference_number.clone())
        .collect()
}

struct World {
    rows: Vec<Row>,
    snapshot: Snapshot,
    created: CreatedWorks,
}

impl World {
    fn new(n: usize) -> World {
        let rows = rows(n);
        let created = works_index(&rows);
        World {
            rows,
            snapshot: Snapshot::default(),
            created,
        }
    }
    fn works(&self) -> Works<'_> {
        Works {
            snapshot: &self.snapshot,
            created: &self.created,
        }
    }
}

async fn run(
    world: &World,
    policy: &ResponsePolicy,
    visibility: &Visibility,
    roles: &[Role],
    response: Response<Incoming>,
) -> Result<(Response<Full<Bytes>>, Bytes, FilterOutcome), FilterError> {
    let (resp, outcome) = apply(
        policy,
        visibility,
        Some(world.works()),
        RoleSet::of(roles),
        response,
    )
    .await?;
    let body = resp.body().clone().collect().await.unwrap().to_bytes();
    Ok((resp, body, outcome))
}

fn row_refs(body: &[u8]) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).unwrap();
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["work_reference_number"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_clean_headers(resp: &Response<Full<Bytes>>, body: &Bytes) {
    let h = resp.headers();
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    assert!(h.get(header::TRANSFER_ENCODING).is_none());
    assert!(h.get(header::ETAG).is_none());
    assert_eq!(
        h.get(header::CONTENT_LENGTH).unwrap().to_str().unwrap(),
        body.len().to_string()
    );
}

// --- tests ---

#[tokio::test]
async fn callers_get_exactly_their_readable_rows_and_no_unfiltered_count() {
    let world = World::new(600);
    let body = permit_reporting_body(&world.rows);
    let upstream = upstream(HashMap::from([("/permits", Canned::json(body))])).await;
    let policy = json_policy(false, 1 << 24);
    let cases = [
        (limited("7001", &["001", "002"]), vec![Role::Planner]),
        (limited("7002", &["003"]), vec![Role::Contractor]),
        (limited("7001", &["000"]), vec![Role::Planner]),
        (limited("7001", &[]), vec![Role::Planner]),
        (Visibility::All, vec![Role::HighwayAuthority]),
    ];
    for (visibility, roles) in cases {
        let response = fetch(&upstream, "/permits").await;
        let (resp, out, outcome) = run(&world, &policy, &visibility, &roles, response)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_clean_headers(&resp, &out);
        let want = expected(&world.rows, &visibility);
        assert_eq!(row_refs(&out), want, "{visibility:?}");
        assert_eq!(outcome.kept as usize, want.len());
        assert_eq!((outcome.kept + outcome.dropped) as usize, world.rows.len());
        // The unfiltered total goes (policy default `pagination: remove`); the rest passes.
        let pagination = "\"pagination\":{\"has_next_page\":true}";
        assert!(
            std::str::from_utf8(&out)
                .unwrap()
                .starts_with(&format!("{{{pagination},"))
        );
    }
    // Unknown works are in the body, and only the highway authority sees them.
    assert!(world.rows.iter().any(|r| !r.known));
    let seen = upstream.seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|(_, h)| h[header::ACCEPT_ENCODING] == "identity")
    );
}

#[tokio::test]
async fn kept_rows_are_byte_identical_to_the_upstream_rows() {
    let world = World::new(50);
    let body = permit_reporting_body(&world.rows);
    let upstream = upstream(HashMap::from([("/permits", Canned::json(body.clone()))])).await;
    let visibility = limited("7001", &["001"]);
    let response = fetch(&upstream, "/permits").await;
    let (_, out, _) = run(
        &world,
        &json_policy(false, 1 << 24),
        &visibility,
        &[Role::Planner],
        response,
    )
    .await
    .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    for row in doc["rows"].as_array().unwrap() {
        assert!(body.contains(&row.to_string()));
    }
}

#[tokio::test]
async fn gzip_and_chunked_upstreams() {
    let world = World::new(400);
    let body = permit_reporting_body(&world.rows);
    let upstream = upstream(HashMap::from([
        ("/gzip", Canned::json(body.clone()).gzip()),
        ("/chunked", Canned::json(body.clone()).chunked(7)),
        ("/both", Canned::json(body).gzip().chunked(5)),
    ]))
    .await;
    let visibility = limited("7002", &["001", "003"]);
    for path in ["/gzip", "/chunked", "/both"] {
        let response = fetch(&upstream, path).await;
        let (resp, out, _) = run(
            &world,
            &json_policy(false, 1 << 24),
            &visibility,
            &[Role::Planner],
            response,
        )
        .await
        .unwrap();
        assert_clean_headers(&resp, &out);
        assert_eq!(row_refs(&out), expected(&world.rows, &visibility), "{path}");
    }
}

#[tokio::test]
async fn malformed_and_truncated_bodies_are_never_passed_on() {
    let world = World::new(40);
    let body = permit_reporting_body(&world.rows);
    let csv = export_csv(&world.rows);
    let half = |s: &str| s[..s.len() / 2].to_owned();
    // Cut inside the quoted location description of the third record.
    let csv_cut = csv[..csv.match_indices("the old mill").nth(2).unwrap().0].to_owned();
    let upstream = upstream(HashMap::from([
        ("/truncated", Canned::json(half(&body))),
        ("/truncated-chunked", Canned::json(half(&body)).chunked(3)),
        (
            "/malformed",
            Canned::json(body.replace("\"rows\":[", "\"rows\":[,")),
        ),
        ("/not-json", Canned::json("<html>upstream sad</html>")),
        ("/truncated-gzip", {
            let mut c = Canned::json(body.clone()).gzip();
            c.body = c.body.slice(..c.body.len() / 2);
            c
        }),
        ("/csv-truncated", Canned::csv(csv_cut)),
        (
            "/csv-ragged",
            Canned::csv(csv.replacen("-01,", "-01,extra,", 3)),
        ),
        ("/csv-no-column", Canned::csv("a,b\r\n1,2\r\n")),
    ]))
    .await;
    let visibility = limited("7001", &["001"]);
    for (path, policy) in [
        ("/truncated", json_policy(false, 1 << 24)),
        ("/truncated-chunked", json_policy(false, 1 << 24)),
        ("/malformed", json_policy(false, 1 << 24)),
        ("/not-json", json_policy(false, 1 << 24)),
        ("/truncated-gzip", json_policy(false, 1 << 24)),
        ("/csv-truncated", csv_policy()),
        ("/csv-ragged", csv_policy()),
        ("/csv-no-column", csv_policy()),
    ] {
        let response = fetch(&upstream, path).await;
        let err = run(&world, &policy, &visibility, &[Role::Planner], response)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::ResponseUnfilterable, "{path}: {err}");
        assert_eq!(err.reason().status(), StatusCode::BAD_GATEWAY);
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let world = World::new(200);
    let body = permit_reporting_body(&world.rows);
    let limit = (body.len() / 2) as u64;
    // Compresses far below the limit, expands far above it.
    let bomb = format!(
        "{{\"pagination\":{},\"rows\":[{}\"x\"]}}",
        pagination(1),
        "\"x\",".repeat(body.len())
    );
    let upstream = upstream(HashMap::from([
        ("/sized", Canned::json(body.clone())),
        ("/chunked", Canned::json(body).chunked(16)),
        ("/bomb", Canned::json(bomb).gzip()),
    ]))
    .await;
    for path in ["/sized", "/chunked", "/bomb"] {
        let response = fetch(&upstream, path).await;
        let err = run(
            &world,
            &json_policy(false, limit),
            &Visibility::All,
            &[Role::HighwayAuthority],
            response,
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason(), Reason::ResponseTooLarge, "{path}");
        assert_eq!(err.reason().status(), StatusCode::BAD_GATEWAY);
    }
}

#[tokio::test]
async fn section_74_amounts_only_for_street_works_admins() {
    let world = World::new(60);
    let body = permit_reporting_body(&world.rows);
    let upstream = upstream(HashMap::from([("/permits", Canned::json(body))])).await;
    let policy = json_policy(true, 1 << 24);
    let visibility = limited("7001", &["001", "002", "003"]);

    let response = fetch(&upstream, "/permits").await;
    let (_, out, _) = run(&world, &policy, &visibility, &[Role::Planner], response)
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected(&world.rows, &visibility).len());
    for row in rows {
        assert!(row.get("draft_invoice_amount").is_none());
        assert!(row.get("final_agreed_amount").is_none());
        assert!(row.get("permit_reference_number").is_some());
    }

    let response = fetch(&upstream, "/permits").await;
    let roles = [Role::Planner, Role::StreetWorksAdmin];
    let (_, out, _) = run(&world, &policy, &visibility, &roles, response)
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    for row in doc["rows"].as_array().unwrap() {
        assert!(row["draft_invoice_amount"].is_f64());
        assert!(row["final_agreed_amount"].is_null());
    }
}

#[tokio::test]
async fn error_bodies_pass_unless_they_carry_rows() {
    let world = World::new(30);
    let with_rows = permit_reporting_body(&world.rows);
    let error = r#"{"message":"Invalid query","error":{"status":400}}"#;
    let upstream = upstream(HashMap::from([
        ("/bad", Canned::json(error).status(400)),
        ("/csv-gone", Canned::json(error).status(404)),
        ("/oops", Canned::json(with_rows).status(500)),
    ]))
    .await;
    let visibility = limited("7001", &["001"]);

    // Error bodies without rows pass through unchanged, under either policy.
    for (path, policy, status) in [
        ("/bad", json_policy(false, 1 << 24), StatusCode::BAD_REQUEST),
        ("/csv-gone", csv_policy(), StatusCode::NOT_FOUND),
    ] {
        let response = fetch(&upstream, path).await;
        let (resp, out, _) = run(&world, &policy, &visibility, &[Role::Planner], response)
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert_eq!(out, error, "{path}");
    }

    let response = fetch(&upstream, "/oops").await;
    let (resp, out, _) = run(
        &world,
        &json_policy(false, 1 << 24),
        &visibility,
        &[Role::Planner],
        response,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(row_refs(&out), expected(&world.rows, &visibility));
}

#[tokio::test]
async fn export_csv_keeps_header_and_readable_records() {
    let world = World::new(300);
    let csv = export_csv(&world.rows);
    let upstream = upstream(HashMap::from([
        ("/csv/1", Canned::csv(csv.clone())),
        ("/csv/2", Canned::csv(csv.clone()).gzip().chunked(4)),
    ]))
    .await;
    for (path, visibility) in [
        ("/csv/1", limited("7001", &["002", "003"])),
        ("/csv/2", limited("7002", &["000"])),
        ("/csv/1", Visibility::All),
    ] {
        let response = fetch(&upstream, path).await;
        let (resp, out, outcome) = run(
            &world,
            &csv_policy(),
            &visibility,
            &[Role::DataExport],
            response,
        )
        .await
        .unwrap();
        assert_clean_headers(&resp, &out);
        let header_line = csv.split("\r\n").next().unwrap();
        assert!(out.starts_with(format!("{header_line}\r\n").as_bytes()));
        let mut reader = csv::Reader::from_reader(&out[..]);
        let got: Vec<String> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                assert_eq!(&r[3][..15], "Outside number ");
                assert!(r[4].contains('\n'));
                r[0].to_owned()
            })
            .collect();
        assert_eq!(got, expected(&world.rows, &visibility), "{path}");
        assert_eq!(outcome.kept as usize, got.len());
    }
}

#[tokio::test]
async fn an_upstream_that_hangs_up_mid_body_is_an_upstream_failure() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{\"pagination\":{},\"rows\":[")
            .await
            .unwrap();
        // Dropping the stream closes the connection 4,980 bytes short.
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .request(
            Request::get(format!("http://{addr}/permits"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let world = World::new(1);
    let err = run(
        &world,
        &json_policy(false, 1 << 24),
        &Visibility::All,
        &[Role::HighwayAuthority],
        response,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FilterError::Body(_)), "{err}");
    assert_eq!(err.reason(), Reason::UpstreamUnavailable);
}
