//! `streetgate demo`: the sidecar on an embedded config, in front of a built-in sample works API,
//! with freshly generated keys, printing ready-to-paste curl commands.

mod contracts;
mod keys;
mod sample_api;

use std::path::PathBuf;
use std::time::Duration;

use crate::app::{self, Running, StartError};
use crate::config::{Config, Problems};
use crate::proxy::unix_now;
use crate::telemetry::metrics::Metrics;
use keys::DemoKeys;

const CONFIG: &str = include_str!("../../../config/demo.yaml");
const GRANTS: &str = include_str!("../../../config/demo-grants.json");

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("could not generate demo keys")]
    Keys,
    #[error("could not sign a demo token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("could not write demo files in {dir}")]
    Files {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start the sample works API")]
    SampleApi(#[source] std::io::Error),
    #[error("the embedded demo config is invalid:\n{0}")]
    Config(Problems),
    #[error("could not start streetgate (is port {port} or {} free? try --port)", port + 1)]
    Bind {
        port: u16,
        #[source]
        source: StartError,
    },
    /// Anything else (the environment, the keys): the port is not the question.
    #[error("could not start streetgate")]
    Start(#[source] StartError),
    #[error("streetgate did not become ready: {0}")]
    NotReady(String),
}

/// A running demo: the sidecar, and the tokens the printed commands use.
pub struct Demo {
    pub running: Running,
    /// (shell variable, who, token)
    pub tokens: Vec<(&'static str, &'static str, String)>,
    /// The requests printed, each with the answer it gets.
    pub steps: &'static [Step],
    dir: PathBuf,
}

/// Which domain model the demo shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Street Manager workstreams (seed 000).
    #[default]
    StreetManager,
    /// Contract user types, parties and roles (seed 003).
    Contracts,
}

/// Starts the Street Manager demo on `port` (admin on `port + 1`; 0 picks free ports).
pub async fn start(port: u16) -> Result<Demo, DemoError> {
    start_scenario(port, Scenario::StreetManager).await
}

/// Starts a scenario's demo on `port` (admin on `port + 1`; 0 picks free ports, for tests).
pub async fn start_scenario(port: u16, scenario: Scenario) -> Result<Demo, DemoError> {
    let keys = DemoKeys::generate()?;
    // One directory per demo, so demos started by one process never share key files.
    static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("streetgate-demo-{}-{n}", std::process::id()));
    let write = |name: &str, text: &str| -> Result<PathBuf, DemoError> {
        let path = dir.join(name);
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&path, text))
            .map_err(|source| DemoError::Files {
                dir: dir.clone(),
                source,
            })?;
        Ok(path)
    };
    let jwks = write("jwks.json", keys.jwks())?;
    let admin_port = if port == 0 { 0 } else { port.saturating_add(1) };
    if scenario == Scenario::Contracts {
        let grants = write("grants.json", contracts::GRANTS)?;
        let upstream = sample_api::start_contracts()
            .await
            .map_err(DemoError::SampleApi)?;
        let yaml = contracts::config(
            port,
            admin_port,
            &jwks.display().to_string(),
            &grants.display().to_string(),
            &format!("http://{upstream}"),
        );
        let running = launch(&yaml, port).await?;
        return Ok(Demo {
            running,
            tokens: contracts::tokens(&keys, unix_now())?,
            steps: contracts::STEPS,
            dir,
        });
    }
    let grants = write("grants.json", GRANTS)?;
    let upstream = sample_api::start().await.map_err(DemoError::SampleApi)?;
    let yaml = CONFIG
        .replace("{{PORT}}", &port.to_string())
        .replace("{{ADMIN_PORT}}", &admin_port.to_string())
        .replace("{{JWKS_FILE}}", &jwks.display().to_string())
        .replace("{{GRANTS_FILE}}", &grants.display().to_string())
        .replace("{{UPSTREAM}}", &format!("http://{upstream}"));
    let running = launch(&yaml, port).await?;
    let now = unix_now();
    let tokens = vec![
        (
            "A",
            "User A: Planner at Northern Water (7001), full-write on 001 and 002",
            keys.token("user-a", "7001", &["Planner", "UI"], now)?,
        ),
        (
            "B",
            "User B: Planner at 7001, read-only on 001-003",
            keys.token("user-b", "7001", &["Planner", "UI"], now)?,
        ),
        (
            "DIG",
            "Dig Ltd (C901): Contractor with a contract from 7001, read-only on 7001/001",
            keys.token("dig-1", "C901", &["Contractor", "API"], now)?,
        ),
        (
            "HA",
            "Leeds City Council (4020): HighwayAuthority",
            keys.token("ha-1", "4020", &["HighwayAuthority", "UI"], now)?,
        ),
    ];
    Ok(Demo {
        running,
        tokens,
        steps: STEPS,
        dir,
    })
}

/// Starts the sidecar on a demo config and waits until it is ready.
async fn launch(yaml: &str, port: u16) -> Result<Running, DemoError> {
    let config = Config::from_yaml(yaml).map_err(DemoError::Config)?;
    let running = app::start(config, Metrics::new())
        .await
        .map_err(|source| match source {
            StartError::Bind(_) => DemoError::Bind { port, source },
            source => DemoError::Start(source),
        })?;
    for _ in 0..100 {
        if running.gateway.not_ready().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = running.gateway.not_ready();
    if !missing.is_empty() {
        return Err(DemoError::NotReady(missing.join(", ")));
    }
    Ok(running)
}

impl Demo {
    /// The commands a newcomer pastes, each with what it shows.
    pub fn instructions(&self) -> String {
        let base = format!("http://{}", self.running.addr);
        let mut out = String::new();
        out.push_str(&format!(
            "streetgate demo: sidecar on {base}, admin on http://{} (/healthz /readyz /metrics)\n\n",
            self.running.admin_addr
        ));
        out.push_str("# Tokens (valid 12 h), signed with a key generated for this run:\n");
        for (var, who, token) in &self.tokens {
            out.push_str(&format!("# {who}\nexport {var}='{token}'\n"));
        }
        out.push('\n');
        for step in self.steps {
            out.push_str(&format!("# {}\n{}\n\n", step.what, step.curl(&base)));
        }
        out.push_str("Every decision is logged as a JSON line on stdout. Ctrl-C stops the demo.\n");
        out
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One demo request: what it shows, and what it should answer. The printed curl commands and
/// the demo's test are both made from these.
pub struct Step {
    pub what: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    /// Shell variable holding the token (`A`, `B`, `DIG`, `HA`).
    pub token: Option<&'static str>,
    pub body: Option<&'static str>,
    pub expect: u16,
}

impl Step {
    pub fn curl(&self, base: &str) -> String {
        let mut cmd = String::from("curl -s -w ' -> %{http_code}\\n'");
        if self.method != "GET" {
            cmd.push_str(&format!(" -X {}", self.method));
        }
        if let Some(var) = self.token {
            cmd.push_str(&format!(" -H \"token: ${var}\""));
        }
        if let Some(body) = self.body {
            cmd.push_str(&format!(" -H 'content-type: application/json' -d '{body}'"));
        }
        cmd.push_str(&format!(" '{base}{}'", self.path));
        cmd
    }
}

pub const STEPS: &[Step] = &[
    Step {
        what: "ALLOWED: User A reads a work in workstream 001",
        method: "GET",
        path: "/work/works/NW001000001",
        token: Some("A"),
        body: None,
        expect: 200,
    },
    Step {
        what: "DENIED 403 workstream_no_access: User A has only map view of workstream 003",
        method: "GET",
        path: "/work/works/NW003000003",
        token: Some("A"),
        body: None,
        expect: 403,
    },
    Step {
        what: "ALLOWED: ...but may open a permit of that work from the map",
        method: "GET",
        path: "/work/works/NW003000003/permits/NW003000003-01",
        token: Some("A"),
        body: None,
        expect: 200,
    },
    Step {
        what: "DENIED 403 workstream_read_only: User B may only view workstream 001",
        method: "PUT",
        path: "/work/works/NW001000001/cancel",
        token: Some("B"),
        body: None,
        expect: 403,
    },
    Step {
        what: "ALLOWED 201: User A creates a work in workstream 002...",
        method: "POST",
        path: "/work/works",
        token: Some("A"),
        body: Some(r#"{"workstream_prefix":"002","highway_authority_swa_code":"4020"}"#),
        expect: 201,
    },
    Step {
        what: "ALLOWED: ...and can read it at once, before the next grants snapshot",
        method: "GET",
        path: "/work/works/NW002999999",
        token: Some("A"),
        body: None,
        expect: 200,
    },
    Step {
        what: "DENIED 400 default_workstream: works are never created in workstream 000",
        method: "POST",
        path: "/work/works",
        token: Some("A"),
        body: Some(r#"{"workstream_prefix":"000","highway_authority_swa_code":"4020"}"#),
        expect: 400,
    },
    Step {
        what: "ALLOWED: the contractor acts for Northern Water with swaCode",
        method: "GET",
        path: "/work/works/NW001000001?swaCode=7001",
        token: Some("DIG"),
        body: None,
        expect: 200,
    },
    Step {
        what: "DENIED 403: without swaCode a contractor acts for nobody",
        method: "GET",
        path: "/work/works/NW001000001",
        token: Some("DIG"),
        body: None,
        expect: 403,
    },
    Step {
        what: "ALLOWED: the highway authority reads any work",
        method: "GET",
        path: "/work/works/NW004000004",
        token: Some("HA"),
        body: None,
        expect: 200,
    },
    Step {
        what: "DENIED 401 token_missing: no token",
        method: "GET",
        path: "/work/works/NW001000001",
        token: None,
        body: None,
        expect: 401,
    },
    Step {
        what: "DENIED 400 bad_path: an encoded dot segment",
        method: "GET",
        path: "/work/works/%2e%2e/NW001000001",
        token: Some("A"),
        body: None,
        expect: 400,
    },
];

/// `streetgate demo`: start, print, wait for Ctrl-C or SIGTERM, stop.
pub async fn run(port: u16, scenario: Scenario) -> Result<(), DemoError> {
    let demo = start_scenario(port, scenario).await?;
    println!("{}", demo.instructions());
    let _ = tokio::signal::ctrl_c().await;
    demo.shutdown().await;
    Ok(())
}
