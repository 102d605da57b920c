//! The domain model a config speaks (`model: street_manager | contracts`): the contracts
//! model's user-type table. Each route's fit to the model is checked where routes compile
//! (`route::compile`).

use std::sync::Arc;

use super::raw::RawConfig;
use crate::contracts::user_types::UserTypes;
use crate::model::Model;
use crate::problems::Problems;

/// The contracts model's user-type table; None for Street Manager.
pub(super) fn user_types(raw: &RawConfig, problems: &mut Problems) -> Option<Arc<UserTypes>> {
    match (raw.model, &raw.contracts) {
        (Model::StreetManager, None) => None,
        (Model::StreetManager, Some(_)) => {
            problems.push("contracts", "only with `model: contracts`");
            None
        }
        (Model::Contracts, None) => {
            problems.push(
                "contracts",
                "`model: contracts` needs the user-type table (contracts.user_types)",
            );
            None
        }
        (Model::Contracts, Some(table)) => {
            if raw.grants.is_none() {
                problems.push(
                    "grants",
                    "`model: contracts` reads users and contracts from the grants snapshot",
                );
            }
            Some(UserTypes::compile(table, "contracts", problems))
        }
    }
}
