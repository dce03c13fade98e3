//! What the benchmarks share: positional arguments and exact percentiles.

/// The `n`th positional argument after `cargo bench --bench X --`, or
/// `default`. Flags (`--bench`) and the program path are skipped.
pub fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// The nearest-rank `q` quantile of sorted values; NaN when there are none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
