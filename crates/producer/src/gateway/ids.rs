//! Event ids for events sent without one. With an `Idempotency-Key` header
//! the ids are derived from the tenant, that key and the event's position,
//! so a client that retries the same request (after a timeout, say) gets the
//! same ids and the pipeline counts each event once.

use sha2::{Digest, Sha256};

/// How missing event ids are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    /// A fresh UUIDv7 per event.
    Random,
    /// A UUIDv7 whose time is the event's and whose random bits come from
    /// the request's idempotency key.
    Idempotent(String),
}

impl IdSource {
    pub fn id(&self, tenant: &str, index: usize, occurred_at: i64) -> String {
        match self {
            Self::Random => uuid::Uuid::now_v7().to_string(),
            Self::Idempotent(key) => {
                let mut hasher = Sha256::new();
                for part in [tenant.as_bytes(), key.as_bytes(), &index.to_be_bytes()] {
                    hasher.update((part.len() as u64).to_be_bytes());
                    hasher.update(part);
                }
                let digest = hasher.finalize();
                let bits: [u8; 10] = digest[..10].try_into().expect("10 bytes");
                let millis = u64::try_from(occurred_at).unwrap_or_default();
                uuid::Builder::from_unix_timestamp_millis(millis, &bits)
                    .into_uuid()
                    .to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_ids_repeat_per_key_tenant_and_position_only() {
        let a = IdSource::Idempotent("req-1".into());
        let b = IdSource::Idempotent("req-2".into());
        let id = a.id("acme", 0, 1_800_000_000_000);
        assert_eq!(id, a.id("acme", 0, 1_800_000_000_000));
        assert_ne!(id, a.id("acme", 1, 1_800_000_000_000));
        assert_ne!(id, a.id("globex", 0, 1_800_000_000_000));
        assert_ne!(id, b.id("acme", 0, 1_800_000_000_000));
        let uuid = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos) / 1_000_000,
            1_800_000_000_000
        );
        assert_ne!(
            IdSource::Random.id("acme", 0, 0),
            IdSource::Random.id("acme", 0, 0)
        );
    }
}
