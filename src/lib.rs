//! The `centile` root package: end-to-end tests (`tests/`) and benchmarks
//! (`benches/`) of the whole pipeline, plus the small test kit they share.
