//! `streetgate demo --scenario contracts`: the shipped `config/contracts.yaml` in front of a
//! sample contracts API, with a small contracts snapshot (seed 003).

use super::keys::{DemoKeys, ISSUER};
use super::{DemoError, Step};

const CONFIG: &str = include_str!("../../../config/contracts.yaml");
pub(super) const GRANTS: &str = include_str!("../../../config/demo-contracts-grants.json");

/// The shipped config pointed at the demo's ports, keys, snapshot file and sample API.
pub(super) fn config(
    port: u16,
    admin_port: u16,
    jwks: &str,
    grants: &str,
    upstream: &str,
) -> String {
    CONFIG
        .replace("addr: 0.0.0.0:8080", &format!("addr: 127.0.0.1:{port}"))
        .replace(
            "addr: 127.0.0.1:9901",
            &format!("addr: 127.0.0.1:{admin_port}"),
        )
        .replace(
            "  jwks:\n    url:\n      url: https://idp.example/.well-known/jwks.json\n",
            &format!("  jwks: {{file: {jwks}}}\n  algorithms: [ES256]\n"),
        )
        .replace("issuer: https://idp.example", &format!("issuer: {ISSUER}"))
        .replace(
            "    url:\n      url: https://grants.example/snapshot.json\n",
            &format!("    file: {{path: {grants}, poll_interval: 2s}}\n  max_age: 1h\n"),
        )
        .replace("http://127.0.0.1:3000", upstream)
}

pub(super) fn tokens(
    keys: &DemoKeys,
    now: u64,
) -> Result<Vec<(&'static str, &'static str, String)>, DemoError> {
    Ok(vec![
        (
            "ANN",
            "Ann (Client Co): Client Manager on K1 and K2; K2's template took `communicate` from Client Managers",
            keys.contracts_token("ann", "CLIENTCO", now)?,
        ),
        (
            "SAM",
            "Sam (Dig Co): Supplier Support on K1",
            keys.contracts_token("sam", "DIGCO", now)?,
        ),
        (
            "VIC",
            "Vic (Client Co): View All Hub, hub north (K1 is north, K2 south)",
            keys.contracts_token("vic", "CLIENTCO", now)?,
        ),
        (
            "SUE",
            "Sue (Client Co): Super User",
            keys.contracts_token("sue", "CLIENTCO", now)?,
        ),
    ])
}

pub const STEPS: &[Step] = &[
    Step {
        what: "ALLOWED: Ann, Client Manager on K1, sends a communication",
        method: "POST",
        path: "/api/contracts/K1/communications/c1/send",
        token: Some("ANN"),
        body: None,
        expect: 200,
    },
    Step {
        what: "DENIED 403 contract_permission_missing: on K2 the template took that from Client Managers",
        method: "POST",
        path: "/api/contracts/K2/communications/c1/send",
        token: Some("ANN"),
        body: None,
        expect: 403,
    },
    Step {
        what: "ALLOWED: Sam, Supplier Support on K1, drafts a communication...",
        method: "POST",
        path: "/api/contracts/K1/communications",
        token: Some("SAM"),
        body: None,
        expect: 200,
    },
    Step {
        what: "DENIED 403 contract_permission_missing: ...but Support may not send it",
        method: "POST",
        path: "/api/contracts/K1/communications/c1/send",
        token: Some("SAM"),
        body: None,
        expect: 403,
    },
    Step {
        what: "ALLOWED (user_type_read): Vic reads K1 in her hub without being on it",
        method: "GET",
        path: "/api/contracts/K1",
        token: Some("VIC"),
        body: None,
        expect: 200,
    },
    Step {
        what: "DENIED 403 contract_not_member: K2 is in another hub",
        method: "GET",
        path: "/api/contracts/K2",
        token: Some("VIC"),
        body: None,
        expect: 403,
    },
    Step {
        what: "ALLOWED: the contract list, cut to what Vic reads (K1 only)",
        method: "GET",
        path: "/api/contracts",
        token: Some("VIC"),
        body: None,
        expect: 200,
    },
    Step {
        what: "DENIED 403 user_type_not_assignable: a Super User may only create General Users",
        method: "PUT",
        path: "/api/users/u9",
        token: Some("SUE"),
        body: Some(r#"{"user_type":"SiteAdministrator"}"#),
        expect: 403,
    },
    Step {
        what: "ALLOWED: Sue makes a user a General User",
        method: "PUT",
        path: "/api/users/u9",
        token: Some("SUE"),
        body: Some(r#"{"user_type":"GeneralUser"}"#),
        expect: 200,
    },
    Step {
        what: "DENIED 403 system_permission_missing: only Site Administrators delete attachments",
        method: "DELETE",
        path: "/api/contracts/K1/attachments/a1",
        token: Some("SUE"),
        body: None,
        expect: 403,
    },
    Step {
        what: "DENIED 401 token_missing: no token",
        method: "GET",
        path: "/api/contracts/K1",
        token: None,
        body: None,
        expect: 401,
    },
];
