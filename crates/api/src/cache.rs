//! Answers kept under their query and a data token. The token summarises
//! the stored rows an answer was computed from (see
//! [`crate::queries::Plan::token_sql`]); an answer is served only while the
//! token is unchanged, so a restatement (a higher `revision`) is never
//! served stale. Bounded by entries and bytes; least recently used goes.

use std::collections::HashMap;

use bytes::Bytes;

#[derive(Debug)]
struct Entry {
    token: String,
    body: Bytes,
    last_used: u64,
}

#[derive(Debug)]
pub struct Cache {
    entries: HashMap<String, Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    clock: u64,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(Bytes),
    /// Nothing stored, or stored under another token (now dropped).
    Miss,
}

impl Cache {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: HashMap::new(),
            bytes: 0,
            max_entries,
            max_bytes,
            clock: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    pub fn get(&mut self, key: &str, token: &str) -> Lookup {
        self.clock += 1;
        match self.entries.get_mut(key) {
            Some(entry) if entry.token == token => {
                entry.last_used = self.clock;
                Lookup::Hit(entry.body.clone())
            }
            Some(_) => {
                self.remove(key);
                Lookup::Miss
            }
            None => Lookup::Miss,
        }
    }

    pub fn put(&mut self, key: String, token: String, body: Bytes) {
        let size = key.len() + token.len() + body.len();
        if !self.enabled() || size > self.max_bytes {
            return;
        }
        self.remove(&key);
        while self.entries.len() >= self.max_entries || self.bytes + size > self.max_bytes {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.remove(&oldest);
        }
        self.clock += 1;
        self.bytes += size;
        self.entries.insert(
            key,
            Entry {
                token,
                body,
                last_used: self.clock,
            },
        );
    }

    fn remove(&mut self, key: &str) {
        if let Some((key, e)) = self.entries.remove_entry(key) {
            self.bytes -= key.len() + e.token.len() + e.body.len();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_new_token_is_a_miss() {
        let mut cache = Cache::new(10, 1 << 20);
        cache.put("q".into(), "rev1".into(), Bytes::from_static(b"old"));
        assert_eq!(
            cache.get("q", "rev1"),
            Lookup::Hit(Bytes::from_static(b"old"))
        );
        // A restatement raised the revision: the old answer must not come back.
        assert_eq!(cache.get("q", "rev2"), Lookup::Miss);
        assert_eq!(
            cache.get("q", "rev1"),
            Lookup::Miss,
            "dropped on the mismatch"
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut cache = Cache::new(2, 1 << 20);
        cache.put("a".into(), "t".into(), Bytes::from_static(b"1"));
        cache.put("b".into(), "t".into(), Bytes::from_static(b"2"));
        assert!(matches!(cache.get("a", "t"), Lookup::Hit(_)));
        cache.put("c".into(), "t".into(), Bytes::from_static(b"3"));
        assert!(matches!(cache.get("a", "t"), Lookup::Hit(_)));
        assert_eq!(cache.get("b", "t"), Lookup::Miss);
    }

    proptest! {
        #[test]
        fn bounds_always_hold(ops in proptest::collection::vec((0u8..20, 0u8..3, 0usize..300), 1..200)) {
            let mut cache = Cache::new(8, 1000);
            for (key, token, size) in ops {
                cache.put(key.to_string(), token.to_string(), Bytes::from(vec![0; size]));
                prop_assert!(cache.len() <= 8);
                prop_assert!(cache.bytes() <= 1000);
                let accounted: usize = cache.entries.iter().map(|(k, e)| k.len() + e.token.len() + e.body.len()).sum();
                prop_assert_eq!(accounted, cache.bytes());
            }
        }
    }
}
