//! JSON rewriting without a value tree: serde_json walks the body along the plan, everything
//! the plan does not touch is copied as raw bytes (`RawValue`), so kept rows and the other
//! members (`pagination`) leave byte for byte as they came. Objects on the plan's way are
//! re-emitted member by member (whitespace between their tokens is not kept).

use crate::json_str::CowStr as Key;
use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::policy::{Member, Plan};
use super::rows::{Judge, KeyValues};

/// The rewritten body and what happened to its rows.
#[derive(Debug)]
pub(super) struct Rewritten {
    pub body: Vec<u8>,
    pub kept: u64,
    pub dropped: u64,
    /// The plan's rows array was in the body (false also for plans without rows).
    pub rows_found: bool,
}

/// Rewrites `body` along `plan`; any syntax error, trailing data, a duplicate member on the way
/// to the rows, or a non-object/non-array there is an error.
pub(super) fn rewrite(
    body: &str,
    plan: &Plan,
    judge: &Judge<'_>,
) -> Result<Rewritten, serde_json::Error> {
    let mut names = Vec::new();
    if let Plan::Rows(inner) = rows_node(plan) {
        inner.member_names(&mut names);
    }
    let mut ctx = Ctx {
        judge,
        row_names: &names,
        out: Vec::with_capacity(body.len()),
        kept: 0,
        dropped: 0,
        rows_found: false,
        count_slots: Vec::new(),
    };
    let mut de = serde_json::Deserializer::from_str(body);
    Walk {
        plan,
        ctx: &mut ctx,
    }
    .deserialize(&mut de)?;
    de.end()?;
    // Recomputed counts were left as fixed-width blanks: the rows may come after them.
    let count = ctx.kept.to_string();
    for at in &ctx.count_slots {
        ctx.out[*at..*at + count.len()].copy_from_slice(count.as_bytes());
    }
    Ok(Rewritten {
        body: ctx.out,
        kept: ctx.kept,
        dropped: ctx.dropped,
        rows_found: ctx.rows_found,
    })
}

/// The rows node, following the required objects from the root.
fn rows_node(plan: &Plan) -> &Plan {
    match plan {
        Plan::Object {
            members,
            required: true,
        } => members
            .iter()
            .find_map(|(_, m)| match m {
                Member::Rewrite(p @ (Plan::Rows(_) | Plan::Object { required: true, .. })) => {
                    Some(rows_node(p))
                }
                _ => None,
            })
            .unwrap_or(plan),
        other => other,
    }
}

struct Ctx<'j, 'n> {
    judge: &'j Judge<'j>,
    /// Member names the row plan touches: a row containing none of them (and no escape) is
    /// copied without a second parse.
    row_names: &'n [&'n str],
    out: Vec<u8>,
    kept: u64,
    dropped: u64,
    rows_found: bool,
    /// Where `Member::Count` values start: COUNT_WIDTH spaces, later overwritten from the left
    /// by the kept count (whitespace after a number is valid JSON).
    count_slots: Vec<usize>,
}

/// Wide enough for any u64.
const COUNT_WIDTH: usize = 20;

/// Applies a plan to the next value.
struct Walk<'c, 'j, 'n> {
    plan: &'c Plan,
    ctx: &'c mut Ctx<'j, 'n>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.plan {
            Plan::Keep => {
                let raw = <&RawValue>::deserialize(d)?;
                self.ctx.out.extend_from_slice(raw.get().as_bytes());
                Ok(())
            }
            Plan::Object {
                members,
                required: true,
            } => d.deserialize_map(ObjectVisitor {
                members,
                required: true,
                ctx: self.ctx,
            }),
            Plan::Rows(inner) => d.deserialize_seq(RowsVisitor {
                inner,
                ctx: self.ctx,
            }),
            Plan::Object { .. } | Plan::Each(_) => {
                let raw = <&RawValue>::deserialize(d)?;
                optional(raw.get(), self.plan, self.ctx).map_err(de::Error::custom)
            }
        }
    }
}

/// A redaction plan applies where the value has the planned shape; anything else (a null
/// where an object might be) has nothing to redact and is copied.
fn optional(raw: &str, plan: &Plan, ctx: &mut Ctx<'_, '_>) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw);
    match (raw.as_bytes().first(), plan) {
        (Some(b'{'), Plan::Object { members, .. }) => de.deserialize_map(ObjectVisitor {
            members,
            required: false,
            ctx,
        }),
        (Some(b'['), Plan::Each(inner)) => de.deserialize_seq(EachVisitor { inner, ctx }),
        _ => {
            ctx.out.extend_from_slice(raw.as_bytes());
            Ok(())
        }
    }
}

struct ObjectVisitor<'c, 'j, 'n> {
    members: &'c [(String, Member)],
    required: bool,
    ctx: &'c mut Ctx<'j, 'n>,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let mut seen = vec![false; self.members.len()];
        let mut first = true;
        ctx.out.push(b'{');
        while let Some(Key(key)) = map.next_key()? {
            let planned = self.members.iter().position(|(name, _)| *name == key);
            let plan = match planned.map(|i| (i, &self.members[i].1)) {
                Some((_, Member::Remove)) => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                Some((_, Member::Count)) => {
                    map.next_value::<IgnoredAny>()?;
                    if !first {
                        ctx.out.push(b',');
                    }
                    first = false;
                    serde_json::to_writer(&mut ctx.out, &*key).map_err(de::Error::custom)?;
                    ctx.out.push(b':');
                    ctx.count_slots.push(ctx.out.len());
                    ctx.out.extend_from_slice(&[b' '; COUNT_WIDTH]);
                    continue;
                }
                Some((i, Member::Rewrite(plan))) => {
                    // Two members of one name on the way to the rows: a client might read
                    // the one we did not filter.
                    if seen[i] && self.required {
                        return Err(de::Error::custom(format!("duplicate member {key:?}")));
                    }
                    seen[i] = true;
                    Some(plan)
                }
                None => None,
            };
            if !first {
                ctx.out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut ctx.out, &*key).map_err(de::Error::custom)?;
            ctx.out.push(b':');
            match plan {
                Some(plan) => map.next_value_seed(Walk {
                    plan,
                    ctx: &mut *ctx,
                })?,
                None => {
                    let raw = map.next_value::<&RawValue>()?;
                    ctx.out.extend_from_slice(raw.get().as_bytes());
                }
            }
        }
        ctx.out.push(b'}');
        Ok(())
    }
}

struct EachVisitor<'c, 'j, 'n> {
    inner: &'c Plan,
    ctx: &'c mut Ctx<'j, 'n>,
}

impl<'de> Visitor<'de> for EachVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        ctx.out.push(b'[');
        let mut first = true;
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            if !first {
                ctx.out.push(b',');
            }
            first = false;
            optional(raw.get(), self.inner, ctx).map_err(de::Error::custom)?;
        }
        ctx.out.push(b']');
        Ok(())
    }
}

struct RowsVisitor<'c, 'j, 'n> {
    inner: &'c Plan,
    ctx: &'c mut Ctx<'j, 'n>,
}

impl<'de> Visitor<'de> for RowsVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the rows array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        ctx.rows_found = true;
        ctx.out.push(b'[');
        let mut first = true;
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            let row = raw.get();
            if !ctx.judge.keeps_all()
                && !ctx
                    .judge
                    .keeps(&row_keys(row, ctx.judge.fields()).map_err(de::Error::custom)?)
            {
                ctx.dropped += 1;
                continue;
            }
            ctx.kept += 1;
            if !first {
                ctx.out.push(b',');
            }
            first = false;
            let untouched = matches!(self.inner, Plan::Keep)
                || (!row.contains('\\') && !ctx.row_names.iter().any(|n| row.contains(n)));
            if untouched {
                ctx.out.extend_from_slice(row.as_bytes());
            } else {
                optional(row, self.inner, ctx).map_err(de::Error::custom)?;
            }
        }
        ctx.out.push(b']');
        Ok(())
    }
}

/// Reads the key members of one row; a row that is not an object yields no values (and is
/// dropped). A row naming a key member twice refuses the whole body: a first-wins and a
/// last-wins reader would disagree about whose row it is.
fn row_keys<'r>(
    row: &'r str,
    fields: (&str, Option<&str>),
) -> Result<KeyValues<'r>, serde_json::Error> {
    if !row.starts_with('{') {
        return Ok(KeyValues::default());
    }
    let mut de = serde_json::Deserializer::from_str(row);
    de.deserialize_map(RowKeysVisitor { fields })
}

struct RowKeysVisitor<'f> {
    fields: (&'f str, Option<&'f str>),
}

impl<'de> Visitor<'de> for RowKeysVisitor<'_> {
    type Value = KeyValues<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyValues<'de>, A::Error> {
        let mut values = KeyValues::default();
        let (mut seen_first, mut seen_second) = (false, false);
        while let Some(Key(key)) = map.next_key()? {
            let slot = if key == self.fields.0 {
                if std::mem::replace(&mut seen_first, true) {
                    return Err(de::Error::custom(format!("row names {key:?} twice")));
                }
                &mut values.first
            } else if Some(&*key) == self.fields.1 {
                if std::mem::replace(&mut seen_second, true) {
                    return Err(de::Error::custom(format!("row names {key:?} twice")));
                }
                &mut values.second
            } else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            *slot = string_value(map.next_value::<&RawValue>()?.get());
        }
        Ok(values)
    }
}

fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}
