//! The snapshot guard: before a new grants snapshot goes into force, the inputs of the last N
//! decided requests are decided again against the snapshot in force and against the candidate.
//! Flips (allow→deny, deny→allow) are counted and logged by route and reason; with
//! `grants.max_revocation_ratio`, a candidate that would deny more than that share of the
//! recently allowed requests is refused (a publisher bug that empties the grants), and stays
//! pending until a better one arrives or an operator accepts it (`POST /grants/accept`).

mod ring;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::authn::identity::Identity;
use crate::authz::{self, Decision, RequestFacts};
use crate::grants::Snapshot;
use crate::grants::admission::{Admission, Refusal};
use crate::grants::config::GrantsConfig;
use crate::grants::overlay::{CreatedWorks, Works};
use crate::reason::Reason;
use crate::route::Route;
use crate::telemetry::metrics::Metrics;

pub use ring::{Ring, Sample};

/// How many (route, before → after) lines the flip summary logs.
const SUMMARY_LINES: usize = 10;

pub struct Guard {
    ring: Ring,
    max_revocation_ratio: Option<f64>,
    /// Bearer token for `POST /grants/accept`; None: the endpoint is off.
    accept_token: Option<Box<str>>,
    metrics: Metrics,
    /// Replays see no created works: the overlay answers the same under both snapshots, so it
    /// could only hide a flip.
    no_created: CreatedWorks,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read grants.accept_token_file {path}: {source}")]
pub struct AcceptTokenError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What a replay found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Review {
    pub replayed: usize,
    /// Allowed under the snapshot in force.
    pub allowed: usize,
    pub allow_to_deny: usize,
    pub deny_to_allow: usize,
    /// (route, reason before, reason after) → count, flips only.
    pub flips: HashMap<(Arc<str>, Reason, Reason), usize>,
}

impl Guard {
    /// The guard for a `grants` section; None when `guard_window` is 0.
    pub fn from_config(
        grants: &GrantsConfig,
        metrics: &Metrics,
    ) -> Result<Option<Guard>, AcceptTokenError> {
        if grants.guard_window == 0 {
            return Ok(None);
        }
        let accept_token = match &grants.accept_token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| AcceptTokenError {
                    path: path.clone(),
                    source,
                })?;
                Some(text.trim().into())
            }
        };
        Ok(Some(Guard {
            ring: Ring::new(grants.guard_window),
            max_revocation_ratio: grants.max_revocation_ratio,
            accept_token,
            metrics: metrics.clone(),
            no_created: CreatedWorks::default(),
        }))
    }

    /// Remembers a request decided in full (not public routes: no snapshot decides them).
    pub fn record(
        &self,
        route: &Route,
        identity: Option<&Arc<Identity>>,
        facts: &RequestFacts<'_>,
        now: u64,
    ) {
        let Some(identity) = identity else { return };
        self.ring.record(route, identity, facts, now);
    }

    /// Whether `token` is the configured accept token (false when none is configured).
    pub fn accepts(&self, token: &str) -> bool {
        self.accept_token.as_deref().is_some_and(|t| {
            aws_lc_rs::constant_time::verify_slices_are_equal(t.as_bytes(), token.as_bytes())
                .is_ok()
        })
    }

    pub fn accept_enabled(&self) -> bool {
        self.accept_token.is_some()
    }

    /// Decides every sample under both snapshots.
    pub fn review(&self, old: &Snapshot, new: &Snapshot) -> Review {
        let mut review = Review::default();
        for s in self.ring.samples() {
            let before = self.replay(&s, old);
            let after = self.replay(&s, new);
            review.replayed += 1;
            review.allowed += usize::from(before.allowed());
            if before.allowed() == after.allowed() {
                continue;
            }
            if before.allowed() {
                review.allow_to_deny += 1;
            } else {
                review.deny_to_allow += 1;
            }
            *review
                .flips
                .entry((Arc::clone(&s.route), before.reason, after.reason))
                .or_default() += 1;
        }
        review
    }

    fn replay(&self, s: &Sample, snapshot: &Snapshot) -> Decision {
        let works = Works {
            snapshot,
            created: &self.no_created,
        };
        authz::decide(&s.rule, Some(&s.identity), Some(works), &s.facts(), s.now)
    }
}

impl Admission for Guard {
    fn admit(&self, old: &Snapshot, new: &Snapshot) -> Result<(), Refusal> {
        let review = self.review(old, new);
        let flips = &self.metrics.guard_flips;
        flips
            .with_label_values(&["allow_to_deny"])
            .inc_by(review.allow_to_deny as u64);
        flips
            .with_label_values(&["deny_to_allow"])
            .inc_by(review.deny_to_allow as u64);
        let refusal = self.max_revocation_ratio.and_then(|max_ratio| {
            let share = review.allow_to_deny as f64 / review.allowed.max(1) as f64;
            (share > max_ratio).then_some(Refusal {
                revoked: review.allow_to_deny,
                allowed: review.allowed,
                max_ratio,
            })
        });
        let summary = summary(&review);
        if review.allow_to_deny + review.deny_to_allow > 0 {
            tracing::warn!(
                from = old.version,
                to = new.version,
                replayed = review.replayed,
                allow_to_deny = review.allow_to_deny,
                deny_to_allow = review.deny_to_allow,
                refused = refusal.is_some(),
                flips = %summary,
                "snapshot guard: decisions that would flip"
            );
        } else {
            tracing::info!(
                from = old.version,
                to = new.version,
                replayed = review.replayed,
                "snapshot guard: no decision flips"
            );
        }
        match refusal {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }
}

/// `route: before → after ×n`, most frequent first.
fn summary(review: &Review) -> String {
    let mut lines: Vec<_> = review.flips.iter().collect();
    let key = |k: &(Arc<str>, Reason, Reason)| (k.0.clone(), k.1.as_str(), k.2.as_str());
    lines.sort_by(|a, b| b.1.cmp(a.1).then_with(|| key(a.0).cmp(&key(b.0))));
    lines
        .iter()
        .take(SUMMARY_LINES)
        .map(|((route, before, after), n)| {
            format!("{route}: {} → {} ×{n}", before.as_str(), after.as_str())
        })
        .collect::<Vec<_>>()
        .join("; ")
}
