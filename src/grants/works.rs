//! The work index: millions of works in a few tens of bytes each. Works are spread over a
//! fixed number of shards; in each, references live end to end in one string, infos in one
//! array, and a hash table of `u32` positions finds them, so a work costs no allocation of its
//! own (a `HashMap<Box<str>, WorkInfo>` would cost about 100 bytes). Shards sit behind `Arc`s:
//! a delta copies only the shards it changes, the snapshot in force keeps the rest shared.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use std::sync::Arc;

use hashbrown::HashTable;

use super::snapshot::WorkInfo;

/// 3M works make shards of about 700 (45 kB): a 1,000-change delta copies under a third of
/// the index, and empty shards share one allocation.
const SHARDS: usize = 4096;

#[derive(Debug, Clone)]
pub(crate) struct WorkIndex {
    shards: Vec<Arc<Shard>>,
    /// One hash per reference: its high half picks the shard, the whole of it the bucket.
    /// foldhash, not SipHash: references come from the trusted snapshot, and hashing 3M of
    /// them is a visible part of a load.
    hasher: RandomState,
    len: usize,
}

#[derive(Debug, Clone, Default)]
struct Shard {
    /// Every reference, concatenated in position order (removed ones too, until compacted).
    refs: String,
    /// `ends[i]` is where reference `i` ends in `refs`; it starts where `i - 1` ends.
    ends: Vec<u32>,
    infos: Vec<WorkInfo>,
    /// Positions of the live works.
    table: HashTable<u32>,
}

/// The index cannot address more than `u32::MAX` bytes of references or works in a shard.
#[derive(Debug, thiserror::Error)]
#[error("works exceed the index's {} byte limit", u32::MAX)]
pub struct TooLarge;

impl Default for WorkIndex {
    fn default() -> Self {
        let empty = Arc::new(Shard::default());
        WorkIndex {
            shards: vec![empty; SHARDS],
            hasher: RandomState::default(),
            len: 0,
        }
    }
}

impl WorkIndex {
    /// Indexes `works`, whose references total about `ref_bytes`; a repeated reference keeps
    /// its first entry (validation reports repeats).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn build<'a>(
        ref_bytes: usize,
        works: impl Iterator<Item = (&'a str, WorkInfo)>,
    ) -> Result<WorkIndex, TooLarge> {
        let mut index = WorkIndex::with_capacity(works.size_hint().0, ref_bytes);
        for (wrn, info) in works {
            index.insert_new(wrn, info)?;
        }
        index.shrink_to_fit();
        Ok(index)
    }

    /// An empty index with room for about `works` works of `ref_bytes` in all.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn with_capacity(works: usize, ref_bytes: usize) -> WorkIndex {
        let mut index = WorkIndex::default();
        index.reserve(works, ref_bytes);
        index
    }

    /// Makes room in every shard for its share of `works` works of `ref_bytes` in all, so
    /// that a build grows nothing (growth by doubling leaves the freed halves in the heap).
    pub(crate) fn reserve(&mut self, works: usize, ref_bytes: usize) {
        if works == 0 {
            return;
        }
        let mean = works / SHARDS;
        // Works fall into shards at random: the mean plus three standard deviations (and a
        // little for tiny indexes), so only about one shard in 700 still grows past it.
        let per = mean + 3 * mean.isqrt() + 4;
        let bytes_per_work = ref_bytes.div_ceil(works);
        let hasher = &self.hasher;
        for shard in &mut self.shards {
            let s = Arc::make_mut(shard);
            let more = per.saturating_sub(s.infos.len());
            s.refs.reserve(more * bytes_per_work);
            s.ends.reserve(more);
            s.infos.reserve(more);
            let Shard {
                refs, ends, table, ..
            } = s;
            table.reserve(per.saturating_sub(table.len()), |&p| {
                hasher.hash_one(key(refs, ends, p))
            });
        }
    }

    /// Adds a work unless its reference is already indexed; says whether it was added.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn insert_new(&mut self, wrn: &str, info: WorkInfo) -> Result<bool, TooLarge> {
        let hash = self.hash(wrn);
        self.insert_new_hashed(hash, wrn, info)
    }

    /// The hash `insert_new_hashed` takes (to compute before, e.g. to order a batch).
    pub(crate) fn hash(&self, wrn: &str) -> u64 {
        self.hasher.hash_one(wrn)
    }

    /// The shard a hash picks: a batch of works inserted in this order touches each shard's
    /// memory once, not once per work.
    pub(crate) fn shard_of(hash: u64) -> usize {
        usize::try_from((hash >> 32) % SHARDS as u64).unwrap_or(0)
    }

    /// `insert_new` with `hash` from `hash(wrn)`.
    pub(crate) fn insert_new_hashed(
        &mut self,
        hash: u64,
        wrn: &str,
        info: WorkInfo,
    ) -> Result<bool, TooLarge> {
        let i = WorkIndex::shard_of(hash);
        if self.shard(i).find(hash, wrn).is_some() {
            return Ok(false);
        }
        Arc::make_mut(&mut self.shards[i]).push(hash, wrn, info, &self.hasher)?;
        self.len += 1;
        Ok(true)
    }

    /// Adds a work or replaces the one with its reference.
    pub(crate) fn upsert(&mut self, wrn: &str, info: WorkInfo) -> Result<(), TooLarge> {
        let (i, hash) = self.locate(wrn);
        let found = self.shard(i).find(hash, wrn);
        let shard = Arc::make_mut(&mut self.shards[i]);
        match found.and_then(|p| shard.infos.get_mut(p as usize)) {
            Some(slot) => *slot = info,
            None => {
                shard.push(hash, wrn, info, &self.hasher)?;
                self.len += 1;
            }
        }
        Ok(())
    }

    /// Removes a work; says whether it was there.
    pub(crate) fn remove(&mut self, wrn: &str) -> bool {
        let (i, hash) = self.locate(wrn);
        if self.shard(i).find(hash, wrn).is_none() {
            return false;
        }
        let shard = Arc::make_mut(&mut self.shards[i]);
        let Shard {
            refs, ends, table, ..
        } = &mut *shard;
        if let Ok(entry) = table.find_entry(hash, |&p| key(refs, ends, p) == wrn) {
            entry.remove();
        }
        shard.compact_if_sparse(&self.hasher);
        self.len -= 1;
        true
    }

    pub(crate) fn get(&self, wrn: &str) -> Option<WorkInfo> {
        let (i, hash) = self.locate(wrn);
        let shard = self.shard(i);
        let pos = shard.find(hash, wrn)?;
        shard.infos.get(pos as usize).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every live work, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, WorkInfo)> {
        self.shards.iter().flat_map(|s| {
            s.table.iter().filter_map(|&p| {
                let info = s.infos.get(p as usize)?;
                Some((key(&s.refs, &s.ends, p), *info))
            })
        })
    }

    /// Releases capacity reserved for growth.
    pub(crate) fn shrink_to_fit(&mut self) {
        let hasher = &self.hasher;
        for shard in &mut self.shards {
            if shard.table.is_empty() && shard.infos.is_empty() {
                continue;
            }
            let s = Arc::make_mut(shard);
            s.refs.shrink_to_fit();
            s.ends.shrink_to_fit();
            s.infos.shrink_to_fit();
            let Shard {
                refs, ends, table, ..
            } = s;
            table.shrink_to_fit(|&p| hasher.hash_one(key(refs, ends, p)));
        }
    }

    /// Heap bytes held, for the memory budget (capacity, not length).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn heap_bytes(&self) -> usize {
        let shards = self.shards.len() * size_of::<Arc<Shard>>();
        shards
            + self
                .shards
                .iter()
                .filter(|s| s.infos.capacity() > 0 || s.table.capacity() > 0)
                .map(|s| size_of::<Shard>() + s.heap_bytes())
                .sum::<usize>()
    }

    fn locate(&self, wrn: &str) -> (usize, u64) {
        let hash = self.hash(wrn);
        // hashbrown takes the bucket from the low bits and its tag from the top 7: the shard
        // comes from bits in between, so works in one shard still spread over its buckets.
        (WorkIndex::shard_of(hash), hash)
    }

    fn shard(&self, i: usize) -> &Shard {
        &self.shards[i]
    }
}

impl Shard {
    fn find(&self, hash: u64, wrn: &str) -> Option<u32> {
        self.table
            .find(hash, |&p| key(&self.refs, &self.ends, p) == wrn)
            .copied()
    }

    fn push(
        &mut self,
        hash: u64,
        wrn: &str,
        info: WorkInfo,
        hasher: &RandomState,
    ) -> Result<(), TooLarge> {
        let pos = u32::try_from(self.infos.len()).map_err(|_| TooLarge)?;
        let end = self
            .refs
            .len()
            .checked_add(wrn.len())
            .and_then(|e| u32::try_from(e).ok())
            .ok_or(TooLarge)?;
        self.refs.push_str(wrn);
        self.ends.push(end);
        self.infos.push(info);
        let Shard {
            refs, ends, table, ..
        } = self;
        table.insert_unique(hash, pos, |&p| hasher.hash_one(key(refs, ends, p)));
        Ok(())
    }

    /// Rewrites the arenas without removed works once they are the larger part.
    fn compact_if_sparse(&mut self, hasher: &RandomState) {
        let dead = self.infos.len() - self.table.len();
        if dead < 32 || dead < self.table.len() {
            return;
        }
        let mut live = Shard::default();
        let mut positions: Vec<u32> = self.table.iter().copied().collect();
        positions.sort_unstable();
        for p in positions {
            let wrn = key(&self.refs, &self.ends, p);
            if let Some(&info) = self.infos.get(p as usize) {
                // Cannot fail: the compacted shard is smaller than this one.
                let _ = live.push(hasher.hash_one(wrn), wrn, info, hasher);
            }
        }
        *self = live;
    }

    #[cfg(any(test, feature = "testing"))]
    fn heap_bytes(&self) -> usize {
        self.refs.capacity()
            + self.ends.capacity() * size_of::<u32>()
            + self.infos.capacity() * size_of::<WorkInfo>()
            // hashbrown keeps one control byte per bucket beside each `u32`.
            + if self.table.capacity() == 0 {
                0
            } else {
                (self.table.capacity() * 8).div_ceil(7).next_power_of_two() * (size_of::<u32>() + 1)
            }
    }
}

fn key<'r>(refs: &'r str, ends: &[u32], pos: u32) -> &'r str {
    let pos = pos as usize;
    let start = if pos == 0 {
        0
    } else {
        ends.get(pos - 1).map_or(0, |&e| e as usize)
    };
    let end = ends.get(pos).map_or(0, |&e| e as usize);
    refs.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{SwaCode, Workstream};

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

    #[test]
    fn upsert_remove_and_copies_share_untouched_shards() {
        let refs: Vec<String> = (0..20_000).map(|i| format!("NW{i:011}")).collect();
        let a = WorkIndex::build(0, refs.iter().map(|r| (r.as_str(), info(1)))).unwrap();
        let mut b = a.clone();
        b.upsert(&refs[0], info(2)).unwrap();
        b.upsert("NEW1", info(3)).unwrap();
        assert!(b.remove(&refs[1]));
        assert!(!b.remove(&refs[1]));
        assert!(!b.remove("ABSENT"));
        assert_eq!((a.len(), b.len()), (20_000, 20_000));
        assert_eq!(
            (a.get(&refs[0]), b.get(&refs[0])),
            (Some(info(1)), Some(info(2)))
        );
        assert_eq!((a.get(&refs[1]), b.get(&refs[1])), (Some(info(1)), None));
        assert_eq!((a.get("NEW1"), b.get("NEW1")), (None, Some(info(3))));
        let shared = a
            .shards
            .iter()
            .zip(&b.shards)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert!(shared >= SHARDS - 3, "{shared} shards shared");
        assert_eq!(b.iter().count(), 20_000);
    }

    #[test]
    fn removing_most_works_compacts_and_keeps_the_rest() {
        // Enough works that each shard holds more than the compaction threshold.
        let refs: Vec<String> = (0..200_000).map(|i| format!("NW{i:011}")).collect();
        let mut index = WorkIndex::build(0, refs.iter().map(|r| (r.as_str(), info(1)))).unwrap();
        let before = index.heap_bytes();
        for r in refs.iter().skip(100) {
            assert!(index.remove(r), "{r}");
        }
        assert_eq!(index.len(), 100);
        assert_eq!(index.iter().count(), 100);
        for r in refs.iter().take(100) {
            assert_eq!(index.get(r), Some(info(1)), "{r}");
        }
        assert_eq!(index.get(&refs[100]), None);
        index.upsert(&refs[100], info(4)).unwrap();
        assert_eq!(index.get(&refs[100]), Some(info(4)));
        assert!(
            index.heap_bytes() < before,
            "{} >= {before}",
            index.heap_bytes()
        );
    }
}
