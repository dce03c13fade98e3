//! A string that never shows itself in logs or debug output.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value; use only where it is sent to its consumer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// The SHA-256 of an API key, as stored in key files. Keys are long random
/// tokens, so an unsalted hash is enough: nobody can guess a key from its
/// hash, and services never store, compare or log the key itself.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A stored key hash: 64 hex digits.
pub fn parse_key_hash(hex_digits: &str) -> Result<[u8; 32], &'static str> {
    hex::decode(hex_digits)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("a key hash must be 64 hex digits (the SHA-256 of the key, never the key)")
}
