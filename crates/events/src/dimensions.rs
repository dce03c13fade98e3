//! The performance-affecting parameter set and its stable hash.
//!
//! The hash is built from the selected parameters' `key=value` pairs in key
//! order, so the order of the event's map never matters. Keys and values are
//! percent-escaped (`%`, `=`, `&`) before joining with `&`, so no two
//! different sets can produce the same text.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

/// The parameters that change a model's latency, by default.
pub const DEFAULT_PERFORMANCE_PARAMETERS: [&str; 5] = [
    "thinking_mode",
    "use_websearch",
    "streaming",
    "max_tokens",
    "temperature",
];

/// Selects the performance-affecting parameters of an event and hashes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterHasher {
    keys: BTreeSet<String>,
}

/// The selected parameters, readable, next to their hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParameterSet {
    /// 16 lowercase hex digits (64 bits of SHA-256).
    pub hash: String,
    pub parameters: BTreeMap<String, String>,
}

impl Default for ParameterHasher {
    fn default() -> Self {
        Self::new(DEFAULT_PERFORMANCE_PARAMETERS)
    }
}

impl ParameterHasher {
    pub fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            keys: keys.into_iter().map(Into::into).collect(),
        }
    }

    pub fn select(&self, parameters: &BTreeMap<String, String>) -> ParameterSet {
        let selected: BTreeMap<String, String> = parameters
            .iter()
            .filter(|(k, _)| self.keys.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ParameterSet {
            hash: hash(&selected),
            parameters: selected,
        }
    }
}

/// Hashes an already-selected parameter map.
pub fn hash(selected: &BTreeMap<String, String>) -> String {
    let text = selected
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&");
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('=', "%3D")
        .replace('&', "%26")
}
