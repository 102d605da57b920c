//! Fixtures for the load benchmarks in `benches/load/`: a realistic grants snapshot, an RS256
//! token signed with the test key, and a snapshot file rewritten with a growing version (to
//! measure latency while snapshots are swapped in).
//!
//! ```text
//! cargo run --release --example bench_fixture -- snapshot OUT --orgs 200 --users 10000 --works 100000
//! cargo run --release --example bench_fixture -- token --key tests/fixtures/keys/rsa1.pem --kid rsa1 \
//!     --sub user-0 --org 0000 --roles Planner --issuer I --audience A
//! cargo run --release --example bench_fixture -- swap OUT --works 1000000 --every 1s --count 30
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "a measuring tool: a panic stops the run where it went wrong"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use streetgate::grants::synthetic::synthetic_document_version;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes a synthetic grants document (format v1).
    Snapshot {
        out: PathBuf,
        #[arg(long, default_value_t = 200)]
        orgs: usize,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 100_000)]
        works: usize,
        #[arg(long, default_value_t = 1)]
        version: u64,
    },
    /// Prints an RS256 token for one user, valid for `ttl` seconds.
    Token {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        kid: String,
        #[arg(long)]
        sub: String,
        #[arg(long)]
        org: String,
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        audience: String,
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Rewrites `out` every `every` with the next version of the same document, `count` times
    /// (atomically: write beside it, then rename).
    Swap {
        out: PathBuf,
        #[arg(long, default_value_t = 200)]
        orgs: usize,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 1_000_000)]
        works: usize,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
        every: Duration,
        #[arg(long, default_value_t = 30)]
        count: u64,
        /// First version written (must be above the one in force).
        #[arg(long, default_value_t = 2)]
        from_version: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Snapshot {
            out,
            orgs,
            users,
            works,
            version,
        } => {
            let doc = synthetic_document_version(version, orgs, users, works);
            write_atomic(&out, &doc)
        }
        Command::Token {
            key,
            kid,
            sub,
            org,
            roles,
            issuer,
            audience,
            ttl,
        } => {
            let pem = std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?;
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem)?;
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.kid = Some(kid);
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let claims = serde_json::json!({
                "sub": sub, "org": org, "roles": roles,
                "iss": issuer, "aud": audience,
                "iat": now, "nbf": now, "exp": now + ttl,
            });
            println!("{}", jsonwebtoken::encode(&header, &claims, &key)?);
            Ok(())
        }
        Command::Swap {
            out,
            orgs,
            users,
            works,
            every,
            count,
            from_version,
        } => {
            // Generated once; each round only the leading version number changes.
            let template = synthetic_document_version(0, orgs, users, works);
            let rest = template
                .strip_prefix(br#"{"version":0"#)
                .context("synthetic document starts with its version")?;
            let started = Instant::now();
            for i in 0..count {
                let mut doc = format!(r#"{{"version":{}"#, from_version + i).into_bytes();
                doc.extend_from_slice(rest);
                write_atomic(&out, &doc)?;
                let next = every * u32::try_from(i + 1)?;
                std::thread::sleep(next.saturating_sub(started.elapsed()));
            }
            Ok(())
        }
    }
}

fn write_atomic(out: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))?;
    Ok(())
}
