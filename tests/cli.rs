//! The binary's commands, run as a user would run them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failure with its location"
)]

use std::process::Command;

fn streetgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_streetgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn manifest(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    let (code, out, err) = streetgate(&["check-config", &manifest("config/streetmanager.yaml")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (111 routes)"), "{out}");
}

#[test]
fn check_config_reports_every_problem_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"
listen: {addr: 127.0.0.1:8080}
auth: {jwks: {url: {url: "https://idp.test/jwks"}}, issuer: i, audience: a, algorithms: [RS256, none]}
apis:
  - name: work
    prefix: work
    upstream: ftp://nowhere
    routes:
      - id: A
        route: GET /works/{wrn}
        allow: {roles: [Planner, Wizard]}
      - id: A
        route: FETCH /x
        allow: public
      - id: B
        route: PUT /works/{wrn}
        allow: public
        access: {read_work: {path: other}}
"#,
    )
    .unwrap();
    let (code, _, err) = streetgate(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "auth.algorithms[1]",
        "apis[0].prefix",
        "apis[0].upstream",
        "apis[0].routes[0].allow.roles[1]: unknown role \"Wizard\"",
        "apis[0].routes[1].id: route id \"A\" is used twice",
        "apis[0].routes[2].access: path parameter {other} is not in the template",
        "apis[0].routes[2].access: needs a `grants` section",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn check_config_locates_syntax_errors_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.yaml");
    std::fs::write(&path, "listen: {addr: 127.0.0.1:8080, max_headerz: 5}\n").unwrap();
    let (code, _, err) = streetgate(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("line 1") && err.contains("max_headerz"),
        "{err}"
    );

    let (code, _, err) = streetgate(&["check-config", "/nonexistent/streetgate.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/streetgate.yaml"), "{err}");
}

#[test]
fn import_openapi_prints_routes_that_load() {
    let spec = manifest("tests/fixtures/streetmanager/lookup-swagger.json");
    let (code, out, err) = streetgate(&["routes", "import-openapi", &spec, "--prefix", "/lookup"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("route: GET /"), "{out}");
    let (code, _, err) = streetgate(&["routes", "import-openapi", "/nonexistent.json"]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent.json"), "{err}");
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["check-config", "--help"],
        vec!["demo", "--help"],
        vec!["routes", "import-openapi", "--help"],
    ] {
        let (code, out, _) = streetgate(&args);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
    let (code, _, err) = streetgate(&["serve"]);
    assert_eq!(code, 2, "missing --config is a usage error");
    assert!(err.contains("--config"), "{err}");
}

#[test]
fn the_readme_config_reference_is_a_valid_config() {
    let readme = std::fs::read_to_string(manifest("docs/configuration.md")).unwrap();
    let section = &readme[readme.find("## Configuration reference").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("```").unwrap()];
    match streetgate::config::Config::from_yaml(yaml) {
        Ok(_) => {}
        // The TLS and token files it names only exist in a real deployment.
        Err(problems) => assert!(
            problems
                .iter()
                .all(|p| p.location.starts_with("listen.tls.")
                    || p.location == "grants.accept_token_file"),
            "{problems}"
        ),
    }
}
