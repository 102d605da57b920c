use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

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

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Routes {
            command: RoutesCommand::ImportOpenapi { spec, prefix },
        } => {
            let text = std::fs::read_to_string(&spec)
                .with_context(|| format!("cannot read {}", spec.display()))?;
            let stubs = streetgate::openapi::import(&text, &prefix)
                .with_context(|| format!("cannot import {}", spec.display()))?;
            print!("{stubs}");
        }
    }
    Ok(())
}
