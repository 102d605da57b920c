//! CI runs exactly the test command the README gives, so what a developer runs is what CI
//! checks (including the promtool test, ignored by a plain `cargo test`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure with its location"
)]

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = read("README.md");
    let section = readme
        .split("## Run the tests")
        .nth(1)
        .expect("README has a 'Run the tests' section");
    let command = section
        .split("```sh\n")
        .nth(1)
        .and_then(|block| block.lines().next())
        .expect("a sh block with the command");
    assert!(command.starts_with("cargo test"), "{command}");
    assert!(
        command.contains("--include-ignored"),
        "the ignored promtool test must run: {command}"
    );
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run does not run `{command}`:\n{ci}"
    );
}
