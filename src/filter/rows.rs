//! Whether one row is the caller's: the row's (organisation, workstream) from its own fields or
//! from its work reference, checked against the caller's visibility.

use std::borrow::Cow;

use crate::codes::{SwaCode, Workstream};
use crate::grants::overlay::Works;

use super::Visibility;
use super::policy::RowKey;

/// The caller's side of the row decision.
#[derive(Clone, Copy)]
pub(super) struct Judge<'a> {
    pub key: &'a RowKey,
    pub visibility: &'a Visibility,
    pub works: Option<Works<'a>>,
}

/// The key values read from one row; `None` when absent, not a string, or given twice.
#[derive(Debug, Default)]
pub(super) struct KeyValues<'r> {
    pub first: Option<Cow<'r, str>>,
    pub second: Option<Cow<'r, str>>,
}

// === impl Judge ===

impl<'a> Judge<'a> {
    /// Every row is kept without reading it.
    pub fn keeps_all(&self) -> bool {
        matches!(self.visibility, Visibility::All)
    }

    /// The field (JSON member or CSV column) names the decision reads, in `KeyValues` order.
    pub fn fields(&self) -> (&'a str, Option<&'a str>) {
        match self.key {
            RowKey::Fields {
                organisation,
                workstream,
            } => (organisation, Some(workstream)),
            RowKey::WorkReference(field) | RowKey::Contract(field) => (field, None),
        }
    }

    pub fn keeps(&self, values: &KeyValues<'_>) -> bool {
        let (organisation, readable) = match self.visibility {
            Visibility::All => return true,
            Visibility::Contracts(readable) => {
                return matches!(self.key, RowKey::Contract(_))
                    && values
                        .first
                        .as_deref()
                        .is_some_and(|c| readable.contains(c));
            }
            Visibility::Workstreams {
                organisation,
                readable,
            } => (*organisation, readable),
        };
        let resolved = match self.key {
            RowKey::Fields { .. } => values
                .first
                .as_deref()
                .and_then(SwaCode::parse)
                .zip(values.second.as_deref().and_then(Workstream::parse)),
            RowKey::WorkReference(_) => values
                .first
                .as_deref()
                .zip(self.works)
                .and_then(|(wrn, works)| works.get(wrn))
                .map(|info| (info.promoter, info.workstream)),
            // A contract key with workstream visibility is refused by config validation.
            RowKey::Contract(_) => None,
        };
        resolved.is_some_and(|(org, ws)| org == organisation && readable.contains(&ws))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::overlay::CreatedWorks;
    use crate::grants::snapshot::{Snapshot, WorkInfo};

    fn ws(s: &str) -> Workstream {
        Workstream::parse(s).unwrap()
    }
    fn swa(s: &str) -> SwaCode {
        SwaCode::parse(s).unwrap()
    }

    #[test]
    fn fields_must_match_organisation_and_a_readable_workstream() {
        let key = RowKey::Fields {
            organisation: "swa_code".into(),
            workstream: "prefix".into(),
        };
        let visibility = Visibility::Workstreams {
            organisation: swa("7001"),
            readable: vec![ws("001"), ws("002")],
        };
        let judge = Judge {
            key: &key,
            visibility: &visibility,
            works: None,
        };
        let keeps = |o: Option<&str>, w: Option<&str>| {
            judge.keeps(&KeyValues {
                first: o.map(Cow::Borrowed),
                second: w.map(Cow::Borrowed),
            })
        };
        assert!(keeps(Some("7001"), Some("001")));
        assert!(keeps(Some("7001"), Some("002")));
        assert!(!keeps(Some("7001"), Some("003")));
        assert!(!keeps(Some("7002"), Some("001")));
        assert!(!keeps(None, Some("001")));
        assert!(!keeps(Some("7001"), None));
        assert!(!keeps(Some("70011"), Some("001")));
        let all = Judge {
            visibility: &Visibility::All,
            ..judge
        };
        assert!(all.keeps(&KeyValues::default()));
    }

    #[test]
    fn work_reference_goes_through_the_works_view() {
        let snapshot = Snapshot::default();
        let created = CreatedWorks::default();
        created.insert(
            "NW001",
            WorkInfo {
                promoter: swa("7001"),
                highway_authority: swa("4020"),
                workstream: ws("001"),
            },
        );
        let key = RowKey::WorkReference("work_reference_number".into());
        let visibility = Visibility::Workstreams {
            organisation: swa("7001"),
            readable: vec![ws("001")],
        };
        let works = Works {
            snapshot: &snapshot,
            created: &created,
        };
        let judge = Judge {
            key: &key,
            visibility: &visibility,
            works: Some(works),
        };
        let wrn = |w| KeyValues {
            first: Some(Cow::Borrowed(w)),
            second: None,
        };
        assert!(judge.keeps(&wrn("NW001")));
        assert!(!judge.keeps(&wrn("NW999")));
        let blind = Judge {
            works: None,
            ..judge
        };
        assert!(!blind.keeps(&wrn("NW001")));
    }
}
