//! Which domain model a config's rules speak. Street Manager: roles, SWA codes, workstreams
//! and works. Contracts: user types, contract parties and roles. It decides which claims a
//! token must carry (`authn`) and which rules a route may use (`config`).

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    #[default]
    StreetManager,
    Contracts,
}
