//! The chain of reasons behind a decision, as `streetgate explain` prints it after the route
//! and identity lines. Built from the small facts `decide` records, so explaining never re-runs
//! or diverges from the decision.

use super::Visibility;
use super::{Capacity, Decision};
use crate::grants::format::AccessLevel;

/// One line per step the decision went through, ending with the reason.
pub fn explain(decision: &Decision) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(org) = decision.acting_organisation {
        let how = match decision.capacity {
            Some(Capacity::Grants { via_contract: true }) => "named by swaCode, under contract",
            Some(_) => "own organisation",
            None => "own organisation; stopped before swaCode was checked",
        };
        lines.push(format!("acting organisation: {org} ({how})"));
    }
    if let Some(capacity) = decision.capacity {
        lines.push(format!(
            "capacity: {}",
            match capacity {
                Capacity::Authority => "highway authority (not limited by workstreams)",
                Capacity::Grants { via_contract: true } =>
                    "contractor acting as planner, held to the promoter's grants",
                Capacity::Grants {
                    via_contract: false,
                } => "held to workstream grants",
                Capacity::Nobody => "contractor without swaCode: acts for nobody",
            }
        ));
    }
    if let Some(check) = decision.integrator {
        lines.push(format!(
            "integrator agreement of {}: {}",
            check.organisation,
            if check.agreed {
                "covers this API"
            } else {
                "none for this API"
            }
        ));
    }
    if let Some(step) = &decision.contract {
        super::contract::explain(step, &mut lines);
    }
    if let Some(work) = decision.work {
        lines.push(format!(
            "work: promoter {}, highway authority {}, workstream {}",
            work.promoter, work.highway_authority, work.workstream
        ));
    }
    if let Some((workstream, level)) = decision.workstream_access {
        let level = match level {
            AccessLevel::FullWrite => "full-write",
            AccessLevel::ReadOnly => "read-only",
            AccessLevel::NoAccess => "no-access",
        };
        lines.push(format!("workstream {workstream}: {level}"));
    }
    match &decision.visibility {
        Some(Visibility::All) => lines.push("rows: all".to_owned()),
        Some(Visibility::Workstreams {
            organisation,
            readable,
        }) => {
            let list: Vec<&str> = readable.iter().map(|w| w.as_str()).collect();
            lines.push(format!(
                "rows: workstreams [{}] of {organisation}",
                list.join(", ")
            ));
        }
        Some(Visibility::Contracts(readable)) => {
            let mut list: Vec<&str> = readable.iter().map(|c| &**c).collect();
            list.sort_unstable();
            lines.push(format!("rows: contracts [{}]", list.join(", ")));
        }
        None => {}
    }
    lines.push(format!(
        "{}: {} ({})",
        if decision.allowed() {
            "allowed"
        } else {
            "denied"
        },
        decision.reason,
        decision.reason.status().as_u16()
    ));
    lines
}
