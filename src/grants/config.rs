//! The `grants` section: where snapshots come from, how stale one may get, and the snapshot
//! guard's bounds.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::problems::Problems;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {
    pub source: GrantsSource,
    /// Maximum age since the last successful fetch before the snapshot is stale.
    #[serde(default = "defaults::max_age", with = "humantime_serde")]
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
pub enum GrantsSource {
    File {
        path: PathBuf,
        #[serde(default = "defaults::poll", with = "humantime_serde")]
        poll_interval: Duration,
    },
    Url {
        url: String,
        #[serde(default = "defaults::poll", with = "humantime_serde")]
        poll_interval: Duration,
        #[serde(default = "defaults::backoff_max", with = "humantime_serde")]
        max_backoff: Duration,
        /// Ask the source to hold each request this long until something changes
        /// (`Prefer: wait=N`); off unless set.
        #[serde(default, with = "humantime_serde")]
        long_poll: Option<Duration>,
        /// Largest document accepted, counted after decompression.
        #[serde(default = "defaults::max_document_bytes")]
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

impl GrantsConfig {
    /// Reports every problem of the section with its location.
    pub fn check(&self, problems: &mut Problems) {
        check_source(&self.source, problems);
        check_guard(self, problems);
    }
}

/// The snapshot guard's keys (the `guard` module).
fn check_guard(g: &GrantsConfig, problems: &mut Problems) {
    if let Some(r) = g.max_revocation_ratio
        && !(r > 0.0 && r <= 1.0)
    {
        problems.push(
            "grants.max_revocation_ratio",
            format!("{r} is not a share above 0 and at most 1"),
        );
    }
    if g.max_revocation_ratio.is_some() && g.guard_window == 0 {
        problems.push(
            "grants.guard_window",
            "0 turns the guard off, so max_revocation_ratio could never apply",
        );
    }
    if let Some(path) = &g.accept_token_file {
        match std::fs::read_to_string(path) {
            Ok(t) if t.trim().len() >= 16 => {}
            Ok(_) => problems.push(
                "grants.accept_token_file",
                "the token must be at least 16 characters",
            ),
            Err(_) => problems.push(
                "grants.accept_token_file",
                format!("{} is not a readable file", path.display()),
            ),
        }
    }
}

/// Longest long-poll wait accepted: longer holds outlast the idle timeouts of most proxies.
const MAX_LONG_POLL: std::time::Duration = std::time::Duration::from_secs(300);

fn check_source(source: &GrantsSource, problems: &mut Problems) {
    let GrantsSource::Url {
        long_poll,
        max_document_bytes,
        ..
    } = source
    else {
        return;
    };
    if let Some(wait) = long_poll
        && (*wait < std::time::Duration::from_secs(1) || *wait > MAX_LONG_POLL)
    {
        problems.push(
            "grants.source.url.long_poll",
            format!("must be between 1s and {}s", MAX_LONG_POLL.as_secs()),
        );
    }
    if *max_document_bytes == 0 {
        problems.push("grants.source.url.max_document_bytes", "must be above 0");
    }
}

pub mod defaults {
    use super::*;

    pub fn guard_window() -> usize {
        1024
    }
    pub fn max_age() -> Duration {
        Duration::from_secs(300)
    }
    pub fn poll() -> Duration {
        Duration::from_secs(10)
    }
    pub fn backoff_max() -> Duration {
        Duration::from_secs(60)
    }
    pub fn max_document_bytes() -> u64 {
        1 << 30
    }
}
