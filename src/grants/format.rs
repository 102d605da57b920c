//! Grants snapshot format v1, exactly as DESIGN.md gives it: the contract with whatever
//! publishes grants.
//!
//! Strings that occur once per work or user borrow from the input bytes (`Cow`), so parsing a
//! million works does not allocate a million times. Values that validation must judge (codes,
//! timestamps, access levels) are kept as written, so every bad one can be reported at once
//! instead of serde stopping at the first.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsDocument<'a> {
    pub version: u64,
    pub generated_at: String,
    #[serde(default)]
    pub organisations: Vec<OrganisationDoc>,
    #[serde(default, borrow)]
    pub users: Vec<UserDoc<'a>>,
    #[serde(default, borrow)]
    pub works: Vec<WorkDoc<'a>>,
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
pub struct UserDoc<'a> {
    #[serde(borrow)]
    pub sub: Cow<'a, str>,
    #[serde(borrow)]
    pub organisation: Cow<'a, str>,
    #[serde(default)]
    pub tokens_valid_after: Option<String>,
    /// Organisation the grants are for → workstream prefix → access level.
    #[serde(default)]
    pub workstreams: GrantMap,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkDoc<'a> {
    #[serde(borrow)]
    pub work_reference_number: Cow<'a, str>,
    #[serde(borrow)]
    pub promoter: Cow<'a, str>,
    #[serde(borrow)]
    pub highway_authority: Cow<'a, str>,
    #[serde(borrow)]
    pub workstream: Cow<'a, str>,
}

/// `users[].workstreams` in document order with repeated keys kept: a JSON object may repeat a
/// key, and a map type would silently keep the last one, hiding a contradictory grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantMap(pub Vec<OrgGrants>);

/// The grants a user holds for one organisation: (workstream, access level) as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgGrants {
    pub organisation: String,
    pub workstreams: Vec<(String, String)>,
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

// === impl AccessLevel ===

impl AccessLevel {
    pub fn parse(s: &str) -> Option<AccessLevel> {
        match s {
            "no-access" => Some(AccessLevel::NoAccess),
            "read-only" => Some(AccessLevel::ReadOnly),
            "full-write" => Some(AccessLevel::FullWrite),
            _ => None,
        }
    }
}

// === impl GrantMap ===

impl<'de> Deserialize<'de> for GrantMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Outer;
        impl<'de> Visitor<'de> for Outer {
            type Value = GrantMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of organisation → {workstream → access level}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GrantMap, A::Error> {
                let mut out = Vec::new();
                while let Some(organisation) = map.next_key::<String>()? {
                    let Pairs(workstreams) = map.next_value()?;
                    out.push(OrgGrants {
                        organisation,
                        workstreams,
                    });
                }
                Ok(GrantMap(out))
            }
        }
        d.deserialize_map(Outer)
    }
}

/// A JSON object of strings as its (key, value) pairs, repeats included.
struct Pairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of workstream → access level")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4).min(64));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    out.push(pair);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}
