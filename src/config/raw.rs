//! The config file as written by operators: plain serde types, no invariants yet.
//! `config::validate` turns a `RawConfig` into a compiled `Config`, reporting every problem
//! with its location in one pass.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The domain model the rules speak: Street Manager workstreams (default) or contract
    /// parties and roles (`contracts`, with the `contracts` section below).
    #[serde(default)]
    pub model: Model,
    /// The user-type table of the contracts model.
    #[serde(default)]
    pub contracts: Option<crate::contracts::user_types::RawContracts>,
    pub listen: RawListen,
    #[serde(default)]
    pub admin: RawAdmin,
    pub auth: RawAuth,
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
    pub check: Option<crate::check::RawCheck>,
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
pub struct RawListen {
    pub addr: SocketAddr,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "defaults::max_headers")]
    pub max_headers: usize,
    /// Largest request body accepted from a client (Content-Length or streamed).
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: u64,
    #[serde(default = "defaults::header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    #[serde(default = "defaults::idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Time allowed to receive a body a rule reads; past it 408 `body_timeout`.
    #[serde(default = "defaults::body_read_timeout", with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Bytes of bodies one connection may hold buffered at once (all its HTTP/2 streams
    /// together); default 4 × `max_body_bytes`.
    #[serde(default)]
    pub max_buffered_body_bytes_per_connection: Option<u64>,
    /// Peers (CIDRs) that are proxies themselves: only their `X-Forwarded-For`/`-Proto` are
    /// kept and appended to; everyone else's are replaced.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl RawListen {
    pub fn buffered_body_budget(&self) -> u64 {
        self.max_buffered_body_bytes_per_connection
            .unwrap_or(self.max_body_bytes.saturating_mul(4))
    }

    /// Whether a TCP peer is one of `trusted_proxies`.
    pub fn trusted(&self, peer: std::net::IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let peer = match peer {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: PathBuf,
    pub key: PathBuf,
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

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    #[default]
    StreetManager,
    Contracts,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Where the token is read from, in order. Default: the `token` header, then
    /// `Authorization: Bearer`.
    #[serde(default = "defaults::token_sources")]
    pub token_sources: Vec<RawTokenSource>,
    #[serde(default)]
    pub jwks: Option<RawJwks>,
    /// Shared secret for HS256. Only allowed when no JWKS is configured, so symmetric and
    /// public keys are never mixed.
    #[serde(default)]
    pub hs256_secret: Option<RawSecret>,
    #[serde(default = "defaults::algorithms")]
    pub algorithms: Vec<String>,
    pub issuer: String,
    pub audience: String,
    #[serde(default = "defaults::leeway", with = "humantime_serde")]
    pub leeway: Duration,
    #[serde(default)]
    pub claims: RawClaimNames,
    #[serde(default = "defaults::token_cache_entries")]
    pub token_cache_entries: usize,
    /// Tokens longer than this are rejected before any parsing.
    #[serde(default = "defaults::max_token_bytes")]
    pub max_token_bytes: usize,
    /// Copied from the top-level `model` by validation: it decides which claims a token must
    /// carry (Street Manager roles and a SWA code, or a subject and company).
    #[serde(skip)]
    pub model: Model,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawTokenSource {
    /// A header whose whole value is the token.
    Header(String),
    /// `Authorization: Bearer <token>`.
    Bearer,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawJwks {
    File(PathBuf),
    Url {
        url: String,
        #[serde(default = "defaults::jwks_refresh", with = "humantime_serde")]
        refresh_interval: Duration,
        /// Lower bound between two fetches triggered by unknown `kid`s.
        #[serde(default = "defaults::jwks_min_refresh", with = "humantime_serde")]
        min_refresh_interval: Duration,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSecret {
    /// Name of an environment variable holding the secret.
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawClaimNames {
    #[serde(default = "defaults::claim_subject")]
    pub subject: String,
    #[serde(default = "defaults::claim_roles")]
    pub roles: String,
    #[serde(default = "defaults::claim_organisation")]
    pub organisation: String,
    /// Client ids (`azp`/`client_id`) of the API's own clients: tokens from them name no
    /// third-party integrator.
    #[serde(default)]
    pub first_party_clients: Vec<String>,
}

impl Default for RawClaimNames {
    fn default() -> Self {
        Self {
            subject: defaults::claim_subject(),
            roles: defaults::claim_roles(),
            organisation: defaults::claim_organisation(),
            first_party_clients: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawGrants {
    pub source: RawGrantsSource,
    /// Maximum age since the last successful fetch before the snapshot is stale.
    #[serde(default = "defaults::grants_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(default)]
    pub on_stale: OnStale,
    /// Refuse a snapshot that would deny more than this share of recently allowed requests
    /// (the snapshot guard); absent: flips are counted and logged, never refused.
    #[serde(default)]
    pub max_revocation_ratio: Option<f64>,
    /// Decided requests the guard keeps to replay against each new snapshot; 0: no guard.
    #[serde(default = "defaults::guard_window")]
    pub guard_window: usize,
    /// File holding the bearer token for the admin `POST /grants/accept`; absent: off.
    #[serde(default)]
    pub accept_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawGrantsSource {
    File {
        path: PathBuf,
        #[serde(default = "defaults::grants_poll", with = "humantime_serde")]
        poll_interval: Duration,
    },
    Url {
        url: String,
        #[serde(default = "defaults::grants_poll", with = "humantime_serde")]
        poll_interval: Duration,
        #[serde(default = "defaults::grants_backoff_max", with = "humantime_serde")]
        max_backoff: Duration,
        /// Ask the source to hold each request this long until something changes
        /// (`Prefer: wait=N`); off unless set.
        #[serde(default, with = "humantime_serde")]
        long_poll: Option<Duration>,
        /// Largest document accepted, counted after decompression.
        #[serde(default = "defaults::grants_max_document_bytes")]
        max_document_bytes: u64,
    },
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnStale {
    /// Protected requests get 503 `snapshot_stale`.
    #[default]
    Deny,
    /// Keep deciding from the last good snapshot.
    ServeStale,
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
pub struct RawRateLimit {
    /// Requests per second per client IP (burst = one second's worth, at least one); below 1
    /// (`0.1`: one request every 10 s) the wait, and so `Retry-After`, exceeds a second.
    #[serde(default)]
    pub per_ip: Option<f64>,
    /// Requests per second per authenticated user.
    #[serde(default)]
    pub per_user: Option<f64>,
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

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawCreatesWork {
    /// JSON pointer into the response body for the new work reference.
    pub reference: String,
    /// JSON pointer into the request body for the highway authority SWA code.
    pub highway_authority: String,
    /// JSON pointer into the request body for the workstream prefix.
    pub workstream: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawResponsePolicy {
    #[serde(default)]
    pub filter: Option<RawFilter>,
    #[serde(default)]
    pub redact: Option<RawRedact>,
    /// Largest body read for filtering or redaction; over it, 502 `response_too_large`.
    #[serde(default = "defaults::max_response_bytes")]
    pub max_body_bytes: u64,
    /// What a filtered JSON body's `pagination` counts (`total_rows`, ...) become: they
    /// describe the unfiltered rows, so by default they are removed.
    #[serde(default)]
    pub pagination: RawPagination,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawPagination {
    #[default]
    Remove,
    /// The number of rows kept in this page (not a total across pages).
    Recompute,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawFilter {
    Json {
        /// JSON pointer to the rows array; empty string for a top-level array.
        rows: String,
        #[serde(flatten)]
        by: RawRowKey,
    },
    Csv {
        #[serde(flatten)]
        by: RawRowKey,
    },
}

/// How a row's workstream is found: by a workstream field plus an organisation field, or by a
/// work reference looked up in the works index. Field names are JSON member names or CSV
/// column headers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRowKey {
    #[serde(default)]
    pub workstream_field: Option<String>,
    #[serde(default)]
    pub organisation_field: Option<String>,
    #[serde(default)]
    pub work_reference_field: Option<String>,
    /// Contracts model: the contract id of the row (`access: readable_contracts`).
    #[serde(default)]
    pub contract_field: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRedact {
    /// Field paths (dot-separated, `[]` for every element: `rows[].s74_cost`).
    pub fields: Vec<String>,
    /// Callers holding this role see the fields.
    #[serde(default = "defaults::redact_unless")]
    pub unless_role: String,
}

pub mod defaults {
    use super::*;

    pub fn max_header_bytes() -> usize {
        16 * 1024
    }
    pub fn max_headers() -> usize {
        100
    }
    pub fn max_body_bytes() -> u64 {
        10 * 1024 * 1024
    }
    pub fn header_read_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn body_read_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn admin_addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9901))
    }
    pub fn token_sources() -> Vec<RawTokenSource> {
        vec![
            RawTokenSource::Header("token".into()),
            RawTokenSource::Bearer,
        ]
    }
    pub fn algorithms() -> Vec<String> {
        vec![
            "RS256".into(),
            "PS256".into(),
            "ES256".into(),
            "EdDSA".into(),
        ]
    }
    pub fn leeway() -> Duration {
        Duration::from_secs(5)
    }
    pub fn token_cache_entries() -> usize {
        100_000
    }
    pub fn max_token_bytes() -> usize {
        8 * 1024
    }
    pub fn jwks_refresh() -> Duration {
        Duration::from_secs(300)
    }
    pub fn jwks_min_refresh() -> Duration {
        Duration::from_secs(10)
    }
    pub fn claim_subject() -> String {
        "sub".into()
    }
    pub fn claim_roles() -> String {
        "roles".into()
    }
    pub fn claim_organisation() -> String {
        "org".into()
    }
    pub fn guard_window() -> usize {
        1024
    }

    pub fn grants_max_age() -> Duration {
        Duration::from_secs(300)
    }
    pub fn grants_poll() -> Duration {
        Duration::from_secs(10)
    }
    pub fn grants_backoff_max() -> Duration {
        Duration::from_secs(60)
    }
    pub fn grants_max_document_bytes() -> u64 {
        1 << 30
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
    pub fn max_response_bytes() -> u64 {
        64 * 1024 * 1024
    }
    pub fn redact_unless() -> String {
        "StreetWorksAdmin".into()
    }
}
