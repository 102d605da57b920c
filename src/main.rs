//! The binary's edge: parse the command line, set up logging, run a command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use streetgate::cli::check;
use streetgate::cli::explain::{self, Credentials, ExplainRequest};
use streetgate::config::{Config, ConfigError};
use streetgate::telemetry::log_buffer::{FlushGuard, LogBuffer};
use streetgate::telemetry::metrics::Metrics;

#[derive(Parser)]
#[command(
    name = "streetgate",
    version,
    about = "Authorization sidecar for street-works APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar with a config file.
    Serve {
        /// Path to the YAML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file; prints every problem with its location, exits 1 if any.
    CheckConfig {
        /// Path to the YAML config.
        file: PathBuf,
    },
    /// Run a self-contained demo: the sidecar in front of a sample works API, with generated
    /// keys, printing ready-to-paste curl commands.
    Demo {
        /// Port for the sidecar (the admin port is this + 1).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Which domain model to show.
        #[arg(long, value_enum, default_value_t = streetgate::cli::demo::Scenario::StreetManager)]
        scenario: streetgate::cli::demo::Scenario,
    },
    /// Decide one request offline and print the chain of reasons. Exit status: 0 allow,
    /// 1 deny, 2 usage or config error.
    Explain(ExplainArgs),
    /// Validate a grants snapshot (file or URL); prints its version and size, or every
    /// problem. Exit status 0 when valid, 1 when not.
    CheckSnapshot {
        /// Path or http(s) URL of the grants document.
        source: String,
    },
    /// Serve grants snapshots dropped into a directory to a fleet of sidecars: ETags,
    /// gzip/zstd, deltas, long-poll, immutable per-version URLs (docs/publish.md).
    Publish(streetgate::publish::PublishArgs),
    /// Work with route definitions.
    Routes {
        #[command(subcommand)]
        command: RoutesCommand,
    },
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// Path to the YAML config.
    #[arg(long, short)]
    config: PathBuf,
    /// Grants snapshot: a file path or an http(s) URL.
    #[arg(long)]
    snapshot: Option<String>,
    /// The caller's JWT, verified with the config's keys (JWKS file or URL, HS256 secret).
    #[arg(long, conflicts_with = "claims")]
    token: Option<String>,
    /// Read --token without verifying signature, expiry, issuer or audience.
    #[arg(long, requires = "token")]
    insecure_decode: bool,
    /// The caller's claims as a JSON object (not verified).
    #[arg(long)]
    claims: Option<String>,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request path with optional query, as the client sends it (e.g. /work/works/X).
    #[arg(long)]
    path: String,
    /// The swaCode query parameter (appended to the path's query).
    #[arg(long)]
    swa_code: Option<String>,
    /// JSON request body, for rules that read a field of it.
    #[arg(long)]
    body: Option<String>,
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Print route stubs (method, template, id, roles) for every operation of an OpenAPI 3
    /// document (JSON or YAML), to paste under an API's `routes:`.
    ImportOpenapi {
        /// The OpenAPI document.
        spec: PathBuf,
        /// The API's path prefix in the config (e.g. /work); qualifies the route ids.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Dropped last: flushes the log lines still buffered.
    let _flush = match init_logging(&cli.command) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: cannot start the log writer: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { file } => Ok(check::check_config(&file)),
        Command::Serve { config } => {
            let config = Config::load(&config).map_err(describe)?;
            runtime()?.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { port, scenario } => {
            runtime()?.block_on(streetgate::cli::demo::run(port, scenario))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain(args) => runtime()?.block_on(explain(args)),
        Command::Publish(args) => {
            runtime()?.block_on(publish(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckSnapshot { source } => {
            Ok(runtime()?.block_on(check::check_snapshot(&source))?)
        }
        Command::Routes {
            command: RoutesCommand::ImportOpenapi { spec, prefix },
        } => {
            streetgate::cli::openapi::run(&spec, &prefix)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let caller = match (args.token, args.claims) {
        (Some(token), _) => Credentials::Token {
            token,
            insecure_decode: args.insecure_decode,
        },
        (None, Some(claims)) => Credentials::Claims(claims),
        (None, None) => Credentials::Anonymous,
    };
    let request = ExplainRequest {
        config: args.config,
        snapshot: args.snapshot,
        caller,
        method: args.method,
        path: args.path,
        swa_code: args.swa_code,
        body: args.body,
    };
    Ok(explain::run(&request).await?)
}

fn describe(e: ConfigError) -> anyhow::Error {
    match e {
        ConfigError::Invalid(problems) => anyhow::anyhow!("invalid config:\n{problems}"),
        other => anyhow::Error::new(other),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Before starting: a SIGHUP or SIGTERM that arrives once we listen must find our handler,
    // not the default action (which terminates the process).
    let mut signals = Signals::new().context("installing signal handlers")?;
    let running = streetgate::app::start(config, Metrics::new())
        .await
        .context("starting")?;
    while signals.next().await == Signal::Reload {
        // Logged and counted inside; a rejected config leaves the old one in force.
        let _ = running.reload().await;
    }
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn publish(args: streetgate::publish::PublishArgs) -> anyhow::Result<()> {
    let mut signals = Signals::new().context("installing signal handlers")?;
    let running = streetgate::publish::start(args).await?;
    // SIGHUP has nothing to reload: the directory is watched.
    while signals.next().await == Signal::Reload {}
    running.shutdown().await;
    Ok(())
}

#[derive(PartialEq, Eq)]
enum Signal {
    /// SIGHUP: reload the config file.
    Reload,
    /// SIGTERM (Kubernetes) or Ctrl-C.
    Stop,
}

struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => Signal::Stop,
                _ = self.hup.recv() => Signal::Reload,
                _ = tokio::signal::ctrl_c() => Signal::Stop,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

/// The sidecar logs JSON to stdout, written in batches (see `telemetry::log_buffer`); one-shot
/// tools keep stdout for their answer and log only warnings, to stderr.
fn init_logging(command: &Command) -> std::io::Result<Option<FlushGuard>> {
    let tool = matches!(
        command,
        Command::Explain(_) | Command::CheckSnapshot { .. } | Command::Routes { .. }
    );
    let default = if tool { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt().json().with_env_filter(filter);
    if tool {
        fmt.with_writer(std::io::stderr).init();
        return Ok(None);
    }
    let (writer, guard) = LogBuffer::start()?;
    streetgate::telemetry::decision_log::install(writer.clone());
    fmt.with_writer(writer).init();
    Ok(Some(guard))
}
