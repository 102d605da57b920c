//! The body-field audit: every request-body property of every operation in the six Street
//! Manager specs that names an organisation, a workstream or a work must be checked by its
//! route's rule or marked `body_fields_unchecked` (with the reason) in the shipped config.
//! The list is regenerated from the specs on every run, so a new spec version cannot add such
//! a field silently; a marked field the spec no longer has fails too, so the list stays true.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use http::Method;
use serde_json::Value;
use streetgate::config::{self, Config};

const FIXTURES: &str = "tests/fixtures/streetmanager";
const APIS: [(&str, &str); 6] = [
    ("work-swagger.json", "/work"),
    ("reporting-swagger.json", "/reporting"),
    ("export-swagger.json", "/export"),
    ("party-swagger.json", "/party"),
    ("geojson-swagger.json", "/geojson"),
    ("lookup-swagger.json", "/lookup"),
];
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Whether a property name names an organisation, a workstream or a work (or another record
/// reference that could be mistaken for one: those are listed too, and marked with why not).
fn names_a_party_or_work(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with("swa_code")
        || n.ends_with("swa_codes")
        || n == "swacode"
        || n.contains("workstream_prefix")
        || n.ends_with("organisation_reference")
        || n.ends_with("organisation_references")
        || n.ends_with("reference_number")
        || n.ends_with("reference_numbers")
}

/// One operation's request-body fields of interest, as JSON pointers (`*`: any array element).
struct BodyFields {
    method: Method,
    template: String,
    operation_id: String,
    fields: BTreeSet<String>,
}

fn audit_list() -> Vec<BodyFields> {
    let mut out = Vec::new();
    for (file, prefix) in APIS {
        let text = std::fs::read_to_string(Path::new(FIXTURES).join(file)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let schemas = &doc["components"]["schemas"];
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let mut fields = BTreeSet::new();
                let contents = op["requestBody"]["content"].as_object();
                for media in contents.into_iter().flat_map(|c| c.values()) {
                    walk(schemas, &media["schema"], "", &mut Vec::new(), &mut fields);
                }
                if fields.is_empty() {
                    continue;
                }
                out.push(BodyFields {
                    method: method.to_uppercase().parse().unwrap(),
                    template: format!("{prefix}{path}"),
                    operation_id: op["operationId"].as_str().unwrap().to_owned(),
                    fields,
                });
            }
        }
    }
    out
}

/// Walks a schema: `$ref`s (each at most once per branch, schemas may be recursive),
/// `allOf`/`oneOf`/`anyOf`, object properties and array items.
fn walk<'s>(
    schemas: &'s Value,
    schema: &'s Value,
    pointer: &str,
    refs: &mut Vec<&'s str>,
    out: &mut BTreeSet<String>,
) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        if refs.contains(&name) {
            return;
        }
        refs.push(name);
        let target = &schemas[name];
        assert!(!target.is_null(), "unresolved $ref {reference}");
        walk(schemas, target, pointer, refs, out);
        refs.pop();
        return;
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        for part in schema[combinator].as_array().into_iter().flatten() {
            walk(schemas, part, pointer, refs, out);
        }
    }
    if schema.get("items").is_some() {
        walk(
            schemas,
            &schema["items"],
            &format!("{pointer}/*"),
            refs,
            out,
        );
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let at = format!("{pointer}/{name}");
        if names_a_party_or_work(name) {
            out.insert(at.clone());
        }
        walk(schemas, property, &at, refs, out);
    }
}

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

#[test]
fn every_body_field_naming_an_organisation_workstream_or_work_is_checked_or_marked() {
    let text = std::fs::read_to_string("config/streetmanager.yaml").unwrap();
    let compiled = Config::from_yaml(&text).unwrap_or_else(|p| panic!("{p}"));
    let raw = config::parse(&text).unwrap();
    let unchecked: HashMap<&str, &BTreeMap<String, String>> = raw
        .apis
        .iter()
        .flat_map(|a| &a.routes)
        .map(|r| (r.id.as_str(), &r.body_fields_unchecked))
        .collect();

    let mut failures = Vec::new();
    let mut audited = 0;
    let mut marked_routes = BTreeSet::new();
    for op in audit_list() {
        let path = sample_path(&op.template);
        let route = compiled
            .router
            .lookup(&op.method, &path)
            .unwrap_or_else(|| panic!("{} {} matches no route", op.method, op.template))
            .route;
        let checked: BTreeSet<&str> = route.rule.body_fields().collect();
        let marked = unchecked[&*route.id];
        marked_routes.insert(route.id.to_string());
        for field in &op.fields {
            audited += 1;
            if !checked.contains(field.as_str()) && !marked.contains_key(field) {
                failures.push(format!(
                    "{} {} ({}): body field {field} is neither checked by route {} nor in its \
                     body_fields_unchecked",
                    op.method, op.template, op.operation_id, route.id
                ));
            }
        }
        for field in marked.keys() {
            if !op.fields.contains(field) {
                failures.push(format!(
                    "route {}: body_fields_unchecked names {field}, which {} does not have",
                    route.id, op.operation_id
                ));
            }
        }
    }
    // A route marking fields whose operation has none of interest at all.
    for (id, marked) in &unchecked {
        if !marked.is_empty() && !marked_routes.contains(*id) {
            failures.push(format!(
                "route {id}: body_fields_unchecked lists fields its operation does not have"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // The v3.6 specs hold 48 such fields; fewer means the walk missed some.
    assert!(audited >= 48, "only {audited} fields audited");
}

#[test]
fn the_audit_finds_the_fields_that_decide_today() {
    let list = audit_list();
    let fields = |method: &str, template: &str| -> Vec<String> {
        list.iter()
            .find(|o| o.method.as_str() == method && o.template == template)
            .map(|o| o.fields.iter().cloned().collect())
            .unwrap_or_default()
    };
    for create in [
        "/work/works",
        "/work/forward-plans",
        "/work/non-notifiable-works/sites",
    ] {
        let found = fields("POST", create);
        for f in [
            "/promoter_swa_code",
            "/highway_authority_swa_code",
            "/workstream_prefix",
        ] {
            assert!(found.iter().any(|x| x == f), "{create}: {f} in {found:?}");
        }
    }
    assert!(
        fields("POST", "/work/works/{workReferenceNumber}/permits")
            .contains(&"/workstream_prefix".to_owned())
    );
    assert!(fields("POST", "/export/permits/csv").contains(&"/swa_code".to_owned()));
}

#[test]
fn the_walk_resolves_refs_nested_objects_and_arrays() {
    let schemas = serde_json::json!({
        "Outer": {"properties": {
            "site": {"$ref": "#/components/schemas/Site"},
            "items": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/Site"}]}},
            "self": {"$ref": "#/components/schemas/Outer"}
        }},
        "Site": {"properties": {"promoter_swa_code": {"type": "string"}, "other": {}}}
    });
    let root = serde_json::json!({"$ref": "#/components/schemas/Outer"});
    let mut out = BTreeSet::new();
    walk(&schemas, &root, "", &mut Vec::new(), &mut out);
    let got: Vec<&str> = out.iter().map(String::as_str).collect();
    assert_eq!(
        got,
        ["/items/*/promoter_swa_code", "/site/promoter_swa_code"],
        "recursion through Outer stops after one visit"
    );
}

#[test]
fn body_keys_are_validated_with_their_locations() {
    let routes = r#"
      - id: Create
        route: POST /works
        allow: {roles: [Planner]}
        access: {create_in_workstream: {body: /workstream_prefix}}
        body_organisation: [promoter_swa_code]
        body_workstreams: [/workstream_prefix]
        body_fields_unchecked:
          /workstream_prefix: checked after all
          /project_reference_number: "  "
          nope: a reason
      - id: Open
        route: POST /open
        allow: public
        body_authority: [/highway_authority_swa_code]
"#;
    let yaml = format!(
        r#"
listen:
  addr: 127.0.0.1:0
  max_body_bytes: 1000
  body_read_timeout: 0s
  max_buffered_body_bytes_per_connection: 999
auth: {{hs256_secret: {{env: X}}, algorithms: [HS256], issuer: i, audience: a}}
grants: {{source: {{file: {{path: /g.json}}}}}}
apis:
  - name: work
    upstream: http://127.0.0.1:1
    routes:
{routes}
"#
    );
    let problems = Config::from_yaml(&yaml).unwrap_err().to_string();
    for expected in [
        "listen.body_read_timeout",
        "listen.max_buffered_body_bytes_per_connection",
        "apis[0].routes[0].body_organisation[0]",
        "apis[0].routes[0].body_fields_unchecked./workstream_prefix",
        "apis[0].routes[0].body_fields_unchecked./project_reference_number",
        "apis[0].routes[0].body_fields_unchecked.nope",
        "apis[0].routes[1].body_authority",
    ] {
        assert!(
            problems.contains(expected),
            "{expected} not in:\n{problems}"
        );
    }
}
