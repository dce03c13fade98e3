//! Deterministic pane ids: the same window, dimensions, source partition and
//! first input offset always give the same id, so a replay overwrites
//! instead of adding.

use sha2::{Digest, Sha256};

/// Hashes the `\0`-separated parts into 32 hex digits (128 bits).
pub fn pane_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// Orders pane versions: later input wins, and the final emission of a pane
/// outranks a non-final one of the same input.
pub fn version(last_offset: i64, is_final: bool) -> i64 {
    last_offset * 2 + i64::from(is_final)
}
