//! The `check` section: where the decision API listens and whom it believes.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::raw::RawConfig;
use crate::problems::Problems;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// HTTP decision API: Envoy ext_authz HTTP mode under `/envoy`, ingress-nginx `auth-url`,
    /// nginx `auth_request` and Traefik `forwardAuth` at `/forward-auth`.
    pub addr: SocketAddr,
    /// Envoy ext_authz gRPC (`envoy.service.auth.v3.Authorization/Check`); off when absent.
    #[serde(default)]
    pub grpc_addr: Option<SocketAddr>,
    /// Peers (CIDRs) whose `X-Original-*` / `X-Forwarded-Uri`/`-Method` headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl CheckConfig {
    /// Whether a TCP peer may report the original request in forward-auth headers.
    pub fn trusted(&self, peer: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

/// Problems with the `check` section, reported with the rest of the config's.
pub fn validate(raw: &RawConfig, problems: &mut Problems) {
    let Some(check) = &raw.check else { return };
    let taken = [
        ("listen.addr", Some(raw.listen.addr)),
        ("admin.addr", Some(raw.admin.addr)),
    ];
    for (at, addr) in [
        ("check.addr", Some(check.addr)),
        ("check.grpc_addr", check.grpc_addr),
    ] {
        let Some(addr) = addr else { continue };
        for (other, used) in taken {
            if used == Some(addr) && addr.port() != 0 {
                problems.push(at, format!("{addr} is already {other}"));
            }
        }
    }
    if check.grpc_addr == Some(check.addr) && check.addr.port() != 0 {
        problems.push("check.grpc_addr", "must differ from check.addr");
    }
    for (i, net) in check.trusted_proxies.iter().enumerate() {
        if net.trunc() != *net {
            problems.push(
                format!("check.trusted_proxies[{i}]"),
                format!(
                    "{net} has host bits set; write {} (or a /32 or /128 for one host)",
                    net.trunc()
                ),
            );
        }
    }
}
