//! Event ids the broker has recently acknowledged through this gateway, per
//! tenant. A retried request's events that are already in the topic are
//! answered as accepted without being published again, so a retry after a
//! timeout adds no copy at all when it reaches the same gateway. Copies that
//! do get through (another gateway instance, a restart) are still collapsed
//! downstream by event id.
//!
//! Keys are the first 16 bytes of SHA-256(tenant, id): a collision, which
//! would drop a distinct event, is beyond any realistic volume (2^-64 at a
//! billion ids). Pure: the clock is passed in.
//!
//! Each remembered id carries a fingerprint of its event's content, so an id
//! reused for *different* content is refused (409) instead of answered as a
//! duplicate and dropped. `Idempotency-Key`s are remembered the same way,
//! with a fingerprint of the request's events, in the same bounded memory.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

pub type IdKey = [u8; 16];

/// A digest of an event's (or a request's) content.
pub type Fingerprint = [u8; 16];

/// The key of one tenant's `Idempotency-Key`; kept apart from event ids by
/// its own domain prefix.
pub fn idempotency_key(tenant: &str, key: &str) -> IdKey {
    let mut hasher = Sha256::new();
    hasher.update(b"idempotency-key\0");
    hasher.update((tenant.len() as u64).to_be_bytes());
    hasher.update(tenant.as_bytes());
    hasher.update(key.as_bytes());
    hasher.finalize()[..16].try_into().expect("16 bytes")
}

/// The fingerprint of some canonical bytes.
pub fn fingerprint(parts: &[&[u8]]) -> Fingerprint {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize()[..16].try_into().expect("16 bytes")
}

/// The key of one tenant's event id of one kind: a latency and a usage
/// event of one model call (an OTLP span) share their id.
pub fn id_key(tenant: &str, kind: &str, event_id: &str) -> IdKey {
    let mut hasher = Sha256::new();
    hasher.update((tenant.len() as u64).to_be_bytes());
    hasher.update(tenant.as_bytes());
    hasher.update((kind.len() as u64).to_be_bytes());
    hasher.update(kind.as_bytes());
    hasher.update(event_id.as_bytes());
    hasher.finalize()[..16].try_into().expect("16 bytes")
}

/// Ids being published or acknowledged, per tenant; acknowledged ones are
/// kept for `window` and at most `capacity` of them.
#[derive(Debug)]
pub struct RecentIds {
    window: Duration,
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Handed to the producer, not yet settled.
    Pending(Fingerprint),
    Acknowledged(Instant, Fingerprint),
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<IdKey, Entry>,
    acknowledged_order: VecDeque<(Instant, IdKey)>,
}

/// What a request may publish.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Some ids are still being published by an earlier request; publish
    /// nothing and let the client retry once that has settled.
    Busy,
    /// The positions of ids acknowledged recently with different content;
    /// publish nothing.
    Conflict(Vec<usize>),
    /// The positions of the ids to publish, now marked pending; the others
    /// were acknowledged already.
    Publish(Vec<usize>),
}

impl RecentIds {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            state: Mutex::new(State::default()),
        }
    }

    /// Claims the ids a request will publish, all or nothing: an id
    /// acknowledged with other content is a conflict, a pending one makes
    /// the request wait, an acknowledged one with the same content is
    /// skipped.
    pub fn claim(&self, keys: &[(IdKey, Fingerprint)], now: Instant) -> Claim {
        if self.capacity == 0 {
            return Claim::Publish((0..keys.len()).collect());
        }
        let mut state = self.state.lock().expect("recent ids lock");
        let mut fresh = Vec::with_capacity(keys.len());
        let mut conflicts = Vec::new();
        let mut busy = false;
        for (index, (key, print)) in keys.iter().enumerate() {
            match state.entries.get(key) {
                Some(Entry::Pending(_)) => busy = true,
                Some(Entry::Acknowledged(at, known))
                    if now.saturating_duration_since(*at) < self.window =>
                {
                    if known != print {
                        conflicts.push(index);
                    }
                }
                _ => fresh.push(index),
            }
        }
        if !conflicts.is_empty() {
            return Claim::Conflict(conflicts);
        }
        if busy {
            return Claim::Busy;
        }
        for index in &fresh {
            let (key, print) = keys[*index];
            state.entries.insert(key, Entry::Pending(print));
        }
        Claim::Publish(fresh)
    }

    /// Whether `key` was remembered in the window with another fingerprint
    /// (an `Idempotency-Key` reused for a different request).
    pub fn conflicts(&self, key: &IdKey, print: &Fingerprint, now: Instant) -> bool {
        let state = self.state.lock().expect("recent ids lock");
        matches!(
            state.entries.get(key),
            Some(Entry::Acknowledged(at, known))
                if now.saturating_duration_since(*at) < self.window && known != print
        )
    }

    /// Remembers `key` as acknowledged with `print` (an accepted request's
    /// `Idempotency-Key`).
    pub fn remember(&self, key: IdKey, print: Fingerprint, now: Instant) {
        self.settle(&[(key, print)], true, now);
    }

    /// Settles claimed ids: acknowledged ones are remembered, failed ones
    /// released so that a retry publishes them.
    pub fn settle(&self, keys: &[(IdKey, Fingerprint)], acknowledged: bool, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let mut state = self.state.lock().expect("recent ids lock");
        for (key, print) in keys {
            if acknowledged {
                state.entries.insert(*key, Entry::Acknowledged(now, *print));
                state.acknowledged_order.push_back((now, *key));
            } else if matches!(state.entries.get(key), Some(Entry::Pending(_))) {
                state.entries.remove(key);
            }
        }
        while let Some((at, key)) = state.acknowledged_order.front().copied() {
            let expired = now.saturating_duration_since(at) >= self.window;
            if !expired && state.entries.len() <= self.capacity {
                break;
            }
            state.acknowledged_order.pop_front();
            // A key acknowledged again later has a newer entry further back.
            if matches!(state.entries.get(&key), Some(Entry::Acknowledged(t, _)) if *t == at) {
                state.entries.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("recent ids lock").entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAME: Fingerprint = [0; 16];

    fn keys(n: usize) -> Vec<(IdKey, Fingerprint)> {
        (0..n)
            .map(|i| (id_key("t", "latency", &i.to_string()), SAME))
            .collect()
    }

    #[test]
    fn acknowledged_ids_are_skipped_per_tenant_for_the_window() {
        let recent = RecentIds::new(Duration::from_secs(600), 100);
        let start = Instant::now();
        let a = (id_key("acme", "latency", "e-1"), SAME);
        assert_eq!(recent.claim(&[a], start), Claim::Publish(vec![0]));
        recent.settle(&[a], true, start);
        let b = (id_key("acme", "latency", "e-2"), SAME);
        let later = start + Duration::from_secs(599);
        assert_eq!(recent.claim(&[a, b], later), Claim::Publish(vec![1]));
        recent.settle(&[b], true, later);
        let expired = start + Duration::from_secs(600);
        assert_eq!(recent.claim(&[a], expired), Claim::Publish(vec![0]));
        assert_eq!(
            recent.claim(&[(id_key("globex", "latency", "e-1"), SAME)], start),
            Claim::Publish(vec![0])
        );
        assert_ne!(id_key("ab", "latency", "c"), id_key("a", "latency", "bc"));
        assert_ne!(id_key("a", "latency", "e-1"), id_key("a", "usage", "e-1"));
    }

    #[test]
    fn pending_ids_make_a_retry_wait_and_failures_release_them() {
        let recent = RecentIds::new(Duration::from_secs(600), 100);
        let now = Instant::now();
        let k = keys(3);
        assert_eq!(recent.claim(&k[..2], now), Claim::Publish(vec![0, 1]));
        assert_eq!(recent.claim(&k[1..], now), Claim::Busy);
        assert_eq!(
            recent.claim(&k[2..], now),
            Claim::Publish(vec![0]),
            "busy claims mark nothing"
        );
        recent.settle(&k[..2], false, now);
        assert_eq!(recent.claim(&k[..2], now), Claim::Publish(vec![0, 1]));
    }

    #[test]
    fn the_oldest_are_forgotten_beyond_capacity_or_window() {
        let recent = RecentIds::new(Duration::from_secs(60), 3);
        let start = Instant::now();
        let k = keys(4);
        recent.settle(&k[..2], true, start);
        recent.settle(&k[..1], true, start + Duration::from_secs(10));
        recent.settle(&k[2..4], true, start + Duration::from_secs(20));
        assert_eq!(recent.len(), 3);
        let now = start + Duration::from_secs(20);
        assert_eq!(
            recent.claim(&k, now),
            Claim::Publish(vec![1]),
            "1 was the oldest, evicted"
        );
        recent.settle(&k[1..2], false, now);
        recent.settle(&[], true, start + Duration::from_secs(75));
        assert_eq!(recent.len(), 2, "the 10 s entry expired");
        let off = RecentIds::new(Duration::from_secs(60), 0);
        off.settle(&k, true, start);
        assert!(off.is_empty());
        assert_eq!(off.claim(&k[..2], start), Claim::Publish(vec![0, 1]));
    }

    #[test]
    fn an_id_or_key_with_other_content_conflicts() {
        let recent = RecentIds::new(Duration::from_secs(600), 100);
        let now = Instant::now();
        let id = id_key("acme", "latency", "e-1");
        let other = [1; 16];
        recent.settle(&[(id, SAME)], true, now);
        let fresh = (id_key("acme", "latency", "e-2"), SAME);
        assert_eq!(
            recent.claim(&[fresh, (id, other)], now),
            Claim::Conflict(vec![1])
        );
        assert_eq!(
            recent.claim(&[fresh], now),
            Claim::Publish(vec![0]),
            "a conflict marks nothing pending"
        );
        assert_eq!(recent.claim(&[(id, SAME)], now), Claim::Publish(vec![]));
        let key = idempotency_key("acme", "req-1");
        assert_ne!(key, id_key("acme", "latency", "req-1"));
        assert!(!recent.conflicts(&key, &SAME, now));
        recent.remember(key, SAME, now);
        assert!(!recent.conflicts(&key, &SAME, now));
        assert!(recent.conflicts(&key, &other, now));
        assert!(!recent.conflicts(&key, &other, now + Duration::from_secs(600)));
    }
}
