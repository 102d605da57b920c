//! Grants snapshot format v1, exactly as DESIGN.md gives it: the contract with whatever
//! publishes grants.
//!
//! Strings that occur once per work or user borrow from the input bytes (`Cow`), and a user's
//! grants stay raw JSON until validation and build read them one user at a time, so parsing a
//! million works and 100k users leaves no garbage of small allocations behind (the allocator
//! would keep it resident). Values that validation must judge (codes, timestamps, access
//! levels) are kept as written, so every bad one can be reported at once instead of serde
//! stopping at the first.

use crate::json_str::CowStr as Str;
use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

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

/// A delta: the changes from version `since` to `version`. Upserts are whole v1 entries that
/// replace any entry with the same key; deletes name keys.
#[derive(Debug, Clone)]
pub struct DeltaDocument<'a> {
    pub version: u64,
    pub since: u64,
    pub generated_at: String,
    pub upsert: Upserts<'a>,
    pub delete: Deletes,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upserts<'a> {
    #[serde(default)]
    pub organisations: Vec<OrganisationDoc>,
    #[serde(default, borrow)]
    pub users: Vec<UserDoc<'a>>,
    #[serde(default, borrow)]
    pub works: Vec<WorkDoc<'a>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deletes {
    #[serde(default)]
    pub organisations: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub works: Vec<String>,
}

/// What a source may answer: a full document, or a delta (told apart by `since`).
#[derive(Debug, Clone)]
pub enum Update<'a> {
    Full(GrantsDocument<'a>),
    Delta(DeltaDocument<'a>),
}

/// Either kind of document, as read, before it is told which it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnyDocument<'a> {
    pub version: u64,
    pub generated_at: String,
    #[serde(default)]
    pub since: Option<u64>,
    #[serde(default)]
    pub organisations: Option<Vec<OrganisationDoc>>,
    #[serde(default, borrow)]
    pub users: Option<Vec<UserDoc<'a>>>,
    #[serde(default, borrow)]
    pub works: Option<Vec<WorkDoc<'a>>>,
    #[serde(default, borrow)]
    pub upsert: Option<Upserts<'a>>,
    #[serde(default)]
    pub delete: Option<Deletes>,
}

impl<'a> AnyDocument<'a> {
    /// Which document this is; `Err` names the members that do not belong together.
    pub(crate) fn into_update(self) -> Result<Update<'a>, &'static str> {
        match self.since {
            Some(since) => {
                if self.organisations.is_some() || self.users.is_some() || self.works.is_some() {
                    return Err("a delta carries its entries in `upsert` and `delete`");
                }
                Ok(Update::Delta(DeltaDocument {
                    version: self.version,
                    since,
                    generated_at: self.generated_at,
                    upsert: self.upsert.unwrap_or_default(),
                    delete: self.delete.unwrap_or_default(),
                }))
            }
            None => {
                if self.upsert.is_some() || self.delete.is_some() {
                    return Err("`upsert` and `delete` need `since`");
                }
                Ok(Update::Full(GrantsDocument {
                    version: self.version,
                    generated_at: self.generated_at,
                    organisations: self.organisations.unwrap_or_default(),
                    users: self.users.unwrap_or_default(),
                    works: self.works.unwrap_or_default(),
                }))
            }
        }
    }
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
    #[serde(default, borrow)]
    pub tokens_valid_after: Option<Cow<'a, str>>,
    /// Organisation the grants are for → workstream prefix → access level; read with `grants`.
    #[serde(default, borrow)]
    pub workstreams: Option<&'a RawValue>,
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
pub struct GrantMap<'a>(pub Vec<OrgGrants<'a>>);

/// The grants a user holds for one organisation: (workstream, access level) as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgGrants<'a> {
    pub organisation: Cow<'a, str>,
    pub workstreams: Vec<(Cow<'a, str>, Cow<'a, str>)>,
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

// === impl UserDoc ===

impl<'a> UserDoc<'a> {
    /// The user's grants, parsed from their raw JSON.
    pub fn grants(&self) -> Result<GrantMap<'a>, serde_json::Error> {
        match self.workstreams {
            None => Ok(GrantMap::default()),
            Some(raw) => serde_json::from_str(raw.get()),
        }
    }
}

// === impl GrantMap ===

impl<'de> Deserialize<'de> for GrantMap<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Outer;
        impl<'de> Visitor<'de> for Outer {
            type Value = GrantMap<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of organisation → {workstream → access level}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GrantMap<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(Str(organisation)) = map.next_key()? {
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
struct Pairs<'de>(Vec<(Cow<'de, str>, Cow<'de, str>)>);

impl<'de> Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of workstream → access level")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some((Str(k), Str(v))) = map.next_entry()? {
                    out.push((k, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}
