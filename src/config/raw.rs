//! The config file as written by operators: plain serde types, no invariants yet.
//! `config::validate` turns a `RawConfig` into a compiled `Config`, reporting every problem
//! with its location in one pass.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::filter::config::RawResponsePolicy;
use crate::grants::config::RawGrants;
use crate::listener::config::RawListen;
use crate::ratelimit::RawRateLimit;
use crate::route::RawCreatesWork;

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
    pub listen: RawListen,
    #[serde(default)]
    pub admin: RawAdmin,
    pub auth: crate::authn::RawAuth,
    /// Optional until the grants model lands in a deployment: without it, rules that need
    /// grants (anything but `public` and role-only rules) are config errors.
    #[serde(default)]
    pub grants: Option<RawGrants>,
    #[serde(default)]
    pub decision_log: RawDecisionLog,
    /// Global shadow mode: decisions are made, logged and counted, but denials are forwarded.
    #[serde(default)]
    pub shadow: bool,
    #[serde(default)]
    pub rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    pub shutdown: RawShutdown,
    #[serde(default)]
    pub runtime: RawRuntime,
    /// The decision API (ext_authz / forward-auth); off when absent.
    #[serde(default)]
    pub check: Option<super::check::RawCheck>,
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
pub struct RawAdmin {
    #[serde(default = "defaults::admin_addr")]
    pub addr: SocketAddr,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            addr: defaults::admin_addr(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecisionLog {
    /// Fraction of allowed decisions logged (denials are always logged).
    #[serde(default = "defaults::allow_sample_rate")]
    pub allow_sample_rate: f64,
}

impl Default for RawDecisionLog {
    fn default() -> Self {
        Self {
            allow_sample_rate: defaults::allow_sample_rate(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    #[serde(default = "defaults::drain", with = "humantime_serde")]
    pub drain: Duration,
}

impl Default for RawShutdown {
    fn default() -> Self {
        Self {
            drain: defaults::drain(),
        }
    }
}

/// How the data path is threaded (start-up only).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    /// Worker threads serving the main listener, each with its own runtime, listener and
    /// upstream connections. Default: the CPUs this process may use (cgroup quota and
    /// affinity included); the `STREETGATE_WORKERS` environment variable overrides it.
    #[serde(default)]
    pub workers: Option<usize>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub id: String,
    /// `METHOD /path/{param}`.
    pub route: String,
    /// Who may call it: `public`, or any-of roles.
    pub allow: RawAllow,
    /// What the route acts on and what access that needs (grants model).
    #[serde(default)]
    pub access: Option<RawAccess>,
    /// The caller's acting organisation must be the work's promoter or highway authority.
    #[serde(default)]
    pub organisation_member: bool,
    /// After a 2xx answer, remember the created work (POST /works).
    #[serde(default)]
    pub creates_work: Option<RawCreatesWork>,
    #[serde(default)]
    pub response: Option<RawResponsePolicy>,
    #[serde(default)]
    pub shadow: bool,
    /// Check mode (ext_authz, forward-auth) may allow this response-policy route although it
    /// cannot filter the response; without it the route answers `filter_requires_proxy` there.
    #[serde(default)]
    pub unfiltered_in_check_mode: bool,
    /// Body fields (JSON pointers) that must name the acting organisation.
    #[serde(default)]
    pub body_organisation: Vec<String>,
    /// Body fields that must name the acting organisation when it acts as a highway authority.
    #[serde(default)]
    pub body_authority: Vec<String>,
    /// Body fields naming a workstream the request moves work into: full-write needed there.
    #[serde(default)]
    pub body_workstreams: Vec<String>,
    /// Body fields naming an organisation, workstream or work that decide nothing here, each
    /// with the reason (`{field: reason}`); the body-field audit test reads them.
    #[serde(default)]
    pub body_fields_unchecked: std::collections::BTreeMap<String, String>,
    /// Contracts model, with `system_permission`: the body field naming the user type being
    /// assigned, which may not be more privileged than the caller's own.
    #[serde(default)]
    pub user_type_field: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawAllow {
    Public,
    Roles(Vec<String>),
    /// Any verified token (contracts model: user types, parties and roles decide the rest).
    Authenticated,
}

/// Where a route's resource comes from, and the access the caller needs on it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawAccess {
    /// Read a work record (or something under it): read-only or full-write on the work's
    /// workstream; highway authorities read everything.
    ReadWork(RawValueSource),
    /// Write to a work record: full-write on its workstream; highway authorities only on works
    /// whose highway authority is their own organisation.
    WriteWork(RawValueSource),
    /// Permit, activity or forward-plan details reached from the map: no workstream access
    /// needed (seed 000 "view only from map").
    MapView,
    /// Create a work or forward plan in the workstream named by the request: full-write on it;
    /// "000" is a 400.
    CreateInWorkstream(RawValueSource),
    /// Party API administration: the organisation named must be the caller's own.
    OwnOrganisation(RawValueSource),
    /// Rows are filtered by the response policy; the route itself needs only the role.
    Filtered,
    /// Contracts model: the permission the caller's party and role need on the contract.
    ContractPermission(RawContractPermission),
    /// Contracts model: a system permission of the caller's user type.
    SystemPermission(String),
    /// Contracts model: a contract list, its rows filtered to the contracts the caller reads.
    ReadableContracts,
}

/// `{path: contractId, needs: read}`: exactly one of path, query or body names the contract.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawContractPermission {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    /// `read`, `create`, `communicate` or a custom permission of the contract templates.
    pub needs: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawValueSource {
    /// A path parameter of the route template.
    Path(String),
    /// A query parameter (must appear exactly once).
    Query(String),
    /// A field of the JSON request body, as a JSON pointer (`/workstream_prefix`).
    Body(String),
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
