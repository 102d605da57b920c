//! The grants snapshot: format, validation, the indexed immutable snapshot, the store that swaps
//! it, and the sources that fetch it.

pub mod admission;
mod chunks;
pub mod config;
pub use crate::codes;
mod delta;
pub mod format;
mod indexer;
pub mod integrators;
mod json_error;
mod load;
pub mod overlay;
mod remote;
mod shards;
pub mod snapshot;
mod source;
mod split;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod synthetic;
mod timestamp;
pub mod user_grants;
mod validate;
mod work_batch;
mod work_entry;
pub(crate) mod works;

pub use json_error::JsonError;
pub use load::load_delta;
pub use snapshot::{Snapshot, SnapshotError};
pub use source::spawn_source;
pub use store::{Applied, ApplyError, GrantsStore, LoadError, load_file};
