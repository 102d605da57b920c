//! Third-party integrator agreements (seed 002): an optional, additive field of the v1
//! organisation entry, `integrators: [{id, apis: [...]}]`. An organisation lists the
//! integrators it has an agreement with and the APIs (config `apis[].name`) each may call on
//! its users' behalf.

use std::collections::{BTreeSet, HashSet};

use serde::Deserialize;

/// Past this many distinct integrators in one snapshot, the rest share the metric label
/// `other`: labels stay bounded whatever a publisher sends.
pub const MAX_INTEGRATOR_LABELS: usize = 50;

/// Longest integrator id, the same bound as any forwarded identity value.
const MAX_ID_BYTES: usize = crate::authn::identity::MAX_IDENTITY_VALUE_BYTES;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegratorDoc {
    pub id: String,
    pub apis: Vec<String>,
}

/// One organisation's agreements: integrator → the APIs it may call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agreements(Vec<(Box<str>, Apis)>);

type Apis = Box<[Box<str>]>;

impl Agreements {
    pub fn build(docs: &[IntegratorDoc]) -> Agreements {
        Agreements(
            docs.iter()
                .map(|d| {
                    let apis = d.apis.iter().map(|a| a.as_str().into()).collect();
                    (d.id.as_str().into(), apis)
                })
                .collect(),
        )
    }

    /// Whether `integrator` has an agreement covering `api`.
    pub fn covers(&self, integrator: &str, api: &str) -> bool {
        self.0
            .iter()
            .any(|(id, apis)| &**id == integrator && apis.iter().any(|a| &**a == api))
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(id, _)| &**id)
    }
}

/// Integrator ids that get their own metric label: those named by the snapshot, the first
/// `MAX_INTEGRATOR_LABELS` in sorted order.
#[derive(Debug, Clone, Default)]
pub struct KnownIntegrators(HashSet<Box<str>>);

impl KnownIntegrators {
    pub fn build<'a>(ids: impl Iterator<Item = &'a str>) -> KnownIntegrators {
        let sorted: BTreeSet<&str> = ids.collect();
        KnownIntegrators(
            sorted
                .into_iter()
                .take(MAX_INTEGRATOR_LABELS)
                .map(Box::from)
                .collect(),
        )
    }

    /// The metric label for `integrator`: itself when known, else `other`.
    pub fn label<'a>(&self, integrator: &'a str) -> &'a str {
        if self.0.contains(integrator) {
            integrator
        } else {
            "other"
        }
    }
}

/// Every problem with one organisation's `integrators` field (the organisation at `org_at`),
/// with its location.
pub fn problems(org_at: &str, integrators: &[IntegratorDoc]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    {
        let mut ids = HashSet::new();
        for (j, agreement) in integrators.iter().enumerate() {
            let at = format!("{org_at}.integrators[{j}]");
            let id = &agreement.id;
            let header_safe = id.bytes().all(|b| (0x21..0x7f).contains(&b));
            if id.is_empty() || id.len() > MAX_ID_BYTES || !header_safe {
                out.push((
                    format!("{at}.id"),
                    format!("{id:?} must be 1 to {MAX_ID_BYTES} visible ASCII characters"),
                ));
            } else if id == "other" {
                out.push((
                    format!("{at}.id"),
                    "\"other\" is the metric label of unknown integrators".to_owned(),
                ));
            } else if !ids.insert(id.as_str()) {
                out.push((format!("{at}.id"), format!("duplicate integrator {id:?}")));
            }
            if agreement.apis.is_empty() {
                out.push((
                    format!("{at}.apis"),
                    "an agreement names at least one API".to_owned(),
                ));
            }
            let mut apis = HashSet::new();
            for (k, api) in agreement.apis.iter().enumerate() {
                if api.trim().is_empty() {
                    out.push((format!("{at}.apis[{k}]"), "empty API name".to_owned()));
                } else if !apis.insert(api.as_str()) {
                    out.push((format!("{at}.apis[{k}]"), format!("duplicate API {api:?}")));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::grants::snapshot::{Snapshot, SnapshotError};

    fn doc(integrators: &str) -> String {
        format!(
            r#"{{"version": 1, "generated_at": "2026-11-23T07:00:00Z", "organisations": [
              {{"swa_code": "7001", "name": "N", "kind": "promoter", "status": "active",
                "integrators": {integrators}}}]}}"#
        )
    }

    #[test]
    fn agreements_are_read_and_labels_bounded() {
        let s = Snapshot::from_json(doc(r#"[{"id": "hub", "apis": ["work"]}]"#).as_bytes(), None)
            .unwrap();
        let org = s.organisation(crate::codes::SwaCode::parse("7001").unwrap());
        assert!(org.unwrap().integrators.covers("hub", "work"));
        assert!(!org.unwrap().integrators.covers("hub", "reporting"));
        assert_eq!(s.integrator_label("hub"), "hub");
        assert_eq!(s.integrator_label("else"), "other");
        let many: Vec<String> = (0..super::MAX_INTEGRATOR_LABELS + 10)
            .map(|i| format!(r#"{{"id": "i{i:03}", "apis": ["work"]}}"#))
            .collect();
        let s =
            Snapshot::from_json(doc(&format!("[{}]", many.join(","))).as_bytes(), None).unwrap();
        assert_eq!(s.integrator_label("i000"), "i000");
        assert_eq!(s.integrator_label("i059"), "other");
    }

    #[test]
    fn bad_agreements_are_each_reported() {
        let bad = r#"[{"id": "", "apis": ["work"]}, {"id": "a b", "apis": ["work"]},
                      {"id": "other", "apis": ["work"]}, {"id": "hub", "apis": []},
                      {"id": "hub", "apis": ["work", "work", " "]}]"#;
        let Err(SnapshotError::Invalid(problems)) = Snapshot::from_json(doc(bad).as_bytes(), None)
        else {
            panic!("accepted");
        };
        let text = problems.to_string();
        for at in [
            "organisations[0].integrators[0].id",
            "organisations[0].integrators[1].id",
            "organisations[0].integrators[2].id",
            "organisations[0].integrators[3].apis",
            "organisations[0].integrators[4].id",
            "organisations[0].integrators[4].apis[1]",
            "organisations[0].integrators[4].apis[2]",
        ] {
            assert!(text.contains(at), "{at} missing in {text}");
        }
        assert!(
            Snapshot::from_json(
                doc(r#"[{"id": "x", "apis": ["w"], "extra": 1}]"#).as_bytes(),
                None
            )
            .is_err()
        );
    }
}
