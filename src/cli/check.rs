//! `check-config` and `check-snapshot`: validate a file (or a snapshot URL) and print either a
//! one-line summary or every problem with its location. Exit 0 when valid, 1 when not.

use std::path::Path;
use std::process::ExitCode;

use super::explain::{self, SnapshotLoadError};
use super::progress::Progress;
use crate::config::{Config, ConfigError};
use crate::grants::snapshot::SnapshotError;

pub fn check_config(file: &Path) -> ExitCode {
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

/// An invalid snapshot is exit 1 with its problems; one that could not be read at all is the
/// error returned.
pub async fn check_snapshot(source: &str) -> Result<ExitCode, SnapshotLoadError> {
    match explain::load_snapshot(source, &Progress::stderr()).await {
        Ok(snapshot) => {
            println!(
                "{source}: ok (version {}, {} works, {} users)",
                snapshot.version,
                snapshot.work_count(),
                snapshot.user_count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(SnapshotLoadError::Invalid {
            source: SnapshotError::Invalid(problems),
            ..
        }) => {
            eprintln!("{source}: {} problem(s)", problems.len());
            for p in problems.iter() {
                eprintln!("  {}: {}", p.location, p.message);
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e @ SnapshotLoadError::Invalid { .. }) => {
            eprintln!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e),
    }
}
