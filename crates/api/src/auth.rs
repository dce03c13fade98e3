//! Bearer keys, held only as SHA-256 hashes (as in the gateway), each with a
//! role: `admin` reads every tenant, `tenant:<id>` reads one.

use std::collections::HashMap;

use axum::http::{header, HeaderMap};
use centile_runtime::{
    config::ApiConfig,
    secret::{hash_key, parse_key_hash},
};

use crate::ApiError;

/// Whose data a request may read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Admin,
    Tenant(String),
}

impl Scope {
    /// The tenant a request is answered for: the one asked for, checked
    /// against the key. A tenant key asking for nothing gets its own tenant.
    pub fn tenant(&self, asked: Option<String>) -> Result<Option<String>, ApiError> {
        match (self, asked) {
            (Scope::Admin, asked) => Ok(asked),
            (Scope::Tenant(own), None) => Ok(Some(own.clone())),
            (Scope::Tenant(own), Some(asked)) if *own == asked => Ok(Some(asked)),
            (Scope::Tenant(_), Some(_)) => Err(ApiError::Forbidden(
                "tenant_id: this key may read only its own tenant".into(),
            )),
        }
    }

    /// A stable label for cache keys.
    pub fn label(&self) -> String {
        match self {
            Scope::Admin => "admin".into(),
            Scope::Tenant(t) => format!("tenant:{t}"),
        }
    }
}

/// Every known key hash and its scope.
#[derive(Debug, Default)]
pub struct KeyStore {
    scopes: HashMap<[u8; 32], Scope>,
    /// Requests without a key are admin (`api.allow_unauthenticated`).
    open: bool,
}

impl KeyStore {
    /// Loads `api.keys_file` (`<sha256-hex> admin|tenant:<id>` per line,
    /// `#` comments) and `api.keys`.
    pub fn from_config(config: &ApiConfig) -> Result<Self, ApiError> {
        let mut store = Self {
            open: config.allow_unauthenticated,
            ..Self::default()
        };
        if let Some(path) = &config.keys_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ApiError::Keys(format!("cannot read {}: {e}", path.display())))?;
            for (number, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                let place = format!("{} line {}", path.display(), number + 1);
                match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [hash, role] => store.insert(&place, hash, role)?,
                    _ => {
                        return Err(ApiError::Keys(format!(
                            "{place}: expected `<sha256-hex> admin|tenant:<id>`"
                        )))
                    }
                }
            }
        }
        for (hash, role) in &config.keys {
            store.insert("api.keys", hash, role)?;
        }
        if store.scopes.is_empty() && !store.open {
            return Err(ApiError::Keys(
                "no API keys: set api.keys_file or CENTILE_API_KEYS (see `centile-api new-key`)"
                    .into(),
            ));
        }
        Ok(store)
    }

    fn insert(&mut self, place: &str, hash: &str, role: &str) -> Result<(), ApiError> {
        let bytes = parse_key_hash(hash).map_err(|e| ApiError::Keys(format!("{place}: {e}")))?;
        let scope = parse_role(role).map_err(|e| ApiError::Keys(format!("{place}: {e}")))?;
        self.scopes.insert(bytes, scope);
        Ok(())
    }

    /// The scope of a request's bearer key.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Scope, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, key) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            });
        match presented {
            Some(key) => self
                .scopes
                .get(&hash_key(key))
                .cloned()
                .ok_or(ApiError::Unauthenticated),
            None if self.open => Ok(Scope::Admin),
            None => Err(ApiError::Unauthenticated),
        }
    }

    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }
}

/// `admin` or `tenant:<id>`.
pub fn parse_role(role: &str) -> Result<Scope, String> {
    match role.split_once(':') {
        None if role == "admin" => Ok(Scope::Admin),
        Some(("tenant", id)) if !id.is_empty() => Ok(Scope::Tenant(id.to_owned())),
        _ => Err(format!(
            "role must be `admin` or `tenant:<id>`, got {role:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> KeyStore {
        let mut config = ApiConfig::default();
        config
            .keys
            .insert(hex::encode(hash_key("k-admin")), "admin".into());
        config
            .keys
            .insert(hex::encode(hash_key("k-acme")), "tenant:acme".into());
        KeyStore::from_config(&config).unwrap()
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn keys_map_to_scopes() {
        let store = store();
        assert_eq!(
            store.authenticate(&bearer("k-admin")).unwrap(),
            Scope::Admin
        );
        let acme = store.authenticate(&bearer("k-acme")).unwrap();
        assert_eq!(acme, Scope::Tenant("acme".into()));
        assert!(matches!(
            store.authenticate(&bearer("k-other")),
            Err(ApiError::Unauthenticated)
        ));
        assert!(matches!(
            store.authenticate(&HeaderMap::new()),
            Err(ApiError::Unauthenticated)
        ));
        assert_eq!(acme.tenant(None).unwrap(), Some("acme".into()));
        assert!(matches!(
            acme.tenant(Some("beta".into())),
            Err(ApiError::Forbidden(_))
        ));
        assert_eq!(Scope::Admin.tenant(None).unwrap(), None);
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(parse_role("tenant:").is_err());
        assert!(parse_role("root").is_err());
        let mut config = ApiConfig::default();
        config.keys.insert("not-a-hash".into(), "admin".into());
        let err = KeyStore::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        assert!(
            KeyStore::from_config(&ApiConfig::default()).is_err(),
            "no keys at all"
        );
    }
}
