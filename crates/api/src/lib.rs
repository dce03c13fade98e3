//! Centile's read side: the query API (`centile-api`), its dashboard, and the
//! `centile query` CLI, all answering from the stored rollup tiers.
//!
//! - [`params`] parses and checks query parameters (a bad one is a 400
//!   naming it); [`error`] is the crate's error and its problem+json answer.
//! - [`auth`] holds the hashed bearer keys and their roles ([`auth::Scope`]).
//! - [`queries`] turns a checked request into ClickHouse SQL over the stored
//!   tiers and shapes the answer; the API and the CLI share it.
//! - [`catalog`] is the model catalog file and its search.
//! - [`cache`] keeps answers under a data token that changes with any
//!   restatement; [`server`] routes, authenticates, caches and bounds
//!   requests (connections through the runtime's shared listener); [`realtime`] streams the live view as Server-Sent Events.
//! - [`assets`] serves the dashboard; [`output`] prints answers for the CLI.

pub mod assets;
pub mod auth;
pub mod cache;
pub mod catalog;
pub mod error;
pub mod metrics;
pub mod output;
pub mod params;
pub mod queries;
pub mod realtime;
pub mod server;

pub use error::ApiError;
