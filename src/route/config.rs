//! A route as operators write it: the operation it matches, who may call it, what it acts on
//! and the body fields and response policy around the decision. `route::compile` turns it
//! into a `Route` with its `Rule`.

use serde::Deserialize;

use crate::filter::config::RawResponsePolicy;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub id: String,
    /// `METHOD /path/{param}`.
    pub route: String,
    /// Who may call it: `public`, or any-of roles.
    pub allow: RawAllow,
    /// What the route acts on and what access that needs (grants model).
    #[serde(default)]
    pub access: Option<RawAccess>,
    /// The caller's acting organisation must be the work's promoter or highway authority.
    #[serde(default)]
    pub organisation_member: bool,
    /// After a 2xx answer, remember the created work (POST /works).
    #[serde(default)]
    pub creates_work: Option<RawCreatesWork>,
    #[serde(default)]
    pub response: Option<RawResponsePolicy>,
    #[serde(default)]
    pub shadow: bool,
    /// Check mode (ext_authz, forward-auth) may allow this response-policy route although it
    /// cannot filter the response; without it the route answers `filter_requires_proxy` there.
    #[serde(default)]
    pub unfiltered_in_check_mode: bool,
    /// Body fields (JSON pointers) that must name the acting organisation.
    #[serde(default)]
    pub body_organisation: Vec<String>,
    /// Body fields that must name the acting organisation when it acts as a highway authority.
    #[serde(default)]
    pub body_authority: Vec<String>,
    /// Body fields naming a workstream the request moves work into: full-write needed there.
    #[serde(default)]
    pub body_workstreams: Vec<String>,
    /// Body fields naming an organisation, workstream or work that decide nothing here, each
    /// with the reason (`{field: reason}`); the body-field audit test reads them.
    #[serde(default)]
    pub body_fields_unchecked: std::collections::BTreeMap<String, String>,
    /// Contracts model, with `system_permission`: the body field naming the user type being
    /// assigned, which may not be more privileged than the caller's own.
    #[serde(default)]
    pub user_type_field: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawAllow {
    Public,
    Roles(Vec<String>),
    /// Any verified token (contracts model: user types, parties and roles decide the rest).
    Authenticated,
}

/// Where a route's resource comes from, and the access the caller needs on it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawAccess {
    /// Read a work record (or something under it): read-only or full-write on the work's
    /// workstream; highway authorities read everything.
    ReadWork(RawValueSource),
    /// Write to a work record: full-write on its workstream; highway authorities only on works
    /// whose highway authority is their own organisation.
    WriteWork(RawValueSource),
    /// Permit, activity or forward-plan details reached from the map: no workstream access
    /// needed (seed 000 "view only from map").
    MapView,
    /// Create a work or forward plan in the workstream named by the request: full-write on it;
    /// "000" is a 400.
    CreateInWorkstream(RawValueSource),
    /// Party API administration: the organisation named must be the caller's own.
    OwnOrganisation(RawValueSource),
    /// Rows are filtered by the response policy; the route itself needs only the role.
    Filtered,
    /// Contracts model: the permission the caller's party and role need on the contract.
    ContractPermission(RawContractPermission),
    /// Contracts model: a system permission of the caller's user type.
    SystemPermission(String),
    /// Contracts model: a contract list, its rows filtered to the contracts the caller reads.
    ReadableContracts,
}

/// `{path: contractId, needs: read}`: exactly one of path, query or body names the contract.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawContractPermission {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    /// `read`, `create`, `communicate` or a custom permission of the contract templates.
    pub needs: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawValueSource {
    /// A path parameter of the route template.
    Path(String),
    /// A query parameter (must appear exactly once).
    Query(String),
    /// A field of the JSON request body, as a JSON pointer (`/workstream_prefix`).
    Body(String),
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawCreatesWork {
    /// JSON pointer into the response body for the new work reference.
    pub reference: String,
    /// JSON pointer into the request body for the highway authority SWA code.
    pub highway_authority: String,
    /// JSON pointer into the request body for the workstream prefix.
    pub workstream: String,
}
