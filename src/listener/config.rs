//! The `listen` section: the address, TLS and the limits every client connection gets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::problems::Problems;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub addr: SocketAddr,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
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

impl ListenConfig {
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
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ListenConfig {
    /// Reports every problem of the section with its location.
    pub fn check(&self, problems: &mut Problems) {
        let l = self;
        if l.max_headers == 0 {
            problems.push("listen.max_headers", "must be at least 1");
        }
        if l.max_header_bytes < 1024 {
            problems.push("listen.max_header_bytes", "must be at least 1024");
        }
        if l.header_read_timeout.is_zero() {
            problems.push("listen.header_read_timeout", "must be above zero");
        }
        if l.idle_timeout.is_zero() {
            problems.push("listen.idle_timeout", "must be above zero");
        }
        if l.body_read_timeout.is_zero() {
            problems.push("listen.body_read_timeout", "must be above zero");
        }
        if l.buffered_body_budget() < l.max_body_bytes {
            problems.push(
                "listen.max_buffered_body_bytes_per_connection",
                "must be at least listen.max_body_bytes",
            );
        }
        for (i, net) in l.trusted_proxies.iter().enumerate() {
            // `10.0.0.1/8` is most likely a typo for a single host or for `10.0.0.0/8`.
            if net.trunc() != *net {
                problems.push(
                    format!("listen.trusted_proxies[{i}]"),
                    format!(
                        "{net} has host bits set; write {} (or a /32 or /128 for one host)",
                        net.trunc()
                    ),
                );
            }
        }
        if let Some(tls) = &l.tls {
            for (field, path) in [("cert", &tls.cert), ("key", &tls.key)] {
                if !path.is_file() {
                    problems.push(
                        format!("listen.tls.{field}"),
                        format!("{} is not a readable file", path.display()),
                    );
                }
            }
        }
    }
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
}
