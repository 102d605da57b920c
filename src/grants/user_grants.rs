//! A user's grants, (organisation, workstream) → level, as a sorted boxed slice. A user holds
//! a handful; a `HashMap` each costs its table, hasher state and slack on every one of 300k
//! users, where the slice costs its entries plus a pointer and a length, and a binary search
//! over a few entries is as fast as hashing the key.

use super::codes::{SwaCode, Workstream};
use super::format::AccessLevel;

type Key = (SwaCode, Workstream);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(Box<[(Key, AccessLevel)]>);

impl Grants {
    pub fn get(&self, key: &Key) -> Option<&AccessLevel> {
        let i = self.0.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        self.0.get(i).map(|(_, level)| level)
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &AccessLevel)> {
        self.0.iter().map(|(k, level)| (k, level))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(Key, AccessLevel)> for Grants {
    /// A repeated key keeps its last level, as collecting into a map would.
    fn from_iter<I: IntoIterator<Item = (Key, AccessLevel)>>(entries: I) -> Grants {
        let mut v: Vec<(Key, AccessLevel)> = entries.into_iter().collect();
        v.reverse();
        // Stable: of equal keys the last given comes first, and dedup keeps the first.
        v.sort_by_key(|e| e.0);
        v.dedup_by(|a, b| a.0 == b.0);
        Grants(v.into_boxed_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_grant_and_a_repeated_key_keeps_the_last() {
        let swa = |s: &str| SwaCode::parse(s).unwrap();
        let ws = |s: &str| Workstream::parse(s).unwrap();
        let g: Grants = [
            ((swa("7001"), ws("002")), AccessLevel::ReadOnly),
            ((swa("4020"), ws("001")), AccessLevel::ReadOnly),
            ((swa("7001"), ws("002")), AccessLevel::FullWrite),
        ]
        .into_iter()
        .collect();
        assert_eq!(g.len(), 2);
        assert_eq!(
            g.get(&(swa("7001"), ws("002"))),
            Some(&AccessLevel::FullWrite)
        );
        assert_eq!(
            g.get(&(swa("4020"), ws("001"))),
            Some(&AccessLevel::ReadOnly)
        );
        assert_eq!(g.get(&(swa("4020"), ws("002"))), None);
        assert_eq!(Grants::default().get(&(swa("4020"), ws("001"))), None);
        let keys: Vec<_> = g.keys().collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}
