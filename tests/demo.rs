//! The demo a newcomer runs: every printed command answers what its comment says.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

mod common;

use bytes::Bytes;
use common::send;
use http::Request;
use http_body_util::Full;

#[tokio::test]
async fn every_demo_step_answers_as_printed() {
    check(streetgate::cli::demo::Scenario::StreetManager).await;
}

#[tokio::test]
async fn every_contracts_demo_step_answers_as_printed() {
    check(streetgate::cli::demo::Scenario::Contracts).await;
}

async fn check(scenario: streetgate::cli::demo::Scenario) {
    let demo = streetgate::cli::demo::start_scenario(0, scenario)
        .await
        .unwrap();
    let text = demo.instructions();
    let base = format!("http://{}", demo.running.addr);
    assert!(!demo.steps.is_empty());
    for step in demo.steps {
        assert!(text.contains(&step.curl(&base)), "printed: {}", step.what);
        let mut req = Request::builder()
            .method(step.method)
            .uri(step.path)
            .header("host", demo.running.addr.to_string());
        if let Some(var) = step.token {
            let token = &demo.tokens.iter().find(|(v, _, _)| *v == var).unwrap().2;
            assert!(text.contains(&format!("export {var}='{token}'")));
            req = req.header("token", token);
        }
        if step.body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = Full::new(Bytes::from(step.body.unwrap_or("").to_owned()));
        let reply = send(demo.running.addr, req.body(body).unwrap()).await;
        assert_eq!(
            reply.status.as_u16(),
            step.expect,
            "{}: {:?}",
            step.what,
            reply.body
        );
    }
    demo.shutdown().await;
}
