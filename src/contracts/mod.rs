//! The contract-platform model (seed 003: FastDraft-style NEC4/JCT contract management), the
//! second domain model beside Street Manager's, selected by the config's `model: contracts`.
//!
//! Three tiers decide:
//! - **user type** (system-wide, one per user): a table in config (`contracts.user_types`) of
//!   system permissions, read access without membership (`reads`: all, hub, supplier) and the
//!   order in which user types may be assigned;
//! - **party** per contract (Client, Project Manager, Supervisor, Supplier) and
//! - **role** per contract (Manager, Support, Read Only, Cost Manager, Site Agent), whose
//!   default permissions each contract's template may replace per party and role.
//!
//! The snapshot side (contracts, users, hubs) is an optional `contracts` section of the grants
//! document (`snapshot`); the decision is `authz::contract`.

pub mod snapshot;
pub mod user_types;

use serde::Deserialize;

/// A party to a contract: whom the user acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Party {
    Client,
    ProjectManager,
    Supervisor,
    Supplier,
}

/// A user's authority to act for its party on one contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum ContractRole {
    Manager,
    Support,
    ReadOnly,
    CostManager,
    SiteAgent,
}

impl Party {
    pub const ALL: [Party; 4] = [
        Party::Client,
        Party::ProjectManager,
        Party::Supervisor,
        Party::Supplier,
    ];
}

impl ContractRole {
    pub const ALL: [ContractRole; 5] = [
        ContractRole::Manager,
        ContractRole::Support,
        ContractRole::ReadOnly,
        ContractRole::CostManager,
        ContractRole::SiteAgent,
    ];

    /// Permissions a role has unless the contract's template says otherwise (seed 003).
    /// Cost Manager and Site Agent exist for custom sets, so by default they only read.
    pub fn default_permissions(self) -> &'static [&'static str] {
        match self {
            ContractRole::Manager => &["read", "create", "communicate"],
            ContractRole::Support => &["read", "create"],
            ContractRole::ReadOnly | ContractRole::CostManager | ContractRole::SiteAgent => {
                &["read"]
            }
        }
    }
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::fmt::Display for ContractRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// A permission name as configs and templates write it: `read`, `communicate`, `approve_payment`.
pub fn is_permission_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
