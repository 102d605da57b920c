//! `streetgate routes import-openapi`: route stubs from an OpenAPI 3 document, so an operator can
//! bring a new API in minutes. One stub per operation: method and template, an id from the
//! `operationId`, and the roles its `security` block names (the scopes of its requirements,
//! any-of); an empty `security` is public. Access rules are the operator's to add.
//!
//! The output is a YAML sequence to paste under an API's `routes:` in the config.

use std::collections::HashSet;
use std::fmt::Write;

use serde_norway::{Mapping, Value};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("not a JSON or YAML document")]
    Parse(#[source] serde_norway::Error),
    #[error("not an OpenAPI 3 document (openapi: {0:?})")]
    NotOpenApi3(String),
    #[error("the document has no `paths` object")]
    NoPaths,
    #[error("{method} {path}: {problem}")]
    Operation {
        method: String,
        path: String,
        problem: String,
    },
    #[error("prefix {0:?} must be empty or an absolute path like /work")]
    Prefix(String),
    #[error("route id {0:?} is used by two operations")]
    DuplicateId(String),
}

/// Why `routes import-openapi` failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("cannot import {}: {error}", path.display())]
    Import {
        path: std::path::PathBuf,
        error: OpenApiError,
    },
}

/// The `routes import-openapi` command: prints the route stubs of the spec at `path`.
pub fn run(path: &std::path::Path, prefix: &str) -> Result<(), ImportError> {
    let text = std::fs::read_to_string(path).map_err(|error| ImportError::Read {
        path: path.to_owned(),
        error,
    })?;
    let label = format!("importing {} ({} kB)", path.display(), text.len() / 1000);
    let stubs = super::progress::Progress::stderr()
        .run(&label, || import(&text, prefix))
        .map_err(|error| ImportError::Import {
            path: path.to_owned(),
            error,
        })?;
    print!("{stubs}");
    Ok(())
}

/// Route stubs (YAML) for every operation of `spec` (JSON or YAML text), with ids qualified by
/// `prefix` (`/party` + `GetUser` → `party.GetUser`) so ids stay unique across APIs.
pub fn import(spec: &str, prefix: &str) -> Result<String, OpenApiError> {
    let doc: Value = serde_norway::from_str(spec).map_err(OpenApiError::Parse)?;
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with("3.") {
        return Err(OpenApiError::NotOpenApi3(version.to_owned()));
    }
    let namespace = namespace(prefix)?;
    let paths = doc
        .get("paths")
        .and_then(Value::as_mapping)
        .ok_or(OpenApiError::NoPaths)?;
    let root_security = doc.get("security");

    let mut out = String::new();
    let title = doc
        .get("info")
        .and_then(|i| i.get("title"))
        .and_then(Value::as_str)
        .unwrap_or("untitled");
    let _ = writeln!(
        out,
        "# {} operations of {title:?}; paste under an API with prefix {prefix:?}.",
        count(paths)
    );
    let mut ids = HashSet::new();
    for (path, item) in paths {
        let path = path.as_str().unwrap_or("");
        let Some(item) = item.as_mapping() else {
            continue;
        };
        // Document order, skipping the path item's other members (parameters, summary, ...).
        for (method, op) in item {
            let Some(method) = method.as_str().filter(|m| METHODS.contains(m)) else {
                continue;
            };
            let problem = |problem: &str| OpenApiError::Operation {
                method: method.to_uppercase(),
                path: path.to_owned(),
                problem: problem.to_owned(),
            };
            if !path.starts_with('/') {
                return Err(problem("the path must start with /"));
            }
            let op = op.as_mapping().ok_or_else(|| problem("not an object"))?;
            let local_id = match op.get("operationId").and_then(Value::as_str) {
                Some(id) => sanitize(id),
                None => sanitize(&format!("{method}{}", path.replace('/', "."))),
            };
            let id = match &namespace {
                Some(ns) => format!("{ns}.{local_id}"),
                None => local_id,
            };
            if !ids.insert(id.clone()) {
                return Err(OpenApiError::DuplicateId(id));
            }
            let security = op.get("security").or(root_security);
            let allow = allow(security).map_err(|p| problem(&p))?;
            let _ = write!(
                out,
                "- id: {}\n  route: {}\n  allow: {allow}\n",
                scalar(&id),
                scalar(&format!("{} {path}", method.to_uppercase())),
            );
        }
    }
    Ok(out)
}

fn count(paths: &Mapping) -> usize {
    paths
        .values()
        .filter_map(Value::as_mapping)
        .map(|item| METHODS.iter().filter(|m| item.contains_key(**m)).count())
        .sum()
}

/// `/party` → `party`, `/v1/work` → `v1.work`, `` → no namespace.
fn namespace(prefix: &str) -> Result<Option<String>, OpenApiError> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    let segments: Vec<&str> = match trimmed.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => return Err(OpenApiError::Prefix(prefix.to_owned())),
    };
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains(['{', '}', '%', '\\']))
    {
        return Err(OpenApiError::Prefix(prefix.to_owned()));
    }
    Ok(Some(sanitize(&segments.join("."))))
}

/// The `allow` value: roles are the union of the scopes of every requirement (a requirement is
/// an alternative, so any-of). An absent or empty `security`, or an empty requirement `{}`
/// (anonymous allowed), is public.
fn allow(security: Option<&Value>) -> Result<String, String> {
    let requirements = match security {
        None | Some(Value::Null) => return Ok("public".to_owned()),
        Some(Value::Sequence(reqs)) => reqs,
        Some(_) => return Err("`security` is not a list".to_owned()),
    };
    let mut roles: Vec<&str> = Vec::new();
    let mut unscoped = false;
    for requirement in requirements {
        let schemes = requirement
            .as_mapping()
            .ok_or("a security requirement is not an object")?;
        if schemes.is_empty() {
            return Ok("public".to_owned());
        }
        for scopes in schemes.values() {
            let scopes = scopes
                .as_sequence()
                .ok_or("security scopes are not a list")?;
            unscoped |= scopes.is_empty();
            for scope in scopes {
                let scope = scope.as_str().ok_or("a security scope is not a string")?;
                if !roles.contains(&scope) {
                    roles.push(scope);
                }
            }
        }
    }
    if requirements.is_empty() {
        return Ok("public".to_owned());
    }
    if roles.is_empty() || unscoped {
        // A scheme without scopes admits any authenticated caller: say so rather than guess.
        return Err("a security requirement names no roles; list the roles by hand".to_owned());
    }
    let list: Vec<String> = roles.iter().map(|r| flow_scalar(r)).collect();
    Ok(format!("{{roles: [{}]}}", list.join(", ")))
}

/// Route ids are `[A-Za-z0-9_.-]`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A YAML scalar for block context (ids, routes): plain when unambiguous, else JSON-quoted (a
/// JSON string is a valid YAML double-quoted scalar). Braces are fine after the first character.
fn scalar(text: &str) -> String {
    quote_unless(text, |c| {
        c.is_ascii_alphanumeric() || " _.-/{}~".contains(c)
    })
}

/// A YAML scalar inside a flow sequence (roles), where braces, brackets and commas are syntax.
fn flow_scalar(text: &str) -> String {
    quote_unless(text, |c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn quote_unless(text: &str, safe: impl Fn(char) -> bool) -> String {
    let plain = text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/')
        && !text.ends_with(' ')
        && text.chars().all(safe)
        && text.parse::<f64>().is_err()
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        text.to_owned()
    } else {
        serde_json::Value::String(text.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::config::{RawAllow, RawRoute};

    #[test]
    fn stubs_for_a_small_document() {
        let spec = r#"{"openapi": "3.0.0", "info": {"title": "Pets"},
            "security": [{"token": ["Planner"]}],
            "paths": {
              "/pets/{id}": {
                "get": {"operationId": "GetPet"},
                "put": {"operationId": "PutPet", "security": [{"token": ["Admin"]}, {"other": ["Planner", "Admin"]}]},
                "parameters": []
              },
              "/login": {"post": {"security": []}}
            }}"#;
        let out = import(spec, "/pets/").unwrap();
        let want = "\
- id: pets.GetPet\n  route: GET /pets/{id}\n  allow: {roles: [Planner]}\n\
- id: pets.PutPet\n  route: PUT /pets/{id}\n  allow: {roles: [Admin, Planner]}\n\
- id: pets.post.login\n  route: POST /login\n  allow: public\n";
        assert!(out.ends_with(want), "{out}");
        assert!(out.starts_with("# 3 operations of \"Pets\""));
    }

    #[test]
    fn yaml_documents_and_awkward_names() {
        let spec = "openapi: 3.1.0\npaths:\n  /a b:\n    get:\n      operationId: 'x#y'\n      security: [{k: ['Odd: role']}]\n";
        let out = import(spec, "").unwrap();
        assert!(
            out.contains("- id: x_y\n  route: GET /a b\n  allow: {roles: [\"Odd: role\"]}\n"),
            "{out}"
        );
        let routes: Vec<RawRoute> = crate::config::from_yaml_str(&out).unwrap();
        assert_eq!(routes[0].allow, RawAllow::Roles(vec!["Odd: role".into()]));
        assert_eq!(routes[0].route, "GET /a b");
    }

    #[test]
    fn precise_errors() {
        assert!(matches!(import("{", "/x"), Err(OpenApiError::Parse(_))));
        assert!(matches!(
            import(r#"{"swagger": "2.0", "paths": {}}"#, "/x"),
            Err(OpenApiError::NotOpenApi3(v)) if v.is_empty()
        ));
        assert!(matches!(
            import(r#"{"openapi": "3.0.0"}"#, ""),
            Err(OpenApiError::NoPaths)
        ));
        assert!(matches!(
            import(r#"{"openapi": "3.0.0", "paths": {}}"#, "work"),
            Err(OpenApiError::Prefix(_))
        ));
        let dup = r#"{"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": "A"}}, "/b": {"get": {"operationId": "A"}}}}"#;
        assert!(matches!(import(dup, "/x"), Err(OpenApiError::DuplicateId(id)) if id == "x.A"));
        let unscoped =
            r#"{"openapi": "3.0.0", "paths": {"/a": {"get": {"security": [{"token": []}]}}}}"#;
        let err = import(unscoped, "/x").unwrap_err().to_string();
        assert!(
            err.starts_with("GET /a: a security requirement names no roles"),
            "{err}"
        );
    }
}
