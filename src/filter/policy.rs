//! The compiled response policy: the rows pointer and the redaction paths merged into one plan
//! per case (with and without redaction), so a request only picks a plan and walks the body.

use crate::authn::identity::{Role, RoleSet};
use crate::filter::config::{RawFilter, RawPagination, RawRedact, RawResponsePolicy, RawRowKey};

/// A route's response policy, checked and compiled from `RawResponsePolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsePolicy {
    pub(super) format: Format,
    /// Viewers holding this role see the redacted fields; `None` when nothing is redacted.
    pub(super) redact_unless: Option<Role>,
    pub max_body_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Format {
    /// JSON with a rows array somewhere in it (and maybe fields to redact).
    JsonRows {
        key: RowKey,
        plain: Plan,
        redacted: Plan,
    },
    /// CSV rows, one per record after the header.
    Csv { key: RowKey },
    /// JSON without rows: only redaction.
    JsonRedact { redacted: Plan },
}

/// How a row's workstream is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RowKey {
    Fields {
        organisation: String,
        workstream: String,
    },
    WorkReference(String),
    /// Contracts model: the row's contract id.
    Contract(String),
}

/// What to do with a JSON value.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) enum Plan {
    /// Copy the value's bytes unchanged.
    #[default]
    Keep,
    /// Rewrite an object member by member. `required` marks objects on the way to the rows
    /// array: there, anything but an object makes the body unfilterable.
    Object {
        members: Vec<(String, Member)>,
        required: bool,
    },
    /// Apply the plan to every element of an array (redaction paths with `[]`).
    Each(Box<Plan>),
    /// The rows array: keep the caller's rows, then apply the plan to each kept row.
    Rows(Box<Plan>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Member {
    Remove,
    Rewrite(Plan),
    /// Replaced by the number of rows kept (`pagination: recompute`).
    Count,
}

/// Members of the rows' sibling `pagination` object that count the upstream's (unfiltered)
/// rows: another organisation's row count is itself a leak (reporting spec: `total_rows`).
const PAGINATION_COUNTS: [&str; 4] = ["total_rows", "total_pages", "total_count", "total"];

// === impl ResponsePolicy ===

impl ResponsePolicy {
    /// Whether rows are keyed by contract id (the contracts model's lists).
    pub fn keys_contracts(&self) -> bool {
        matches!(
            &self.format,
            Format::JsonRows {
                key: RowKey::Contract(_),
                ..
            } | Format::Csv {
                key: RowKey::Contract(_)
            }
        )
    }

    /// Checks the raw policy; the error names the offending setting.
    /// Does this policy filter rows (as opposed to only redacting fields)?
    pub fn filters_rows(&self) -> bool {
        matches!(self.format, Format::JsonRows { .. } | Format::Csv { .. })
    }

    /// Whether this caller gets the redacted view.
    pub(super) fn redacts_for(&self, roles: RoleSet) -> bool {
        self.redact_unless.is_some_and(|role| !roles.contains(role))
    }
}

impl TryFrom<&RawResponsePolicy> for ResponsePolicy {
    type Error = String;

    /// Compiles a route's `response` section; the error says what is wrong with it.
    fn try_from(raw: &RawResponsePolicy) -> Result<ResponsePolicy, String> {
        if raw.max_body_bytes == 0 {
            return Err("max_body_bytes must be above 0".into());
        }
        let redact = raw.redact.as_ref().map(compile_redact).transpose()?;
        let redact_unless = redact.as_ref().map(|(role, _)| *role);
        let paths: &[Vec<Segment>] = redact.as_ref().map_or(&[], |(_, p)| p);
        let format = match &raw.filter {
            Some(RawFilter::Json { rows, by }) => {
                let key = compile_key(by)?;
                let mut plain = rows_plan(rows)?;
                pagination_plan(&mut plain, rows, raw.pagination)?;
                let mut redacted = plain.clone();
                for path in paths {
                    insert(&mut redacted, path)?;
                }
                Format::JsonRows {
                    key,
                    plain,
                    redacted,
                }
            }
            Some(RawFilter::Csv { by }) => {
                if redact.is_some() {
                    return Err("redact applies to JSON bodies, not to a csv filter".into());
                }
                Format::Csv {
                    key: compile_key(by)?,
                }
            }
            None => {
                if paths.is_empty() {
                    return Err("a response policy needs a filter or redact fields".into());
                }
                let mut redacted = Plan::Keep;
                for path in paths {
                    insert(&mut redacted, path)?;
                }
                Format::JsonRedact { redacted }
            }
        };
        Ok(ResponsePolicy {
            format,
            redact_unless,
            max_body_bytes: raw.max_body_bytes,
        })
    }
}

// === impl Plan ===

impl Plan {
    /// Every member name the plan touches, for the cheap "might this row need rewriting" test.
    pub(super) fn member_names<'a>(&'a self, names: &mut Vec<&'a str>) {
        match self {
            Plan::Keep => {}
            Plan::Object { members, .. } => {
                for (name, member) in members {
                    names.push(name);
                    if let Member::Rewrite(plan) = member {
                        plan.member_names(names);
                    }
                }
            }
            Plan::Each(plan) | Plan::Rows(plan) => plan.member_names(names),
        }
    }
}

/// Removes, or marks for recomputing, the count members of the `pagination` object beside the
/// rows array (none for a top-level rows array).
fn pagination_plan(plan: &mut Plan, rows: &str, mode: RawPagination) -> Result<(), String> {
    let mut parent: Vec<Segment> = rows
        .split('/')
        .skip(1)
        .map(|t| Segment::Member(t.replace("~1", "/").replace("~0", "~")))
        .collect();
    if parent.pop().is_none() {
        return Ok(());
    }
    parent.push(Segment::Member("pagination".into()));
    for count in PAGINATION_COUNTS {
        let mut path = parent.clone();
        path.push(Segment::Member(count.into()));
        let leaf = match mode {
            RawPagination::Remove => Member::Remove,
            RawPagination::Recompute => Member::Count,
        };
        insert_as(plan, &path, leaf)?;
    }
    Ok(())
}

fn compile_key(raw: &RawRowKey) -> Result<RowKey, String> {
    let nonempty = |s: &Option<String>| s.as_ref().filter(|s| !s.is_empty()).cloned();
    if let Some(contract) = nonempty(&raw.contract_field) {
        let others = [
            &raw.organisation_field,
            &raw.workstream_field,
            &raw.work_reference_field,
        ];
        if others.iter().any(|f| f.is_some()) {
            return Err("contract_field is the only key of a contract list".into());
        }
        return Ok(RowKey::Contract(contract));
    }
    match (
        nonempty(&raw.organisation_field),
        nonempty(&raw.workstream_field),
        nonempty(&raw.work_reference_field),
    ) {
        (Some(organisation), Some(workstream), None) => Ok(RowKey::Fields {
            organisation,
            workstream,
        }),
        (None, None, Some(wrn)) => Ok(RowKey::WorkReference(wrn)),
        _ => Err(
            "give either workstream_field with organisation_field, or work_reference_field".into(),
        ),
    }
}

fn compile_redact(raw: &RawRedact) -> Result<(Role, Vec<Vec<Segment>>), String> {
    let role = Role::parse(&raw.unless_role)
        .ok_or_else(|| format!("unknown role {:?} in unless_role", raw.unless_role))?;
    if raw.fields.is_empty() {
        return Err("redact.fields is empty".into());
    }
    let paths = raw
        .fields
        .iter()
        .map(|f| parse_path(f))
        .collect::<Result<_, _>>()?;
    Ok((role, paths))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Member(String),
    Each,
}

/// `rows[].s74.amount` → rows, each, s74, amount; `[].amount` for a top-level array.
fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let bad = |why: &str| format!("redact field {path:?}: {why}");
    let mut segments = Vec::new();
    for part in path.split('.') {
        let name = part.trim_end_matches("[]");
        let arrays = (part.len() - name.len()) / 2;
        if name.contains(['[', ']']) {
            return Err(bad("brackets only as a trailing []"));
        }
        if name.is_empty() && (arrays == 0 || !segments.is_empty()) {
            return Err(bad("empty member name"));
        }
        if !name.is_empty() {
            segments.push(Segment::Member(name.to_owned()));
        }
        segments.extend(std::iter::repeat_n(Segment::Each, arrays));
    }
    match segments.last() {
        Some(Segment::Member(_)) => Ok(segments),
        _ => Err(bad("must end with a member name")),
    }
}

/// The plan for a JSON pointer to the rows array ("" is the top-level array).
fn rows_plan(pointer: &str) -> Result<Plan, String> {
    if pointer.is_empty() {
        return Ok(Plan::Rows(Box::default()));
    }
    let Some(tokens) = pointer.strip_prefix('/') else {
        return Err(format!(
            "rows {pointer:?} is not a JSON pointer (starts with /)"
        ));
    };
    let mut plan = Plan::Rows(Box::default());
    for token in tokens.split('/').rev() {
        let name = token.replace("~1", "/").replace("~0", "~");
        plan = Plan::Object {
            members: vec![(name, Member::Rewrite(plan))],
            required: true,
        };
    }
    Ok(plan)
}

fn insert(plan: &mut Plan, path: &[Segment]) -> Result<(), String> {
    insert_as(plan, path, Member::Remove)
}

/// Puts `leaf` at `path` in the plan (a removal wins over a recount).
fn insert_as(plan: &mut Plan, path: &[Segment], leaf: Member) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let conflict = || format!("redact path {path:?} crosses the rows array in a way it cannot");
    match first {
        Segment::Each => match plan {
            Plan::Keep => {
                let mut inner = Plan::Keep;
                insert_as(&mut inner, rest, leaf)?;
                *plan = Plan::Each(Box::new(inner));
                Ok(())
            }
            Plan::Each(inner) | Plan::Rows(inner) => insert_as(inner, rest, leaf),
            Plan::Object { .. } => Err(conflict()),
        },
        Segment::Member(name) => {
            if matches!(plan, Plan::Keep) {
                *plan = Plan::Object {
                    members: Vec::new(),
                    required: false,
                };
            }
            let Plan::Object { members, .. } = plan else {
                return Err(conflict());
            };
            let index = match members.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    members.push((name.clone(), Member::Rewrite(Plan::Keep)));
                    members.len() - 1
                }
            };
            let member = &mut members[index].1;
            if !rest.is_empty() {
                return match member {
                    Member::Remove => Ok(()),
                    Member::Count => Err(conflict()),
                    Member::Rewrite(inner) => insert_as(inner, rest, leaf),
                };
            }
            match member {
                Member::Remove => {}
                // Removing the way to the rows array would remove the rows unfiltered.
                Member::Rewrite(Plan::Object { required: true, .. } | Plan::Rows(_)) => {
                    return Err(conflict());
                }
                Member::Rewrite(_) | Member::Count => *member = leaf,
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(filter: Option<RawFilter>, fields: &[&str]) -> RawResponsePolicy {
        RawResponsePolicy {
            filter,
            redact: (!fields.is_empty()).then(|| RawRedact {
                fields: fields.iter().map(|f| f.to_string()).collect(),
                unless_role: "StreetWorksAdmin".into(),
            }),
            max_body_bytes: 1024,
            pagination: RawPagination::Remove,
        }
    }

    fn by_wrn() -> RawRowKey {
        RawRowKey {
            workstream_field: None,
            organisation_field: None,
            work_reference_field: Some("work_reference_number".into()),
            contract_field: None,
        }
    }

    fn json(rows: &str) -> Option<RawFilter> {
        Some(RawFilter::Json {
            rows: rows.into(),
            by: by_wrn(),
        })
    }

    #[test]
    fn rows_and_redaction_merge_into_one_plan() {
        let p = ResponsePolicy::try_from(&raw(
            json("/rows"),
            &[
                "rows[].draft_invoice_amount",
                "rows[].s74.final_agreed_amount",
            ],
        ))
        .unwrap();
        let Format::JsonRows {
            plain, redacted, ..
        } = &p.format
        else {
            panic!("not json rows")
        };
        let counts = PAGINATION_COUNTS.map(|c| (c.to_owned(), Member::Remove));
        assert_eq!(
            *plain,
            Plan::Object {
                members: vec![
                    ("rows".into(), Member::Rewrite(Plan::Rows(Box::default()))),
                    (
                        "pagination".into(),
                        Member::Rewrite(Plan::Object {
                            members: counts.to_vec(),
                            required: false
                        })
                    )
                ],
                required: true
            }
        );
        let mut names = Vec::new();
        redacted.member_names(&mut names);
        assert_eq!(
            names,
            [
                "rows",
                "draft_invoice_amount",
                "s74",
                "final_agreed_amount",
                "pagination",
                "total_rows",
                "total_pages",
                "total_count",
                "total"
            ]
        );
        assert!(p.redacts_for(RoleSet::of(&[Role::Planner])));
        assert!(!p.redacts_for(RoleSet::of(&[Role::Planner, Role::StreetWorksAdmin])));
    }

    #[test]
    fn pointer_tokens_are_unescaped() {
        let Plan::Object { members, .. } = rows_plan("/a~1b/c~0d").unwrap() else {
            panic!()
        };
        assert_eq!(members[0].0, "a/b");
        assert_eq!(rows_plan("").unwrap(), Plan::Rows(Box::default()));
        assert!(rows_plan("rows").is_err());
    }

    #[test]
    fn bad_policies_are_refused() {
        let both = RawRowKey {
            workstream_field: Some("prefix".into()),
            organisation_field: Some("swa_code".into()),
            work_reference_field: Some("wrn".into()),
            contract_field: None,
        };
        let err = |p: RawResponsePolicy| ResponsePolicy::try_from(&p).unwrap_err();
        err(raw(
            Some(RawFilter::Json {
                rows: "/rows".into(),
                by: both,
            }),
            &[],
        ));
        err(raw(None, &[]));
        err(raw(json("/rows"), &["rows"]));
        err(raw(json("/rows"), &["rows.x"]));
        err(raw(json("/rows"), &["rows[]"]));
        err(raw(json("/rows"), &["a[b].c"]));
        err(raw(json("/rows"), &[""]));
        err(raw(Some(RawFilter::Csv { by: by_wrn() }), &["x"]));
        let mut p = raw(json("/rows"), &["x"]);
        p.redact.as_mut().unwrap().unless_role = "Root".into();
        err(p);
    }

    #[test]
    fn paths_parse() {
        use Segment::*;
        let m = |s: &str| Member(s.into());
        assert_eq!(parse_path("a.b").unwrap(), [m("a"), m("b")]);
        assert_eq!(parse_path("[].a").unwrap(), [Each, m("a")]);
        assert_eq!(parse_path("a[][].b").unwrap(), [m("a"), Each, Each, m("b")]);
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a.[].b").is_err());
    }
}
