//! The binary's edge: parse the command line, set up logging, run a command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    },
    /// Work with route definitions.
    Routes {
        #[command(subcommand)]
        command: RoutesCommand,
    },
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
    let _flush = match init_logging() {
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
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Serve { config } => {
            let config = Config::load(&config).map_err(describe)?;
            runtime()?.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { port } => {
            runtime()?.block_on(streetgate::demo::run(port))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Routes {
            command: RoutesCommand::ImportOpenapi { spec, prefix },
        } => {
            let text = std::fs::read_to_string(&spec)
                .with_context(|| format!("cannot read {}", spec.display()))?;
            let stubs = streetgate::openapi::import(&text, &prefix)
                .with_context(|| format!("cannot import {}", spec.display()))?;
            print!("{stubs}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            println!(
                "{}: ok ({} routes)",
                file.display(),
                config.router.routes().len()
            );
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(problems)) => {
            eprintln!("{}: {} problem(s)", file.display(), problems.len());
            for p in problems.iter() {
                eprintln!("  {}: {}", p.location, p.message);
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn describe(e: ConfigError) -> anyhow::Error {
    match e {
        ConfigError::Invalid(problems) => anyhow::anyhow!("invalid config:\n{problems}"),
        other => anyhow::Error::new(other),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let running = streetgate::app::start(config, Metrics::new())
        .await
        .context("starting")?;
    wait_for_stop().await;
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown().await;
    Ok(())
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

/// JSON lines on stdout, written in batches (see `telemetry::log_buffer`).
fn init_logging() -> std::io::Result<FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = LogBuffer::start()?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(writer)
        .init();
    Ok(guard)
}
