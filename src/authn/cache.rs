//! Verified tokens, so a repeat request costs a hash and a map lookup instead of a signature
//! check. Keyed by SipHash-1-3 with a 128-bit output under a random per-cache key: a keyed PRF,
//! so an attacker who does not know the key cannot aim a token at another token's entry (a
//! collision needs ~2^64 tries, each a signed token it must get verified, and no try tells it
//! how close it came); fixed-size however large the token, and the token itself is not kept in
//! memory. It replaced SHA-256, which costs about twice as much on a ~700-byte RS256 token
//! (`cargo bench --bench jwt token_cache/key`).
//!
//! Eviction is quick_cache's S3-FIFO: a token seen once waits in a small probationary queue and
//! is the first to go, so a spray of distinct one-shot tokens cannot push out the tokens in
//! repeated use, and the entry count never passes the configured bound.
//!
//! Each entry remembers which key verified it (`kid` and key fingerprint). A hit is only valid
//! while the key set in force still holds that key: a key removed or replaced by a JWKS refresh
//! takes its cached tokens with it, and their next use is verified afresh.

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use siphasher::sip128::{Hasher128, SipHasher13};

use super::identity::Identity;
use super::keys::{KeyFingerprint, KeySet};

pub type TokenKey = u128;

/// The key a cached token was verified with. None for the HS256 secret, which never changes
/// while the process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStamp {
    pub kid: Option<Arc<str>>,
    pub alg: Algorithm,
    pub fingerprint: KeyFingerprint,
}

impl KeyStamp {
    /// The stamp of the key `set` picks for a token with this `kid` and `alg`.
    pub fn of(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Option<KeyStamp> {
        set.find(kid, alg).map(|key| KeyStamp {
            kid: kid.map(Arc::from),
            alg,
            fingerprint: key.fingerprint,
        })
    }

    /// Whether `set` would still verify the token with the same key.
    pub fn holds_in(&self, set: &KeySet) -> bool {
        set.find(self.kid.as_deref(), self.alg)
            .is_some_and(|key| key.fingerprint == self.fingerprint)
    }
}

#[derive(Debug, Clone)]
pub struct Cached {
    pub identity: Arc<Identity>,
    pub stamp: Option<Arc<KeyStamp>>,
}

pub struct TokenCache {
    map: quick_cache::sync::Cache<TokenKey, Cached>,
    /// The SipHash key, drawn once from the thread CSPRNG; never leaves the process.
    hash_key: [u64; 2],
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            map: quick_cache::sync::Cache::new(capacity.max(1)),
            hash_key: rand::random(),
        }
    }

    /// The entry key of a token: its keyed 128-bit hash under this cache's secret key.
    pub fn key(&self, token: &str) -> TokenKey {
        let mut hasher = SipHasher13::new_with_keys(self.hash_key[0], self.hash_key[1]);
        std::hash::Hasher::write(&mut hasher, token.as_bytes());
        hasher.finish128().as_u128()
    }

    /// The entry for a token verified earlier, unless it has expired by `now`, or `keys` (the
    /// key set in force, for JWKS) no longer holds the key that verified it. Dead entries are
    /// removed.
    pub fn get(&self, key: &TokenKey, now: u64, keys: Option<&KeySet>) -> Option<Arc<Identity>> {
        let cached = self.map.get(key)?;
        let alive = now < cached.identity.expires_at
            && match (&cached.stamp, keys) {
                (Some(stamp), Some(set)) => stamp.holds_in(set),
                (None, None) => true,
                // The key source changed kind: never trust the entry.
                _ => false,
            };
        if !alive {
            self.map
                .remove_if(key, |held| Arc::ptr_eq(&held.identity, &cached.identity));
            return None;
        }
        Some(cached.identity)
    }

    /// Remembers a verified identity until its `exp` (and while its key lasts).
    pub fn insert(
        &self,
        key: TokenKey,
        identity: Arc<Identity>,
        stamp: Option<KeyStamp>,
        now: u64,
    ) {
        if now >= identity.expires_at {
            return;
        }
        let stamp = stamp.map(Arc::new);
        self.map.insert(key, Cached { identity, stamp });
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
    use crate::authn::keys::AlgSet;

    fn identity(exp: u64) -> Arc<Identity> {
        Arc::new(Identity::new("u", "7001", RoleSet::EMPTY, None, exp).unwrap())
    }

    fn fixture_set() -> KeySet {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/keys/jwks.json"
        ))
        .unwrap();
        KeySet::from_jwks(&bytes, AlgSet::all_public()).unwrap()
    }

    #[test]
    fn entry_dies_at_exp() {
        let cache = TokenCache::new(10);
        let k = cache.key("a.b.c");
        cache.insert(k, identity(100), None, 50);
        assert!(cache.get(&k, 99, None).is_some());
        assert!(cache.get(&k, 100, None).is_none());
        assert!(cache.is_empty(), "expired entry removed on read");
        cache.insert(k, identity(100), None, 100);
        assert!(cache.is_empty(), "already-dead identity not stored");
    }

    #[test]
    fn entry_dies_with_its_key() {
        let set = fixture_set();
        let stamp = KeyStamp::of(&set, Some("rsa1"), Algorithm::RS256).unwrap();
        let cache = TokenCache::new(10);
        let k = cache.key("a.b.c");
        cache.insert(k, identity(100), Some(stamp.clone()), 0);
        assert!(cache.get(&k, 1, Some(&set)).is_some());

        // The same kid with other material (the ec1 key's fingerprint stands in for it).
        let other = KeyStamp::of(&set, Some("ec1"), Algorithm::ES256).unwrap();
        let moved = KeyStamp {
            fingerprint: other.fingerprint,
            ..stamp.clone()
        };
        let k2 = cache.key("d.e.f");
        cache.insert(k2, identity(100), Some(moved), 0);
        assert!(cache.get(&k2, 1, Some(&set)).is_none());

        // A kid the set no longer has.
        let gone = KeyStamp {
            kid: Some(Arc::from("retired")),
            ..stamp
        };
        let k3 = cache.key("g.h.i");
        cache.insert(k3, identity(100), Some(gone), 0);
        assert!(cache.get(&k3, 1, Some(&set)).is_none());
        assert_eq!(cache.len(), 1, "dead entries are removed");
        // A JWKS entry is never valid without a key set to check it against.
        assert!(cache.get(&k, 1, None).is_none());
    }

    /// A hot working set in repeated use survives a spray of many distinct one-shot tokens
    /// (S3-FIFO's probationary queue absorbs them), and the size stays within the bound.
    #[test]
    fn a_spray_of_distinct_tokens_does_not_evict_the_working_set() {
        const CAPACITY: usize = 1_000;
        let cache = TokenCache::new(CAPACITY);
        let hot: Vec<TokenKey> = (0..200).map(|i| cache.key(&format!("hot{i}"))).collect();
        for k in &hot {
            cache.insert(*k, identity(u64::MAX), None, 0);
        }
        for round in 0..3 {
            for k in &hot {
                assert!(cache.get(k, 1, None).is_some());
            }
            let _ = round;
        }
        let mut max_len = 0;
        for i in 0..100_000 {
            cache.insert(cache.key(&format!("spray{i}")), identity(u64::MAX), None, 0);
            max_len = max_len.max(cache.len());
            // The working set keeps being used, as real clients do.
            if i % 500 == 0 {
                for k in &hot {
                    let _ = cache.get(k, 1, None);
                }
            }
        }
        let survivors = hot
            .iter()
            .filter(|k| cache.get(k, 1, None).is_some())
            .count();
        assert_eq!(survivors, hot.len(), "the hot working set was evicted");
        assert!(max_len <= CAPACITY, "grew to {max_len} entries");
    }

    #[test]
    fn distinct_tokens_distinct_keys() {
        let cache = TokenCache::new(1);
        assert_ne!(cache.key("a.b.c"), cache.key("a.b.d"));
        assert_eq!(cache.key("a.b.c"), cache.key("a.b.c"));
    }

    /// The hash key is secret and per cache: the same token keys differently in another
    /// cache (another process), so a collision found against one does not carry over.
    #[test]
    fn keys_are_secret_per_cache() {
        let (a, b) = (TokenCache::new(1), TokenCache::new(1));
        assert_ne!(a.hash_key, b.hash_key);
        assert_ne!(a.key("a.b.c"), b.key("a.b.c"));
    }
}
