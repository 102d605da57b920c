//! The users array in chunks: each user is checked and built by the worker that parsed it,
//! and put in the map in the chunk's turn (a repeated subject replaces the one before, and is
//! reported, as when read in one thread).

use serde::de::SeqAccess;
use std::sync::Arc;

use super::{Chunk, Entries, ReadEntries, parse_chunk};
use crate::grants::format::UserDoc;
use crate::grants::indexer::IndexFailed;
use crate::grants::json_error::JsonError;
use crate::grants::shards::ShardedMap;
use crate::grants::snapshot::{User, user_from};
use crate::grants::validate::{Orgs, Report, check_user};

pub(in crate::grants) struct Users {
    pub(in crate::grants) orgs: Arc<Orgs>,
}

/// A user read, waiting for its chunk's turn.
pub(in crate::grants) struct Parsed {
    at: usize,
    sub: Box<str>,
    user: User,
    report: Report,
}

impl Entries for Users {
    const NAME: &'static str = "users";
    type Scratch = Vec<Parsed>;
    type Built = ShardedMap<Box<str>, User>;

    fn parse(&self, chunk: &Chunk, scratch: &mut Vec<Parsed>) -> Result<usize, JsonError> {
        scratch.clear();
        let mut read = Read {
            first: chunk.first,
            orgs: &self.orgs,
            users: scratch,
        };
        parse_chunk(chunk, Self::NAME, &mut read)?;
        Ok(read.users.len())
    }

    fn build(
        &self,
        _chunk: &Chunk,
        scratch: &mut Vec<Parsed>,
        users: &mut Self::Built,
    ) -> Result<Report, IndexFailed> {
        let mut report = Report::new();
        for p in scratch.drain(..) {
            if !p.sub.is_empty() && users.get(&*p.sub).is_some() {
                let at = p.at;
                report.push(
                    format!("users[{at}].sub"),
                    format!("duplicate user {:?}", p.sub),
                );
            }
            if !p.sub.is_empty() {
                users.insert(p.sub, p.user);
            }
            report = p.report.after(report);
        }
        Ok(report)
    }
}

/// Reads a chunk's users, each checked and built as it is read.
struct Read<'a> {
    first: usize,
    orgs: &'a Orgs,
    users: &'a mut Vec<Parsed>,
}

impl ReadEntries for Read<'_> {
    fn read<'de, S: SeqAccess<'de>>(&mut self, mut seq: S) -> Result<(), S::Error> {
        while let Some(user) = seq.next_element::<UserDoc<'de>>()? {
            let at = self.first + self.users.len();
            let mut report = Report::new();
            check_user(&format!("users[{at}]"), &user, self.orgs, &mut report);
            self.users.push(Parsed {
                at,
                sub: Box::from(&*user.sub),
                user: user_from(&user),
                report,
            });
        }
        Ok(())
    }
}
