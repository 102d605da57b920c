//! A hash map split into a fixed number of shards behind `Arc`s, so a delta copies only the
//! shards it touches (`Arc::make_mut`) and the snapshot in force keeps sharing the rest.
//! Empty shards all share one allocation until first written.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use foldhash::fast::RandomState;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub(crate) struct ShardedMap<K, V> {
    shards: Vec<Arc<HashMap<K, V, RandomState>>>,
    /// Picks the shard; each shard's map hashes with its own state. foldhash, not SipHash:
    /// keys come from the trusted snapshot, and hashing is a visible part of a load.
    hasher: RandomState,
    len: usize,
}

/// Shards of the organisation and user maps: 300k users make shards of about 300, so a
/// changed user copies a few kilobytes, not the map.
const SHARDS: usize = 1024;

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        let empty = Arc::new(HashMap::default());
        ShardedMap {
            shards: vec![empty; SHARDS],
            hasher: RandomState::default(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards.get(self.shard(key))?.get(key)
    }

    /// Inserts or replaces; copies the shard first if a snapshot still shares it.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let i = self.shard(&key);
        let shard = Arc::make_mut(self.shards.get_mut(i)?);
        let old = shard.insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.shard(key);
        // Look first: removing nothing must not copy a shared shard.
        self.shards.get(i)?.get(key)?;
        let old = Arc::make_mut(self.shards.get_mut(i)?).remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// Releases the spare capacity left by building shard by shard.
    pub(crate) fn shrink_to_fit(&mut self) {
        for shard in &mut self.shards {
            if !shard.is_empty() {
                Arc::make_mut(shard).shrink_to_fit();
            }
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        let h = self.hasher.hash_one(key);
        usize::try_from(h % SHARDS as u64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_shares_untouched_shards_and_sees_none_of_the_changes() {
        let mut a: ShardedMap<Box<str>, u32> = ShardedMap::default();
        for i in 0..5000 {
            a.insert(format!("k{i}").into(), i);
        }
        let mut b = a.clone();
        b.insert("k1".into(), 99);
        b.insert("new".into(), 7);
        assert_eq!(b.remove("k2"), Some(2));
        assert_eq!(b.remove("absent"), None);
        assert_eq!((a.len(), b.len()), (5000, 5000));
        assert_eq!((a.get("k1"), b.get("k1")), (Some(&1), Some(&99)));
        assert_eq!((a.get("k2"), b.get("k2")), (Some(&2), None));
        assert_eq!((a.get("new"), b.get("new")), (None, Some(&7)));
        let shared = a
            .shards
            .iter()
            .zip(&b.shards)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert!(shared >= SHARDS - 3, "{shared} shards shared");
        assert_eq!(b.iter().count(), 5000);
    }
}
