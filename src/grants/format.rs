//! Grants snapshot format v1, exactly as docs/model.md gives it: the contract with whatever
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
    /// The contract-platform model's section (`model: contracts`), validated on its own.
    #[serde(default)]
    pub contracts: Option<crate::contracts::snapshot::ContractsDoc>,
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
    /// Third-party integrators this organisation has an agreement with (optional).
    #[serde(default)]
    pub integrators: Vec<super::integrators::IntegratorDoc>,
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
    /// Boxed, not borrowed, so a user can also be read from a stream.
    #[serde(default)]
    pub workstreams: Option<Box<RawValue>>,
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

impl Upserts<'_> {
    /// The same entries, borrowing nothing.
    pub fn into_owned(self) -> Upserts<'static> {
        Upserts {
            organisations: self.organisations,
            users: self.users.into_iter().map(UserDoc::into_owned).collect(),
            works: self.works.into_iter().map(WorkDoc::into_owned).collect(),
        }
    }
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

impl WorkDoc<'_> {
    pub fn into_owned(self) -> WorkDoc<'static> {
        WorkDoc {
            work_reference_number: owned(self.work_reference_number),
            promoter: owned(self.promoter),
            highway_authority: owned(self.highway_authority),
            workstream: owned(self.workstream),
        }
    }
}

impl UserDoc<'_> {
    pub fn into_owned(self) -> UserDoc<'static> {
        UserDoc {
            sub: owned(self.sub),
            organisation: owned(self.organisation),
            tokens_valid_after: self.tokens_valid_after.map(owned),
            workstreams: self.workstreams,
        }
    }

    /// The user's grants, parsed from their raw JSON.
    pub fn grants(&self) -> Result<GrantMap<'_>, serde_json::Error> {
        match &self.workstreams {
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
