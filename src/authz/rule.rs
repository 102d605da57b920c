//! A route's authorization rule, compiled from config: who may call it and what access the
//! resource it acts on needs.

use std::sync::Arc;

use crate::authn::identity::RoleSet;
use crate::contracts::user_types::UserTypes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: Allow,
    pub access: Access,
    /// The acting organisation must be the work's promoter or highway authority.
    pub organisation_member: bool,
    /// Checks on body fields beyond the resource `access` names.
    pub body: BodyRule,
}

/// Body fields that decide something besides the rule's resource, each a JSON pointer to a
/// string. A field absent or `null` names nothing and passes; any other type is `bad_body`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyRule {
    /// Must name the acting organisation (403 `other_organisation`).
    pub organisation: Box<[Box<str>]>,
    /// Must name the acting organisation when it acts as a highway authority (role capacity,
    /// or an organisation of kind highway_authority acting as a promoter).
    pub authority: Box<[Box<str>]>,
    /// A workstream of the acting organisation the request moves work into: needs full-write
    /// there too; `000` is 400 `default_workstream`.
    pub workstreams: Box<[Box<str>]>,
}

impl BodyRule {
    pub fn is_empty(&self) -> bool {
        self.organisation.is_empty() && self.authority.is_empty() && self.workstreams.is_empty()
    }

    /// Every pointer checked here.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.organisation
            .iter()
            .chain(self.authority.iter())
            .chain(self.workstreams.iter())
            .map(|f| &**f)
    }
}

impl Rule {
    /// Whether deciding needs the request body (its resource or another checked field).
    pub fn reads_body(&self) -> bool {
        matches!(self.access.source(), Some(ValueSource::Body(_))) || !self.body.is_empty()
    }

    /// Every body field the rule checks, as JSON pointers.
    pub fn body_fields(&self) -> impl Iterator<Item = &str> {
        let resource = match self.access.source() {
            Some(ValueSource::Body(pointer)) => Some(&**pointer),
            _ => None,
        };
        resource.into_iter().chain(self.body.fields())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    Public,
    /// Any of these roles.
    Roles(RoleSet),
    /// Any verified token (contracts model).
    Authenticated,
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
    /// Contracts model: the caller's party and role on the contract named by `source` must
    /// hold `needs` (through the contract's template); `read` is also given by user types that
    /// read without membership.
    ContractPermission {
        source: ValueSource,
        needs: Box<str>,
        user_types: Arc<UserTypes>,
    },
    /// Contracts model: the caller's user type holds `name`. With `user_type` (a body field),
    /// the user type it assigns may not be more privileged than the caller's.
    SystemPermission {
        name: Box<str>,
        user_type: Option<ValueSource>,
        user_types: Arc<UserTypes>,
    },
    /// Contracts model: a contract list whose rows are filtered to the contracts the caller
    /// reads (by membership with `read`, or by its user type).
    ReadableContracts {
        user_types: Arc<UserTypes>,
    },
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
            Access::ContractPermission { source, .. } => Some(source),
            Access::SystemPermission { user_type, .. } => user_type.as_ref(),
            Access::RoleOnly
            | Access::MapView
            | Access::Filtered
            | Access::ReadableContracts { .. } => None,
        }
    }
}
