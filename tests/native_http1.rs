//! The native HTTP/1 server (`runtime.http1: native`) through the whole sidecar: raw client
//! bytes on one connection, a recording upstream. Plain requests are served by the native loop;
//! the first request it does not take (a body, a smuggling attempt, a bad head) hands the
//! connection to hyper and the framing guard, which answer it as they always have.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NATIVE: &str = "runtime: {workers: 1, http1: native}";

async fn world() -> World {
    World::start(DEFAULT_ROUTES, NATIVE).await
}

fn planner() -> String {
    token(&claims("user-a", "7001", &["Planner"]))
}

/// One response read off `stream` (`buf` keeps what follows it): status, head, body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

async fn answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Answer> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = response.parse(buf) {
            let status = response.code.unwrap();
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| {
                    std::str::from_utf8(h.value)
                        .unwrap()
                        .parse::<usize>()
                        .unwrap()
                });
            let head = String::from_utf8_lossy(&buf[..len]).into_owned();
            let length = length.expect("the sidecar's answers here have a length");
            while buf.len() < len + length {
                if read_more(stream, buf).await == 0 {
                    return None;
                }
            }
            let body = buf[len..len + length].to_vec();
            buf.drain(..len + length);
            return Some(Answer { status, head, body });
        }
        if read_more(stream, buf).await == 0 {
            return None;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
        .await
        .expect("an answer within 5 s")
        .unwrap_or(0);
    buf.extend_from_slice(&chunk[..n]);
    n
}

/// Whether the sidecar closed the connection (read returns 0) within 3 s.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await,
        Ok(Ok(_))
    )
}

fn get(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\ntoken: {token}\r\n\r\n")
}

#[tokio::test]
async fn plain_requests_keep_the_connection_and_may_be_pipelined() {
    let w = world().await;
    let t = planner();
    let mut stream = TcpStream::connect(w.gw.addr).await.unwrap();
    // Three in one write, then a fourth on the same connection after the answers.
    let pipelined = format!(
        "{}{}{}",
        get("/work/works/NW1", &t),
        get("/work/works/NW2?x=%20", &t),
        get("/work/status", "none")
    );
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        let a = answer(&mut stream, &mut buf).await.expect("an answer");
        assert_eq!(a.status, 200, "{}", a.head);
        assert_eq!(a.body, br#"{"ok":true}"#);
        assert!(a.head.contains("x-streetgate-decision-id: "), "{}", a.head);
        assert!(a.head.contains("date: "), "{}", a.head);
    }
    stream
        .write_all(get("/work/works/NW3", &t).as_bytes())
        .await
        .unwrap();
    let a = answer(&mut stream, &mut buf)
        .await
        .expect("a fourth answer");
    assert_eq!(a.status, 200);
    let seen: Vec<String> = w.upstream.seen().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(
        seen,
        [
            "/work/works/NW1",
            "/work/works/NW2?x=%20",
            "/work/status",
            "/work/works/NW3"
        ]
    );
    let first = &w.upstream.seen()[0];
    assert_eq!(first.headers["x-streetgate-user"], "user-a");
}

/// The same requests through a sidecar on hyper and one on the native loop: the upstream sees
/// the same requests and the client the same answers (apart from ids and dates).
#[tokio::test]
async fn native_and_hyper_forward_and_answer_alike() {
    let t = planner();
    let requests = [
        get("/work/works/NW1?b=2&a=1", &t),
        format!(
            "GET /work/works/NW2 HTTP/1.1\r\nHost: gw.test\r\ntoken: {t}\r\nX-Forwarded-For: 10.9.9.9\r\nX-Streetgate-User: forged\r\nAccept: a\r\naccept: b\r\nKeep-Alive: 5\r\nConnection: keep-alive, x-drop\r\nx-drop: 1\r\nContent-Length: 0\r\n\r\n"
        ),
        format!("DELETE /work/works/NW1 HTTP/1.1\r\nHost: gw.test\r\ntoken: {t}\r\n\r\n"),
        get("/work/status", "x"),
        get("/work/works/NW1", "not-a-token"),
        format!(
            "GET /work/works/NW1 HTTP/1.0\r\nHost: gw.test\r\ntoken: {t}\r\nConnection: keep-alive\r\n\r\n"
        ),
    ];
    let mut answers = Vec::new();
    let mut seen = Vec::new();
    for extra in ["runtime: {workers: 1, http1: hyper}", NATIVE] {
        let w = World::start(DEFAULT_ROUTES, extra).await;
        let mut stream = TcpStream::connect(w.gw.addr).await.unwrap();
        let mut buf = Vec::new();
        let mut these = Vec::new();
        for request in &requests {
            stream.write_all(request.as_bytes()).await.unwrap();
            let a = answer(&mut stream, &mut buf).await.expect("an answer");
            let head: Vec<String> = a
                .head
                .lines()
                .filter(|l| !l.starts_with("date:") && !l.starts_with("x-streetgate-decision-id:"))
                .map(|l| l.to_ascii_lowercase())
                .collect();
            let mut head = head;
            head.sort();
            // Rejections name their decision id in the body too.
            let body = match serde_json::from_slice::<serde_json::Value>(&a.body) {
                Ok(mut json) => {
                    if let Some(o) = json.as_object_mut() {
                        o.remove("decision_id");
                    }
                    json.to_string()
                }
                Err(_) => String::from_utf8_lossy(&a.body).into_owned(),
            };
            these.push((a.status, head, body));
        }
        answers.push(these);
        seen.push(
            w.upstream
                .seen()
                .into_iter()
                .map(|s| {
                    let mut headers: Vec<(String, String)> = s
                        .headers
                        .iter()
                        .filter(|(n, _)| *n != "x-streetgate-decision-id")
                        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                        .collect();
                    headers.sort();
                    (s.method, s.uri, headers, s.body)
                })
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(answers[0], answers[1], "answers: hyper, then native");
    assert_eq!(seen[0], seen[1], "upstream requests: hyper, then native");
    assert_eq!(seen[1].len(), 4, "the 404 and the 401 are not forwarded");
}

#[tokio::test]
async fn rejections_are_answered_natively_and_never_forwarded() {
    let w = world().await;
    let mut stream = TcpStream::connect(w.gw.addr).await.unwrap();
    let mut buf = Vec::new();
    for (request, status) in [
        (get("/work/works/NW1", "not-a-token"), 401),
        (get("/work/nowhere", &planner()), 404),
        (get("/work/works/NW1/../NW2", &planner()), 400),
        (get("/work/works/%252e%252e", &planner()), 400),
    ] {
        stream.write_all(request.as_bytes()).await.unwrap();
        let a = answer(&mut stream, &mut buf).await.expect("an answer");
        assert_eq!(a.status, status, "{request}: {}", a.head);
    }
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn a_body_hands_the_connection_to_hyper_mid_stream() {
    let w = world().await;
    let t = planner();
    let mut stream = TcpStream::connect(w.gw.addr).await.unwrap();
    let body = r#"{"a":1}"#;
    let post = format!(
        "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\ntoken: {t}\r\ncontent-type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Native, then hyper (the body), then hyper again on the same connection.
    let stream_bytes = format!(
        "{}{post}{}",
        get("/work/works/NW1", &t),
        get("/work/works/NW2", &t)
    );
    stream.write_all(stream_bytes.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        let a = answer(&mut stream, &mut buf).await.expect("an answer");
        assert_eq!(a.status, 200, "{}", a.head);
    }
    let seen = w.upstream.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].method, http::Method::POST);
    assert_eq!(&seen[1].body[..], body.as_bytes());
    assert_eq!(seen[2].uri, "/work/works/NW2");
}

#[tokio::test]
async fn smuggling_after_native_requests_meets_the_framing_guard() {
    let w = world().await;
    let t = planner();
    for smuggled in [
        "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        "POST /work/echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(w.gw.addr).await.unwrap();
        let before = w.upstream.count();
        let bytes = format!(
            "{}{smuggled}{}",
            get("/work/works/NW1", &t),
            get("/work/works/SMUGGLED", &t)
        );
        stream.write_all(bytes.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let first = answer(&mut stream, &mut buf).await.expect("the plain one");
        assert_eq!(first.status, 200);
        let refused = answer(&mut stream, &mut buf).await.expect("the refusal");
        assert_eq!(refused.status, 400, "{smuggled:?}: {}", refused.head);
        assert!(
            String::from_utf8_lossy(&refused.body).contains("bad_framing"),
            "{:?}",
            String::from_utf8_lossy(&refused.body)
        );
        assert!(closed(&mut stream).await, "closed after a refusal");
        let seen = w.upstream.seen();
        assert_eq!(seen.len(), before + 1, "{smuggled:?}");
        assert!(seen.iter().all(|s| !s.uri.contains("SMUGGLED")));
    }
}

#[tokio::test]
async fn bad_and_oversized_heads_get_hypers_answers() {
    let w = world().await;
    let t = planner();
    for (bad, status) in [
        (
            "GET /work/works/NW1 HTTP/1.1\r\nX: a\r\n folded\r\n\r\n".to_owned(),
            400,
        ),
        (
            format!(
                "GET /work/works/NW1 HTTP/1.1\r\nX: {}\r\n\r\n",
                "v".repeat(20_000)
            ),
            431,
        ),
    ] {
        let mut stream = TcpStream::connect(w.gw.addr).await.unwrap();
        let bytes = format!("{}{bad}", get("/work/works/NW1", &t));
        stream.write_all(bytes.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(answer(&mut stream, &mut buf).await.unwrap().status, 200);
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
        buf.extend_from_slice(&rest);
        let text = String::from_utf8_lossy(&buf);
        assert_eq!(raw_status(&text), status, "{text}");
    }
    assert_eq!(w.upstream.count(), 2);
}

#[tokio::test]
async fn connection_close_and_http_1_0_end_the_connection_unless_kept_alive() {
    let w = world().await;
    let t = planner();
    for (request, stays_open) in [
        (
            format!(
                "GET /work/works/NW1 HTTP/1.1\r\nHost: gw.test\r\ntoken: {t}\r\nConnection: close\r\n\r\n"
            ),
            false,
        ),
        (
            format!("GET /work/works/NW1 HTTP/1.0\r\nHost: gw.test\r\ntoken: {t}\r\n\r\n"),
            false,
        ),
        (
            format!(
                "GET /work/works/NW1 HTTP/1.0\r\nHost: gw.test\r\ntoken: {t}\r\nConnection: keep-alive\r\n\r\n"
            ),
            true,
        ),
    ] {
        let mut stream = TcpStream::connect(w.gw.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let a = answer(&mut stream, &mut buf).await.expect("an answer");
        assert_eq!(a.status, 200);
        if stays_open {
            assert!(a.head.contains("connection: keep-alive"), "{}", a.head);
            stream.write_all(request.as_bytes()).await.unwrap();
            assert_eq!(answer(&mut stream, &mut buf).await.unwrap().status, 200);
        } else {
            assert!(a.head.contains("connection: close"), "{}", a.head);
            assert!(closed(&mut stream).await, "{request}");
        }
    }
}

#[tokio::test]
async fn head_requests_get_the_length_and_no_body() {
    let w = World::start(
        r#"
      - id: Status
        route: GET /status
        allow: public
      - id: StatusHead
        route: HEAD /status
        allow: public
"#,
        NATIVE,
    )
    .await;
    let mut stream = TcpStream::connect(w.gw.addr).await.unwrap();
    let both = "HEAD /work/status HTTP/1.1\r\nHost: gw.test\r\n\r\nGET /work/status HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    stream.write_all(both.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    // The HEAD answer carries the length of the GET's body but no body: read its head only.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(read_more(&mut stream, &mut buf).await > 0);
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    buf.drain(..end);
    let get = answer(&mut stream, &mut buf)
        .await
        .expect("the GET after it");
    assert_eq!(get.status, 200);
    assert_eq!(get.body, br#"{"ok":true}"#);
}

#[tokio::test]
async fn an_idle_or_silent_connection_is_closed() {
    let w = world().await;
    // Silent from the start: closed at header_read_timeout (2 s).
    let mut silent = TcpStream::connect(w.gw.addr).await.unwrap();
    assert!(closed(&mut silent).await);
    // Idle after an answer, and a head that never finishes: closed too.
    let mut idle = TcpStream::connect(w.gw.addr).await.unwrap();
    idle.write_all(get("/work/works/NW1", &planner()).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(answer(&mut idle, &mut buf).await.unwrap().status, 200);
    idle.write_all(b"GET /work/works/NW2 HTTP/1.1\r\nHost: gw")
        .await
        .unwrap();
    assert!(closed(&mut idle).await);
    assert_eq!(w.upstream.count(), 1);
}
