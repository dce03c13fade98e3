//! The `centile` root package: end-to-end tests (`tests/`) and benchmarks
//! (`benches/`) of the whole pipeline, plus the test kit they share.
//!
//! Every [`testkit::TestEnv`] gets its own topics, consumer groups and
//! ClickHouse database, so tests run in parallel against one local broker
//! and one ClickHouse server (`deploy/local/stack up`).

pub mod api_kit;
pub mod bench_kit;
pub mod gateway_kit;
pub mod prometheus_kit;
pub mod secure_kit;
pub mod testkit;
pub mod truth;
