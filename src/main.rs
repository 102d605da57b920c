//! The binary's edge: parse the command line, set up logging, run a command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use streetgate::config::{Config, ConfigError};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
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
    let mut signals = Signals::new().context("installing signal handlers")?;
    while signals.next().await == Signal::Reload {
        // Logged and counted inside; a rejected config leaves the old one in force.
        let _ = running.reload().await;
    }
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown().await;
    tracing::info!("stopped");
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .init();
}
