//! A route's authorization rule, compiled from config: who may call it and what access the
//! resource it acts on needs.

use crate::authn::identity::RoleSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: Allow,
    pub access: Access,
    /// The acting organisation must be the work's promoter or highway authority.
    pub organisation_member: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    Public,
    /// Any of these roles.
    Roles(RoleSet),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The role is enough.
    RoleOnly,
    ReadWork(ValueSource),
    WriteWork(ValueSource),
    MapView,
    CreateInWorkstream(ValueSource),
    OwnOrganisation(ValueSource),
    Filtered,
}

/// Where the request carries the resource a rule acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    Path(Box<str>),
    Query(Box<str>),
    /// JSON pointer into the request body.
    Body(Box<str>),
}

impl Access {
    pub fn source(&self) -> Option<&ValueSource> {
        match self {
            Access::ReadWork(s)
            | Access::WriteWork(s)
            | Access::CreateInWorkstream(s)
            | Access::OwnOrganisation(s) => Some(s),
            Access::RoleOnly | Access::MapView | Access::Filtered => None,
        }
    }
}
