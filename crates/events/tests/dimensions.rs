//! Parameter hashing and window assignment.

use std::collections::BTreeMap;

use centile_events::{Granularity, ParameterHasher};
use proptest::prelude::*;

#[test]
fn only_performance_parameters_are_hashed_and_kept() {
    let hasher = ParameterHasher::default();
    let with_noise = BTreeMap::from([
        ("temperature".to_owned(), "0.7".to_owned()),
        ("request_label".to_owned(), "abc".to_owned()),
    ]);
    let clean = BTreeMap::from([("temperature".to_owned(), "0.7".to_owned())]);
    assert_eq!(hasher.select(&with_noise), hasher.select(&clean));
    assert_eq!(hasher.select(&clean).parameters, clean);
    assert_ne!(
        hasher.select(&clean).hash,
        hasher.select(&BTreeMap::new()).hash
    );
    assert_eq!(hasher.select(&clean).hash.len(), 16);
}

#[test]
fn hash_is_configurable_and_escapes_separators() {
    let hasher = ParameterHasher::new(["a", "a=b"]);
    let one = BTreeMap::from([("a".to_owned(), "b=c".to_owned())]);
    let two = BTreeMap::from([("a=b".to_owned(), "c".to_owned())]);
    assert_ne!(hasher.select(&one).hash, hasher.select(&two).hash);
}

#[test]
fn windows_align_to_utc_edges() {
    let hour = 3_600_000;
    let day = 86_400_000;
    // 2024-03-10T23:59:59.999Z and the next millisecond.
    let last = 1_710_115_199_999;
    assert_eq!(Granularity::Day.window_start(last), 1_710_028_800_000);
    assert_eq!(Granularity::Day.window_start(last + 1), 1_710_115_200_000);
    assert_eq!(Granularity::Hour.window_start(last), last + 1 - hour);
    assert_eq!(Granularity::Hour.window_start(last + 1), last + 1);
    assert_eq!(Granularity::Minute.window_start(last), last + 1 - 60_000);
    assert_eq!(Granularity::Minute.window_start(last + 1), last + 1);
    assert_eq!(Granularity::Day.window_start(0), 0);
    assert_eq!(Granularity::Day.window_start(-1), -day);
}

proptest! {
    #[test]
    fn hash_ignores_insertion_order(pairs in proptest::collection::vec(("[a-z_]{1,12}", ".{0,8}"), 0..8)) {
        let hasher = ParameterHasher::new(pairs.iter().map(|(k, _)| k.clone()));
        let forward: BTreeMap<_, _> = pairs.iter().cloned().collect();
        let backward: BTreeMap<_, _> = pairs.iter().rev().cloned().collect::<Vec<_>>().into_iter().rev().collect();
        prop_assert_eq!(hasher.select(&forward), hasher.select(&backward));
    }

    #[test]
    fn every_timestamp_falls_in_its_window(ts in -10_000_000_000_000i64..10_000_000_000_000) {
        for g in Granularity::ALL {
            let start = g.window_start(ts);
            prop_assert!(start <= ts && ts < start + g.millis());
            prop_assert_eq!(start.rem_euclid(g.millis()), 0);
        }
    }
}
