//! Third-party integrators (seed 002) over real sockets: the integrator read from `act`,
//! `azp` or `client_id`, the per-organisation agreements of the snapshot, the forwarded
//! header, the metric. Every rejection also asserts the upstream never saw the request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use common::*;

const GRANTS: &str = r#"{"version": 1, "generated_at": "2026-11-23T07:00:00Z",
  "organisations": [
    {"swa_code": "7001", "name": "Northern Water", "kind": "promoter", "status": "active",
     "workstreams": ["000", "001"], "contractors": ["C901"],
     "integrators": [{"id": "roadhub", "apis": ["work"]}, {"id": "reportco", "apis": ["reporting"]}]},
    {"swa_code": "7002", "name": "Southern Gas", "kind": "promoter", "status": "active",
     "workstreams": ["000", "001"], "contractors": ["C901"]},
    {"swa_code": "4020", "name": "Leeds", "kind": "highway_authority", "status": "active"},
    {"swa_code": "C901", "name": "Dig Ltd", "kind": "contractor", "status": "active",
     "integrators": [{"id": "roadhub", "apis": ["work"]}]}],
  "users": [
    {"sub": "user-a", "organisation": "7001", "workstreams": {"7001": {"001": "full-write"}}},
    {"sub": "gas-1", "organisation": "7002", "workstreams": {"7002": {"001": "full-write"}}},
    {"sub": "dig-1", "organisation": "C901",
     "workstreams": {"7001": {"001": "read-only"}, "7002": {"001": "read-only"}}}],
  "works": [
    {"work_reference_number": "W1", "promoter": "7001", "highway_authority": "4020", "workstream": "001"},
    {"work_reference_number": "G1", "promoter": "7002", "highway_authority": "4020", "workstream": "001"}]}"#;

const ROUTES: &str = r#"
      - id: GetWork
        route: GET /works/{workReferenceNumber}
        allow: {roles: [Planner, Contractor, HighwayAuthority]}
        access: {read_work: {path: workReferenceNumber}}
      - id: Status
        route: GET /status
        allow: public
  - name: reporting
    prefix: /reporting
    upstream: UPSTREAM
    routes:
      - id: Reports
        route: GET /reports
        allow: {roles: [Planner]}
"#;

struct World {
    upstream: Upstream,
    _jwks: JwksServer,
    gw: Running,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.json");
    std::fs::write(&grants, GRANTS).unwrap();
    let upstream = Upstream::start().await;
    let jwks = JwksServer::start().await;
    let extra = format!(
        "grants:\n  source: {{file: {{path: {}}}}}\n  max_age: 1h\n",
        grants.display()
    );
    let routes = ROUTES.replace("UPSTREAM", &upstream.url());
    let mut yaml = config_yaml(&upstream.url(), &jwks.url(), &routes, &extra);
    yaml = yaml.replace(
        "  audience: street-manager\n",
        "  audience: street-manager\n  claims: {first_party_clients: [street-manager-ui]}\n",
    );
    let gw = sidecar(&yaml).await;
    World {
        upstream,
        _jwks: jwks,
        gw,
        _dir: dir,
    }
}

fn with(sub: &str, org: &str, roles: &[&str], extra: &serde_json::Value) -> String {
    let mut c = claims(sub, org, roles);
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    token(&c)
}

/// Sends and, for a rejection, checks that nothing reached the upstream.
async fn call(w: &World, path: &str, token: &str) -> Reply {
    let before = w.upstream.count();
    let reply = send(w.gw.addr, get(path, Some(token))).await;
    if !reply.status.is_success() {
        assert_eq!(w.upstream.count(), before, "{path} was forwarded");
    }
    reply
}

#[tokio::test]
async fn agreed_integrator_is_forwarded_in_its_header_by_each_spelling() {
    let w = world().await;
    for extra in [
        serde_json::json!({"act": {"sub": "roadhub"}}),
        serde_json::json!({"azp": "roadhub"}),
        serde_json::json!({"client_id": "roadhub"}),
        serde_json::json!({"azp": "street-manager-ui", "act": {"sub": "roadhub"}}),
        serde_json::json!({"azp": "roadhub", "client_id": "roadhub", "act": {"sub": "roadhub"}}),
    ] {
        let t = with("user-a", "7001", &["Planner"], &extra);
        let reply = call(&w, "/work/works/W1", &t).await;
        assert_eq!(reply.status, 200, "{extra}");
        let seen = w.upstream.seen().pop().unwrap();
        assert_eq!(
            seen.headers["x-streetgate-integrator"], "roadhub",
            "{extra}"
        );
        assert_eq!(seen.headers["x-streetgate-user"], "user-a");
    }
}

#[tokio::test]
async fn first_party_clients_and_plain_tokens_carry_no_integrator() {
    let w = world().await;
    for t in [
        token(&claims("user-a", "7001", &["Planner"])),
        with(
            "user-a",
            "7001",
            &["Planner"],
            &serde_json::json!({"azp": "street-manager-ui"}),
        ),
    ] {
        let req = http::Request::get("/work/works/W1")
            .header("host", "gw.test")
            .header("token", &t)
            .header("x-streetgate-integrator", "roadhub")
            .header("X_Streetgate_Integrator", "roadhub")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let reply = send(w.gw.addr, req).await;
        assert_eq!(reply.status, 200);
        let seen = w.upstream.seen().pop().unwrap();
        assert!(!seen.headers.contains_key("x-streetgate-integrator"));
        assert!(!seen.headers.contains_key("x_streetgate_integrator"));
    }
}

#[tokio::test]
async fn integrator_without_an_agreement_or_outside_its_apis_is_refused() {
    let w = world().await;
    let planner = |integrator: &str| {
        with(
            "user-a",
            "7001",
            &["Planner"],
            &serde_json::json!({"azp": integrator}),
        )
    };
    // No agreement at all.
    let reply = call(&w, "/work/works/W1", &planner("stranger")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.reason()),
        (403, "integrator_not_agreed".into())
    );
    // An agreement, but for another API.
    let reply = call(&w, "/work/works/W1", &planner("reportco")).await;
    assert_eq!(reply.reason(), "integrator_not_agreed");
    let reply = call(&w, "/reporting/reports", &planner("reportco")).await;
    assert_eq!(reply.status, 200);
    let reply = call(&w, "/reporting/reports", &planner("roadhub")).await;
    assert_eq!(reply.reason(), "integrator_not_agreed");
    // Another organisation's agreement does not carry over.
    let gas = with(
        "gas-1",
        "7002",
        &["Planner"],
        &serde_json::json!({"act": {"sub": "roadhub"}}),
    );
    let reply = call(&w, "/work/works/G1", &gas).await;
    assert_eq!(reply.reason(), "integrator_not_agreed");
    // Public routes need no identity, so no agreement either.
    let reply = call(&w, "/work/status", &planner("stranger")).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_contractor_integrator_needs_the_promoters_agreement_too() {
    let w = world().await;
    let dig = with(
        "dig-1",
        "C901",
        &["Contractor"],
        &serde_json::json!({"azp": "roadhub"}),
    );
    let reply = call(&w, "/work/works/W1?swaCode=7001", &dig).await;
    assert_eq!(reply.status, 200);
    let seen = w.upstream.seen().pop().unwrap();
    assert_eq!(seen.headers["x-streetgate-integrator"], "roadhub");
    assert_eq!(seen.headers["x-streetgate-acting-organisation"], "7001");
    // 7002 has no agreement with roadhub: its data is not relayed through C901's.
    let reply = call(&w, "/work/works/G1?swaCode=7002", &dig).await;
    assert_eq!(reply.reason(), "integrator_not_agreed");
}

#[tokio::test]
async fn ambiguous_integrator_claims_are_401_and_never_forwarded() {
    let w = world().await;
    for extra in [
        serde_json::json!({"azp": "roadhub", "client_id": "other-client"}),
        serde_json::json!({"azp": "roadhub", "act": {"sub": "reportco"}}),
        serde_json::json!({"act": {"sub": "roadhub", "act": {"sub": "reportco"}}}),
        serde_json::json!({"act": "roadhub"}),
        serde_json::json!({"act": {}}),
        serde_json::json!({"azp": ""}),
        serde_json::json!({"azp": 7}),
        serde_json::json!({"Azp": "roadhub"}),
        serde_json::json!({"clientId": "roadhub"}),
        serde_json::json!({"client-id": "roadhub"}),
        serde_json::json!({"azp": "road\u{0}hub"}),
    ] {
        let t = with("user-a", "7001", &["Planner"], &extra);
        let reply = call(&w, "/work/works/W1", &t).await;
        assert_eq!(
            (reply.status.as_u16(), reply.reason()),
            (401, "token_claims".into()),
            "{extra}"
        );
    }
}

#[tokio::test]
async fn integrator_metric_labels_are_bounded_by_the_snapshot() {
    let w = world().await;
    let planner = |integrator: &str| {
        with(
            "user-a",
            "7001",
            &["Planner"],
            &serde_json::json!({"azp": integrator}),
        )
    };
    call(&w, "/work/works/W1", &planner("roadhub")).await;
    call(&w, "/work/works/W1", &planner("unknown-1")).await;
    call(&w, "/work/works/W1", &planner("unknown-2")).await;
    let ok = eventually(PATIENCE, || async {
        let scrape = metrics(&w.gw).await;
        sample(
            &scrape,
            r#"streetgate_integrator_decisions_total{decision="allow",integrator="roadhub"}"#,
        ) == 1.0
            && sample(
                &scrape,
                r#"streetgate_integrator_decisions_total{decision="deny",integrator="other"}"#,
            ) == 2.0
    })
    .await;
    let scrape = metrics(&w.gw).await;
    assert!(ok, "{scrape}");
    assert!(!scrape.contains("unknown-1"));
}

#[tokio::test]
async fn explain_prints_the_integrator_step() {
    use streetgate::cli::explain::{Credentials, ExplainRequest, explain};
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.json");
    std::fs::write(&grants, GRANTS).unwrap();
    let jwks = fixture("keys/jwks.json");
    let config = dir.path().join("config.yaml");
    let routes = ROUTES.replace("UPSTREAM", "http://127.0.0.1:9");
    let yaml = config_yaml(
        "http://127.0.0.1:9",
        "http://unused",
        &routes,
        &format!(
            "grants:\n  source: {{file: {{path: {}}}}}\n",
            grants.display()
        ),
    )
    .replace(
        "  jwks:\n    url:\n      url: http://unused\n",
        &format!("  jwks: {{file: {}}}\n", jwks.display()),
    );
    std::fs::write(&config, yaml).unwrap();
    let request = |integrator: &str, path: &str| ExplainRequest {
        config: config.clone(),
        snapshot: Some(grants.display().to_string()),
        caller: Credentials::Claims(format!(
            r#"{{"sub":"user-a","org":"7001","roles":["Planner"],"act":{{"sub":"{integrator}"}}}}"#
        )),
        method: "GET".into(),
        path: path.into(),
        swa_code: None,
        body: None,
    };
    let progress = streetgate::cli::progress::Progress::quiet();
    let allowed = explain(&request("roadhub", "/work/works/W1"), &progress)
        .await
        .unwrap();
    assert!(allowed.allowed, "{:#?}", allowed.lines);
    let text = allowed.lines.join("\n");
    assert!(
        text.contains("integrator: roadhub acts through this user's account (api work)"),
        "{text}"
    );
    assert!(
        text.contains("integrator agreement of 7001: covers this API"),
        "{text}"
    );
    let denied = explain(&request("roadhub", "/reporting/reports"), &progress)
        .await
        .unwrap();
    assert!(!denied.allowed);
    let text = denied.lines.join("\n");
    assert!(
        text.contains("integrator agreement of 7001: none for this API"),
        "{text}"
    );
    assert!(text.contains("integrator_not_agreed"), "{text}");
}
