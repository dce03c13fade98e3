//! A Confluent-compatible schema registry: the client producers register
//! their schemas with, and the resolver consumers decode through.
//!
//! Only the two calls every compatible registry (Confluent, Karapace,
//! Redpanda, Apicurio's ccompat API) answers are used:
//! `POST /subjects/{subject}/versions` and `GET /schemas/ids/{id}`.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use centile_events::{
    confluent_schema_id, decode_message, DecodeError, DecodedMessage, SchemaKind, Schemas,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{
    config::SchemaRegistryConfig,
    retry::{with_backoff, Backoff},
    RuntimeError, Secret,
};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Why a registry call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry unreachable: {0}")]
    Unreachable(String),
    #[error("schema registry answered {status}: {body}")]
    Refused { status: u16, body: String },
}

impl RegistryError {
    /// Whether asking again may help (network trouble, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Refused { status, .. } => *status >= 500 || *status == 429,
        }
    }
}

/// An HTTP client for one registry, with the ids it has registered cached.
#[derive(Debug)]
pub struct SchemaRegistry {
    http: reqwest::Client,
    base: String,
    username: Option<String>,
    password: Option<Secret>,
    registered: Mutex<HashMap<String, u32>>,
}

#[derive(Deserialize)]
struct IdAnswer {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaAnswer {
    schema: String,
}

impl SchemaRegistry {
    /// A client for `config.url`, or `None` when no registry is configured.
    pub fn from_config(config: &SchemaRegistryConfig) -> Result<Option<Self>, RuntimeError> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| RuntimeError::Config(format!("schema_registry: {e}")))?;
        Ok(Some(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            username: config.username.clone(),
            password: config.password.clone(),
            registered: Mutex::new(HashMap::new()),
        }))
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.username {
            Some(user) => request.basic_auth(user, self.password.as_ref().map(Secret::expose)),
            None => request,
        }
    }

    /// The id of `avsc` under `subject`, registering it on first use; later
    /// calls for the same subject are answered from the cache.
    pub async fn register(&self, subject: &str, avsc: &str) -> Result<u32, RegistryError> {
        if let Some(id) = self.cached(subject) {
            return Ok(id);
        }
        let url = format!("{}/subjects/{}/versions", self.base, encode_path(subject));
        let body = serde_json::json!({ "schema": avsc, "schemaType": "AVRO" });
        let request = self
            .authorize(self.http.post(url))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body.to_string());
        let answer: IdAnswer = send(request).await?;
        self.registered
            .lock()
            .expect("registry cache lock")
            .insert(subject.to_owned(), answer.id);
        Ok(answer.id)
    }

    fn cached(&self, subject: &str) -> Option<u32> {
        self.registered
            .lock()
            .expect("registry cache lock")
            .get(subject)
            .copied()
    }

    /// The schema text registered under `id`; `Ok(None)` when the registry
    /// does not know it.
    pub async fn schema(&self, id: u32) -> Result<Option<String>, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        match send::<SchemaAnswer>(self.authorize(self.http.get(url))).await {
            Ok(answer) => Ok(Some(answer.schema)),
            Err(RegistryError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

async fn send<T: for<'de> Deserialize<'de>>(
    request: reqwest::RequestBuilder,
) -> Result<T, RegistryError> {
    let response = request
        .header(reqwest::header::ACCEPT, CONTENT_TYPE)
        .send()
        .await
        .map_err(|e| RegistryError::Unreachable(e.without_url().to_string()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| RegistryError::Unreachable(e.without_url().to_string()))?;
    if !status.is_success() {
        return Err(RegistryError::Refused {
            status: status.as_u16(),
            body: text.chars().take(200).collect(),
        });
    }
    serde_json::from_str(&text).map_err(|e| RegistryError::Refused {
        status: status.as_u16(),
        body: format!("unexpected answer: {e}"),
    })
}

fn encode_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Confluent subject of a topic's values (TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// Decodes both framings; Confluent ids it has not seen are looked up in
/// the registry (retried), and a message whose id cannot be resolved fails
/// with a reason that names the id, so it is dead-lettered, never dropped.
#[derive(Debug)]
pub struct SchemaResolver {
    schemas: RwLock<Schemas>,
    registry: Option<SchemaRegistry>,
    attempts: u32,
    backoff: Duration,
    failure_memory: Duration,
    failures: Mutex<HashMap<u32, (Instant, DecodeError)>>,
}

impl SchemaResolver {
    pub fn new(config: &SchemaRegistryConfig) -> Result<Self, RuntimeError> {
        Ok(Self {
            schemas: RwLock::new(Schemas::new()),
            registry: SchemaRegistry::from_config(config)?,
            attempts: config.lookup_attempts.max(1),
            backoff: config.lookup_backoff,
            failure_memory: config.failure_memory,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `f` with the schemas known so far (for encoding).
    pub fn with_schemas<T>(&self, f: impl FnOnce(&Schemas) -> T) -> T {
        f(&self.schemas.read().expect("schemas lock"))
    }

    /// Decodes `payload` in either framing, first resolving an unknown
    /// Confluent id. The answer says whether a single-object header used the
    /// deprecated reversed fingerprint order, for the caller to report.
    pub async fn decode(&self, payload: &[u8]) -> Result<DecodedMessage, DecodeError> {
        if let Some(id) = confluent_schema_id(payload) {
            if !self.with_schemas(|s| s.knows_confluent_id(id)) {
                self.resolve(id).await?;
            }
        }
        self.with_schemas(|schemas| decode_message(schemas, payload))
    }

    async fn resolve(&self, id: u32) -> Result<(), DecodeError> {
        let Some(registry) = &self.registry else {
            return Err(DecodeError::UnknownSchemaId(id));
        };
        if let Some(error) = self.recent_failure(id) {
            return Err(error);
        }
        let result = self.lookup(registry, id).await;
        if let Err(error) = &result {
            self.failures
                .lock()
                .expect("failures lock")
                .insert(id, (Instant::now(), error.clone()));
        }
        result
    }

    fn recent_failure(&self, id: u32) -> Option<DecodeError> {
        let mut failures = self.failures.lock().expect("failures lock");
        match failures.get(&id) {
            Some((at, error)) if at.elapsed() < self.failure_memory => Some(error.clone()),
            Some(_) => {
                failures.remove(&id);
                None
            }
            None => None,
        }
    }

    async fn lookup(&self, registry: &SchemaRegistry, id: u32) -> Result<(), DecodeError> {
        // Only transient failures are retried; the last attempt cancels
        // `stop`, so its failure is returned instead of waited out.
        let tries = AtomicU32::new(0);
        let stop = CancellationToken::new();
        let backoff = Backoff {
            initial: self.backoff,
            max: self.backoff.saturating_mul(1 << self.attempts.min(16)),
        };
        let answer = with_backoff(
            backoff,
            &stop,
            &format!("schema registry lookup of id {id}"),
            |_| {},
            || {
                if tries.fetch_add(1, Ordering::Relaxed) + 1 >= self.attempts {
                    stop.cancel();
                }
                async move {
                    match registry.schema(id).await {
                        Err(e) if e.is_transient() => Err(e),
                        settled => Ok(settled),
                    }
                }
            },
        )
        .await;
        let avsc = match answer {
            Ok(Ok(Some(avsc))) => avsc,
            Ok(Ok(None)) => return Err(DecodeError::UnknownSchemaId(id)),
            Ok(Err(e)) | Err(e) => {
                return Err(DecodeError::RegistryUnavailable {
                    schema_id: id,
                    reason: format!("{e} (after {} attempts)", tries.load(Ordering::Relaxed)),
                })
            }
        };
        let refused = |reason: String| DecodeError::RegistrySchemaRefused {
            schema_id: id,
            reason,
        };
        let mut schemas = self.schemas.write().expect("schemas lock");
        let kind: SchemaKind = schemas.kind_of(&avsc).map_err(refused)?;
        schemas
            .register_confluent_id(id, kind, &avsc)
            .map_err(|e| refused(format!("unusable writer schema: {e}")))?;
        tracing::info!(
            schema_id = id,
            kind = kind.name(),
            "learned a schema from the registry"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_path_safe() {
        assert_eq!(
            encode_path("centile.latency.v1-value"),
            "centile.latency.v1-value"
        );
        assert_eq!(encode_path("a/b c"), "a%2Fb%20c");
    }

    #[tokio::test]
    async fn without_a_registry_unknown_ids_are_named() {
        let resolver = SchemaResolver::new(&SchemaRegistryConfig::default()).unwrap();
        let error = resolver.decode(&[0, 0, 0, 0, 7, 1, 2]).await.unwrap_err();
        assert_eq!(error, DecodeError::UnknownSchemaId(7));
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_retried_then_remembered() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = SchemaRegistryConfig {
            url: Some(format!("http://127.0.0.1:{port}")),
            lookup_attempts: 3,
            lookup_backoff: Duration::from_millis(1),
            ..SchemaRegistryConfig::default()
        };
        let resolver = SchemaResolver::new(&config).unwrap();
        let error = resolver.decode(&[0, 0, 0, 0, 9, 1]).await.unwrap_err();
        match &error {
            DecodeError::RegistryUnavailable { schema_id, reason } => {
                assert_eq!(*schema_id, 9);
                assert!(reason.contains("after 3 attempts"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(error.kind(), "schema_registry_unavailable");
        assert!(
            resolver.recent_failure(9).is_some(),
            "the failure is remembered"
        );
        assert_eq!(
            resolver.decode(&[0, 0, 0, 0, 9, 1]).await.unwrap_err(),
            error
        );
    }
}
