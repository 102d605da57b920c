//! `streetgate explain`: decide one request offline, from a config, a grants snapshot and a
//! token or raw claims, and say why. It runs the sidecar's own steps (target check, route
//! lookup, authentication, `proxy::authorize`), so its answer is the sidecar's answer.
//!
//! Also `load_snapshot`, shared with `streetgate check-snapshot`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Method, Uri, Version, header};
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::authn::config::ClaimNames;
use crate::authn::extract::TokenSource;
use crate::authn::identity::{Identity, RoleSet};
use crate::authn::integrator;
use crate::authn::{AuthSetupError, Authenticator};
use crate::authz::rule::{Access, Allow, ValueSource};
use crate::authz::{self, Decision};
use crate::cli::progress::Progress;
use crate::codes::SwaCode;
use crate::config::{Config, ConfigError};
use crate::fetch::{FetchError, Fetched, Fetcher};
use crate::grants::overlay::{CreatedWorks, Works};
use crate::grants::snapshot::{Snapshot, SnapshotError};
use crate::model::Model;
use crate::normalize;
use crate::proxy::{self, unix_now};
use crate::reason::Reason;
use crate::route::Route;
use crate::telemetry::metrics::Metrics;

/// How long to wait for a JWKS URL before giving up.
const KEYS_TIMEOUT: Duration = Duration::from_secs(10);
const SNAPSHOT_FETCH_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

/// One request to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub config: PathBuf,
    /// A file path or an `http(s)://` URL.
    pub snapshot: Option<String>,
    pub caller: Credentials,
    pub method: String,
    /// Path with optional query, as the client would send it (`/work/works/X?a=b`).
    pub path: String,
    /// Appended to the query as `swaCode`.
    pub swa_code: Option<String>,
    /// JSON request body, for rules that read a field from it.
    pub body: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Credentials {
    Anonymous,
    /// A JWT; verified with the config's keys unless `insecure_decode`.
    Token {
        token: String,
        insecure_decode: bool,
    },
    /// Raw claims (JSON object), not verified.
    Claims(String),
}

/// The decision and the lines that explain it.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub lines: Vec<String>,
    pub allowed: bool,
}

/// Why `explain` could not decide at all (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("cannot read {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}:\n{problems}")]
    ConfigInvalid {
        path: PathBuf,
        problems: crate::problems::Problems,
    },
    #[error("{0}")]
    Usage(String),
    #[error("cannot set up token verification: {0}")]
    Auth(#[source] AuthSetupError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotLoadError),
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotLoadError {
    #[error("cannot read grants snapshot {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch grants snapshot {url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: FetchError,
    },
    #[error("grants snapshot {from}: {source}")]
    Invalid {
        from: String,
        #[source]
        source: SnapshotError,
    },
    #[error("the snapshot check stopped unexpectedly")]
    Task(#[source] tokio::task::JoinError),
}

/// Reads (file) or fetches (URL) a grants document and validates and indexes it, with
/// progress on a terminal.
pub async fn load_snapshot(
    source: &str,
    progress: &Progress,
) -> Result<Snapshot, SnapshotLoadError> {
    let bytes = if source.starts_with("http://") || source.starts_with("https://") {
        progress.note(&format!("fetching {source}"));
        let fetcher = Fetcher::new(SNAPSHOT_FETCH_TIMEOUT, MAX_SNAPSHOT_BYTES);
        // No ETag sent, so no 304 is expected; one would be a misbehaving server.
        let fetched = match fetcher.get(source, None).await {
            Ok(Fetched::Body { body, .. }) => Ok(body.to_vec()),
            Ok(Fetched::NotModified) => Err(FetchError::Status(http::StatusCode::NOT_MODIFIED)),
            Err(e) => Err(e),
        };
        fetched.map_err(|e| SnapshotLoadError::Fetch {
            url: source.to_owned(),
            source: e,
        })?
    } else {
        let path = PathBuf::from(source);
        tokio::fs::read(&path)
            .await
            .map_err(|e| SnapshotLoadError::Read { path, source: e })?
    };
    let label = format!(
        "validating grants snapshot ({:.1} MB)",
        bytes.len() as f64 / 1e6
    );
    let progress = progress.clone();
    let result = tokio::task::spawn_blocking(move || {
        progress.run(&label, || Snapshot::from_json(&bytes, None))
    })
    .await
    .map_err(SnapshotLoadError::Task)?;
    result.map_err(|e| SnapshotLoadError::Invalid {
        from: source.to_owned(),
        source: e,
    })
}

/// The `explain` command: prints the explanation; exit 0 for allow, 1 for deny.
pub async fn run(req: &ExplainRequest) -> Result<std::process::ExitCode, ExplainError> {
    let explanation = explain(req, &Progress::stderr()).await?;
    for line in &explanation.lines {
        println!("{line}");
    }
    Ok(if explanation.allowed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Decides `req` and explains the decision.
pub async fn explain(
    req: &ExplainRequest,
    progress: &Progress,
) -> Result<Explanation, ExplainError> {
    let config = load_config(&req.config)?;
    let method = Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| ExplainError::Usage(format!("not an HTTP method: {:?}", req.method)))?;
    let target_text = with_swa_code(&req.path, req.swa_code.as_deref());
    let uri: Uri = target_text
        .parse()
        .map_err(|_| ExplainError::Usage(format!("not a request path: {target_text:?}")))?;
    let snapshot = match &req.snapshot {
        Some(source) => Some(load_snapshot(source, progress).await?),
        None => None,
    };

    let mut out = Out::default();
    out.line(format!("request: {method} {target_text}"));
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("streetgate.explain"));
    let target = match normalize::check(&method, &uri, Version::HTTP_11, &headers) {
        Ok(t) => t,
        Err(reason) => return Ok(out.deny(reason, "the request target is rejected")),
    };
    let Some(matched) = config.router.lookup(&method, target.path) else {
        return Ok(out.deny(Reason::RouteNotFound, "route: no route matches"));
    };
    let route = matched.route;
    let api = &config.apis[route.api];
    out.line(format!(
        "route: {} ({} {}{}, api {}, upstream {})",
        route.id, route.method, api.prefix, route.template, api.name, api.upstream
    ));
    out.line(format!("rule: {}", describe_rule(route)));
    let shadow = config.shadow || route.shadow;

    let now = unix_now();
    let identity = if route.rule.allow == Allow::Public {
        out.line("identity: not needed (public route)");
        None
    } else {
        match identify(&config, &req.caller, now).await? {
            Ok((identity, how)) => {
                out.line(match config.auth.model {
                    Model::StreetManager => format!(
                        "identity: {} of organisation {}, roles {} ({how})",
                        identity.subject,
                        identity.organisation,
                        identity.roles.header_value()
                    ),
                    Model::Contracts => format!(
                        "identity: {} of company {} ({how})",
                        identity.subject, identity.organisation
                    ),
                });
                if let Some(integrator) = &identity.integrator {
                    out.line(format!(
                        "integrator: {integrator} acts through this user's account (api {})",
                        api.name
                    ));
                }
                Some(identity)
            }
            Err((reason, how)) => return Ok(out.deny(reason, &format!("identity: {how}"))),
        }
    };

    let created = CreatedWorks::default();
    let works = match (&config.grants, &snapshot, &identity) {
        (Some(_), Some(s), _) => {
            out.line(format!(
                "grants snapshot: version {} ({} works, {} users)",
                s.version,
                s.work_count(),
                s.user_count()
            ));
            Some(Works {
                snapshot: s,
                created: &created,
            })
        }
        (Some(_), None, Some(_)) => {
            return Ok(out.deny(
                Reason::SnapshotUnavailable,
                "grants snapshot: none given (--snapshot); the sidecar fails closed without one",
            ));
        }
        (None, Some(_), _) => {
            out.line("grants snapshot: ignored (the config has no grants section)");
            None
        }
        _ => None,
    };
    // Parsed as the sidecar parses it: a document it would refuse is refused here too.
    let body = match req
        .body
        .as_deref()
        .map(|b| crate::body::strict::parse(b.as_bytes()))
    {
        None => None,
        Some(Ok(body)) => Some(body),
        Some(Err(e)) => return Ok(out.deny(e.reason(), "the body is not strict JSON")),
    };
    let decision = match proxy::authorize(
        &matched,
        identity.as_deref(),
        works,
        &target,
        body.as_ref(),
        now,
    ) {
        Ok(d) => d,
        Err(e) => return Ok(out.deny(e.reason(), "the request lacks what the rule reads")),
    };
    Ok(out.decided(&decision, shadow))
}

fn load_config(path: &Path) -> Result<Config, ExplainError> {
    Config::load(path).map_err(|e| match e {
        ConfigError::Read { path, source } => ExplainError::ConfigRead { path, source },
        ConfigError::Invalid(problems) => ExplainError::ConfigInvalid {
            path: path.to_owned(),
            problems,
        },
    })
}

fn with_swa_code(path: &str, swa_code: Option<&str>) -> String {
    match swa_code {
        None => path.to_owned(),
        Some(code) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            let code =
                percent_encoding::utf8_percent_encode(code, percent_encoding::NON_ALPHANUMERIC);
            format!("{path}{sep}swaCode={code}")
        }
    }
}

type Identified = Result<(Arc<Identity>, String), (Reason, String)>;

/// The caller's identity and how it was established, or the 401 reason the sidecar would give.
async fn identify(
    config: &Config,
    caller: &Credentials,
    now: u64,
) -> Result<Identified, ExplainError> {
    let names = &config.auth.claims;
    match caller {
        Credentials::Anonymous => Ok(Err((
            Reason::TokenMissing,
            "no token or claims given".to_owned(),
        ))),
        Credentials::Claims(json) => {
            let claims: Map<String, Value> = serde_json::from_str(json)
                .map_err(|e| ExplainError::Usage(format!("--claims is not a JSON object: {e}")))?;
            Ok(
                from_claims(&claims, json.as_bytes(), names, config.auth.model)
                    .map(|id| (Arc::new(id), "raw claims, not verified".to_owned())),
            )
        }
        Credentials::Token {
            token,
            insecure_decode: true,
        } => {
            let payload = token
                .split('.')
                .nth(1)
                .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .unwrap_or_default();
            let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(&payload) else {
                return Ok(Err((
                    Reason::TokenMalformed,
                    "the token payload is not base64url JSON".to_owned(),
                )));
            };
            Ok(
                from_claims(&claims, &payload, names, config.auth.model).map(|id| {
                    (
                    Arc::new(id),
                    "token decoded WITHOUT verifying its signature or validity (--insecure-decode)"
                        .to_owned(),
                )
                }),
            )
        }
        Credentials::Token { token, .. } => verify(config, token, now).await,
    }
}

/// Verifies with the sidecar's own `Authenticator` (JWKS file or URL, or HS256 secret).
async fn verify(config: &Config, token: &str, now: u64) -> Result<Identified, ExplainError> {
    let auth = Authenticator::new(&config.auth, Metrics::new()).map_err(ExplainError::Auth)?;
    let (stop, stop_rx) = watch::channel(false);
    auth.spawn_refresh(stop_rx);
    let waited = tokio::time::timeout(KEYS_TIMEOUT, async {
        while !auth.ready() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let _ = stop.send(true);
    if waited.is_err() {
        return Err(ExplainError::Usage(format!(
            "signing keys did not load within {KEYS_TIMEOUT:?}; use --insecure-decode to read the token without verifying it"
        )));
    }
    let mut headers = HeaderMap::new();
    let value = |v: String| {
        HeaderValue::from_str(&v)
            .map_err(|_| ExplainError::Usage("the token is not a header value".into()))
    };
    match config.auth.sources.first() {
        Some(TokenSource::Header(name)) => {
            headers.insert(name.clone(), value(token.to_owned())?);
        }
        Some(TokenSource::Bearer) | None => {
            headers.insert(header::AUTHORIZATION, value(format!("Bearer {token}"))?);
        }
    }
    Ok(match auth.authenticate(&headers, now).await {
        Ok(identity) => Ok((
            identity,
            "token verified with the configured keys".to_owned(),
        )),
        Err(e) => Err((e.reason(), format!("token rejected: {e}"))),
    })
}

/// Identity from unverified claims, with the sidecar's claim names and role rules.
fn from_claims(
    claims: &Map<String, Value>,
    payload: &[u8],
    names: &ClaimNames,
    model: Model,
) -> Result<Identity, (Reason, String)> {
    let string = |name: &str| match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
        _ => Err((
            Reason::TokenClaims,
            format!("claim {name:?} is missing or not a string"),
        )),
    };
    let subject = string(&names.subject)?;
    let organisation = string(&names.organisation)?;
    let iat = claims.get("iat").and_then(Value::as_u64);
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    if model == Model::Contracts {
        // Contracts tokens name the user's company; user types and contracts are in the snapshot.
        return Identity::new(subject, organisation, RoleSet::EMPTY, iat, exp)
            .map_err(|e| (Reason::TokenClaims, e.to_string()));
    }
    if SwaCode::parse(organisation).is_none() {
        return Err((
            Reason::TokenClaims,
            format!("claim {:?} is not a SWA code", names.organisation),
        ));
    }
    let roles = match claims.get(&names.roles) {
        Some(Value::String(one)) => RoleSet::from_names([one.as_str()]),
        Some(Value::Array(many)) if many.iter().all(Value::is_string) => {
            RoleSet::from_names(many.iter().filter_map(Value::as_str))
        }
        _ => {
            return Err((
                Reason::TokenClaims,
                format!(
                    "claim {:?} is missing or not a list of strings",
                    names.roles
                ),
            ));
        }
    }
    .map_err(|e| (Reason::TokenRoles, e.to_string()))?;
    let identity = Identity::new(subject, organisation, roles, iat, exp)
        .map_err(|e| (Reason::TokenClaims, e.to_string()))?;
    let integrator = integrator::integrator(claims, payload, &names.first_party_clients)
        .map_err(|e| (Reason::TokenClaims, e.to_string()))?;
    match integrator {
        None => Ok(identity),
        Some(name) => identity
            .with_integrator(&name)
            .map_err(|e| (Reason::TokenClaims, e.to_string())),
    }
}

fn describe_rule(route: &Route) -> String {
    let rule = &route.rule;
    let allow = match &rule.allow {
        Allow::Public => "public".to_owned(),
        Allow::Roles(roles) => format!("roles any of [{}]", roles.header_value()),
        Allow::Authenticated => "any verified token".to_owned(),
    };
    let source = |s: &ValueSource| match s {
        ValueSource::Path(p) => format!("path parameter {p}"),
        ValueSource::Query(q) => format!("query parameter {q}"),
        ValueSource::Body(b) => format!("body field {b}"),
    };
    let access = match &rule.access {
        Access::RoleOnly => "the role is enough".to_owned(),
        Access::ReadWork(s) => format!("read the work named by the {}", source(s)),
        Access::WriteWork(s) => format!("write the work named by the {}", source(s)),
        Access::MapView => "map view (no workstream access needed)".to_owned(),
        Access::CreateInWorkstream(s) => {
            format!("create in the workstream named by the {}", source(s))
        }
        Access::OwnOrganisation(s) => {
            format!("own organisation, named by the {}", source(s))
        }
        Access::Filtered => "rows filtered by workstream".to_owned(),
        Access::ContractPermission {
            source: s, needs, ..
        } => format!(
            "permission {needs} on the contract named by the {} (party and role through its template)",
            source(s)
        ),
        Access::ReadableContracts { .. } => {
            "rows filtered to the contracts the caller reads".to_owned()
        }
        Access::SystemPermission {
            name, user_type, ..
        } => match user_type {
            None => format!("system permission {name} of the user type"),
            Some(s) => format!(
                "system permission {name} of the user type; the user type in the {} may not be more privileged",
                source(s)
            ),
        },
    };
    let member = if rule.organisation_member {
        "; acting organisation must be the work's promoter or highway authority"
    } else {
        ""
    };
    format!("{allow}; {access}{member}")
}

#[derive(Default)]
struct Out {
    lines: Vec<String>,
}

impl Out {
    fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// A denial before `decide` ran (checks, routing, authentication).
    fn deny(mut self, reason: Reason, why: &str) -> Explanation {
        self.line(why);
        self.line(format!("denied: {reason} ({})", reason.status().as_u16()));
        self.finish(false, reason, false)
    }

    fn decided(mut self, decision: &Decision, shadow: bool) -> Explanation {
        self.lines.extend(authz::explain(decision));
        self.finish(decision.allowed(), decision.reason, shadow)
    }

    fn finish(mut self, allowed: bool, reason: Reason, shadow: bool) -> Explanation {
        let verdict = match (allowed, shadow) {
            (true, _) => "ALLOW",
            (false, true) => "DENY (shadow mode: the sidecar would log it and forward anyway)",
            (false, false) => "DENY",
        };
        self.line(format!("decision: {verdict}, reason {reason}"));
        Explanation {
            lines: self.lines,
            allowed,
        }
    }
}
