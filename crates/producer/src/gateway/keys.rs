//! API keys, held only as SHA-256 hashes, each granting one tenant and a
//! request rate. Keys are long random tokens, so an unsalted hash is enough:
//! nobody can guess a key from its hash, and the gateway never stores,
//! compares or logs the key itself.

use std::collections::HashMap;

use super::{rate::Rate, GatewayError};

/// What a key may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub tenant: String,
    pub rate: Rate,
}

/// Every known key hash and its grant.
#[derive(Debug, Default)]
pub struct KeyStore {
    grants: HashMap<[u8; 32], Grant>,
}

pub use centile_runtime::secret::hash_key;

impl KeyStore {
    /// Loads `<sha256-hex> <tenant> [rate]` lines (blank lines and `#`
    /// comments allowed) and `hash = "tenant[@rate]"` entries.
    pub fn load<'a>(
        file: Option<(&str, &str)>,
        entries: impl IntoIterator<Item = (&'a String, &'a String)>,
        default_rate: Rate,
    ) -> Result<Self, GatewayError> {
        let mut store = Self::default();
        if let Some((path, text)) = file {
            for (number, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                let place = format!("{path} line {}", number + 1);
                let mut words = line.split_whitespace();
                let (hash, tenant) = match (words.next(), words.next()) {
                    (Some(hash), Some(tenant)) => (hash, tenant),
                    _ => {
                        return Err(GatewayError::Keys(format!(
                            "{place}: expected `<sha256-hex> <tenant> [rate]`"
                        )))
                    }
                };
                let rate = match words.next() {
                    Some(rate) => Rate::parse(rate).map_err(|e| keys_error(&place, e))?,
                    None => default_rate,
                };
                store.insert(&place, hash, tenant, rate)?;
            }
        }
        for (hash, grant) in entries {
            let place = "gateway.keys".to_owned();
            let (tenant, rate) = match grant.split_once('@') {
                Some((tenant, rate)) => (
                    tenant,
                    Rate::parse(rate).map_err(|e| keys_error(&place, e))?,
                ),
                None => (grant.as_str(), default_rate),
            };
            store.insert(&place, hash, tenant, rate)?;
        }
        if store.grants.is_empty() {
            return Err(GatewayError::Keys(
                "no API keys: set gateway.keys_file or CENTILE_GATEWAY_KEYS (see `centile-producer new-key`)"
                    .into(),
            ));
        }
        Ok(store)
    }

    fn insert(
        &mut self,
        place: &str,
        hash: &str,
        tenant: &str,
        rate: Rate,
    ) -> Result<(), GatewayError> {
        let bytes =
            centile_runtime::secret::parse_key_hash(hash).map_err(|e| keys_error(place, e))?;
        if tenant.is_empty() {
            return Err(keys_error(place, "the tenant must not be empty"));
        }
        self.grants.insert(
            bytes,
            Grant {
                tenant: tenant.to_owned(),
                rate,
            },
        );
        Ok(())
    }

    /// The grant of a presented key, by its hash.
    pub fn grant(&self, hash: &[u8; 32]) -> Option<&Grant> {
        self.grants.get(hash)
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

fn keys_error(place: &str, reason: impl std::fmt::Display) -> GatewayError {
    GatewayError::Keys(format!("{place}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_hash_with_their_tenant_and_rate() {
        let default = Rate::parse("10/s").unwrap();
        let file = format!(
            "# ops keys\n{} acme 100/h\n\n{} beta\n",
            hex::encode(hash_key("k-acme")),
            hex::encode(hash_key("k-beta"))
        );
        let entries = [(hex::encode(hash_key("k-gamma")), "gamma@5/min".to_owned())];
        let store = KeyStore::load(
            Some(("keys.txt", &file)),
            entries.iter().map(|(a, b)| (a, b)),
            default,
        )
        .unwrap();
        assert_eq!(store.len(), 3);
        let acme = store.grant(&hash_key("k-acme")).unwrap();
        assert_eq!(acme.tenant, "acme");
        assert_eq!(acme.rate, Rate::parse("100/h").unwrap());
        assert_eq!(store.grant(&hash_key("k-beta")).unwrap().rate, default);
        assert_eq!(store.grant(&hash_key("k-gamma")).unwrap().tenant, "gamma");
        assert!(store.grant(&hash_key("k-unknown")).is_none());
    }

    #[test]
    fn bad_entries_name_their_place_and_never_echo_keys() {
        let default = Rate::parse("10/s").unwrap();
        let err = KeyStore::load(Some(("keys.txt", "plainsecret acme\n")), [], default)
            .unwrap_err()
            .to_string();
        assert!(err.contains("keys.txt line 1"), "{err}");
        assert!(!err.contains("plainsecret"), "{err}");
        let err = KeyStore::load(None, [], default).unwrap_err().to_string();
        assert!(err.contains("no API keys"), "{err}");
    }
}
