//! The user-type table (seed 003, tier 1), which lives in config: the system permissions of
//! each user type, the contracts it reads without membership, and the order in which user
//! types may be assigned (most privileged first).

use std::sync::Arc;

use serde::Deserialize;

use crate::problems::Problems;

/// `contracts:` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawContracts {
    /// Most privileged first: a user type may only assign itself or those after it.
    pub user_types: Vec<RawUserType>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawUserType {
    pub name: String,
    /// Contracts read without being a member of them.
    #[serde(default)]
    pub reads: Reads,
    /// System permissions (`system_permission` rules).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// When set, the only user types this one may assign (Super User: only General User);
    /// otherwise any at or below its own place in the order.
    #[serde(default)]
    pub assigns: Option<Vec<String>>,
}

/// Read access to contracts without membership.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reads {
    /// Only contracts the user is assigned to.
    #[default]
    Assigned,
    /// Every contract (View All, and the administrative types).
    All,
    /// Contracts of the user's hubs (View All Hub).
    Hub,
    /// Contracts whose supplier is the user's company (View Own).
    Supplier,
}

/// The compiled table; rules hold it (`Arc`) so a decision needs nothing else from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTypes {
    /// In order, most privileged first.
    types: Vec<UserType>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserType {
    pub name: Arc<str>,
    pub reads: Reads,
    pub permissions: Vec<Box<str>>,
    /// Indexes into the table; None: any at or after its own.
    assigns: Option<Vec<usize>>,
}

impl UserTypes {
    /// Validates `contracts.user_types`, reporting every problem under `at`.
    pub fn compile(raw: &RawContracts, at: &str, problems: &mut Problems) -> Arc<UserTypes> {
        let names: Vec<&str> = raw.user_types.iter().map(|t| t.name.as_str()).collect();
        if raw.user_types.is_empty() {
            problems.push(
                format!("{at}.user_types"),
                "at least one user type is required",
            );
        }
        let mut types = Vec::with_capacity(raw.user_types.len());
        for (i, t) in raw.user_types.iter().enumerate() {
            let at = format!("{at}.user_types[{i}]");
            let name_ok = !t.name.is_empty() && t.name.bytes().all(|b| b.is_ascii_alphanumeric());
            if !name_ok {
                problems.push(
                    format!("{at}.name"),
                    format!("{:?} must be [A-Za-z0-9]+", t.name),
                );
            } else if names[..i].contains(&t.name.as_str()) {
                problems.push(
                    format!("{at}.name"),
                    format!("user type {:?} is listed twice", t.name),
                );
            }
            for (j, p) in t.permissions.iter().enumerate() {
                if !super::is_permission_name(p) {
                    problems.push(
                        format!("{at}.permissions[{j}]"),
                        format!("{p:?} must be [a-z0-9_]+"),
                    );
                } else if t.permissions[..j].contains(p) {
                    problems.push(
                        format!("{at}.permissions[{j}]"),
                        format!("{p:?} is listed twice"),
                    );
                }
            }
            let assigns = t.assigns.as_ref().map(|list| {
                list.iter()
                    .enumerate()
                    .filter_map(|(j, name)| match names.iter().position(|n| n == name) {
                        None => {
                            problems.push(
                                format!("{at}.assigns[{j}]"),
                                format!("unknown user type {name:?}"),
                            );
                            None
                        }
                        Some(k) if k < i => {
                            problems.push(
                                format!("{at}.assigns[{j}]"),
                                format!("{name:?} is more privileged than {:?}", t.name),
                            );
                            None
                        }
                        Some(k) => Some(k),
                    })
                    .collect()
            });
            types.push(UserType {
                name: t.name.as_str().into(),
                reads: t.reads,
                permissions: t.permissions.iter().map(|p| p.as_str().into()).collect(),
                assigns,
            });
        }
        Arc::new(UserTypes { types })
    }

    pub fn get(&self, name: &str) -> Option<(usize, &UserType)> {
        self.types
            .iter()
            .enumerate()
            .find(|(_, t)| &*t.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &UserType> {
        self.types.iter()
    }

    /// Whether any user type holds `permission` (a rule naming none is a config error).
    pub fn any_holds(&self, permission: &str) -> bool {
        self.types.iter().any(|t| t.holds(permission))
    }

    /// Whether the user type at `caller` may assign the one at `target`.
    pub fn may_assign(&self, caller: usize, target: usize) -> bool {
        match self.types.get(caller).and_then(|t| t.assigns.as_ref()) {
            Some(list) => list.contains(&target),
            None => target >= caller,
        }
    }
}

impl UserType {
    pub fn holds(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| &**p == permission)
    }
}
