//! The config file as written by operators: plain serde types, no invariants yet.
//! `config::validate` turns a `RawConfig` into a compiled `Config`, reporting every problem
//! with its location in one pass.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::grants::config::GrantsConfig;
use crate::listener::config::ListenConfig;
use crate::ratelimit::RawRateLimit;
use crate::route::config::RawRoute;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The domain model the rules speak: Street Manager workstreams (default) or contract
    /// parties and roles (`contracts`, with the `contracts` section below).
    #[serde(default)]
    pub model: crate::model::Model,
    /// The user-type table of the contracts model.
    #[serde(default)]
    pub contracts: Option<crate::contracts::user_types::RawContracts>,
    pub listen: ListenConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    pub auth: crate::authn::RawAuth,
    /// Optional until the grants model lands in a deployment: without it, rules that need
    /// grants (anything but `public` and role-only rules) are config errors.
    #[serde(default)]
    pub grants: Option<GrantsConfig>,
    #[serde(default)]
    pub decision_log: DecisionLogConfig,
    /// Global shadow mode: decisions are made, logged and counted, but denials are forwarded.
    #[serde(default)]
    pub shadow: bool,
    #[serde(default)]
    pub rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The decision API (ext_authz / forward-auth); off when absent.
    #[serde(default)]
    pub check: Option<super::check::CheckConfig>,
    /// OpenTelemetry traces (OTLP/HTTP); off when absent.
    #[serde(default)]
    pub otel: Option<crate::telemetry::otel::RawOtel>,
    /// Watch the config file and reload on change (SIGHUP always reloads).
    #[serde(default)]
    pub watch: bool,
    pub apis: Vec<RawApi>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "defaults::admin_addr")]
    pub addr: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            addr: defaults::admin_addr(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// Fraction of allowed decisions logged (denials are always logged).
    #[serde(default = "defaults::allow_sample_rate")]
    pub allow_sample_rate: f64,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            allow_sample_rate: defaults::allow_sample_rate(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    #[serde(default = "defaults::drain", with = "humantime_serde")]
    pub drain: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain: defaults::drain(),
        }
    }
}

/// How the data path is threaded (start-up only).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads serving the main listener, each with its own runtime, listener and
    /// upstream connections. Default: the CPUs this process may use (cgroup quota and
    /// affinity included); the `STREETGATE_WORKERS` environment variable overrides it.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Which server reads HTTP/1 requests: `hyper` (default) or `native`, streetgate's own
    /// loop for plain requests (no body), hyper for the rest. `STREETGATE_HTTP1` overrides it.
    #[serde(default)]
    pub http1: crate::listener::native::Http1Server,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub name: String,
    /// Path prefix the API is served under (e.g. `/work`); stripped before matching routes and
    /// kept when forwarding unless `strip_prefix` is set.
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub strip_prefix: bool,
    pub upstream: String,
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "defaults::request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest wait for the next bytes of an upstream response body.
    #[serde(default = "defaults::body_timeout", with = "humantime_serde")]
    pub body_timeout: Duration,
    pub routes: Vec<RawRoute>,
}

pub mod defaults {
    use super::*;

    pub fn admin_addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9901))
    }

    pub fn allow_sample_rate() -> f64 {
        1.0
    }
    pub fn drain() -> Duration {
        Duration::from_secs(20)
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(2)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn body_timeout() -> Duration {
        Duration::from_secs(30)
    }
}
