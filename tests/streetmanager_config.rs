//! The shipped Street Manager config against the six real specs: every operation is matched by
//! exactly one route (through the real router, with sample values in its path parameters), with
//! the roles of its `security` block; and the OpenAPI importer covers every operation too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

use std::collections::HashSet;
use std::path::Path;

use http::Method;
use serde_json::Value;
use streetgate::authn::identity::{Role, RoleSet};
use streetgate::authz::rule::{Access, Allow};
use streetgate::config::Config;

const FIXTURES: &str = "tests/fixtures/streetmanager";
const APIS: [(&str, &str); 6] = [
    ("work-swagger.json", "/work"),
    ("reporting-swagger.json", "/reporting"),
    ("export-swagger.json", "/export"),
    ("party-swagger.json", "/party"),
    ("geojson-swagger.json", "/geojson"),
    ("lookup-swagger.json", "/lookup"),
];
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

struct Operation {
    method: Method,
    /// Prefixed template as written in the spec.
    template: String,
    operation_id: String,
    /// None: empty or absent `security` (public).
    roles: Option<RoleSet>,
}

fn spec(file: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(file)).unwrap()
}

fn operations() -> Vec<Operation> {
    let mut ops = Vec::new();
    for (file, prefix) in APIS {
        let doc: Value = serde_json::from_str(&spec(file)).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let names: Vec<&str> = op["security"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|req| req.as_object().unwrap().values())
                    .flat_map(|scopes| scopes.as_array().unwrap())
                    .map(|r| r.as_str().unwrap())
                    .collect();
                let roles = (!names.is_empty()).then(|| {
                    RoleSet::of(
                        &names
                            .iter()
                            .map(|n| Role::parse(n).unwrap())
                            .collect::<Vec<_>>(),
                    )
                });
                ops.push(Operation {
                    method: method.to_uppercase().parse().unwrap(),
                    template: format!("{prefix}{path}"),
                    operation_id: op["operationId"].as_str().unwrap().to_owned(),
                    roles,
                });
            }
        }
    }
    ops
}

/// The template with every `{param}` replaced by a sample value.
fn sample_path(template: &str) -> String {
    template
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "SAMPLE01"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn shipped() -> Config {
    let text = std::fs::read_to_string("config/streetmanager.yaml").unwrap();
    Config::from_yaml(&text).unwrap_or_else(|p| panic!("config/streetmanager.yaml:\n{p}"))
}

#[test]
fn the_specs_hold_111_operations_as_operations_csv_lists() {
    let ops = operations();
    assert_eq!(ops.len(), 111);
    let csv = std::fs::read_to_string(Path::new(FIXTURES).join("operations.csv")).unwrap();
    let mut listed = HashSet::new();
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        listed.insert((cols[1].to_owned(), cols[2].to_owned(), cols[3].to_owned()));
    }
    assert_eq!(listed.len(), 111);
    for op in &ops {
        let path = op.template.splitn(3, '/').nth(2).unwrap();
        let key = (
            op.method.to_string(),
            format!("/{path}"),
            op.operation_id.clone(),
        );
        assert!(listed.contains(&key), "{key:?} not in operations.csv");
    }
}

#[test]
fn every_operation_is_matched_by_exactly_one_route_with_its_roles() {
    let config = shipped();
    assert_eq!(config.router.routes().len(), 111, "one route per operation");
    let mut matched = HashSet::new();
    for op in operations() {
        let path = sample_path(&op.template);
        let m = config.router.lookup(&op.method, &path).unwrap_or_else(|| {
            panic!(
                "{} {} ({}) matches no route",
                op.method, path, op.operation_id
            )
        });
        let route = m.route;
        let api = &config.apis[route.api];
        assert_eq!(
            format!("{}{}", api.prefix, route.template),
            op.template,
            "{}",
            op.operation_id
        );
        assert!(
            route.id.ends_with(&format!(".{}", op.operation_id)),
            "{} ≠ {}",
            route.id,
            op.operation_id
        );
        assert!(
            matched.insert(route.id.clone()),
            "{} matched twice",
            route.id
        );
        match (&route.rule.allow, op.roles) {
            (Allow::Public, None) => {}
            (Allow::Roles(have), Some(want)) => assert_eq!(*have, want, "{}", route.id),
            (have, want) => panic!("{}: allow {have:?}, spec roles {want:?}", route.id),
        }
    }
    assert_eq!(matched.len(), 111);
}

#[test]
fn access_rules_follow_the_model() {
    let config = shipped();
    let mut seen = HashSet::new();
    for route in config.router.routes() {
        let api = config.apis[route.api].name.as_str();
        let works_path = route.template.starts_with("/works/{workReferenceNumber}");
        let access = &route.rule.access;
        match access {
            Access::ReadWork(_) => {
                assert!(works_path && route.method == Method::GET, "{}", route.id)
            }
            Access::WriteWork(_) => {
                assert!(works_path && route.method != Method::GET, "{}", route.id);
                assert!(route.rule.organisation_member, "{}", route.id);
            }
            Access::MapView => assert_eq!(route.method, Method::GET, "{}", route.id),
            Access::CreateInWorkstream(_) => assert_eq!(route.method, Method::POST, "{}", route.id),
            Access::OwnOrganisation(_) => assert_eq!(api, "party", "{}", route.id),
            Access::Filtered => {
                assert!(matches!(api, "reporting" | "export"), "{}", route.id);
                assert!(
                    route.response.as_ref().is_some_and(|r| r.filters_rows()),
                    "{}",
                    route.id
                );
            }
            Access::RoleOnly => assert!(!works_path, "{} is under a work but role-only", route.id),
            Access::ContractPermission { .. }
            | Access::SystemPermission { .. }
            | Access::ReadableContracts { .. } => {
                panic!("{} is a contracts rule", route.id)
            }
        }
        if matches!(api, "geojson" | "lookup") {
            assert_eq!(*access, Access::RoleOnly, "{}", route.id);
        }
        seen.insert(std::mem::discriminant(access));
    }
    assert_eq!(seen.len(), 7, "every kind of access rule is used");
    let by_id = |id: &str| {
        config
            .router
            .routes()
            .iter()
            .find(|r| &*r.id == id)
            .unwrap()
    };
    assert_eq!(by_id("work.GetPermit").rule.access, Access::MapView);
    assert_eq!(by_id("work.GetActivity").rule.access, Access::MapView);
    assert_eq!(by_id("work.GetForwardPlan").rule.access, Access::MapView);
    assert!(matches!(
        by_id("work.CreateWork").rule.access,
        Access::CreateInWorkstream(_)
    ));
    assert!(by_id("work.CreateWork").creates_work.is_some());
    assert!(matches!(
        by_id("work.CreateForwardPlan").rule.access,
        Access::CreateInWorkstream(_)
    ));
    assert!(matches!(
        by_id("work.GetWork").rule.access,
        Access::ReadWork(_)
    ));
    assert!(matches!(
        by_id("party.UpdateWorkstream").rule.access,
        Access::OwnOrganisation(_)
    ));
    assert_eq!(by_id("work.Authenticate").rule.allow, Allow::Public);
    assert_eq!(by_id("party.Logout").rule.allow, Allow::Public);
}

#[test]
fn importer_output_parses_and_covers_every_operation() {
    let ops = operations();
    let mut yaml = String::from(
        "listen: {addr: 127.0.0.1:0}\nauth: {jwks: {url: {url: \"https://idp.test/jwks\"}}, issuer: i, audience: a}\napis:\n",
    );
    for (i, (file, prefix)) in APIS.iter().enumerate() {
        let stubs = streetgate::cli::openapi::import(&spec(file), prefix).unwrap();
        yaml.push_str(&format!(
            "  - name: api{i}\n    prefix: {prefix}\n    upstream: http://127.0.0.1:{}\n    routes:\n",
            9000 + i
        ));
        for line in stubs.lines() {
            yaml.push_str("      ");
            yaml.push_str(line);
            yaml.push('\n');
        }
    }
    let config = Config::from_yaml(&yaml).unwrap_or_else(|p| panic!("{p}\n{yaml}"));
    assert_eq!(config.router.routes().len(), ops.len());
    // The shipped config's stubs are exactly the importer's (only access rules were added).
    let stub = |config: &Config, r: &streetgate::route::Route| {
        let prefix = config.apis[r.api].prefix.clone();
        (
            r.id.to_string(),
            r.method.clone(),
            format!("{prefix}{}", r.template),
            r.rule.allow.clone(),
        )
    };
    let shipped = shipped();
    let mut imported: Vec<_> = config
        .router
        .routes()
        .iter()
        .map(|r| stub(&config, r))
        .collect();
    let mut ours: Vec<_> = shipped
        .router
        .routes()
        .iter()
        .map(|r| stub(&shipped, r))
        .collect();
    imported.sort_by(|a, b| a.0.cmp(&b.0));
    ours.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(imported, ours);
    for op in ops {
        let path = sample_path(&op.template);
        let m = config.router.lookup(&op.method, &path).unwrap();
        assert!(m.route.id.ends_with(&op.operation_id));
        match (&m.route.rule.allow, op.roles) {
            (Allow::Public, None) => {}
            (Allow::Roles(have), Some(want)) => assert_eq!(*have, want),
            (have, want) => panic!("{}: {have:?} vs {want:?}", op.operation_id),
        }
    }
}
