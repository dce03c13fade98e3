//! Merging panes the way the ClickHouse views do: counts and sums add, min
//! and max fold, and percentiles come from all panes' centroids pooled with
//! their weights (nearest rank, as `quantileExactWeighted`). Used to check
//! and to cascade rollups without a database.

use centile_events::{Centroid, LatencyPane};

/// The merged statistics of any number of latency panes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencySummary {
    pub calls: i64,
    pub successes: i64,
    pub errors: i64,
    pub rt_sum: f64,
    pub rt_min: f64,
    pub rt_max: f64,
    pub input_tokens_sum: i64,
    pub output_tokens_sum: i64,
    pub centroids: Vec<Centroid>,
}

impl LatencySummary {
    pub fn merge<'a>(panes: impl IntoIterator<Item = &'a LatencyPane>) -> Self {
        let mut summary = Self {
            rt_min: f64::INFINITY,
            rt_max: f64::NEG_INFINITY,
            ..Self::default()
        };
        for pane in panes {
            summary.calls += pane.calls;
            summary.successes += pane.successes;
            summary.errors += pane.errors;
            summary.rt_sum += pane.rt_sum;
            summary.rt_min = summary.rt_min.min(pane.rt_min);
            summary.rt_max = summary.rt_max.max(pane.rt_max);
            summary.input_tokens_sum += pane.input_tokens_sum;
            summary.output_tokens_sum += pane.output_tokens_sum;
            summary.centroids.extend_from_slice(&pane.centroids);
        }
        summary
    }

    pub fn quantile(&self, level: f64) -> Option<f64> {
        weighted_quantile(&self.centroids, level)
    }
}

/// The first value, in ascending order, at which the accumulated weight
/// reaches `ceil(level * total)`: ClickHouse's `quantileExactWeighted`.
pub fn weighted_quantile(centroids: &[Centroid], level: f64) -> Option<f64> {
    let mut sorted: Vec<Centroid> = centroids.iter().copied().filter(|c| c.weight > 0).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(|a, b| a.mean.total_cmp(&b.mean));
    let total: u64 = sorted.iter().map(|c| c.weight).sum();
    let threshold = (total as f64 * level).ceil() as u64;
    let mut accumulated = 0;
    for c in &sorted {
        accumulated += c.weight;
        if accumulated >= threshold {
            return Some(c.mean);
        }
    }
    sorted.last().map(|c| c.mean)
}

/// The exact nearest-rank quantile of raw values: `sorted[ceil(q n) - 1]`.
pub fn nearest_rank(sorted: &[f64], level: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((level * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
