//! streetgate: an authorization sidecar for street-works APIs.
//!
//! A request's path through the code, in order:
//! `listener` (accept, TLS, HTTP limits) → `normalize` (request target and framing checks) →
//! `route` (radix-tree match) → `authn` (JWT → identity) → `authz` (the pure decision) →
//! `forward` (upstream client) → `filter` (response rows and redaction).
//! Beside them: `grants` (the snapshot store), `config`, `telemetry`, `admin`.
//! `proxy` strings the phases together; `error` is the one place rejections become responses.

pub mod admin;
pub mod app;
pub mod authn;
pub mod authz;
pub mod body;
pub mod check;
pub mod cli;
pub mod clock;
pub mod codes;
pub mod config;
pub mod contracts;
pub mod error;
pub mod fetch;
pub mod filter;
pub mod forward;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod grants;
pub mod guard;
pub mod http1;
mod json_str;
pub mod listener;
pub mod model;
pub mod normalize;
pub mod problems;
pub mod proxy;
pub mod publish;
pub mod ratelimit;
pub mod reason;
pub mod recycle;
pub mod reload;
pub mod route;
pub mod telemetry;
