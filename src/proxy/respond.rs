//! The respond phase's two rewrites: filtering or redacting a policy route's body, and
//! remembering a work created through the sidecar.

use crate::authz::Visibility;
use crate::codes::{SwaCode, Workstream};
use crate::grants::snapshot::WorkInfo;
use crate::grants::store::GrantsStore;
use crate::route::config::RawCreatesWork;

/// Visibility that keeps no row at all.
pub(super) fn nothing_visible() -> Visibility {
    Visibility::Workstreams {
        organisation: SwaCode::parse("0000").unwrap_or_else(|| unreachable!("valid code")),
        readable: Vec::new(),
    }
}

/// A work-creating response is read whole to learn the new reference; it is small JSON.
pub(super) const CREATED_RESPONSE_LIMIT: usize = 1 << 20;

/// After a successful create, the new work goes into the overlay so its creator can act on it
/// before the next snapshot. The promoter is the acting organisation the decision allowed.
pub(super) fn remember_created_work(
    store: &GrantsStore,
    created: &RawCreatesWork,
    promoter: SwaCode,
    request: &serde_json::Value,
    response_body: &[u8],
) {
    let response: serde_json::Value = serde_json::from_slice(response_body).unwrap_or_default();
    let text = |v: &serde_json::Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
    };
    let reference = text(&response, &created.reference);
    let authority = text(request, &created.highway_authority).and_then(|s| SwaCode::parse(&s));
    let workstream = text(request, &created.workstream).and_then(|s| Workstream::parse(&s));
    match (reference, authority, workstream) {
        (Some(reference), Some(highway_authority), Some(workstream)) => {
            store.created().insert(
                &reference,
                WorkInfo {
                    promoter,
                    highway_authority,
                    workstream,
                },
            );
        }
        _ => tracing::warn!(
            "created work not remembered: reference, authority or workstream missing"
        ),
    }
}
