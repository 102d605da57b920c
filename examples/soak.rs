//! The soak of issue 11 (`benches/soak/run.sh` builds and runs it; see `benches/soak/README.md`).
//!
//! Starts the release `streetgate serve` binary as a child process, on loopback only, in front of
//! an upstream and a JWKS server that live in this process, and for a bounded time:
//!
//! - rewrites a 1M-work grants snapshot with a growing version every `--swap-every` (file source
//!   polled every second, so each version is swapped in);
//! - once (`--emptied-at`, default half-way) drops an emptied snapshot (organisations only, no
//!   users or works), as a buggy publisher would; the snapshot guard
//!   (`grants.max_revocation_ratio: 0.3`) must refuse it, and the next version must replace it;
//! - sends SIGHUP every `--hup-every`, after rewriting the config with a different (harmless)
//!   `decision_log.allow_sample_rate`, so every SIGHUP is a real reload;
//! - rotates the JWKS every `--jwks-every`: a new key is published, tokens are re-minted with it
//!   a few seconds later, and the old key is removed from the JWKS later still;
//! - lets the upstream reset 1 % of connections (before the head, or mid-body) and stall 1 % of
//!   bodies (head sent, then nothing for longer than the API's `request_timeout`, then a close),
//!   plus 0.5 % stalled heads (a 504 `upstream_timeout`);
//! - drives keep-alive HTTP/1.1 clients over allowed, denied, filtered and public routes and
//!   checks every answer against a decision computed here, independently of streetgate's code,
//!   from the synthetic snapshot's formulas (`streetgate::grants::synthetic`): the status, the
//!   rejection's `reason`, the identity headers the upstream saw, and for the filtered route the
//!   exact set of rows left in the body.
//!
//! Answers to requests the upstream faulted on are "upstream-fault" (a 502/504, an aborted
//! body or a client timeout), never "wrong". Anything else that differs from the expected
//! answer is WRONG. At the end it prints a report and exits non-zero if any answer was wrong,
//! if RSS or open fds did not stay flat within `--flat-tolerance` after the warm-up, or if the
//! stressors did not actually happen (no swaps applied, no reloads, no rotation, the emptied
//! snapshot not refused).
//!
//! Every child is killed on exit: SIGTERM and a wait at the normal end; `kill_on_drop` on error,
//! panic, Ctrl-C or SIGTERM to this driver.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "a measuring tool: a panic stops the run where it went wrong"
)]

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use arc_swap::{ArcSwap, ArcSwapOption};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use clap::Parser;
use dashmap::DashMap;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use streetgate::grants::synthetic::{synthetic_document_version, work_reference};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

const ISSUER: &str = "https://soak.streetgate.invalid";
const AUDIENCE: &str = "street-manager";
/// Workstreams per promoter besides "000" in the synthetic document.
const WORKSTREAMS: usize = 5;
/// A client gives up on an answer after this long.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Wrong answers printed in full.
const WRONG_SHOWN: usize = 10;

#[derive(Parser, Debug, Clone)]
#[command(about = "streetgate soak: bounded, loopback only; see benches/soak/README.md")]
struct Args {
    /// How long traffic runs.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    duration: Duration,
    /// The streetgate binary (release build).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/streetgate"))]
    bin: PathBuf,
    /// Concurrent keep-alive clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Target requests per second over all clients (0: as fast as they can).
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    #[arg(long, default_value_t = 200)]
    orgs: usize,
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 1_000_000)]
    works: usize,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    swap_every: Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    hup_every: Duration,
    /// When to drop an emptied snapshot the guard must refuse (default: half-way; 0s: never).
    #[arg(long, value_parser = humantime::parse_duration)]
    emptied_at: Option<Duration>,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    jwks_every: Duration,
    /// After publishing a new key, clients switch to tokens signed with it this much later.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    jwks_switch_after: Duration,
    /// After the switch, the old key is removed from the JWKS this much later.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    jwks_remove_after: Duration,
    /// RSS / fds / latency rows: default 60 s, or 10 s for runs shorter than 5 minutes.
    #[arg(long, value_parser = humantime::parse_duration)]
    sample_every: Option<Duration>,
    /// Rows up to this time are warm-up: default the first minute (a third of shorter runs).
    #[arg(long, value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// Percent of upstream requests whose connection is reset (half before the head, half
    /// mid-body).
    #[arg(long, default_value_t = 1.0)]
    reset_pct: f64,
    /// Percent of upstream bodies stalled after the head, for `--stall`, then closed.
    #[arg(long, default_value_t = 1.0)]
    stall_pct: f64,
    /// Percent of upstream heads stalled for `--stall` (504 upstream_timeout).
    #[arg(long, default_value_t = 0.5)]
    head_stall_pct: f64,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1500ms")]
    stall: Duration,
    /// The APIs' `request_timeout` (below `--stall`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    request_timeout: Duration,
    /// RSS and fds must stay within this fraction of the sample at the end of the warm-up.
    #[arg(long, default_value_t = 0.10)]
    flat_tolerance: f64,
    /// Work directory (default: a fresh temporary one, removed at the end unless --keep).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long)]
    keep: bool,
    /// Writes the streetgate child's pid here (run.sh uses it to make sure it is gone).
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Extra environment for the streetgate child only, KEY=VALUE (repeatable), e.g.
    /// `--sidecar-env MALLOC_ARENA_MAX=2` to see how the allocator shapes RSS.
    #[arg(long, value_parser = parse_env)]
    sidecar_env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

// === a small deterministic PRNG (SplitMix64) ===

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// === the expected-decision model: the synthetic document's formulas, restated ===

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Level {
    No,
    Read,
    Full,
}

struct Model {
    works: usize,
    promoters: usize,
    authorities: usize,
    contractors: usize,
}

impl Model {
    fn new(orgs: usize, works: usize) -> Model {
        let promoters = (orgs / 2).max(1);
        let authorities = (orgs / 4).max(1);
        let contractors = orgs.saturating_sub(promoters + authorities).max(1);
        Model {
            works,
            promoters,
            authorities,
            contractors,
        }
    }
    fn promoter(p: usize) -> String {
        format!("{:04}", p % 10_000)
    }
    fn authority(a: usize) -> String {
        format!("H{:03}", a % 1_000)
    }
    fn contractor(c: usize) -> String {
        format!("C{:03}", c % 1_000)
    }
    /// User `u`'s grant on workstream `ws` of the promoter its grants are for.
    fn level(u: usize, ws: usize) -> Level {
        if (1..=WORKSTREAMS).contains(&ws) && (u + ws).is_multiple_of(2) {
            [Level::Full, Level::Read, Level::No][(u + ws) % 3]
        } else {
            Level::No
        }
    }
    /// The promoter user `u`'s grants are for.
    fn grants_promoter(&self, u: usize) -> usize {
        if u % 5 == 4 {
            (u / 5) % self.promoters
        } else {
            u % self.promoters
        }
    }
    /// (promoter, highway authority, workstream) of work `i`.
    fn work(&self, i: usize) -> (usize, usize, usize) {
        (
            i % self.promoters,
            i % self.authorities,
            i % (WORKSTREAMS + 1),
        )
    }
    /// A random work of promoter `p` in workstream `ws`, if there is one.
    fn find_work(&self, p: usize, ws: usize, rng: &mut Rng) -> Option<usize> {
        let per_promoter = self.works / self.promoters;
        if per_promoter < 8 {
            return None;
        }
        let start = rng.below(per_promoter - 7);
        (start..start + 7)
            .map(|k| p + self.promoters * k)
            .find(|&i| i < self.works && self.work(i).2 == ws)
    }
    /// Whether contractor organisation `c` has a contract with promoter `p`.
    fn has_contract(&self, p: usize, c: usize) -> bool {
        p % self.contractors == c
    }
}

#[derive(Clone, Debug)]
enum Who {
    Planner { u: usize, p: usize },
    Contractor { u: usize, p: usize, c: usize },
    Authority { a: usize },
    DataExport,
}

#[derive(Clone, Debug)]
struct Persona {
    sub: String,
    org: String,
    roles: &'static [&'static str],
    who: Who,
}

fn personas(model: &Model, users: usize) -> Vec<Persona> {
    let mut out = Vec::new();
    for u in (0..users.min(40)).filter(|u| u % 5 != 4) {
        let p = model.grants_promoter(u);
        out.push(Persona {
            sub: format!("user-{u}"),
            org: Model::promoter(p),
            roles: &["Planner"],
            who: Who::Planner { u, p },
        });
    }
    for u in (0..users.min(80)).filter(|u| u % 5 == 4) {
        let p = model.grants_promoter(u);
        let c = p % model.contractors;
        out.push(Persona {
            sub: format!("user-{u}"),
            org: Model::contractor(c),
            roles: &["Contractor"],
            who: Who::Contractor { u, p, c },
        });
    }
    for a in 0..4.min(model.authorities) {
        out.push(Persona {
            sub: format!("ha-{a}"),
            org: Model::authority(a),
            roles: &["HighwayAuthority"],
            who: Who::Authority { a },
        });
    }
    out.push(Persona {
        sub: "dx-0".into(),
        org: Model::promoter(0),
        roles: &["DataExport"],
        who: Who::DataExport,
    });
    out
}

// === keys and tokens ===

struct SigningKey {
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
    jwk: serde_json::Value,
}

impl SigningKey {
    fn generate(kid: &str) -> anyhow::Result<SigningKey> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| anyhow::anyhow!("generating an ES256 key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("reading the ES256 key"))?;
        let point = pair.public_key().as_ref();
        anyhow::ensure!(point.len() == 65, "unexpected EC point length");
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Ok(SigningKey {
            kid: kid.into(),
            encoding: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        })
    }

    /// A token for `persona`; `kid` overrides the key's own (an unpublished kid).
    fn mint(&self, persona: &Persona, kid: Option<&str>, expired: bool) -> String {
        static JTI: AtomicU64 = AtomicU64::new(0);
        let now = unix_now();
        let (iat, exp) = if expired {
            (now - 3_600, now - 600)
        } else {
            (now, now + 3_600)
        };
        let claims = serde_json::json!({
            "sub": persona.sub, "org": persona.org, "roles": persona.roles,
            "iss": ISSUER, "aud": AUDIENCE, "iat": iat, "nbf": iat, "exp": exp,
            "jti": JTI.fetch_add(1, Ordering::Relaxed),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.unwrap_or(&self.kid).to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding).expect("ES256 signing")
    }
}

/// Tokens signed with one key, one per persona.
struct TokenSet {
    key: Arc<SigningKey>,
    tokens: Vec<String>,
}

impl TokenSet {
    fn mint(key: Arc<SigningKey>, personas: &[Persona]) -> TokenSet {
        let tokens = personas.iter().map(|p| key.mint(p, None, false)).collect();
        TokenSet { key, tokens }
    }
}

/// The JWKS document served to streetgate, and what was served when.
#[derive(Default)]
struct JwksState {
    keys: Vec<Arc<SigningKey>>,
    version: u64,
    /// When each document version was first served.
    first_served: Vec<(u64, Instant)>,
    /// Keys removed, with the document version that no longer has them.
    removed: Vec<(Arc<SigningKey>, u64)>,
    fetches: u64,
}

impl JwksState {
    fn document(&self) -> Bytes {
        let keys: Vec<_> = self.keys.iter().map(|k| k.jwk.clone()).collect();
        Bytes::from(serde_json::json!({ "keys": keys }).to_string())
    }
    /// A removed key that streetgate has certainly seen gone: a document without it was
    /// served over a second ago.
    fn surely_removed(&self) -> Option<Arc<SigningKey>> {
        let (key, version) = self.removed.last()?;
        self.first_served
            .iter()
            .any(|(v, at)| v >= version && at.elapsed() > Duration::from_secs(1))
            .then(|| Arc::clone(key))
    }
}

// === the cases and their expected answers ===

#[derive(Debug, Clone)]
enum Check {
    /// 200 from the upstream's echo: the path it saw and the identity headers.
    Echo {
        user: Option<String>,
        acting: Option<String>,
    },
    /// 200, filtered: exactly these row ids are left.
    Rows(BTreeSet<String>),
    /// A rejection with this status and reason.
    Reject(u16, &'static str),
    /// Informational only (the answer is recorded, never judged).
    Info,
}

#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    method: Method,
    target: String,
    token: Option<String>,
    check: Check,
}

struct Shared {
    args: Args,
    model: Model,
    personas: Vec<Persona>,
    tokens: ArcSwap<TokenSet>,
    previous_tokens: ArcSwapOption<TokenSet>,
    jwks: Mutex<JwksState>,
    /// A key never published (signs tokens with an unknown kid).
    unpublished: SigningKey,
    faults: DashMap<u64, Fault>,
    next_id: AtomicU64,
    stop: AtomicBool,
    /// When traffic started (set once the sidecar is ready).
    started: std::sync::OnceLock<Instant>,
    stats: Mutex<Stats>,
}

fn gen_case(shared: &Shared, rng: &mut Rng) -> Case {
    let roll = rng.below(1000);
    let tokens = shared.tokens.load();
    let pi = rng.below(shared.personas.len());
    let persona = &shared.personas[pi];
    let token = tokens.tokens[pi].clone();
    match roll {
        0..=299 => read_case(shared, rng, persona, token, false),
        300..=379 => read_case(shared, rng, persona, token, true),
        380..=599 => filtered_case(shared, rng, persona, token),
        600..=679 => Case {
            name: "public",
            method: Method::GET,
            target: "/work/status".into(),
            token: None,
            check: Check::Echo {
                user: None,
                acting: None,
            },
        },
        _ => denied_case(shared, rng, persona, token),
    }
}

fn swa(target: String, code: Option<&str>) -> String {
    match code {
        Some(c) => format!("{target}?swaCode={c}"),
        None => target,
    }
}

/// GET (or PUT .../cancel when `write`) on a work the persona may or may not act on.
fn read_case(
    shared: &Shared,
    rng: &mut Rng,
    persona: &Persona,
    token: String,
    write: bool,
) -> Case {
    let m = &shared.model;
    let (method, suffix, need) = if write {
        (Method::PUT, "/cancel", Level::Full)
    } else {
        (Method::GET, "", Level::Read)
    };
    let echo = |acting: &str| Check::Echo {
        user: Some(persona.sub.clone()),
        acting: Some(acting.to_owned()),
    };
    let any_work = |rng: &mut Rng| rng.below(m.works);
    let (name, i, swa_code, check) = match &persona.who {
        Who::Planner { u, p } | Who::Contractor { u, p, .. } => {
            let contractor = matches!(persona.who, Who::Contractor { .. });
            let ws = rng.below(WORKSTREAMS + 1);
            let Some(i) = m.find_work(*p, ws, rng) else {
                // This promoter has no works in that workstream: another promoter's work.
                let i = any_work(rng);
                let other = m.work(i).0 != *p;
                let (check, name) = if other {
                    (
                        Check::Reject(403, "workstream_no_access"),
                        "denied_other_promoter",
                    )
                } else if Model::level(*u, m.work(i).2) >= need {
                    (echo(&Model::promoter(*p)), "allowed_work")
                } else if Model::level(*u, m.work(i).2) == Level::Read {
                    (
                        Check::Reject(403, "workstream_read_only"),
                        "denied_read_only",
                    )
                } else {
                    (
                        Check::Reject(403, "workstream_no_access"),
                        "denied_no_access",
                    )
                };
                let code = contractor.then(|| Model::promoter(*p));
                return Case {
                    name,
                    method,
                    target: swa(
                        format!("/work/works/{}{suffix}", work_reference(i)),
                        code.as_deref(),
                    ),
                    token: Some(token),
                    check,
                };
            };
            let level = Model::level(*u, ws);
            let (name, check) = if level >= need {
                (
                    if write {
                        "allowed_write"
                    } else {
                        "allowed_read"
                    },
                    echo(&Model::promoter(*p)),
                )
            } else if level == Level::Read {
                (
                    "denied_read_only",
                    Check::Reject(403, "workstream_read_only"),
                )
            } else {
                (
                    "denied_no_access",
                    Check::Reject(403, "workstream_no_access"),
                )
            };
            (name, i, contractor.then(|| Model::promoter(*p)), check)
        }
        Who::Authority { a } => {
            let i = any_work(rng);
            let (name, check) = if !write {
                ("allowed_authority_read", echo(&Model::authority(*a)))
            } else if m.work(i).1 == *a {
                ("allowed_authority_write", echo(&Model::authority(*a)))
            } else {
                (
                    "denied_authority_not_own",
                    Check::Reject(403, "authority_not_own_work"),
                )
            };
            (name, i, None, check)
        }
        Who::DataExport => (
            "denied_role",
            any_work(rng),
            None,
            Check::Reject(403, "role_not_permitted"),
        ),
    };
    Case {
        name,
        method,
        target: swa(
            format!("/work/works/{}{suffix}", work_reference(i)),
            swa_code.as_deref(),
        ),
        token: Some(token),
        check,
    }
}

/// Rows the upstream returns for a filtered request: every workstream of each named
/// organisation, plus rows without a workstream.
fn rows_for(seed: u64, orgs: &[String]) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    let mut rng = Rng(seed);
    for org in orgs {
        for ws in 0..=WORKSTREAMS + 1 {
            // ws 6 is not a workstream of anyone's
            let id = format!("r{seed}-{}", rows.len());
            rows.push((id, org.clone(), format!("{ws:03}")));
        }
    }
    for _ in 0..3 {
        let id = format!("r{seed}-{}", rows.len());
        let org = rng.pick(orgs).clone();
        rows.push((id, org, String::new()));
    }
    rows
}

/// Whether a row (organisation, workstream) is visible to the caller.
type Visible = Box<dyn Fn(&str, &str) -> bool>;

fn filtered_case(shared: &Shared, rng: &mut Rng, persona: &Persona, token: String) -> Case {
    let m = &shared.model;
    let seed = rng.next() >> 11;
    let mut orgs = vec![
        Model::promoter(rng.below(m.promoters)),
        Model::authority(rng.below(m.authorities)),
    ];
    let (name, swa_code, visible): (_, Option<String>, Visible) = match &persona.who {
        Who::Planner { u, p } => {
            orgs.push(Model::promoter(*p));
            let (u, own) = (*u, Model::promoter(*p));
            (
                "filtered_planner",
                None,
                Box::new(move |org, ws| org == own && ws_level(u, ws) >= Level::Read),
            )
        }
        Who::Contractor { u, p, c } => {
            orgs.push(Model::promoter(*p));
            orgs.push(Model::contractor(*c));
            match rng.below(3) {
                0 => ("filtered_contractor_nobody", None, Box::new(|_, _| false)),
                1 => {
                    // Another promoter this contractor serves, which gave this user nothing.
                    let q = (p + m.contractors) % m.promoters;
                    if q != *p && m.has_contract(q, *c) {
                        orgs.push(Model::promoter(q));
                        (
                            "filtered_contractor_no_grants",
                            Some(Model::promoter(q)),
                            Box::new(|_, _| false),
                        )
                    } else {
                        ("filtered_contractor_nobody", None, Box::new(|_, _| false))
                    }
                }
                _ => {
                    let (u, acting) = (*u, Model::promoter(*p));
                    (
                        "filtered_contractor",
                        Some(acting.clone()),
                        Box::new(move |org, ws| org == acting && ws_level(u, ws) >= Level::Read),
                    )
                }
            }
        }
        Who::Authority { .. } => ("filtered_authority", None, Box::new(|_, _| true)),
        Who::DataExport => {
            return Case {
                name: "denied_role_filtered",
                method: Method::GET,
                target: "/reporting/permits".into(),
                token: Some(token),
                check: Check::Reject(403, "role_not_permitted"),
            };
        }
    };
    let expected = rows_for(seed, &orgs)
        .into_iter()
        .filter(|(_, org, ws)| visible(org, ws))
        .map(|(id, _, _)| id)
        .collect();
    let mut target = format!("/reporting/permits?seed={seed}&orgs={}", orgs.join(","));
    if let Some(code) = swa_code {
        let _ = write!(target, "&swaCode={code}");
    }
    Case {
        name,
        method: Method::GET,
        target,
        token: Some(token),
        check: Check::Rows(expected),
    }
}

fn ws_level(u: usize, ws: &str) -> Level {
    ws.parse::<usize>()
        .map_or(Level::No, |ws| Model::level(u, ws))
}

fn denied_case(shared: &Shared, rng: &mut Rng, persona: &Persona, token: String) -> Case {
    let m = &shared.model;
    let tokens = shared.tokens.load();
    let planner = |rng: &mut Rng| loop {
        let i = rng.below(shared.personas.len());
        if let Who::Planner { u, p } = shared.personas[i].who {
            return (i, u, p);
        }
    };
    let contractor = |rng: &mut Rng| loop {
        let i = rng.below(shared.personas.len());
        if let Who::Contractor { p, c, .. } = shared.personas[i].who {
            return (i, p, c);
        }
    };
    let work = work_reference(rng.below(m.works));
    let get = |name, target: String, token: Option<String>, check| Case {
        name,
        method: Method::GET,
        target,
        token,
        check,
    };
    match rng.below(13) {
        0 => get(
            "denied_unknown_work",
            format!(
                "/work/works/{}",
                work_reference(m.works + rng.below(1_000_000))
            ),
            Some(token),
            match persona.who {
                Who::DataExport => Check::Reject(403, "role_not_permitted"),
                _ => Check::Reject(403, "work_unknown"),
            },
        ),
        1 => {
            let (i, _, _) = contractor(rng);
            get(
                "denied_contractor_nobody",
                format!("/work/works/{work}"),
                Some(tokens.tokens[i].clone()),
                Check::Reject(403, "workstream_no_access"),
            )
        }
        2 => {
            let (i, _, c) = contractor(rng);
            let q = (0..m.promoters)
                .map(|_| rng.below(m.promoters))
                .find(|&q| !m.has_contract(q, c));
            match q {
                Some(q) => get(
                    "denied_no_contract",
                    format!("/work/works/{work}?swaCode={}", Model::promoter(q)),
                    Some(tokens.tokens[i].clone()),
                    Check::Reject(403, "swa_code_no_contract"),
                ),
                None => get(
                    "denied_no_token",
                    format!("/work/works/{work}"),
                    None,
                    Check::Reject(401, "token_missing"),
                ),
            }
        }
        3 => {
            let (i, _, p) = planner(rng);
            let other = Model::promoter((p + 1) % m.promoters);
            get(
                "denied_swa_not_own",
                format!("/work/works/{work}?swaCode={other}"),
                Some(tokens.tokens[i].clone()),
                Check::Reject(403, "swa_code_not_own_organisation"),
            )
        }
        4 => get(
            "denied_no_token",
            format!("/work/works/{work}"),
            None,
            Check::Reject(401, "token_missing"),
        ),
        5 => get(
            "denied_expired",
            format!("/work/works/{work}"),
            Some(tokens.key.mint(persona, None, true)),
            Check::Reject(401, "token_expired"),
        ),
        6 => {
            // A character well inside the signature changes.
            let mut bad = token.into_bytes();
            let at = bad.len() - 10;
            bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
            get(
                "denied_bad_signature",
                format!("/work/works/{work}"),
                Some(String::from_utf8(bad).expect("ASCII token")),
                Check::Reject(401, "token_signature"),
            )
        }
        7 => get(
            "denied_unknown_kid",
            format!("/work/works/{work}"),
            Some(
                shared
                    .unpublished
                    .mint(persona, Some("soak-never-published"), false),
            ),
            Check::Reject(401, "token_unknown_key"),
        ),
        8 => {
            let removed = shared.jwks.lock().unwrap().surely_removed();
            match removed {
                // A fresh token (never verified, so not in the cache) signed with a key the
                // JWKS no longer has, and streetgate has fetched since.
                Some(key) => get(
                    "denied_removed_key",
                    format!("/work/works/{work}"),
                    Some(key.mint(persona, None, false)),
                    Check::Reject(401, "token_unknown_key"),
                ),
                None => get(
                    "denied_not_found",
                    "/work/nothing/here".into(),
                    Some(token),
                    Check::Reject(404, "route_not_found"),
                ),
            }
        }
        9 => get(
            "denied_not_found",
            format!("/work/works/{work}/nothing"),
            Some(token),
            Check::Reject(404, "route_not_found"),
        ),
        10 => get(
            "denied_bad_path",
            "/work/works/SW%2f..%2fstatus".into(),
            Some(token),
            Check::Reject(400, "bad_path"),
        ),
        11 => {
            // Informational: a token signed with the previous (now removed) key that clients
            // used until the switch, so it sits in streetgate's token cache.
            let previous = shared.previous_tokens.load_full();
            let removed = shared.jwks.lock().unwrap().surely_removed();
            match (previous, removed) {
                (Some(prev), Some(key)) if Arc::ptr_eq(&prev.key, &key) => get(
                    "info_cached_token_of_removed_key",
                    format!("/work/works/{work}"),
                    Some(prev.tokens[pi_of(shared, persona)].clone()),
                    Check::Info,
                ),
                _ => get(
                    "public_with_token",
                    "/work/status".into(),
                    Some(token),
                    Check::Echo {
                        user: None,
                        acting: None,
                    },
                ),
            }
        }
        _ => get(
            "denied_role",
            format!("/work/works/{work}"),
            Some(tokens.tokens[shared.personas.len() - 1].clone()),
            Check::Reject(403, "role_not_permitted"),
        ),
    }
}

fn pi_of(shared: &Shared, persona: &Persona) -> usize {
    shared
        .personas
        .iter()
        .position(|p| p.sub == persona.sub)
        .unwrap_or(0)
}

// === the upstream (with faults) and the JWKS server ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    ResetBeforeHead,
    ResetMidBody,
    StallBody,
    StallHead,
}

fn fault_for(args: &Args, id: u64) -> Option<Fault> {
    let r = (mix(id ^ args.seed.rotate_left(17)) % 100_000) as f64 / 1_000.0;
    let reset = args.reset_pct;
    let stall = reset + args.stall_pct;
    let head = stall + args.head_stall_pct;
    if r < reset / 2.0 {
        Some(Fault::ResetBeforeHead)
    } else if r < reset {
        Some(Fault::ResetMidBody)
    } else if r < stall {
        Some(Fault::StallBody)
    } else if r < head {
        Some(Fault::StallHead)
    } else {
        None
    }
}

/// A response body: `data`, then the end, an error (the connection is cut), or a stall and
/// then an error.
struct SoakBody {
    data: Option<Bytes>,
    then: Then,
}

enum Then {
    End,
    StallThenCut(Pin<Box<tokio::time::Sleep>>),
}

impl Body for SoakBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        let cut = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "soak: cut");
        match &mut self.then {
            Then::End => Poll::Ready(None),
            Then::StallThenCut(sleep) => match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(cut()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn upstream(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<SoakBody>, BoxError> {
    let id: u64 = req
        .headers()
        .get("x-soak-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let uri = req.uri().to_string();
    let body = if req.uri().path() == "/reporting/permits" {
        let mut seed = 0;
        let mut orgs = Vec::new();
        for pair in req.uri().query().unwrap_or_default().split('&') {
            match pair.split_once('=') {
                Some(("seed", v)) => seed = v.parse().unwrap_or(0),
                Some(("orgs", v)) => orgs = v.split(',').map(str::to_owned).collect(),
                _ => {}
            }
        }
        let rows: Vec<_> = rows_for(seed, &orgs)
            .into_iter()
            .map(|(id, org, ws)| {
                let mut row = serde_json::json!({
                    "id": id, "promoter_swa_code": org,
                    "work_reference_number": "SW00000000001", "permit_status": "granted",
                });
                if !ws.is_empty() {
                    row["workstream_prefix"] = ws.into();
                }
                row
            })
            .collect();
        serde_json::json!({"rows": rows, "pagination": {"total": 999}}).to_string()
    } else {
        serde_json::json!({
            "soak_id": id, "method": req.method().as_str(), "uri": uri,
            "user": header("x-streetgate-user"),
            "acting": header("x-streetgate-acting-organisation"),
            "pad": "x".repeat(512),
        })
        .to_string()
    };
    let _ = req.into_body().collect().await;
    let fault = (id != 0).then(|| fault_for(&shared.args, id)).flatten();
    if let Some(f) = fault {
        shared.faults.insert(id, f);
    }
    let body = Bytes::from(body);
    let len = body.len();
    let (data, then) = match fault {
        None => (body, Then::End),
        Some(Fault::ResetBeforeHead) => return Err("soak: reset before the head".into()),
        Some(Fault::StallHead) => {
            tokio::time::sleep(shared.args.stall).await;
            (body, Then::End)
        }
        // A short pause first, so the head and the first half reach the wire before the cut.
        Some(Fault::ResetMidBody) => (
            body.slice(..len / 2),
            Then::StallThenCut(Box::pin(tokio::time::sleep(Duration::from_millis(20)))),
        ),
        Some(Fault::StallBody) => (
            body.slice(..len / 2),
            Then::StallThenCut(Box::pin(tokio::time::sleep(shared.args.stall))),
        ),
    };
    Ok(Response::builder()
        .header("content-type", "application/json")
        .header("content-length", len)
        .body(SoakBody {
            data: Some(data),
            then,
        })?)
}

async fn serve_upstream(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| upstream(Arc::clone(&shared), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve_jwks(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<Incoming>| {
                let shared = Arc::clone(&shared);
                async move {
                    let mut jwks = shared.jwks.lock().unwrap();
                    jwks.fetches += 1;
                    let version = jwks.version;
                    if !jwks.first_served.iter().any(|(v, _)| *v == version) {
                        jwks.first_served.push((version, Instant::now()));
                    }
                    let doc = jwks.document();
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(doc))
                            .expect("response"),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

// === clients ===

#[derive(Default)]
struct Interval {
    requests: u64,
    wrong: u64,
    faults: u64,
    latencies_us: Vec<u32>,
}

#[derive(Default)]
struct Stats {
    total: u64,
    ok: u64,
    wrong: u64,
    fault_answers: HashMap<(Fault, String), u64>,
    fault_absorbed: u64,
    absorbed_by: HashMap<Fault, u64>,
    by_case: HashMap<&'static str, u64>,
    wrong_by: HashMap<String, u64>,
    wrong_shown: Vec<String>,
    info: HashMap<String, u64>,
    reconnects: u64,
    intervals: Vec<Interval>,
}

enum Answer {
    Complete { status: u16, body: Bytes },
    BodyAborted { status: u16, error: String },
    Failed(String),
    TimedOut,
}

impl Answer {
    fn brief(&self) -> String {
        match self {
            Answer::Complete { status, body } => {
                format!(
                    "{status} {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                )
            }
            Answer::BodyAborted { status, error } => format!("{status}, body aborted: {error}"),
            Answer::Failed(e) => format!("request failed: {e}"),
            Answer::TimedOut => format!("no answer within {CLIENT_TIMEOUT:?}"),
        }
    }
}

/// Why `answer` is not the expected one (None: it is).
fn judge(case: &Case, id: u64, answer: &Answer) -> Option<String> {
    let Answer::Complete { status, body } = answer else {
        return Some("no complete answer".into());
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match &case.check {
        Check::Info => None,
        Check::Reject(want, reason) => {
            let got = json
                .as_ref()
                .and_then(|j| j["reason"].as_str())
                .unwrap_or("");
            (status != want || got != *reason)
                .then(|| format!("expected {want} {reason}, got {status} reason {got:?}"))
        }
        Check::Echo { user, acting } => {
            if *status != 200 {
                return Some(format!("expected 200 from the upstream, got {status}"));
            }
            let j = json?;
            let (got_user, got_acting) = (j["user"].as_str(), j["acting"].as_str());
            if j["soak_id"].as_u64() != Some(id) {
                Some(format!("echo of another request: soak_id {}", j["soak_id"]))
            } else if j["uri"].as_str() != Some(case.target.as_str()) {
                Some(format!("upstream saw {} for {}", j["uri"], case.target))
            } else if got_user != user.as_deref() || got_acting != acting.as_deref() {
                Some(format!(
                    "identity headers user={got_user:?} acting={got_acting:?}, expected {user:?} {acting:?}"
                ))
            } else {
                None
            }
        }
        Check::Rows(expected) => {
            if *status != 200 {
                return Some(format!("expected 200 filtered, got {status}"));
            }
            let Some(rows) = json.as_ref().and_then(|j| j["rows"].as_array()) else {
                return Some("filtered body has no rows array".into());
            };
            let got: BTreeSet<String> = rows
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect();
            if &got == expected {
                return None;
            }
            let leaked: Vec<_> = got.difference(expected).collect();
            let missing: Vec<_> = expected.difference(&got).collect();
            Some(format!(
                "rows: {} leaked (not readable) {leaked:?}, {} missing {missing:?}",
                leaked.len(),
                missing.len()
            ))
        }
    }
}

async fn connect(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(
    sender: &mut Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
    addr: SocketAddr,
    request: Request<Empty<Bytes>>,
) -> Answer {
    let exchange = async {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            *sender = Some(connect(addr).await.map_err(|e| format!("connect: {e}"))?);
        }
        let s = sender.as_mut().expect("connected");
        s.ready().await.map_err(|e| format!("not ready: {e}"))?;
        let response = s.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok::<_, String>(match response.into_body().collect().await {
            Ok(body) => Answer::Complete {
                status,
                body: body.to_bytes(),
            },
            Err(e) => Answer::BodyAborted {
                status,
                error: e.to_string(),
            },
        })
    };
    match tokio::time::timeout(CLIENT_TIMEOUT, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => Answer::Failed(e),
        Err(_) => Answer::TimedOut,
    }
}

async fn client(shared: Arc<Shared>, addr: SocketAddr, n: usize) {
    let mut rng = Rng(mix(shared.args.seed ^ (n as u64 + 1)));
    let mut sender = None;
    let mut pace = (shared.args.rate > 0).then(|| {
        let period =
            Duration::from_secs_f64(shared.args.clients as f64 / f64::from(shared.args.rate));
        let mut i = tokio::time::interval(period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(p) = pace.as_mut() {
            p.tick().await;
        }
        let case = gen_case(&shared, &mut rng);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut builder = Request::builder()
            .method(case.method.clone())
            .uri(case.target.as_str())
            .header("host", "soak.streetgate.test")
            .header("x-soak-id", id);
        if let Some(t) = &case.token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        let request = builder.body(Empty::new()).expect("request");
        let had = sender.is_some();
        let began = Instant::now();
        let answer = send(&mut sender, addr, request).await;
        let took = began.elapsed();
        if !matches!(answer, Answer::Complete { .. }) {
            sender = None;
        }
        let fault = shared.faults.remove(&id).map(|(_, f)| f);
        let problem = judge(&case, id, &answer);
        record(&shared, &case, id, fault, problem, &answer, took, had);
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    shared: &Shared,
    case: &Case,
    id: u64,
    fault: Option<Fault>,
    problem: Option<String>,
    answer: &Answer,
    took: Duration,
    reused: bool,
) {
    let slot = (shared.elapsed().as_secs_f64() / sample_every(&shared.args).as_secs_f64()) as usize;
    let mut s = shared.stats.lock().unwrap();
    s.total += 1;
    *s.by_case.entry(case.name).or_default() += 1;
    if matches!(case.check, Check::Info) {
        let what = match answer {
            Answer::Complete { status: 401, body } => format!(
                "refused: 401 {}",
                serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|j| j["reason"].as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            Answer::Complete { status, .. } => {
                format!("token accepted (answered {status} after authentication)")
            }
            _ => "no complete answer".to_owned(),
        };
        *s.info.entry(format!("{}: {what}", case.name)).or_default() += 1;
    }
    if !matches!(answer, Answer::Complete { .. }) && reused {
        s.reconnects += 1;
    }
    while s.intervals.len() <= slot {
        s.intervals.push(Interval::default());
    }
    let interval = &mut s.intervals[slot];
    interval.requests += 1;
    let faulty = |answer: &Answer| match answer {
        Answer::Complete { status, body } => {
            let reason = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|j| j["reason"].as_str().map(str::to_owned))
                .unwrap_or_default();
            matches!(
                (*status, reason.as_str()),
                (502, "upstream_unavailable" | "response_unfilterable") | (504, "upstream_timeout")
            )
            .then(|| format!("{status} {reason}"))
        }
        Answer::BodyAborted { status, .. } => Some(format!("{status} + aborted body")),
        Answer::Failed(_) => Some("connection failed".into()),
        Answer::TimedOut => Some("client timeout".into()),
    };
    match (fault, problem) {
        (None, None) => {
            s.ok += 1;
            let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
            s.intervals[slot].latencies_us.push(us);
        }
        // An informational probe is never judged, so a fault on it is just a fault.
        (Some(f), None) if !matches!(case.check, Check::Info) => {
            s.fault_absorbed += 1;
            *s.absorbed_by.entry(f).or_default() += 1;
            s.intervals[slot].faults += 1;
        }
        (Some(f), _) if faulty(answer).is_some() => {
            let how = faulty(answer).unwrap_or_default();
            *s.fault_answers.entry((f, how)).or_default() += 1;
            s.intervals[slot].faults += 1;
        }
        // An informational probe the upstream faulted on, answered normally anyway.
        (Some(_), None) => {}
        (_, Some(why)) => {
            s.wrong += 1;
            s.intervals[slot].wrong += 1;
            *s.wrong_by
                .entry(format!(
                    "{}: {}",
                    case.name,
                    why.chars().take(80).collect::<String>()
                ))
                .or_default() += 1;
            if s.wrong_shown.len() < WRONG_SHOWN {
                let at = shared.elapsed().as_secs_f64();
                s.wrong_shown.push(format!(
                    "t={at:.1}s id={id} case={} upstream fault={fault:?}\n    {} {}\n    token: {}\n    why: {why}\n    got: {}",
                    case.name,
                    case.method,
                    case.target,
                    case.token.as_deref().map_or("-".to_owned(), |t| format!("{}…", &t[..t.len().min(40)])),
                    answer.brief()
                ));
            }
        }
    }
}

// === the sidecar child, its config, and what is done to it ===

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Ports {
    listen: u16,
    admin: u16,
    upstream: u16,
    jwks: u16,
}

fn config_yaml(args: &Args, ports: &Ports, grants: &Path, sample_rate: f64) -> String {
    let rt = humantime::format_duration(args.request_timeout);
    format!(
        r#"# streetgate soak config (examples/soak.rs); rewritten before every SIGHUP.
listen:
  addr: 127.0.0.1:{listen}
  header_read_timeout: 5s
  idle_timeout: 30s
admin:
  addr: 127.0.0.1:{admin}
auth:
  jwks:
    url:
      url: http://127.0.0.1:{jwks}/jwks.json
      refresh_interval: 5m
      min_refresh_interval: 2s
  algorithms: [ES256]
  issuer: {ISSUER}
  audience: {AUDIENCE}
grants:
  source:
    file:
      path: {grants}
      poll_interval: 1s
  max_revocation_ratio: 0.3
decision_log:
  allow_sample_rate: {sample_rate}
shutdown:
  drain: 2s
apis:
  - name: work
    prefix: /work
    upstream: http://127.0.0.1:{upstream}
    request_timeout: {rt}
    routes:
      - id: GetWork
        route: GET /works/{{workReferenceNumber}}
        allow: {{roles: [Planner, Contractor, HighwayAuthority]}}
        access: {{read_work: {{path: workReferenceNumber}}}}
      - id: CancelWork
        route: PUT /works/{{workReferenceNumber}}/cancel
        allow: {{roles: [Planner, Contractor, HighwayAuthority]}}
        access: {{write_work: {{path: workReferenceNumber}}}}
      - id: Status
        route: GET /status
        allow: public
  - name: reporting
    prefix: /reporting
    upstream: http://127.0.0.1:{upstream}
    request_timeout: {rt}
    routes:
      - id: GetPermits
        route: GET /permits
        allow: {{roles: [Planner, Contractor, HighwayAuthority]}}
        access: filtered
        response:
          filter: {{json: {{rows: /rows, workstream_field: workstream_prefix, organisation_field: promoter_swa_code}}}}
"#,
        listen = ports.listen,
        admin = ports.admin,
        jwks = ports.jwks,
        upstream = ports.upstream,
        grants = grants.display(),
    )
}

fn write_atomic(out: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let tmp = out.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
    }
    std::fs::rename(&tmp, out)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sample_every(args: &Args) -> Duration {
    args.sample_every
        .unwrap_or(if args.duration >= Duration::from_secs(300) {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(10)
        })
}

fn warmup(args: &Args) -> Duration {
    args.warmup
        .unwrap_or_else(|| Duration::from_secs(60).min(args.duration / 3))
}

/// (VmRSS kB, open fds) of `pid`.
fn proc_sample(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// One value from a Prometheus scrape (`name{labels}` exactly), 0 if absent.
fn metric(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(admin: u16) -> String {
    let get = async {
        let stream = TcpStream::connect(("127.0.0.1", admin)).await.ok()?;
        let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = Request::get("/metrics")
            .header("host", "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .ok()?;
        let resp = s.send_request(req).await.ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

async fn wait_ready(admin: u16, child: &mut Child, within: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Some(status) = child.try_wait()? {
            bail!("streetgate exited before it was ready: {status}");
        }
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", admin)).await {
            let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let req = Request::get("/readyz")
                .header("host", "127.0.0.1")
                .body(Empty::<Bytes>::new())?;
            if s.send_request(req)
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("streetgate not ready within {within:?}")
}

/// One steady-phase row: taken just before a snapshot write, at the same point of every swap
/// cycle, so the snapshot build does not land in some samples and not in others.
#[derive(Clone, Default)]
struct Row {
    at: Duration,
    rss_kb: u64,
    fds: usize,
    peak_rss_kb: u64,
    peak_fds: usize,
    floor_rss_kb: u64,
    floor_fds: usize,
    snapshot_version: f64,
    reloads_ok: f64,
}

#[derive(Default)]
struct Timeline {
    rows: Vec<Row>,
    swaps_written: u64,
    /// The emptied snapshot's version, once written, and whether the guard refused it.
    emptied: Option<u64>,
    emptied_refused: bool,
    hups_sent: u64,
    rotations: u64,
    /// Peaks and floors since the last row (floors: `None` before the first sample).
    peak_rss_kb: u64,
    peak_fds: usize,
    floor: Option<(u64, usize)>,
}

async fn run(args: Args) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.bin.exists(),
        "no streetgate binary at {} (build it with cargo build --release)",
        args.bin.display()
    );
    anyhow::ensure!(
        sample_every(&args)
            .as_millis()
            .is_multiple_of(args.swap_every.as_millis().max(1))
            && args.swap_every <= sample_every(&args),
        "--sample-every must be a multiple of --swap-every (rows are taken just before a swap)"
    );
    anyhow::ensure!(
        args.stall > args.request_timeout,
        "--stall must be longer than --request-timeout"
    );
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("streetgate-soak.")
                .tempdir()?;
            if args.keep {
                tmp.keep()
            } else {
                tmp.path().to_path_buf()
            }
        }
    };
    let model = Model::new(args.orgs, args.works);
    let personas = personas(&model, args.users);
    println!(
        "soak: {:?}, {} clients at {} req/s target, {} works / {} users / {} orgs, dir {}",
        args.duration,
        args.clients,
        if args.rate == 0 {
            "max".into()
        } else {
            args.rate.to_string()
        },
        args.works,
        args.users,
        args.orgs,
        dir.display()
    );
    for (k, v) in &args.sidecar_env {
        println!("streetgate environment: {k}={v}");
    }
    println!(
        "machine: {} cores, load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // The snapshot: generated once; each swap only changes the leading version.
    let began = Instant::now();
    let template = synthetic_document_version(0, args.orgs, args.users, args.works);
    let rest = Arc::new(
        template
            .strip_prefix(br#"{"version":0"#)
            .context("synthetic document starts with its version")?
            .to_vec(),
    );
    drop(template);
    let grants = dir.join("grants.json");
    write_atomic(&grants, &[br#"{"version":1"#, &rest])?;
    println!(
        "snapshot: {:.0} MB written in {:.1?}",
        rest.len() as f64 / 1e6,
        began.elapsed()
    );

    let first_key = Arc::new(SigningKey::generate("soak-1")?);
    let ports = Ports {
        listen: free_port()?,
        admin: free_port()?,
        upstream: free_port()?,
        jwks: free_port()?,
    };
    let shared = Arc::new(Shared {
        tokens: ArcSwap::from_pointee(TokenSet::mint(Arc::clone(&first_key), &personas)),
        previous_tokens: ArcSwapOption::empty(),
        jwks: Mutex::new(JwksState {
            keys: vec![first_key],
            version: 1,
            ..JwksState::default()
        }),
        unpublished: SigningKey::generate("unpublished")?,
        faults: DashMap::new(),
        next_id: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        started: std::sync::OnceLock::new(),
        stats: Mutex::new(Stats::default()),
        model,
        personas,
        args: args.clone(),
    });
    let up = TcpListener::bind(("127.0.0.1", ports.upstream)).await?;
    tokio::spawn(serve_upstream(up, Arc::clone(&shared)));
    let jw = TcpListener::bind(("127.0.0.1", ports.jwks)).await?;
    tokio::spawn(serve_jwks(jw, Arc::clone(&shared)));

    let config = dir.join("streetgate.yaml");
    std::fs::write(&config, config_yaml(&args, &ports, &grants, 0.1))?;
    let out = Command::new(&args.bin)
        .arg("check-config")
        .arg(&config)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "soak config invalid:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = Command::new(&args.bin)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .envs(args.sidecar_env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting streetgate")?;
    let pid = child.id().context("child pid")?;
    if let Some(p) = &args.pid_file {
        std::fs::write(p, pid.to_string())?;
    }
    let log_lines = Arc::new(LogCounts::default());
    tokio::spawn(drain_log(
        child.stdout.take().context("stdout")?,
        dir.join("streetgate.warn.log"),
        Arc::clone(&log_lines),
    ));
    tokio::spawn(drain_log(
        child.stderr.take().context("stderr")?,
        dir.join("streetgate.stderr.log"),
        Arc::clone(&log_lines),
    ));
    wait_ready(ports.admin, &mut child, Duration::from_secs(120)).await?;
    let (rss0, fds0) = proc_sample(pid).unwrap_or_default();
    println!(
        "streetgate pid {pid} ready: RSS {} MiB, {fds0} fds",
        rss0 / 1024
    );

    let started = Instant::now();
    let _ = shared.started.set(started);
    drive(
        &args, &shared, &mut child, pid, &ports, &config, &grants, &rest, &log_lines,
    )
    .await
}

#[derive(Default)]
struct LogCounts {
    lines: AtomicU64,
    warn: AtomicU64,
    error: AtomicU64,
    shown: Mutex<Vec<String>>,
}

async fn drain_log(
    stream: impl tokio::io::AsyncRead + Unpin,
    keep: PathBuf,
    counts: Arc<LogCounts>,
) {
    let mut lines = BufReader::new(stream).lines();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&keep)
        .ok();
    while let Ok(Some(line)) = lines.next_line().await {
        counts.lines.fetch_add(1, Ordering::Relaxed);
        let level = if line.contains(r#""level":"ERROR""#) {
            counts.error.fetch_add(1, Ordering::Relaxed);
            true
        } else if line.contains(r#""level":"WARN""#) {
            counts.warn.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            // Plain (non-JSON) output, e.g. a panic message.
            !line.starts_with('{')
        };
        if level {
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            let mut shown = counts.shown.lock().unwrap();
            if shown.len() < 20 {
                shown.push(line.chars().take(400).collect());
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    // On Ctrl-C or SIGTERM the run future is dropped: its Child has kill_on_drop.
    tokio::select! {
        r = run(args) => match r {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("soak: error: {e:#}");
                ExitCode::from(2)
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("soak: interrupted; streetgate is killed");
            ExitCode::from(130)
        }
        _ = term.recv() => {
            eprintln!("soak: terminated; streetgate is killed");
            ExitCode::from(143)
        }
    }
}

impl Shared {
    /// Time since traffic started.
    fn elapsed(&self) -> Duration {
        self.started.get().map_or(Duration::ZERO, Instant::elapsed)
    }
}

/// Records one row of the timeline at `at` (RSS, fds, their peaks since the last row, and a few
/// of streetgate's own metrics).
async fn take_row(
    timeline: &Mutex<Timeline>,
    pid: u32,
    admin: u16,
    at: Duration,
    version: Option<u64>,
) {
    // Wait (up to 4 s) until the last version written is in force, so the build is over.
    let mut scraped = scrape(admin).await;
    if let Some(v) = version {
        for _ in 0..20 {
            if metric(&scraped, "streetgate_snapshot_version") >= v as f64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            scraped = scrape(admin).await;
        }
    }
    let (rss_kb, fds) = proc_sample(pid).unwrap_or_default();
    let mut t = timeline.lock().unwrap();
    let (floor_rss_kb, floor_fds) = t
        .floor
        .map_or((rss_kb, fds), |(r, f)| (r.min(rss_kb), f.min(fds)));
    let row = Row {
        at,
        rss_kb,
        fds,
        peak_rss_kb: t.peak_rss_kb.max(rss_kb),
        peak_fds: t.peak_fds.max(fds),
        floor_rss_kb,
        floor_fds,
        snapshot_version: metric(&scraped, "streetgate_snapshot_version"),
        reloads_ok: metric(&scraped, r#"streetgate_config_reload_total{result="ok"}"#),
    };
    println!(
        "  t={:>5}s  RSS {:>6.1} MiB (floor {:>6.1}, peak {:>6.1})  fds {:>4} (floor {:>4}, peak {:>4})  snapshot v{}  reloads {}",
        at.as_secs(),
        row.rss_kb as f64 / 1024.0,
        row.floor_rss_kb as f64 / 1024.0,
        row.peak_rss_kb as f64 / 1024.0,
        row.fds,
        row.floor_fds,
        row.peak_fds,
        row.snapshot_version,
        row.reloads_ok
    );
    t.rows.push(row);
    t.peak_rss_kb = 0;
    t.peak_fds = 0;
    t.floor = None;
}

/// Writes the next snapshot version every `swap_every`; at sample boundaries, takes a row just
/// before the write.
async fn swapper(
    shared: Arc<Shared>,
    timeline: Arc<Mutex<Timeline>>,
    pid: u32,
    admin: u16,
    grants: PathBuf,
    rest: Arc<Vec<u8>>,
    start: Instant,
) {
    let args = &shared.args;
    let sample = sample_every(args).as_millis().max(1);
    let emptied_at = args.emptied_at.unwrap_or(args.duration / 2);
    let emptied_rest = synthetic_document_version(0, args.orgs, 0, 0)
        .strip_prefix(br#"{"version":0"#)
        .map(<[u8]>::to_vec)
        .map(Arc::new);
    for k in 1u64.. {
        let at = args.swap_every * u32::try_from(k).unwrap_or(u32::MAX);
        if at >= args.duration {
            return;
        }
        tokio::time::sleep_until((start + at).into()).await;
        if at.as_millis().is_multiple_of(sample) {
            take_row(&timeline, pid, admin, at, Some(k)).await;
        }
        let emptied =
            !emptied_at.is_zero() && at >= emptied_at && timeline.lock().unwrap().emptied.is_none();
        let rest = match (&emptied_rest, emptied) {
            (Some(empty), true) => {
                timeline.lock().unwrap().emptied = Some(k + 1);
                tokio::spawn(watch_refusal(Arc::clone(&timeline), admin, k + 1));
                Arc::clone(empty)
            }
            _ => Arc::clone(&rest),
        };
        let grants = grants.clone();
        let version = format!(r#"{{"version":{}"#, k + 1);
        let written = tokio::task::spawn_blocking(move || {
            write_atomic(&grants, &[version.as_bytes(), &rest])
        })
        .await;
        match written {
            Ok(Ok(())) => timeline.lock().unwrap().swaps_written += 1,
            other => eprintln!("soak: snapshot write failed: {other:?}"),
        }
    }
}

/// Watches the admin metrics until the guard reports `version` refused (at most 30 s: the
/// sidecar polls the file every second and the next version replaces it a swap later).
async fn watch_refusal(timeline: Arc<Mutex<Timeline>>, admin: u16, version: u64) {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let scraped = scrape(admin).await;
        if metric(&scraped, "streetgate_grants_guard_refused_version") == version as f64 {
            timeline.lock().unwrap().emptied_refused = true;
            println!(
                "guard: emptied snapshot version {version} refused; the previous stays in force"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rewrites the config with another `allow_sample_rate` and sends SIGHUP, every `hup_every`.
async fn hupper(
    shared: Arc<Shared>,
    timeline: Arc<Mutex<Timeline>>,
    pid: u32,
    ports: (u16, u16, u16, u16),
    config: PathBuf,
    grants: PathBuf,
    start: Instant,
) {
    let args = &shared.args;
    let ports = Ports {
        listen: ports.0,
        admin: ports.1,
        upstream: ports.2,
        jwks: ports.3,
    };
    let Some(target) = rustix::process::Pid::from_raw(pid as i32) else {
        return;
    };
    for k in 1u32.. {
        tokio::time::sleep_until((start + args.hup_every * k).into()).await;
        let rate = if k % 2 == 1 { 0.2 } else { 0.1 };
        let yaml = config_yaml(args, &ports, &grants, rate);
        if let Err(e) = write_atomic(&config, &[yaml.as_bytes()]) {
            eprintln!("soak: writing the config: {e}");
            continue;
        }
        match rustix::process::kill_process(target, rustix::process::Signal::HUP) {
            Ok(()) => timeline.lock().unwrap().hups_sent += 1,
            Err(e) => eprintln!("soak: SIGHUP: {e}"),
        }
    }
}

/// Every `jwks_every`: publish a new key; switch the clients' tokens to it `jwks_switch_after`
/// later; remove the old key `jwks_remove_after` after that.
async fn rotator(shared: Arc<Shared>, timeline: Arc<Mutex<Timeline>>, start: Instant) {
    let args = &shared.args;
    for n in 1u32.. {
        tokio::time::sleep_until((start + args.jwks_every * n).into()).await;
        let key = match SigningKey::generate(&format!("soak-{}", n + 1)) {
            Ok(k) => Arc::new(k),
            Err(e) => {
                eprintln!("soak: {e}");
                return;
            }
        };
        {
            let mut jwks = shared.jwks.lock().unwrap();
            jwks.keys.push(Arc::clone(&key));
            jwks.version += 1;
        }
        tokio::time::sleep(args.jwks_switch_after).await;
        let fresh = TokenSet::mint(Arc::clone(&key), &shared.personas);
        let old = shared.tokens.swap(Arc::new(fresh));
        shared.previous_tokens.store(Some(Arc::clone(&old)));
        tokio::time::sleep(args.jwks_remove_after).await;
        {
            let mut jwks = shared.jwks.lock().unwrap();
            jwks.keys.retain(|k| k.kid != old.key.kid);
            jwks.version += 1;
            let version = jwks.version;
            jwks.removed.push((Arc::clone(&old.key), version));
        }
        timeline.lock().unwrap().rotations += 1;
    }
}

/// RSS and fd peaks, sampled every second.
async fn peaks(timeline: Arc<Mutex<Timeline>>, pid: u32) {
    loop {
        if let Some((rss, fds)) = proc_sample(pid) {
            let mut t = timeline.lock().unwrap();
            t.peak_rss_kb = t.peak_rss_kb.max(rss);
            t.peak_fds = t.peak_fds.max(fds);
            t.floor = Some(
                t.floor
                    .map_or((rss, fds), |(r, f)| (r.min(rss), f.min(fds))),
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    args: &Args,
    shared: &Arc<Shared>,
    child: &mut Child,
    pid: u32,
    ports: &Ports,
    config: &Path,
    grants: &Path,
    rest: &Arc<Vec<u8>>,
    logs: &Arc<LogCounts>,
) -> anyhow::Result<bool> {
    let start = *shared.started.get().context("traffic start")?;
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let addr = SocketAddr::from(([127, 0, 0, 1], ports.listen));
    let clients: Vec<_> = (0..args.clients)
        .map(|n| tokio::spawn(client(Arc::clone(shared), addr, n)))
        .collect();
    let mut stressors = tokio::task::JoinSet::new();
    stressors.spawn(swapper(
        Arc::clone(shared),
        Arc::clone(&timeline),
        pid,
        ports.admin,
        grants.to_path_buf(),
        Arc::clone(rest),
        start,
    ));
    stressors.spawn(hupper(
        Arc::clone(shared),
        Arc::clone(&timeline),
        pid,
        (ports.listen, ports.admin, ports.upstream, ports.jwks),
        config.to_path_buf(),
        grants.to_path_buf(),
        start,
    ));
    stressors.spawn(rotator(Arc::clone(shared), Arc::clone(&timeline), start));
    stressors.spawn(peaks(Arc::clone(&timeline), pid));

    tokio::select! {
        () = tokio::time::sleep_until((start + args.duration).into()) => {}
        status = child.wait() => bail!("streetgate exited during the soak: {status:?}"),
    }
    let last = timeline.lock().unwrap().swaps_written + 1;
    take_row(&timeline, pid, ports.admin, args.duration, Some(last)).await;
    shared.stop.store(true, Ordering::Relaxed);
    stressors.abort_all();
    for c in clients {
        let _ = tokio::time::timeout(CLIENT_TIMEOUT + Duration::from_secs(5), c).await;
    }
    let traffic = start.elapsed();
    let final_scrape = scrape(ports.admin).await;

    // Stop streetgate the way Kubernetes does, and make sure it is gone.
    let term = rustix::process::Pid::from_raw(pid as i32)
        .map(|p| rustix::process::kill_process(p, rustix::process::Signal::TERM));
    let (exit, clean_exit) = match tokio::time::timeout(Duration::from_secs(15), child.wait()).await
    {
        Ok(status) => {
            let status = status?;
            (status.to_string(), status.success())
        }
        Err(_) => {
            child.kill().await?;
            (
                "did not stop within 15 s of SIGTERM: killed".to_owned(),
                false,
            )
        }
    };
    let _ = term;

    let timeline = timeline.lock().unwrap();
    let stats = shared.stats.lock().unwrap();
    Ok(report(
        args,
        shared,
        &stats,
        &timeline,
        logs,
        &final_scrape,
        traffic,
        &exit,
        clean_exit,
    ))
}

fn pct(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    shared: &Shared,
    stats: &Stats,
    timeline: &Timeline,
    logs: &LogCounts,
    scraped: &str,
    traffic: Duration,
    exit: &str,
    clean_exit: bool,
) -> bool {
    let faults: u64 = stats.fault_answers.values().sum();
    println!();
    println!("== soak report ==");
    println!(
        "traffic: {:.0} s, {} requests ({:.0} req/s), {} clients",
        traffic.as_secs_f64(),
        stats.total,
        stats.total as f64 / traffic.as_secs_f64(),
        args.clients
    );
    println!(
        "answers: {} as expected, {} WRONG, {} upstream-fault, {} faulted upstream but answered correctly",
        stats.ok, stats.wrong, faults, stats.fault_absorbed
    );
    let mut fa: Vec<_> = stats.fault_answers.iter().collect();
    fa.sort();
    for ((fault, how), n) in fa {
        println!("  upstream-fault {fault:?} -> {how}: {n}");
    }
    let mut absorbed: Vec<_> = stats.absorbed_by.iter().collect();
    absorbed.sort();
    for (fault, n) in absorbed {
        println!("  faulted upstream ({fault:?}) but answered as expected: {n}");
    }
    println!(
        "  client reconnects after a broken connection: {}",
        stats.reconnects
    );
    let mut cases: Vec<_> = stats.by_case.iter().collect();
    cases.sort();
    println!("cases:");
    for (name, n) in cases {
        println!("  {name:<34} {n:>9}");
    }
    if !stats.info.is_empty() {
        println!("informational (not judged):");
        let mut info: Vec<_> = stats.info.iter().collect();
        info.sort();
        for (what, n) in info {
            println!("  {what}: {n}");
        }
    }
    let jwks = shared.jwks.lock().unwrap();
    let version_end = metric(scraped, "streetgate_snapshot_version");
    let reloads_ok = metric(scraped, r#"streetgate_config_reload_total{result="ok"}"#);
    let reloads_bad = metric(
        scraped,
        r#"streetgate_config_reload_total{result="invalid"}"#,
    ) + metric(scraped, r#"streetgate_config_reload_total{result="error"}"#);
    println!("stressors:");
    println!(
        "  snapshot: {} versions written ({} works), version in force at the end {version_end}; fetches ok {} invalid {} error {}",
        timeline.swaps_written,
        args.works,
        metric(scraped, r#"streetgate_snapshot_fetch_total{result="ok"}"#),
        metric(
            scraped,
            r#"streetgate_snapshot_fetch_total{result="invalid"}"#
        ),
        metric(
            scraped,
            r#"streetgate_snapshot_fetch_total{result="error"}"#
        ),
    );
    println!(
        "  guard: emptied snapshot {}, refused {}; allow→deny flips counted {}",
        timeline
            .emptied
            .map_or("not written".to_owned(), |v| format!("version {v}")),
        timeline.emptied_refused,
        metric(
            scraped,
            r#"streetgate_grants_guard_flips_total{direction="allow_to_deny"}"#
        ),
    );
    println!(
        "  SIGHUP: {} sent, reloads ok {reloads_ok}, rejected {reloads_bad}",
        timeline.hups_sent
    );
    println!(
        "  JWKS: {} rotations completed, {} documents served, refreshes ok {} rate_limited {} error {}",
        timeline.rotations,
        jwks.fetches,
        metric(scraped, r#"streetgate_jwks_refresh_total{result="ok"}"#),
        metric(
            scraped,
            r#"streetgate_jwks_refresh_total{result="rate_limited"}"#
        ),
        metric(scraped, r#"streetgate_jwks_refresh_total{result="error"}"#),
    );
    println!(
        "  streetgate log: {} lines, {} WARN, {} ERROR; exit after SIGTERM: {exit}",
        logs.lines.load(Ordering::Relaxed),
        logs.warn.load(Ordering::Relaxed),
        logs.error.load(Ordering::Relaxed)
    );
    for l in logs.shown.lock().unwrap().iter().take(8) {
        println!("    {l}");
    }

    let step = sample_every(args);
    println!();
    println!(
        "{:>6} {:>8} {:>6} {:>5} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>4} {:>5} {:>4} {:>5} {:>7}",
        "t",
        "requests",
        "req/s",
        "wrong",
        "faults",
        "p50ms",
        "p99ms",
        "RSS",
        "floor",
        "peak",
        "fds",
        "floor",
        "peak",
        "snap",
        "reloads"
    );
    for row in &timeline.rows {
        let slot = (row.at.as_secs_f64() / step.as_secs_f64()).ceil() as usize;
        let iv = slot.checked_sub(1).and_then(|i| stats.intervals.get(i));
        let (req, wrong, faults, p50, p99) = iv.map_or((0, 0, 0, f64::NAN, f64::NAN), |iv| {
            let mut l = iv.latencies_us.clone();
            l.sort_unstable();
            (
                iv.requests,
                iv.wrong,
                iv.faults,
                pct(&l, 0.50),
                pct(&l, 0.99),
            )
        });
        let mib = |kb: u64| kb as f64 / 1024.0;
        println!(
            "{:>5}s {:>8} {:>6.0} {:>5} {:>6} {:>6.2} {:>6.2} {:>7.1} {:>7.1} {:>7.1} {:>4} {:>5} {:>4} {:>5} {:>7}",
            row.at.as_secs(),
            req,
            req as f64 / step.as_secs_f64(),
            wrong,
            faults,
            p50,
            p99,
            mib(row.rss_kb),
            mib(row.floor_rss_kb),
            mib(row.peak_rss_kb),
            row.fds,
            row.floor_fds,
            row.peak_fds,
            row.snapshot_version,
            row.reloads_ok,
        );
    }
    println!(
        "(RSS in MiB at the row, and its floor and peak over the row's period, sampled every second)"
    );
    let all: Vec<u32> = {
        let mut v: Vec<u32> = stats
            .intervals
            .iter()
            .flat_map(|i| i.latencies_us.iter().copied())
            .collect();
        v.sort_unstable();
        v
    };
    println!(
        "latency over the run (answers judged, upstream-fault answers excluded): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 0.999),
        pct(&all, 1.0)
    );

    // Flat after warm-up: every row after the warm-up within the tolerance of the first one. RSS is judged on its floor and its peak over each period: the value at one
    // instant depends on where the allocator is in a swap cycle (see docs/soak.md); a leak
    // raises both. Fds are judged on their floor: at any instant they include the upstream
    // connections of the requests in flight, up to one per client, more while bodies stall.
    let warm = warmup(args);
    // The baseline is the first row whose whole period is after the warm-up (the rows' floors
    // and peaks cover their period, and the first period starts before any connection).
    let mut rows_after = timeline.rows.iter().filter(|r| r.at > warm);
    let base = rows_after.next().cloned();
    let after: Vec<&Row> = rows_after.collect();
    let tol = args.flat_tolerance * 100.0;
    let span = |b: f64, f: &dyn Fn(&Row) -> f64| {
        let d: Vec<f64> = after.iter().map(|r| (f(r) - b) / b * 100.0).collect();
        let lo = d.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = d.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi, lo >= -tol && hi <= tol)
    };
    let (rss_flat, fds_flat) = match &base {
        Some(b) if !after.is_empty() && b.rss_kb > 0 && b.fds > 0 => {
            let show = |name: &str, (lo, hi, ok): (f64, f64, bool)| {
                println!(
                    "  {name:<12} {lo:+6.1}% .. {hi:+6.1}%  {}",
                    if ok { "flat" } else { "NOT FLAT" }
                );
                ok
            };
            println!(
                "flat after warm-up ({} s; baseline: the row at t={} s; later rows against it), tolerance ±{tol:.0}%:",
                warm.as_secs(),
                b.at.as_secs()
            );
            let floor = show(
                "RSS floor",
                span(b.floor_rss_kb as f64, &|r| r.floor_rss_kb as f64),
            );
            let peak = show(
                "RSS peak",
                span(b.peak_rss_kb as f64, &|r| r.peak_rss_kb as f64),
            );
            let (lo, hi, _) = span(b.rss_kb as f64, &|r| r.rss_kb as f64);
            println!("  RSS at row   {lo:+6.1}% .. {hi:+6.1}%  (not judged)");
            let (lo, hi, _) = span(b.fds as f64, &|r| r.fds as f64);
            println!("  fds at row   {lo:+6.1}% .. {hi:+6.1}%  (not judged)");
            let fds_floor = show(
                "fds floor",
                span(b.floor_fds as f64, &|r| r.floor_fds as f64),
            );
            (floor && peak, fds_floor)
        }
        _ => {
            println!("flat after warm-up: not enough rows to judge (run longer than the warm-up)");
            (false, false)
        }
    };

    if !stats.wrong_shown.is_empty() {
        println!();
        println!("WRONG answers by case and cause:");
        let mut w: Vec<_> = stats.wrong_by.iter().collect();
        w.sort_by(|a, b| b.1.cmp(a.1));
        for (why, n) in w.iter().take(20) {
            println!("  {n:>7}  {why}");
        }
        println!("first {} in full:", stats.wrong_shown.len());
        for w in &stats.wrong_shown {
            println!("  {w}");
        }
    }

    let mut failures = Vec::new();
    if stats.wrong > 0 {
        failures.push(format!("{} wrong answers", stats.wrong));
    }
    if !rss_flat {
        failures.push("RSS not flat".to_owned());
    }
    if !fds_flat {
        failures.push("fds not flat".to_owned());
    }
    if stats.ok == 0 {
        failures.push("no request answered".to_owned());
    }
    if version_end < 2.0 {
        failures.push("no snapshot swap was applied".to_owned());
    }
    if timeline.emptied.is_some() && !timeline.emptied_refused {
        failures.push("the emptied snapshot was not refused by the guard".to_owned());
    }
    if timeline.hups_sent > 0 && reloads_ok < 1.0 {
        failures.push("no SIGHUP reload was applied".to_owned());
    }
    if reloads_bad > 0.0 {
        failures.push("a reload was rejected".to_owned());
    }
    if args.duration > args.jwks_every + args.jwks_switch_after + args.jwks_remove_after
        && timeline.rotations == 0
    {
        failures.push("no JWKS rotation completed".to_owned());
    }
    if !clean_exit {
        failures.push(format!("streetgate did not exit cleanly: {exit}"));
    }
    println!();
    if failures.is_empty() {
        println!("PASS: 0 wrong answers, RSS and fds flat, every stressor applied");
        true
    } else {
        println!("FAIL: {}", failures.join("; "));
        false
    }
}
