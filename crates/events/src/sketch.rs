//! The response-time sketch: a log-bucketed histogram that keeps, per bucket,
//! the count and the sum of its values.
//!
//! Bucket `k` holds the values in `[GAMMA^k, GAMMA^(k+1))`. Merging two
//! sketches adds counts and sums key by key, so merging is exact,
//! associative and commutative: ClickHouse does it with `sumMap` at every
//! tier (minute, hour, day, week, any subset of dimensions) and nothing is
//! ever re-compressed. A quantile is the mean of the bucket that holds the
//! nearest-rank value. That mean and the true value lie in the same bucket,
//! so the relative error is below `GAMMA - 1` (0.5%) for every window size,
//! and the answer is exact whenever the bucket holds one distinct value
//! (small windows, integral milliseconds).
//!
//! The number of buckets is bounded by the spread of the values, not by
//! their count: a 100× spread needs at most 925 buckets, whatever the
//! window's volume.

use std::collections::BTreeMap;

use crate::Centroid;

/// Bucket growth factor; also the bound on the relative error of quantiles.
/// The SQL that buckets pane centroids (`bucket_key_sql`) uses the same value.
pub const GAMMA: f64 = 1.005;

/// The bucket of values at or below `ZERO_LIMIT` (zero response times).
pub const ZERO_KEY: i32 = i32::MIN;

/// Values at or below this (ms) share the zero bucket.
pub const ZERO_LIMIT: f64 = 1e-6;

/// The bucket holding `value`.
pub fn bucket_key(value: f64) -> i32 {
    if value.is_nan() || value <= ZERO_LIMIT {
        return ZERO_KEY;
    }
    // Bounded: log_γ(f64::MAX) is about 142,000.
    (value.ln() / GAMMA.ln()).floor() as i32
}

/// The same bucketing as [`bucket_key`], as a ClickHouse expression over a
/// Float64 expression `value` (valid on 18.16 and modern servers). The log
/// is taken of a positive value even in the unused branch: a server that
/// evaluates both branches of `if` must not convert `-inf` to an integer.
pub fn bucket_key_sql(value: &str) -> String {
    format!(
        "if({value} <= {ZERO_LIMIT:e}, toInt32({ZERO_KEY}), toInt32(floor(log(greatest({value}, {ZERO_LIMIT:e})) / log({GAMMA}))))"
    )
}

/// Count and sum of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bucket {
    pub count: u64,
    pub sum: f64,
}

/// A mergeable histogram of response times (see the module docs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sketch {
    buckets: BTreeMap<i32, Bucket>,
}

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, value: f64) {
        let bucket = self.buckets.entry(bucket_key(value)).or_default();
        bucket.count += 1;
        bucket.sum += value;
    }

    /// Adds every bucket of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        for (key, b) in &other.buckets {
            let bucket = self.buckets.entry(*key).or_default();
            bucket.count += b.count;
            bucket.sum += b.sum;
        }
    }

    /// Adds centroids (a bucket's mean and count, as panes carry them).
    pub fn add_centroids(&mut self, centroids: &[Centroid]) {
        for c in centroids.iter().filter(|c| c.weight > 0) {
            let bucket = self.buckets.entry(bucket_key(c.mean)).or_default();
            bucket.count += c.weight;
            bucket.sum += c.mean * c.weight as f64;
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().map(|b| b.count).sum()
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn buckets(&self) -> impl Iterator<Item = (i32, Bucket)> + '_ {
        self.buckets.iter().map(|(k, b)| (*k, *b))
    }

    /// One centroid per bucket, in ascending order: the bucket's mean and
    /// count. This is what a pane carries on the wire.
    pub fn centroids(&self) -> Vec<Centroid> {
        self.buckets
            .values()
            .map(|b| Centroid {
                mean: b.sum / b.count as f64,
                weight: b.count,
            })
            .collect()
    }

    /// The mean of the bucket holding the value of rank `ceil(level × n)`:
    /// what the ClickHouse views compute.
    pub fn quantile(&self, level: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64 * level).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for b in self.buckets.values() {
            seen += b.count;
            if seen >= rank {
                return Some(b.sum / b.count as f64);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nearest_rank(sorted: &[f64], level: f64) -> f64 {
        let rank = ((level * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn buckets_are_gamma_wide() {
        assert_eq!(bucket_key(1.0), 0);
        assert_eq!(bucket_key(1.004), 0);
        assert_eq!(bucket_key(1.0051), 1);
        assert_eq!(bucket_key(0.0), ZERO_KEY);
        assert_eq!(bucket_key(-3.0), ZERO_KEY);
        assert!(bucket_key(f64::MAX) < 150_000);
    }

    #[test]
    fn single_values_are_exact() {
        let mut s = Sketch::new();
        for v in [12.0, 12.0, 15.0, 300.0] {
            s.add(v);
        }
        assert_eq!(s.quantile(0.5), Some(12.0));
        assert_eq!(s.quantile(0.75), Some(15.0));
        assert_eq!(s.quantile(0.99), Some(300.0));
    }

    #[test]
    fn spread_bounds_the_size() {
        let mut s = Sketch::new();
        for i in 0..1_000_000 {
            s.add(10.0 + (i % 99_001) as f64 * 0.01); // 10 ms ..= 1 s: a 100× spread
        }
        assert!(s.len() <= 925, "{} buckets", s.len());
    }

    proptest! {
        #[test]
        fn quantiles_within_gamma_of_exact(
            values in proptest::collection::vec(0.0f64..1e6, 1..3_000),
            level in 0.0f64..=1.0,
        ) {
            let mut s = Sketch::new();
            values.iter().for_each(|v| s.add(*v));
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let exact = nearest_rank(&sorted, level);
            let got = s.quantile(level).unwrap();
            if exact > ZERO_LIMIT {
                prop_assert!((got - exact).abs() <= (GAMMA - 1.0) * exact * 1.000_001,
                    "got {got}, exact {exact}");
            } else {
                prop_assert!(got <= ZERO_LIMIT);
            }
        }

        #[test]
        fn merging_splits_equals_the_whole(
            values in proptest::collection::vec((1u32..100_000).prop_map(f64::from), 1..2_000),
            parts in 1usize..6,
        ) {
            let mut whole = Sketch::new();
            let mut split = vec![Sketch::new(); parts];
            for (i, v) in values.iter().enumerate() {
                whole.add(*v);
                split[i % parts].add(*v);
            }
            let mut merged = Sketch::new();
            for s in &split {
                let mut via_wire = Sketch::new();
                via_wire.add_centroids(&s.centroids());
                merged.merge(&via_wire);
            }
            prop_assert_eq!(merged.count(), whole.count());
            for q in [0.5, 0.95, 0.99] {
                let (a, b) = (merged.quantile(q).unwrap(), whole.quantile(q).unwrap());
                prop_assert!((a - b).abs() <= 1e-9 * b, "{a} vs {b}");
            }
        }
    }
}
