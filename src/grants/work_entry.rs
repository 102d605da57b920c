//! One work of a streamed document, read into reused buffers. A stream lends nothing, so a
//! derived `WorkDoc` allocates each of its four strings for every work (12M allocations and
//! frees for 3M works, about a seventh of a load's CPU); these four buffers are refilled
//! instead, and the work is handed on as a `WorkDoc` borrowing them. Field rules and errors
//! are the derived ones: unknown, repeated and missing fields are refused.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::format::WorkDoc;
use crate::json_str::CowStr;

const FIELDS: &[&str] = &[
    "work_reference_number",
    "promoter",
    "highway_authority",
    "workstream",
];

#[derive(Default)]
pub(super) struct WorkScratch {
    fields: [String; 4],
}

impl WorkScratch {
    /// The last work read.
    pub(super) fn doc(&self) -> WorkDoc<'_> {
        let [wrn, promoter, authority, workstream] = &self.fields;
        WorkDoc {
            work_reference_number: Cow::Borrowed(wrn),
            promoter: Cow::Borrowed(promoter),
            highway_authority: Cow::Borrowed(authority),
            workstream: Cow::Borrowed(workstream),
        }
    }
}

/// Reads one work into the scratch buffers.
pub(super) struct WorkFields<'s>(pub(super) &'s mut WorkScratch);

impl<'de> DeserializeSeed<'de> for WorkFields<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_struct("WorkDoc", FIELDS, self)
    }
}

impl<'de> Visitor<'de> for WorkFields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct WorkDoc")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = [false; 4];
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let Some(i) = FIELDS.iter().position(|f| *f == key.0) else {
                return Err(de::Error::unknown_field(&key.0, FIELDS));
            };
            let (Some(done), Some(buf)) = (seen.get_mut(i), self.0.fields.get_mut(i)) else {
                return Err(de::Error::unknown_field(&key.0, FIELDS));
            };
            if *done {
                return Err(de::Error::duplicate_field(FIELDS[i]));
            }
            *done = true;
            map.next_value_seed(Refill(buf))?;
        }
        match seen.iter().position(|s| !s) {
            Some(i) => Err(de::Error::missing_field(FIELDS[i])),
            None => Ok(()),
        }
    }
}

/// A JSON string, copied into `buf` (whose capacity is kept).
struct Refill<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for Refill<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Refill<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(s);
        Ok(())
    }
}
