//! The contracts model (seed 003) over real sockets, with the shipped `config/contracts.yaml`:
//! every row of the seed's user-type table, every party × role default, template overrides,
//! reads without membership, user-type assignment, and config checks that rules fit the model.
//! Every rejection also asserts the upstream never saw the request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use serde_json::json;

const TYPES: [&str; 9] = [
    "SiteAdministrator",
    "SiteSupport",
    "SuperUser",
    "ContractAdministrator",
    "UserAdministrator",
    "ViewAll",
    "ViewAllHub",
    "ViewOwn",
    "GeneralUser",
];

/// The seed's "System permissions based on User Type", one row per permission, with the user
/// types holding it (SA SS SU CA UA VA VH VO GU). Where the seed's table lost its column
/// positions, the prose decides (docs/contracts.md).
const TABLE: [(&str, &str); 26] = [
    ("view_all_contracts", "SA SS SU CA UA VA"),
    ("party_switcher", "SA SS SU CA UA"),
    ("admin_companies", "SA SS SU CA UA"),
    ("admin_hub_users", "SA SS SU CA UA"),
    ("admin_company_users", "SA SS SU CA UA"),
    ("admin_company_user_edit", "SA SS"),
    ("deactivate_companies", "SA SS"),
    ("deactivate_users", "SA SS UA"),
    ("admin_projects", "SA SS SU CA"),
    ("admin_contracts", "SA SS SU CA"),
    ("admin_contract_users", "SA SS SU CA UA"),
    ("contract_template_edit", "SA CA"),
    ("contract_template_read", "SA SS CA UA"),
    ("admin_email_recipients", "SA SS SU CA"),
    ("admin_other_dates", "SA SS SU CA"),
    ("admin_assets", "SA SS SU CA"),
    ("master_templates_edit", "SA"),
    ("master_templates_read", "SA SS"),
    ("admin_users", "SA SS SU"),
    ("reports_aggregate", "SA SS SU CA"),
    ("reports_contract_users", "SA SS SU CA UA"),
    ("system_tags", "SA SS SU"),
    ("update_project_status", "SA"),
    ("update_contract_status", "SA"),
    ("see_deleted_contracts", "SA"),
    ("delete_attachments", "SA"),
];

const ABBREV: [&str; 9] = ["SA", "SS", "SU", "CA", "UA", "VA", "VH", "VO", "GU"];

fn holds(row: &str, ty: usize) -> bool {
    row.split(' ').any(|a| a == ABBREV[ty])
}

const PARTIES: [&str; 4] = ["Client", "ProjectManager", "Supervisor", "Supplier"];
const ROLES: [&str; 5] = ["Manager", "Support", "ReadOnly", "CostManager", "SiteAgent"];

fn snapshot(version: u64, k1_template: &serde_json::Value) -> String {
    let mut users = Vec::new();
    for ty in TYPES {
        let (company, hubs) = match ty {
            "ViewOwn" => ("SUPPLIERCO", json!([])),
            "ViewAllHub" => ("CLIENTCO", json!(["north"])),
            _ => ("CLIENTCO", json!([])),
        };
        users.push(
            json!({"sub": format!("ut-{ty}"), "company": company, "user_type": ty,
                          "hubs": hubs}),
        );
    }
    for party in PARTIES {
        for role in ROLES {
            users.push(
                json!({"sub": format!("m-{party}-{role}"), "company": "CLIENTCO",
                "user_type": "GeneralUser",
                "contracts": [{"id": "K1", "party": party, "role": role},
                              {"id": "K2", "party": party, "role": role}]}),
            );
        }
    }
    json!({"version": version, "generated_at": "2026-11-23T07:00:00Z",
      "contracts": {
        "companies": [{"id": "CLIENTCO", "name": "Client Co"}, {"id": "SUPPLIERCO", "name": "Supplier Co"},
                      {"id": "OTHERCO", "name": "Other Co"}],
        "hubs": ["north", "south"],
        "contracts": [
          {"id": "K1", "hub": "north", "supplier": "SUPPLIERCO", "template": k1_template},
          {"id": "K2", "hub": "south", "supplier": "OTHERCO", "template": [
            {"party": "Client", "role": "Manager", "permissions": ["read", "create"]},
            {"party": "Client", "role": "CostManager", "permissions": ["read", "approve_payment"]},
            {"party": "Supplier", "role": "SiteAgent", "permissions": ["read", "site_diary"]}]}],
        "users": users}})
    .to_string()
}

/// The shipped config, pointed at test servers, plus one `GET /sys/{permission}` route per
/// row of the user-type table.
fn config(upstream: &str, jwks: &str, grants: &Path) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contracts.yaml"),
    )
    .unwrap();
    let mut yaml = shipped
        .replace("addr: 0.0.0.0:8080", "addr: 127.0.0.1:0")
        .replace("addr: 127.0.0.1:9901", "addr: 127.0.0.1:0")
        .replace("https://idp.example/.well-known/jwks.json", jwks)
        .replace("issuer: https://idp.example", &format!("issuer: {ISSUER}"))
        .replace("audience: contracts", &format!("audience: {AUDIENCE}"))
        .replace(
            "    url:\n      url: https://grants.example/snapshot.json\n",
            &format!(
                "    file: {{path: {}, poll_interval: 50ms}}\n",
                grants.display()
            ),
        )
        .replace("http://127.0.0.1:3000", upstream);
    for (permission, _) in TABLE {
        yaml.push_str(&format!(
            "      - id: sys_{permission}\n        route: GET /sys/{permission}\n        allow: authenticated\n        access: {{system_permission: {permission}}}\n"
        ));
    }
    yaml
}

struct World {
    upstream: Upstream,
    _jwks: JwksServer,
    gw: Running,
    grants: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.json");
    std::fs::write(&grants, snapshot(1, &json!([]))).unwrap();
    // Contract lists answer every contract; streetgate cuts them to the caller's.
    let upstream = Upstream::with(std::sync::Arc::new(|seen: &Seen| {
        if seen.uri.starts_with("/api/contracts?") || seen.uri == "/api/contracts" {
            let rows = r#"{"rows": [{"contract_id": "K1"}, {"contract_id": "K2"}, {"contract_id": "K9"}, {"name": "no id"}]}"#;
            json_response(http::StatusCode::OK, rows)
        } else {
            json_response(http::StatusCode::OK, r#"{"ok":true}"#)
        }
    }))
    .await;
    let jwks = JwksServer::start().await;
    let gw = sidecar(&config(&upstream.url(), &jwks.url(), &grants)).await;
    World {
        upstream,
        _jwks: jwks,
        gw,
        grants,
        _dir: dir,
    }
}

fn user(sub: &str, company: &str) -> String {
    let now = now();
    token(
        &json!({"sub": sub, "company": company, "iss": ISSUER, "aud": AUDIENCE,
                  "iat": now, "exp": now + 300}),
    )
}

fn of_type(ty: &str) -> String {
    user(
        &format!("ut-{ty}"),
        if ty == "ViewOwn" {
            "SUPPLIERCO"
        } else {
            "CLIENTCO"
        },
    )
}

fn member(party: &str, role: &str) -> String {
    user(&format!("m-{party}-{role}"), "CLIENTCO")
}

fn request(method: &str, path: &str, token: &str, body: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "gw.test")
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    b.body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .unwrap()
}

/// Sends; for a rejection, checks that nothing reached the upstream. Returns (status, reason).
async fn call(
    w: &World,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String) {
    let before = w.upstream.count();
    let reply = send(w.gw.addr, request(method, path, token, body)).await;
    if reply.status.is_success() {
        assert_eq!(
            w.upstream.count(),
            before + 1,
            "{method} {path} not forwarded"
        );
        (reply.status.as_u16(), String::new())
    } else {
        assert_eq!(w.upstream.count(), before, "{method} {path} was forwarded");
        (reply.status.as_u16(), reply.reason())
    }
}

#[tokio::test]
async fn the_shipped_table_is_the_seeds_table() {
    let raw = streetgate::config::parse(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contracts.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let table = raw.contracts.unwrap().user_types;
    let names: Vec<&str> = table.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, TYPES);
    for (i, t) in table.iter().enumerate() {
        let mut expected: Vec<&str> = TABLE
            .iter()
            .filter(|(_, row)| holds(row, i))
            .map(|(p, _)| *p)
            .collect();
        let mut shipped: Vec<&str> = t.permissions.iter().map(String::as_str).collect();
        expected.sort_unstable();
        shipped.sort_unstable();
        assert_eq!(shipped, expected, "{}", t.name);
    }
}

#[tokio::test]
async fn every_row_of_the_user_type_table_over_sockets() {
    let w = world().await;
    for (permission, row) in TABLE {
        for (i, ty) in TYPES.iter().enumerate() {
            let got = call(
                &w,
                "GET",
                &format!("/api/sys/{permission}"),
                &of_type(ty),
                None,
            )
            .await;
            if holds(row, i) {
                assert_eq!(got.0, 200, "{ty} {permission}");
            } else {
                assert_eq!(
                    got,
                    (403, "system_permission_missing".into()),
                    "{ty} {permission}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_party_and_role_default() {
    let w = world().await;
    for party in PARTIES {
        for role in ROLES {
            let t = member(party, role);
            let expected: &[&str] = match role {
                "Manager" => &["read", "create", "communicate"],
                "Support" => &["read", "create"],
                _ => &["read"],
            };
            for (needs, method, path) in [
                ("read", "GET", "/api/contracts/K1"),
                ("create", "POST", "/api/contracts/K1/communications"),
                (
                    "communicate",
                    "POST",
                    "/api/contracts/K1/communications/c1/send",
                ),
                (
                    "communicate",
                    "POST",
                    "/api/contracts/K1/communications/c1/replies",
                ),
            ] {
                let got = call(&w, method, path, &t, None).await;
                if expected.contains(&needs) {
                    assert_eq!(got.0, 200, "{party} {role} {needs}");
                } else {
                    assert_eq!(
                        got,
                        (403, "contract_permission_missing".into()),
                        "{party} {role} {needs}"
                    );
                }
            }
            // Custom permissions are for templates: no role has them by default.
            let got = call(&w, "GET", "/api/contracts/K1/site-diary", &t, None).await;
            assert_eq!(
                got,
                (403, "contract_permission_missing".into()),
                "{party} {role}"
            );
        }
    }
}

#[tokio::test]
async fn a_contracts_template_replaces_the_defaults_of_one_party_and_role() {
    let w = world().await;
    let k2 = |path: &str| format!("/api/contracts/K2{path}");
    // Client Manager on K2 lost `communicate`; the Project Manager's Manager kept it.
    let got = call(
        &w,
        "POST",
        &k2("/communications/c/send"),
        &member("Client", "Manager"),
        None,
    )
    .await;
    assert_eq!(got, (403, "contract_permission_missing".into()));
    let got = call(
        &w,
        "POST",
        &k2("/communications/c/send"),
        &member("ProjectManager", "Manager"),
        None,
    )
    .await;
    assert_eq!(got.0, 200);
    // Custom permissions where the template gives them, and only there.
    let got = call(
        &w,
        "POST",
        &k2("/payments/p/approve"),
        &member("Client", "CostManager"),
        None,
    )
    .await;
    assert_eq!(got.0, 200);
    let got = call(
        &w,
        "POST",
        &k2("/payments/p/approve"),
        &member("Supplier", "CostManager"),
        None,
    )
    .await;
    assert_eq!(got, (403, "contract_permission_missing".into()));
    let got = call(
        &w,
        "GET",
        &k2("/site-diary"),
        &member("Supplier", "SiteAgent"),
        None,
    )
    .await;
    assert_eq!(got.0, 200);
    let got = call(
        &w,
        "GET",
        &k2("/site-diary"),
        &member("Client", "SiteAgent"),
        None,
    )
    .await;
    assert_eq!(got, (403, "contract_permission_missing".into()));
}

#[tokio::test]
async fn a_template_change_applies_at_once_to_everyone_assigned() {
    let w = world().await;
    let support = member("Supervisor", "Support");
    let send = "/api/contracts/K1/communications/c/send";
    assert_eq!(
        call(&w, "POST", send, &support, None).await.1,
        "contract_permission_missing"
    );
    let template = json!([{"party": "Supervisor", "role": "Support",
                           "permissions": ["read", "create", "communicate"]}]);
    std::fs::write(&w.grants, snapshot(2, &template)).unwrap();
    let changed = eventually(PATIENCE, || async {
        send_status(&w, send, &support).await == 200
    })
    .await;
    assert!(changed, "the template change was not applied");
}

async fn send_status(w: &World, path: &str, token: &str) -> u16 {
    send(w.gw.addr, request("POST", path, token, None))
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn user_types_read_without_membership_and_nothing_more() {
    let w = world().await;
    let cases = [
        // (user type, K1 north/SUPPLIERCO, K2 south/OTHERCO)
        ("SiteAdministrator", true, true),
        ("UserAdministrator", true, true),
        ("ViewAll", true, true),
        ("ViewAllHub", true, false),
        ("ViewOwn", true, false),
        ("GeneralUser", false, false),
    ];
    for (ty, k1, k2) in cases {
        for (contract, reads) in [("K1", k1), ("K2", k2)] {
            let got = call(
                &w,
                "GET",
                &format!("/api/contracts/{contract}/communications"),
                &of_type(ty),
                None,
            )
            .await;
            if reads {
                assert_eq!(got.0, 200, "{ty} {contract}");
            } else {
                assert_eq!(got, (403, "contract_not_member".into()), "{ty} {contract}");
            }
            // Reading is all a user type gives without membership.
            let got = call(
                &w,
                "POST",
                &format!("/api/contracts/{contract}/communications"),
                &of_type(ty),
                None,
            )
            .await;
            assert_eq!(got, (403, "contract_not_member".into()), "{ty} {contract}");
        }
    }
    let got = call(
        &w,
        "GET",
        "/api/contracts/NOPE",
        &of_type("SiteAdministrator"),
        None,
    )
    .await;
    assert_eq!(got, (403, "contract_unknown".into()));
}

#[tokio::test]
async fn no_user_type_is_assigned_above_the_callers() {
    let w = world().await;
    let create = |ty: &str| format!(r#"{{"email": "x@example.com", "user_type": "{ty}"}}"#);
    for (i, caller) in TYPES.iter().enumerate() {
        let admin = holds("SA SS SU CA UA", i);
        for (j, target) in TYPES.iter().enumerate() {
            let expected = if !admin {
                (403, "system_permission_missing".to_owned())
            } else if (*caller == "SuperUser" && *target != "GeneralUser") || j < i {
                (403, "user_type_not_assignable".to_owned())
            } else {
                (200, String::new())
            };
            let body = create(target);
            let got = call(
                &w,
                "POST",
                "/api/companies/CLIENTCO/users",
                &of_type(caller),
                Some(&body),
            )
            .await;
            assert_eq!(got, expected, "{caller} creating {target}");
            let got = call(&w, "PUT", "/api/users/u9", &of_type(caller), Some(&body)).await;
            assert_eq!(got, expected, "{caller} updating to {target}");
        }
    }
    let su = of_type("SuperUser");
    // Other fields of any user may change without changing the type.
    let got = call(
        &w,
        "PUT",
        "/api/users/site-admin-1",
        &su,
        Some(r#"{"phone": "0113"}"#),
    )
    .await;
    assert_eq!(got.0, 200);
    for bad in [
        r#"{"user_type": "Overlord"}"#,
        r#"{"user_type": 3}"#,
        r#"{"user_type": "GeneralUser", "user_type": "SiteAdministrator"}"#,
        r#"{"User_Type": "SiteAdministrator"}"#,
    ] {
        let got = call(&w, "PUT", "/api/users/u9", &su, Some(bad)).await;
        assert_eq!(got, (400, "bad_body".into()), "{bad}");
    }
}

#[tokio::test]
async fn identity_checks_of_the_contracts_model() {
    let w = world().await;
    // The token's company must be the user's company in the snapshot.
    let got = call(&w, "GET", "/api/me", &user("ut-ViewAll", "OTHERCO"), None).await;
    assert_eq!(got, (401, "token_revoked".into()));
    let got = call(&w, "GET", "/api/me", &user("ut-ViewAll", "CLIENTCO"), None).await;
    assert_eq!(got.0, 200);
    // A user the snapshot does not know has no user type and no contracts.
    let got = call(
        &w,
        "GET",
        "/api/contracts/K1",
        &user("stranger", "CLIENTCO"),
        None,
    )
    .await;
    assert_eq!(got, (403, "contract_not_member".into()));
    let got = call(&w, "GET", "/api/tags", &user("stranger", "CLIENTCO"), None).await;
    assert_eq!(got, (403, "system_permission_missing".into()));
    // Integrator agreements are Street Manager organisations'; none covers a contract.
    let now = now();
    let via = token(
        &json!({"sub": "ut-SiteAdministrator", "company": "CLIENTCO", "azp": "hub",
                            "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}),
    );
    let got = call(&w, "GET", "/api/contracts/K1", &via, None).await;
    assert_eq!(got, (403, "integrator_not_agreed".into()));
    let got = call(&w, "GET", "/api/contracts/K1", "not-a-token", None).await;
    assert_eq!(got.0, 401);
}

#[test]
fn rules_must_fit_the_model() {
    let base = |model: &str, extra: &str, route: &str| {
        format!(
            "model: {model}\nlisten: {{addr: 127.0.0.1:0}}\nadmin: {{addr: 127.0.0.1:0}}\nauth: {{hs256_secret: {{env: X}}, algorithms: [HS256], issuer: i, audience: a}}\ngrants: {{source: {{file: {{path: /g.json}}}}}}\n{extra}\napis:\n  - name: c\n    upstream: http://127.0.0.1:1\n    routes:\n{route}\n"
        )
    };
    let table = "contracts: {user_types: [{name: Admin, reads: all, permissions: [tags]}, {name: General}]}";
    let cases = [
        // Street Manager keys in a contracts config.
        (
            base(
                "contracts",
                table,
                "      - {id: a, route: \"GET /a\", allow: {roles: [Planner]}}",
            ),
            "routes[0].allow",
        ),
        (
            base(
                "contracts",
                table,
                "      - {id: a, route: \"GET /w/{w}\", allow: authenticated, access: {read_work: {path: w}}}",
            ),
            "routes[0].access",
        ),
        // Contracts rules in a Street Manager config.
        (
            base(
                "street_manager",
                "",
                "      - {id: a, route: \"GET /a\", allow: authenticated}",
            ),
            "routes[0].allow",
        ),
        (
            base(
                "street_manager",
                "",
                "      - {id: a, route: \"GET /a\", allow: {roles: [Admin]}, access: {system_permission: tags}}",
            ),
            "routes[0].access",
        ),
        (
            base(
                "street_manager",
                table,
                "      - {id: a, route: \"GET /a\", allow: public}",
            ),
            "contracts",
        ),
        (
            base(
                "contracts",
                "",
                "      - {id: a, route: \"GET /a\", allow: public}",
            ),
            "contracts",
        ),
        // Contracts rules that cannot work.
        (
            base(
                "contracts",
                table,
                "      - {id: a, route: \"GET /a\", allow: authenticated, access: {system_permission: tagz}}",
            ),
            "access.system_permission",
        ),
        (
            base(
                "contracts",
                table,
                "      - {id: a, route: \"GET /c/{c}\", allow: authenticated, access: {contract_permission: {path: c, needs: Read}}}",
            ),
            "needs",
        ),
        (
            base(
                "contracts",
                table,
                "      - {id: a, route: \"GET /c/{c}\", allow: authenticated, access: {contract_permission: {path: x, needs: read}}}",
            ),
            "routes[0].access",
        ),
        (
            base(
                "contracts",
                table,
                "      - {id: a, route: \"GET /c/{c}\", allow: authenticated, access: {contract_permission: {path: c, query: c, needs: read}}}",
            ),
            "contract_permission",
        ),
        (
            base(
                "contracts",
                table,
                "      - {id: a, route: \"GET /a\", allow: authenticated, user_type_field: /t}",
            ),
            "user_type_field",
        ),
        (
            base(
                "contracts",
                "contracts: {user_types: [{name: A}, {name: A}, {name: B, assigns: [A, Z]}]}",
                "      - {id: a, route: \"GET /a\", allow: public}",
            ),
            "contracts.user_types[1].name",
        ),
        (
            base(
                "contracts",
                "contracts: {user_types: [{name: A}, {name: B, assigns: [A]}]}",
                "      - {id: a, route: \"GET /a\", allow: public}",
            ),
            "contracts.user_types[1].assigns[0]",
        ),
    ];
    for (yaml, at) in cases {
        let problems = streetgate::config::Config::from_yaml(&yaml)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{yaml}"));
        assert!(
            problems.to_string().contains(at),
            "{at} not in {problems}\n{yaml}"
        );
    }
    assert!(streetgate::config::Config::from_yaml(&base("contracts", table, "      - {id: a, route: \"GET /a\", allow: authenticated, access: {system_permission: tags}}")).is_ok());
}

#[tokio::test]
async fn explain_prints_the_contracts_chain() {
    use streetgate::cli::explain::{Credentials, ExplainRequest, explain};
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.json");
    std::fs::write(&grants, snapshot(1, &json!([]))).unwrap();
    let config = dir.path().join("contracts.yaml");
    std::fs::write(
        &config,
        self::config("http://127.0.0.1:9", "http://127.0.0.1:9/jwks", &grants),
    )
    .unwrap();
    let request = |sub: &str, method: &str, path: &str, body: Option<&str>| ExplainRequest {
        config: config.clone(),
        snapshot: Some(grants.display().to_string()),
        caller: Credentials::Claims(format!(r#"{{"sub": "{sub}", "company": "CLIENTCO"}}"#)),
        method: method.into(),
        path: path.into(),
        swa_code: None,
        body: body.map(str::to_owned),
    };
    let progress = streetgate::cli::progress::Progress::quiet();
    let e = explain(
        &request(
            "m-Client-Manager",
            "POST",
            "/api/contracts/K2/communications/c/send",
            None,
        ),
        &progress,
    )
    .await
    .unwrap();
    let text = e.lines.join("\n");
    assert!(!e.allowed, "{text}");
    for line in [
        "user type: GeneralUser",
        "contract: hub south, supplier OTHERCO",
        "party and role: Client Manager (permissions from the contract's template)",
        "denied: contract_permission_missing (403)",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    let e = explain(
        &request("ut-ViewAllHub", "GET", "/api/contracts/K1", None),
        &progress,
    )
    .await
    .unwrap();
    let text = e.lines.join("\n");
    assert!(e.allowed, "{text}");
    assert!(
        text.contains("read without membership: contracts of the user's hubs"),
        "{text}"
    );
    assert!(text.contains("allowed: user_type_read"), "{text}");
    let e = explain(
        &request(
            "ut-SuperUser",
            "POST",
            "/api/companies/C/users",
            Some(r#"{"user_type": "ViewAll"}"#),
        ),
        &progress,
    )
    .await
    .unwrap();
    let text = e.lines.join("\n");
    assert!(text.contains("assigns user type: ViewAll"), "{text}");
    assert!(
        text.contains("denied: user_type_not_assignable (403)"),
        "{text}"
    );
}

#[tokio::test]
async fn contract_lists_are_filtered_to_readable_contracts() {
    let w = world().await;
    let template = json!([{"party": "Client", "role": "ReadOnly", "permissions": []}]);
    std::fs::write(&w.grants, snapshot(2, &template)).unwrap();
    let applied = eventually(PATIENCE, || async {
        let t = member("Client", "ReadOnly");
        send(w.gw.addr, request("GET", "/api/contracts/K1", &t, None))
            .await
            .status
            == 403
    })
    .await;
    assert!(applied);
    let cases: [(String, &[&str]); 8] = [
        // K9 is in no snapshot, so no one reads it; a row without an id is dropped too.
        (of_type("SiteAdministrator"), &["K1", "K2"]),
        (of_type("ViewAll"), &["K1", "K2"]),
        (of_type("ViewAllHub"), &["K1"]),
        (of_type("ViewOwn"), &["K1"]),
        (of_type("GeneralUser"), &[]),
        (member("Client", "Manager"), &["K1", "K2"]),
        // K1's template took `read` from Client Read Only: only K2 is left.
        (member("Client", "ReadOnly"), &["K2"]),
        (user("stranger", "CLIENTCO"), &[]),
    ];
    for (t, expected) in cases {
        let reply = send(w.gw.addr, request("GET", "/api/contracts", &t, None)).await;
        assert_eq!(reply.status, 200);
        let ids: Vec<String> = reply.json()["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["contract_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, expected);
    }
}

#[test]
fn the_docs_contracts_reference_is_a_valid_config() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/contracts.md"))
            .unwrap();
    let start = doc.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &doc[start..start + doc[start..].find("```").unwrap()];
    if let Err(problems) = streetgate::config::Config::from_yaml(yaml) {
        // The key file it names only exists in a real deployment.
        assert!(
            problems.iter().all(|p| p.location == "auth.jwks.file"),
            "{problems}"
        );
    }
}
