//! Grants snapshot format v1, exactly as DESIGN.md gives it: the contract with whatever
//! publishes grants.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsDocument {
    pub version: u64,
    pub generated_at: String,
    #[serde(default)]
    pub organisations: Vec<OrganisationDoc>,
    #[serde(default)]
    pub users: Vec<UserDoc>,
    #[serde(default)]
    pub works: Vec<WorkDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganisationDoc {
    pub swa_code: String,
    pub name: String,
    pub kind: OrgKind,
    pub status: OrgStatus,
    #[serde(default)]
    pub workstreams: Vec<String>,
    #[serde(default)]
    pub contractors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    Promoter,
    HighwayAuthority,
    Contractor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgStatus {
    Active,
    Suspended,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDoc {
    pub sub: String,
    pub organisation: String,
    #[serde(default)]
    pub tokens_valid_after: Option<String>,
    /// Organisation the grants are for → workstream prefix → access level.
    #[serde(default)]
    pub workstreams: BTreeMap<String, BTreeMap<String, AccessLevel>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkDoc {
    pub work_reference_number: String,
    pub promoter: String,
    pub highway_authority: String,
    pub workstream: String,
}

/// Workstream access, ordered so that `>=` compares strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLevel {
    #[default]
    NoAccess,
    ReadOnly,
    FullWrite,
}
