//! Verified tokens, so a repeat request costs a hash and a map lookup instead of a signature
//! check. Keyed by the token's SHA-256: collision-free for our purposes, fixed-size however large
//! the token, and the token itself is not kept in memory.

use std::sync::Arc;

use aws_lc_rs::digest;
use dashmap::DashMap;

use super::identity::Identity;

pub type TokenKey = [u8; 32];

pub struct TokenCache {
    map: DashMap<TokenKey, Arc<Identity>>,
    capacity: usize,
}

/// How many entries an insert into a full cache looks at to find something to evict.
const EVICTION_SAMPLE: usize = 8;

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            map: DashMap::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
        }
    }

    pub fn key(token: &str) -> TokenKey {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(d.as_ref());
        key
    }

    /// The identity for a token verified earlier, unless it has expired by `now`.
    pub fn get(&self, key: &TokenKey, now: u64) -> Option<Arc<Identity>> {
        let identity = self.map.get(key)?.value().clone();
        if now >= identity.expires_at {
            self.map
                .remove_if(key, |_, held| Arc::ptr_eq(held, &identity));
            return None;
        }
        Some(identity)
    }

    /// Remembers a verified identity until its `exp`. A full cache first drops a few entries:
    /// expired ones among a small sample if any, else the first sampled one. The sample comes
    /// from DashMap's iteration order, which for hashed keys is unrelated to insertion order.
    pub fn insert(&self, key: TokenKey, identity: Arc<Identity>, now: u64) {
        if now >= identity.expires_at {
            return;
        }
        if self.map.len() >= self.capacity {
            self.evict(now);
        }
        self.map.insert(key, identity);
    }

    fn evict(&self, now: u64) {
        let mut expired = Vec::with_capacity(EVICTION_SAMPLE);
        let mut fallback = None;
        for entry in self.map.iter().take(EVICTION_SAMPLE) {
            if now >= entry.value().expires_at {
                expired.push(*entry.key());
            } else if fallback.is_none() {
                fallback = Some(*entry.key());
            }
        }
        // The iterator's shard locks are released before removing (removing under them deadlocks).
        if expired.is_empty() {
            expired.extend(fallback);
        }
        for key in expired {
            self.map.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::identity::RoleSet;

    fn identity(exp: u64) -> Arc<Identity> {
        Arc::new(Identity::new("u", "7001", RoleSet::EMPTY, None, exp).unwrap())
    }

    #[test]
    fn entry_dies_at_exp() {
        let cache = TokenCache::new(10);
        let k = TokenCache::key("a.b.c");
        cache.insert(k, identity(100), 50);
        assert!(cache.get(&k, 99).is_some());
        assert!(cache.get(&k, 100).is_none());
        assert!(cache.is_empty(), "expired entry removed on read");
        cache.insert(k, identity(100), 100);
        assert!(cache.is_empty(), "already-dead identity not stored");
    }

    #[test]
    fn bounded_and_prefers_expired() {
        let cache = TokenCache::new(4);
        for i in 0..4 {
            cache.insert(TokenCache::key(&format!("old{i}")), identity(10), 0);
        }
        for i in 0..4 {
            cache.insert(TokenCache::key(&format!("new{i}")), identity(1000), 20);
        }
        // The stale entries made room; no live one was sacrificed.
        for i in 0..4 {
            assert!(
                cache
                    .get(&TokenCache::key(&format!("new{i}")), 20)
                    .is_some()
            );
        }
        for i in 0..100 {
            let k = TokenCache::key(&format!("more{i}"));
            cache.insert(k, identity(1000), 20);
            assert!(cache.len() <= 4);
            assert!(cache.get(&k, 20).is_some());
        }
    }

    #[test]
    fn distinct_tokens_distinct_keys() {
        assert_ne!(TokenCache::key("a.b.c"), TokenCache::key("a.b.d"));
    }
}
