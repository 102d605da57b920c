//! Typed config: parse the file (`raw`), validate everything in one pass reporting each problem
//! with its location (`validate`), and hand out one compiled `Config` that is swapped whole.
//!
//! Each component owns its section's types and checks (`authn::config`, `listener::config`,
//! `grants::config`, `filter::config`, `route::config`, `ratelimit`, `telemetry::otel`, and
//! `config::check` for check mode); this module only assembles them. A section that needs
//! compiling (names parsed, files read, rules built) has a `Raw*` form and a compiled form made
//! once through `TryFrom` (`AuthConfig`, `ResponsePolicy`, `RateLimits`) or `route::compile`;
//! a section serde already types completely is used as parsed (`ListenConfig`, `GrantsConfig`)
//! after its `check`.

pub mod check;
mod model;
pub mod raw;
mod validate;

use std::path::{Path, PathBuf};

pub use crate::problems::{Problem, Problems};
use raw::{AdminConfig, DecisionLogConfig, RuntimeConfig, ShutdownConfig};

use crate::grants::config::GrantsConfig;
use crate::listener::config::ListenConfig;
use crate::route::Router;

/// A validated config. Everything the request path needs is precomputed here.
#[derive(Debug)]
pub struct Config {
    /// The file it came from (None for embedded configs).
    pub source: Option<PathBuf>,
    pub listen: ListenConfig,
    pub admin: AdminConfig,
    pub auth: crate::authn::AuthConfig,
    pub grants: Option<GrantsConfig>,
    pub decision_log: DecisionLogConfig,
    pub shadow: bool,
    pub rate_limit: Option<crate::ratelimit::RateLimits>,
    pub shutdown: ShutdownConfig,
    pub runtime: RuntimeConfig,
    pub check: Option<check::CheckConfig>,
    pub otel: Option<crate::telemetry::otel::RawOtel>,
    pub watch: bool,
    pub apis: Vec<crate::forward::Api>,
    pub router: Router,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Problems),
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_yaml(&text).map_err(ConfigError::Invalid)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parses and validates config text (YAML; JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Config, Problems> {
        let raw = parse(text)?;
        validate::validate(raw)
    }
}

/// Parses without validating; a syntax or type error is reported with its line and path.
pub fn parse(text: &str) -> Result<raw::RawConfig, Problems> {
    from_yaml_str(text)
}

/// Deserializes any part of the config schema from YAML. Enums are written as single-key maps
/// (`jwks: {url: {...}}`), not YAML `!tags`.
pub fn from_yaml_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Problems> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_norway::Deserializer::from_str(text);
    let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
    serde_norway::with::singleton_map_recursive::deserialize(tracked).map_err(|e| {
        let mut problems = Problems::default();
        let path = track.path().to_string();
        let location = match e.location() {
            Some(l) if path != "." => format!("{path} (line {} column {})", l.line(), l.column()),
            Some(l) => format!("line {} column {}", l.line(), l.column()),
            None => path,
        };
        problems.push(location, e.to_string());
        problems
    })
}
