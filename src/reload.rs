//! Hot reload: on SIGHUP, or when the config file (or the TLS files it names) changes with
//! `watch: true`, read and validate the new config off the async workers, refuse changes to what
//! only a restart can change, then swap the TLS config and the whole `Runtime`. In-flight
//! requests keep the `Runtime` they loaded; on any failure nothing changes.
//!
//! What a reload changes: routes and APIs, `listen.max_body_bytes` and `body_read_timeout`
//! (read per request), the TLS certificate and key (paths and contents), `decision_log`,
//! `shadow`, `rate_limit`, `watch`. What needs a restart (refused with `result="invalid"`):
//! listener addresses and connection limits, `runtime.workers` and `runtime.http1` (the serving
//! threads and the HTTP/1 server and client are chosen at start), the per-connection body budget among them (the
//! listener and its HTTP builder are set up once), turning TLS on or off, `shutdown`, `auth`
//! (the authenticator owns the JWKS refresh task and the token cache; rebuilding it would drop
//! every cached verification at once) and `grants` (its source task and store are started
//! once).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::ServerConfig;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError, Problems};
use crate::listener::tls::{self, TlsError};
use crate::proxy::{Gateway, Runtime};
use crate::telemetry::events::ConfigReload;

/// How often `watch: true` looks at the files.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the config was not loaded from a file; there is nothing to reload")]
    NoFile,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config ({} problems)", .0.len())]
    Invalid(#[source] Problems),
    #[error("the new config changes what only a restart can change ({} problems)", .0.len())]
    NeedsRestart(#[source] Problems),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("the reload task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl ReloadError {
    /// The `result` label of `streetgate_config_reload_total`.
    pub fn result(&self) -> ConfigReload {
        match self {
            ReloadError::Invalid(_) | ReloadError::NeedsRestart(_) | ReloadError::Tls(_) => {
                ConfigReload::Invalid
            }
            ReloadError::NoFile | ReloadError::Read { .. } | ReloadError::Task(_) => {
                ConfigReload::Error
            }
        }
    }
}

/// Everything a reload swaps, and the file it reads.
pub struct Reloader {
    gateway: Arc<Gateway>,
    tls: Arc<ArcSwapOption<ServerConfig>>,
    path: Option<PathBuf>,
    /// One reload at a time, so a slow one cannot swap an older file in after a newer one.
    serial: Mutex<()>,
    /// How many times `spawn_watch` has compared the files: a test waits on it to know the
    /// watcher looked again, instead of sleeping past `WATCH_EVERY`.
    watch_checks: AtomicU64,
}

impl Reloader {
    pub fn new(
        gateway: Arc<Gateway>,
        tls: Arc<ArcSwapOption<ServerConfig>>,
        path: Option<PathBuf>,
    ) -> Reloader {
        Reloader {
            gateway,
            tls,
            path,
            serial: Mutex::new(()),
            watch_checks: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// How many times the `watch: true` watcher has compared the files so far.
    pub fn watch_checks(&self) -> u64 {
        self.watch_checks.load(Ordering::Relaxed)
    }

    /// Reloads the config file; logs and counts the outcome. On error the old config stays.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let result = self.try_reload().await;
        let metrics = &self.gateway.metrics;
        match &result {
            Ok(routes) => {
                metrics.config_reloaded(ConfigReload::Ok);
                tracing::info!(routes, "config reloaded");
            }
            Err(e) => {
                metrics.config_reloaded(e.result());
                // Every problem at once (or the underlying error), so one edit can fix them all.
                let detail = match e {
                    ReloadError::Invalid(p) | ReloadError::NeedsRestart(p) => p.to_string(),
                    other => std::error::Error::source(other)
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                };
                tracing::error!(
                    error = %e,
                    detail = detail.trim_end(),
                    "config reload rejected; the previous config stays in force"
                );
            }
        }
        result.map(|_| ())
    }

    async fn try_reload(&self) -> Result<usize, ReloadError> {
        let path = self.path.clone().ok_or(ReloadError::NoFile)?;
        let _serial = self.serial.lock().await;
        let current = self.gateway.runtime.load_full();
        let old = Arc::clone(&current);
        let (config, tls) = tokio::task::spawn_blocking(move || prepare(&path, &old.config))
            .await
            .map_err(ReloadError::Task)??;
        let routes = config.router.routes().len();
        let mut runtime = Runtime::new(config, &self.gateway.metrics);
        if runtime.config.rate_limit == current.config.rate_limit {
            // Same rates: keep the buckets, so a reload is not a free burst for everyone.
            runtime.limiter = current.limiter.clone();
        }
        self.tls.store(tls);
        self.gateway.runtime.store(Arc::new(runtime));
        Ok(routes)
    }
}

/// Reads and validates the file, checks it against the config in force, loads TLS files.
fn prepare(
    path: &Path,
    current: &Config,
) -> Result<(Config, Option<Arc<ServerConfig>>), ReloadError> {
    let config = Config::load(path).map_err(|e| match e {
        ConfigError::Read { path, source } => ReloadError::Read { path, source },
        ConfigError::Invalid(problems) => ReloadError::Invalid(problems),
    })?;
    let fixed = needs_restart(current, &config);
    if !fixed.is_empty() {
        return Err(ReloadError::NeedsRestart(fixed));
    }
    let tls = match &config.listen.tls {
        Some(t) => Some(tls::server_config(&t.cert, &t.key)?),
        None => None,
    };
    Ok((config, tls))
}

/// Every difference between `old` and `new` that a reload cannot apply.
pub fn needs_restart(old: &Config, new: &Config) -> Problems {
    let mut problems = Problems::default();
    let (o, n) = (&old.listen, &new.listen);
    let tls =
        |l: &crate::listener::config::ListenConfig| if l.tls.is_some() { "on" } else { "off" };
    unchanged(&mut problems, "listen.addr", &o.addr, &n.addr);
    unchanged(&mut problems, "listen.tls", &tls(o), &tls(n));
    unchanged(
        &mut problems,
        "listen.max_header_bytes",
        &o.max_header_bytes,
        &n.max_header_bytes,
    );
    unchanged(
        &mut problems,
        "listen.max_headers",
        &o.max_headers,
        &n.max_headers,
    );
    unchanged(
        &mut problems,
        "listen.header_read_timeout",
        &o.header_read_timeout,
        &n.header_read_timeout,
    );
    unchanged(
        &mut problems,
        "listen.idle_timeout",
        &o.idle_timeout,
        &n.idle_timeout,
    );
    unchanged(
        &mut problems,
        "listen.max_buffered_body_bytes_per_connection",
        &o.buffered_body_budget(),
        &n.buffered_body_budget(),
    );
    unchanged(
        &mut problems,
        "admin.addr",
        &old.admin.addr,
        &new.admin.addr,
    );
    // Whole sections: their values may hold secrets' locations, so they are not echoed.
    for (section, same) in [
        ("auth", old.auth == new.auth),
        ("grants", old.grants == new.grants),
        ("check", old.check == new.check),
        ("otel", old.otel == new.otel),
    ] {
        if !same {
            refuse(&mut problems, section, "section changed");
        }
    }
    unchanged(
        &mut problems,
        "runtime.workers",
        &old.runtime.workers,
        &new.runtime.workers,
    );
    unchanged(
        &mut problems,
        "runtime.http1",
        &old.runtime.http1,
        &new.runtime.http1,
    );
    unchanged(
        &mut problems,
        "shutdown.drain",
        &old.shutdown.drain,
        &new.shutdown.drain,
    );
    problems
}

fn unchanged<T: PartialEq + std::fmt::Debug>(
    problems: &mut Problems,
    location: &str,
    old: &T,
    new: &T,
) {
    if old != new {
        refuse(problems, location, &format!("{old:?} -> {new:?}"));
    }
}

fn refuse(problems: &mut Problems, location: &str, change: &str) {
    problems.push(
        location,
        format!("cannot change without a restart ({change}); the running value stays"),
    );
}

/// With `watch: true` in the config in force, reloads when the config file or its TLS files
/// change. Paths are looked up afresh every time (never an open inode): a Kubernetes ConfigMap
/// mount replaces a `..data` symlink, not the file.
pub fn spawn_watch(reloader: Arc<Reloader>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(path) = reloader.path.clone() else {
            return;
        };
        let mut last = fingerprint(&path, &reloader).await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            if !reloader.gateway.runtime.load().config.watch {
                continue;
            }
            let now = fingerprint(&path, &reloader).await;
            if now != last {
                last = now;
                tracing::info!(path = %path.display(), "config or TLS files changed; reloading");
                // Logged and counted inside; a bad file is retried only once it changes again.
                let _ = reloader.reload().await;
            }
            reloader.watch_checks.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Size, modification time and content hash of the config file and the TLS files it names.
async fn fingerprint(path: &Path, reloader: &Reloader) -> u64 {
    let mut files = vec![path.to_owned()];
    if let Some(tls) = &reloader.gateway.runtime.load().config.listen.tls {
        files.push(tls.cert.clone());
        files.push(tls.key.clone());
    }
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        match tokio::fs::metadata(&file).await {
            Ok(meta) => {
                meta.len().hash(&mut hasher);
                meta.modified().ok().hash(&mut hasher);
            }
            Err(e) => e.kind().hash(&mut hasher),
        }
        tokio::fs::read(&file).await.ok().hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::from_yaml(&format!(
            r#"
listen: {{addr: "127.0.0.1:8080"}}
admin: {{addr: "127.0.0.1:9901"}}
auth:
  hs256_secret: {{env: UNUSED}}
  algorithms: [HS256]
  issuer: i
  audience: a
{extra}
apis:
  - name: work
    upstream: http://127.0.0.1:1
    routes:
      - {{id: Status, route: GET /status, allow: public}}
"#
        ))
        .unwrap()
    }

    #[test]
    fn routing_and_policy_changes_are_reloadable() {
        let old = config("");
        let new = config(
            "shadow: true\nwatch: true\nrate_limit: {per_ip: 5}\ndecision_log: {allow_sample_rate: 0.5}",
        );
        assert!(needs_restart(&old, &new).is_empty());
    }

    #[test]
    fn every_fixed_change_is_reported() {
        let old = config("");
        let new = Config::from_yaml(
            r#"
listen: {addr: "127.0.0.1:8081", max_headers: 10}
admin: {addr: "127.0.0.1:9902"}
auth:
  hs256_secret: {env: UNUSED}
  algorithms: [HS256]
  issuer: other
  audience: a
shutdown: {drain: 1s}
runtime: {workers: 3, http1: native}
apis:
  - name: work
    upstream: http://127.0.0.1:1
    routes:
      - {id: Status, route: GET /status, allow: public}
"#,
        )
        .unwrap();
        let problems = needs_restart(&old, &new);
        let locations: Vec<&str> = problems.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(
            locations,
            [
                "listen.addr",
                "listen.max_headers",
                "admin.addr",
                "auth",
                "runtime.workers",
                "runtime.http1",
                "shutdown.drain"
            ]
        );
        assert_eq!(
            problems.iter().next().unwrap().message,
            "cannot change without a restart (127.0.0.1:8080 -> 127.0.0.1:8081); the running value stays"
        );
    }
}
