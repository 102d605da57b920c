//! The grants snapshot: format, validation, the indexed immutable snapshot, the store that swaps
//! it, and the sources that fetch it.

pub mod codes;
pub mod format;
pub mod overlay;
pub mod snapshot;
