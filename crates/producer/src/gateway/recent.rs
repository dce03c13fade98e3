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

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

pub type IdKey = [u8; 16];

/// The key of one tenant's event id.
pub fn id_key(tenant: &str, event_id: &str) -> IdKey {
    let mut hasher = Sha256::new();
    hasher.update((tenant.len() as u64).to_be_bytes());
    hasher.update(tenant.as_bytes());
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
    Pending,
    Acknowledged(Instant),
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

    /// Claims the ids a request will publish, all or nothing.
    pub fn claim(&self, keys: &[IdKey], now: Instant) -> Claim {
        if self.capacity == 0 {
            return Claim::Publish((0..keys.len()).collect());
        }
        let mut state = self.state.lock().expect("recent ids lock");
        let mut fresh = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            match state.entries.get(key) {
                Some(Entry::Pending) => return Claim::Busy,
                Some(Entry::Acknowledged(at))
                    if now.saturating_duration_since(*at) < self.window => {}
                _ => fresh.push(index),
            }
        }
        for index in &fresh {
            state.entries.insert(keys[*index], Entry::Pending);
        }
        Claim::Publish(fresh)
    }

    /// Settles claimed ids: acknowledged ones are remembered, failed ones
    /// released so that a retry publishes them.
    pub fn settle(&self, keys: &[IdKey], acknowledged: bool, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let mut state = self.state.lock().expect("recent ids lock");
        for key in keys {
            if acknowledged {
                state.entries.insert(*key, Entry::Acknowledged(now));
                state.acknowledged_order.push_back((now, *key));
            } else if state.entries.get(key) == Some(&Entry::Pending) {
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
            if state.entries.get(&key) == Some(&Entry::Acknowledged(at)) {
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

    fn keys(n: usize) -> Vec<IdKey> {
        (0..n).map(|i| id_key("t", &i.to_string())).collect()
    }

    #[test]
    fn acknowledged_ids_are_skipped_per_tenant_for_the_window() {
        let recent = RecentIds::new(Duration::from_secs(600), 100);
        let start = Instant::now();
        let a = id_key("acme", "e-1");
        assert_eq!(recent.claim(&[a], start), Claim::Publish(vec![0]));
        recent.settle(&[a], true, start);
        let b = id_key("acme", "e-2");
        let later = start + Duration::from_secs(599);
        assert_eq!(recent.claim(&[a, b], later), Claim::Publish(vec![1]));
        recent.settle(&[b], true, later);
        let expired = start + Duration::from_secs(600);
        assert_eq!(recent.claim(&[a], expired), Claim::Publish(vec![0]));
        assert_eq!(
            recent.claim(&[id_key("globex", "e-1")], start),
            Claim::Publish(vec![0])
        );
        assert_ne!(id_key("ab", "c"), id_key("a", "bc"));
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
}
