//! The work index: a million works in a few tens of bytes each. References live end to end in
//! one string, infos in one array, and a hash table of `u32` positions finds them, so a work
//! costs no allocation of its own (a `HashMap<Box<str>, WorkInfo>` would cost about 100 bytes).

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::snapshot::WorkInfo;

#[derive(Debug, Default)]
pub(crate) struct WorkIndex {
    /// Every reference, concatenated in position order.
    refs: String,
    /// `ends[i]` is where reference `i` ends in `refs`; it starts where `i - 1` ends.
    ends: Vec<u32>,
    infos: Vec<WorkInfo>,
    table: HashTable<u32>,
    hasher: RandomState,
}

/// The index cannot address more than `u32::MAX` bytes of references or works.
#[derive(Debug, thiserror::Error)]
#[error("works exceed the index's {} byte limit", u32::MAX)]
pub struct TooLarge;

impl WorkIndex {
    /// Indexes `works`, whose references total about `ref_bytes`; a repeated reference keeps
    /// its first entry (validation reports repeats).
    pub(crate) fn build<'a>(
        ref_bytes: usize,
        works: impl Iterator<Item = (&'a str, WorkInfo)>,
    ) -> Result<WorkIndex, TooLarge> {
        let n = works.size_hint().1.unwrap_or(0);
        let mut index = WorkIndex {
            refs: String::with_capacity(ref_bytes),
            ends: Vec::with_capacity(n),
            infos: Vec::with_capacity(n),
            table: HashTable::with_capacity(n),
            hasher: RandomState::new(),
        };
        for (wrn, info) in works {
            if index.get(wrn).is_some() {
                continue;
            }
            let pos = u32::try_from(index.infos.len()).map_err(|_| TooLarge)?;
            index.refs.push_str(wrn);
            index
                .ends
                .push(u32::try_from(index.refs.len()).map_err(|_| TooLarge)?);
            index.infos.push(info);
            let hash = index.hasher.hash_one(wrn);
            let WorkIndex {
                refs,
                ends,
                table,
                hasher,
                ..
            } = &mut index;
            table.insert_unique(hash, pos, |&p| hasher.hash_one(key(refs, ends, p)));
        }
        index.refs.shrink_to_fit();
        index.ends.shrink_to_fit();
        index.infos.shrink_to_fit();
        Ok(index)
    }

    pub(crate) fn get(&self, wrn: &str) -> Option<WorkInfo> {
        let hash = self.hasher.hash_one(wrn);
        let pos = *self
            .table
            .find(hash, |&p| key(&self.refs, &self.ends, p) == wrn)?;
        self.infos.get(pos as usize).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.infos.len()
    }

    /// Heap bytes held, for the memory budget (capacity, not length).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.refs.capacity()
            + self.ends.capacity() * size_of::<u32>()
            + self.infos.capacity() * size_of::<WorkInfo>()
            // hashbrown keeps one control byte per bucket beside each `u32`.
            + (self.table.capacity() * 8).div_ceil(7).next_power_of_two() * (size_of::<u32>() + 1)
    }
}

fn key<'r>(refs: &'r str, ends: &[u32], pos: u32) -> &'r str {
    let pos = pos as usize;
    let start = if pos == 0 { 0 } else { ends[pos - 1] as usize };
    refs.get(start..ends[pos] as usize).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::codes::{SwaCode, Workstream};

    fn info(n: u8) -> WorkInfo {
        WorkInfo {
            promoter: SwaCode::parse("7001").unwrap(),
            highway_authority: SwaCode::parse("4020").unwrap(),
            workstream: Workstream::parse(&format!("{n:03}")).unwrap(),
        }
    }

    #[test]
    fn finds_every_work_and_nothing_else() {
        let refs: Vec<String> = (0..5000).map(|i| format!("NW{i:011}")).collect();
        let index = WorkIndex::build(
            0,
            refs.iter()
                .map(|r| (r.as_str(), info(u8::try_from(r.len() % 7).unwrap()))),
        )
        .unwrap();
        assert_eq!(index.len(), 5000);
        for r in &refs {
            assert_eq!(
                index.get(r),
                Some(info(u8::try_from(r.len() % 7).unwrap())),
                "{r}"
            );
        }
        assert_eq!(index.get("NW0000000000"), None);
        assert_eq!(index.get("NW000000000000"), None);
        assert_eq!(index.get(""), None);
        // A prefix or concatenation of neighbours in the arena is not a reference.
        assert_eq!(index.get("NW00000000000NW00000000001"), None);
    }

    #[test]
    fn repeated_reference_keeps_the_first() {
        let index = WorkIndex::build(
            0,
            [("A1", info(1)), ("B2", info(2)), ("A1", info(3))].into_iter(),
        )
        .unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.get("A1"), Some(info(1)));
        assert_eq!(index.get("B2"), Some(info(2)));
    }

    #[test]
    fn empty_index() {
        let index = WorkIndex::build(0, std::iter::empty()).unwrap();
        assert_eq!(index.len(), 0);
        assert_eq!(index.get("A1"), None);
    }
}
