//! The `contracts` section of the grants document: companies, hubs, contracts (hub, supplier
//! company, template permissions per party and role) and users (user type, company, hubs, and
//! per contract their party and role). Validated whole with every problem's location, like
//! the rest of the document; a template change applies to everyone assigned as soon as the
//! snapshot is swapped in.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;

use super::user_types::Reads;
use super::{ContractRole, Party, is_permission_name};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractsDoc {
    #[serde(default)]
    pub companies: Vec<CompanyDoc>,
    #[serde(default)]
    pub hubs: Vec<String>,
    #[serde(default)]
    pub contracts: Vec<ContractDoc>,
    #[serde(default)]
    pub users: Vec<ContractUserDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanyDoc {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractDoc {
    pub id: String,
    #[serde(default)]
    pub hub: Option<String>,
    /// The supplier (contractor) company.
    pub supplier: String,
    /// Replacements of the role defaults for one party and role.
    #[serde(default)]
    pub template: Vec<TemplateDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateDoc {
    pub party: Party,
    pub role: ContractRole,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractUserDoc {
    pub sub: String,
    pub company: String,
    pub user_type: String,
    #[serde(default)]
    pub hubs: Vec<String>,
    /// The contracts the user is assigned to, each with its one party and role.
    #[serde(default)]
    pub contracts: Vec<MembershipDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipDoc {
    pub id: String,
    pub party: Party,
    pub role: ContractRole,
}

/// The built section the decision reads.
#[derive(Debug, Default)]
pub struct ContractsSnapshot {
    contracts: HashMap<Box<str>, Contract>,
    users: HashMap<Box<str>, ContractUser>,
}

#[derive(Debug)]
pub struct Contract {
    pub hub: Option<Arc<str>>,
    pub supplier: Arc<str>,
    template: HashMap<(Party, ContractRole), Box<[Box<str>]>>,
}

#[derive(Debug)]
pub struct ContractUser {
    pub company: Arc<str>,
    pub user_type: Box<str>,
    pub hubs: Vec<Box<str>>,
    pub contracts: HashMap<Box<str>, (Party, ContractRole)>,
}

/// Where a party×role's permissions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionSource {
    Template,
    RoleDefault,
}

impl Contract {
    /// Whether `party` with `role` holds `permission` on this contract.
    pub fn permits(
        &self,
        party: Party,
        role: ContractRole,
        permission: &str,
    ) -> (bool, PermissionSource) {
        match self.template.get(&(party, role)) {
            Some(list) => (
                list.iter().any(|p| &**p == permission),
                PermissionSource::Template,
            ),
            None => (
                role.default_permissions().contains(&permission),
                PermissionSource::RoleDefault,
            ),
        }
    }
}

impl ContractsSnapshot {
    pub fn build(doc: &ContractsDoc) -> ContractsSnapshot {
        let contracts = doc
            .contracts
            .iter()
            .map(|c| {
                let template = c
                    .template
                    .iter()
                    .map(|t| {
                        let list = t.permissions.iter().map(|p| p.as_str().into()).collect();
                        ((t.party, t.role), list)
                    })
                    .collect();
                let contract = Contract {
                    hub: c.hub.as_deref().map(Arc::from),
                    supplier: c.supplier.as_str().into(),
                    template,
                };
                (c.id.as_str().into(), contract)
            })
            .collect();
        let users = doc
            .users
            .iter()
            .map(|u| {
                let user = ContractUser {
                    company: u.company.as_str().into(),
                    user_type: u.user_type.as_str().into(),
                    hubs: u.hubs.iter().map(|h| h.as_str().into()).collect(),
                    contracts: u
                        .contracts
                        .iter()
                        .map(|m| (m.id.as_str().into(), (m.party, m.role)))
                        .collect(),
                };
                (u.sub.as_str().into(), user)
            })
            .collect();
        ContractsSnapshot { contracts, users }
    }

    pub fn contract(&self, id: &str) -> Option<&Contract> {
        self.contracts.get(id)
    }

    pub fn user(&self, sub: &str) -> Option<&ContractUser> {
        self.users.get(sub)
    }

    /// The contracts `user` may read: where its party and role hold `read`, plus those its
    /// user type reads without membership.
    pub fn readable(
        &self,
        user: &ContractUser,
        reads: Reads,
    ) -> std::collections::HashSet<Arc<str>> {
        self.contracts
            .iter()
            .filter(|(id, c)| {
                let member = user
                    .contracts
                    .get(&**id)
                    .is_some_and(|(party, role)| c.permits(*party, *role, "read").0);
                member
                    || match reads {
                        Reads::All => true,
                        Reads::Hub => c
                            .hub
                            .as_deref()
                            .is_some_and(|h| user.hubs.iter().any(|u| **u == *h)),
                        Reads::Supplier => c.supplier == user.company,
                        Reads::Assigned => false,
                    }
            })
            .map(|(id, _)| Arc::from(&**id))
            .collect()
    }

    pub fn contract_count(&self) -> usize {
        self.contracts.len()
    }
}

/// Every problem in the section, located relative to it (`contracts[2].supplier`).
pub fn problems(doc: &ContractsDoc) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |at: String, msg: String| out.push((at, msg));
    let mut companies = HashSet::new();
    for (i, c) in doc.companies.iter().enumerate() {
        if !is_id(&c.id) {
            push(format!("companies[{i}].id"), bad_id(&c.id));
        } else if !companies.insert(c.id.as_str()) {
            push(
                format!("companies[{i}].id"),
                format!("duplicate company {:?}", c.id),
            );
        }
    }
    let mut hubs = HashSet::new();
    for (i, h) in doc.hubs.iter().enumerate() {
        if !is_id(h) {
            push(format!("hubs[{i}]"), bad_id(h));
        } else if !hubs.insert(h.as_str()) {
            push(format!("hubs[{i}]"), format!("duplicate hub {h:?}"));
        }
    }
    let mut contracts = HashSet::new();
    for (i, c) in doc.contracts.iter().enumerate() {
        let at = format!("contracts[{i}]");
        if !is_id(&c.id) {
            push(format!("{at}.id"), bad_id(&c.id));
        } else if !contracts.insert(c.id.as_str()) {
            push(format!("{at}.id"), format!("duplicate contract {:?}", c.id));
        }
        if let Some(h) = &c.hub
            && !hubs.contains(h.as_str())
        {
            push(format!("{at}.hub"), format!("unknown hub {h:?}"));
        }
        if !companies.contains(c.supplier.as_str()) {
            push(
                format!("{at}.supplier"),
                format!("unknown company {:?}", c.supplier),
            );
        }
        let mut seen = HashSet::new();
        for (j, t) in c.template.iter().enumerate() {
            if !seen.insert((t.party, t.role)) {
                push(
                    format!("{at}.template[{j}]"),
                    format!("{} {} is given twice", t.party, t.role),
                );
            }
            for (k, p) in t.permissions.iter().enumerate() {
                if !is_permission_name(p) {
                    push(
                        format!("{at}.template[{j}].permissions[{k}]"),
                        format!("{p:?} must be [a-z0-9_]+"),
                    );
                } else if t.permissions[..k].contains(p) {
                    push(
                        format!("{at}.template[{j}].permissions[{k}]"),
                        format!("{p:?} is listed twice"),
                    );
                }
            }
        }
    }
    let mut subs = HashSet::new();
    for (i, u) in doc.users.iter().enumerate() {
        let at = format!("users[{i}]");
        if u.sub.is_empty() {
            push(format!("{at}.sub"), "empty subject".to_owned());
        } else if !subs.insert(u.sub.as_str()) {
            push(format!("{at}.sub"), format!("duplicate user {:?}", u.sub));
        }
        if !companies.contains(u.company.as_str()) {
            push(
                format!("{at}.company"),
                format!("unknown company {:?}", u.company),
            );
        }
        if u.user_type.is_empty() || !u.user_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            push(
                format!("{at}.user_type"),
                format!("{:?} is not a user type name", u.user_type),
            );
        }
        for (j, h) in u.hubs.iter().enumerate() {
            if !hubs.contains(h.as_str()) {
                push(format!("{at}.hubs[{j}]"), format!("unknown hub {h:?}"));
            }
        }
        let mut assigned = HashSet::new();
        for (j, m) in u.contracts.iter().enumerate() {
            if !contracts.contains(m.id.as_str()) {
                push(
                    format!("{at}.contracts[{j}].id"),
                    format!("unknown contract {:?}", m.id),
                );
            } else if !assigned.insert(m.id.as_str()) {
                push(
                    format!("{at}.contracts[{j}].id"),
                    format!(
                        "{:?} is assigned twice: one party and role per contract",
                        m.id
                    ),
                );
            }
        }
    }
    out
}

/// Ids travel in paths and headers: visible ASCII without `/`.
fn is_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'/')
}

fn bad_id(id: &str) -> String {
    format!("{id:?} must be 1 to 128 visible ASCII characters without /")
}
