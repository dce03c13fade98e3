//! Layered configuration: built-in defaults, then an optional TOML file,
//! then `CENTILE_<SECTION>_<KEY>` environment variables.
//!
//! One file configures every service; each reads the sections it needs.
//! Unknown keys are errors, so a typo never silently falls back to a default.
//! Environment values are parsed by the type of the setting they replace, so
//! `CENTILE_TOPIC_PARTITIONS=6` is a number and `CENTILE_KAFKA_BROKERS=a:1,b:2`
//! stays a string.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{RuntimeError, Secret};

/// Every Centile setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub topics: TopicsConfig,
    pub clickhouse: ClickHouseConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub aggregator: AggregatorConfig,
    pub sink: SinkConfig,
    pub admission: AdmissionConfig,
    pub producer: ProducerConfig,
    pub schema_registry: SchemaRegistryConfig,
    pub gateway: GatewayConfig,
    pub retention: RetentionConfig,
    pub api: ApiConfig,
    pub service: ServiceConfig,
    pub pricing: PricingConfig,
}

/// The price book (`docs/pricing.md`): what usage events that carry no
/// cost are priced at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    /// A TOML file of `[[prices]]` entries. The sink reads it at start and
    /// again whenever it changes; `centile reprice` reads it too. None:
    /// events without a cost keep a computed cost of 0, and their rows
    /// name the price version `none`.
    pub book: Option<PathBuf>,
}

/// What every service shares about its own life.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// After SIGTERM/SIGINT, final flushes, commits and in-flight requests
    /// get this long; then the service exits (a restart replays whatever
    /// was not committed). Keep it below the orchestrator's kill timeout.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub brokers: String,
    pub client_id: Option<String>,
    /// `plaintext` (the default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    /// Managed Kafka services (Confluent Cloud, MSK, Aiven) need `sasl_ssl`
    /// or `ssl`. Checked when the config loads: see `docs/security.md`.
    pub security_protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; required with the
    /// `sasl_*` protocols. `GSSAPI` (Kerberos) is not built in.
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    /// Never logged or printed.
    pub sasl_password: Option<Secret>,
    /// PEM file (or directory) of the CA certificates that signed the
    /// brokers' certificates; unset means the system's trusted roots.
    pub ssl_ca_location: Option<PathBuf>,
    /// Client certificate (PEM) for brokers that require mutual TLS.
    pub ssl_certificate_location: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub ssl_key_location: Option<PathBuf>,
    /// Password of an encrypted `ssl_key_location`; never logged or printed.
    pub ssl_key_password: Option<Secret>,
    /// Whether the broker certificate must name the host connected to
    /// (https-style hostname verification). Turn off only for brokers whose
    /// certificates name no usable host.
    pub ssl_endpoint_identification: bool,
    /// How long one start-up check waits for the brokers to answer (a
    /// service's attempts last at most 5 s and are retried until the
    /// brokers answer; one-shot commands give up after it). Authentication
    /// and TLS failures end the wait at once.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Producer compression: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: String,
    pub idempotence: bool,
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How long a produced message may wait for the broker's acknowledgement.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// How a consuming service gets its partitions: `group` shares them out
    /// through the consumer group; `all` reads every partition of its input
    /// topics without joining (one instance per group), which needs no
    /// group coordination and so survives brokers that mishandle vanished
    /// members (Tansu never evicts a SIGKILLed group leader).
    pub assignment: Assignment,
    /// Further librdkafka properties, passed through as they are.
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    #[default]
    Group,
    All,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            client_id: None,
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_key_password: None,
            ssl_endpoint_identification: true,
            connect_timeout: Duration::from_secs(30),
            compression: "lz4".into(),
            idempotence: true,
            linger: Duration::from_millis(5),
            delivery_timeout: Duration::from_secs(30),
            assignment: Assignment::Group,
            extra: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    pub usage: String,
    pub latency: String,
    pub rollups: String,
    pub dlq: String,
    /// The aggregator's segment checkpoints; one partition, compacted.
    pub checkpoints: String,
    /// Partitions for topics a service creates because they are missing.
    pub partitions: i32,
    pub replication_factor: i32,
    pub create_missing: bool,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            usage: "centile.usage.v1".into(),
            latency: "centile.latency.v1".into(),
            rollups: "centile.rollups.v1".into(),
            dlq: "centile.dlq.v1".into(),
            checkpoints: "centile.checkpoints.v1".into(),
            partitions: 3,
            replication_factor: 1,
            create_missing: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// For an `https://` url: a PEM file of further CA certificates to
    /// trust, on top of the system's roots (for a private CA or a
    /// self-signed server certificate).
    pub ca_file: Option<PathBuf>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "centile".into(),
            user: None,
            password: None,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen; each service has its own default.
    pub addr: Option<SocketAddr>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub auth_token: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `centile_sink=debug,info`; `RUST_LOG` wins.
    pub filter: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: "text".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    pub group_id: String,
    /// How often open windows publish their updated panes.
    #[serde(with = "humantime_serde")]
    pub emit_interval: Duration,
    /// How far event time may run behind the partition's maximum before a window is final.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// A partition without input for this long releases its windows by wall-clock time.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Parameters that affect performance and so form the parameter hash.
    pub performance_parameters: Vec<String>,
    /// How often each owned partition's checkpoint is rewritten even when
    /// it did not move, which bounds how far back a new owner must look: a
    /// busy partition writes a record every emit (its reach), so the
    /// records of idle ones must stay within that much of the end.
    #[serde(with = "humantime_serde")]
    pub checkpoint_refresh: Duration,
    /// How often every owned partition's watermark is republished even
    /// when it did not move.
    #[serde(with = "humantime_serde")]
    pub watermark_refresh: Duration,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            group_id: "centile-aggregator".into(),
            emit_interval: Duration::from_millis(250),
            allowed_lateness: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            performance_parameters: [
                "thinking_mode",
                "use_websearch",
                "streaming",
                "max_tokens",
                "temperature",
            ]
            .map(String::from)
            .to_vec(),
            checkpoint_refresh: Duration::from_secs(30),
            watermark_refresh: Duration::from_secs(10),
        }
    }
}

/// Which valid events may still change the rollups. Shared by the sink and
/// the aggregator so that both refuse exactly the same events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Events published this long after they occurred no longer restate
    /// rollups; they go to the dead-letter topic as `too_late`.
    #[serde(with = "humantime_serde")]
    pub restatement_horizon: Duration,
    /// Events dated this far after their publication go to the dead-letter
    /// topic as `future`.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            restatement_horizon: Duration::from_secs(7 * 24 * 3600),
            max_future_skew: Duration::from_secs(300),
        }
    }
}

/// How long each stored tier keeps a window, counted from the window's end
/// (`"forever"`, or a duration such as `"90d"`). A row goes only once its
/// whole bucket of the tier above is past the limit, so a higher tier is
/// never recomputed from a half-deleted lower one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Raw events (`latency_events`, `usage_events`).
    pub raw: Keep,
    /// Minute rows and the minute panes they are made from.
    pub minute: Keep,
    pub hour: Keep,
    pub day: Keep,
    pub week: Keep,
    /// How often the sink drops expired partitions (where TTL is missing).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let days = |d: u64| Keep::For(Duration::from_secs(d * 86_400));
        Self {
            raw: days(7),
            minute: days(7),
            hour: days(90),
            day: days(730),
            week: Keep::Forever,
            interval: Duration::from_secs(3_600),
        }
    }
}

/// A retention period, or `forever`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Forever,
    For(Duration),
}

impl Keep {
    /// Whole days, rounded up (`None`: forever).
    pub fn days(self) -> Option<u64> {
        match self {
            Keep::Forever => None,
            Keep::For(d) => Some(d.as_secs().div_ceil(86_400)),
        }
    }
}

impl Serialize for Keep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Keep::Forever => s.serialize_str("forever"),
            Keep::For(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "forever" {
            return Ok(Keep::Forever);
        }
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d.as_secs() >= 86_400 => Ok(Keep::For(d)),
            Ok(_) => Err(serde::de::Error::custom(format!(
                "retention `{text}` is under one day"
            ))),
            Err(e) => Err(serde::de::Error::custom(format!(
                "retention `{text}`: {e} (a duration such as \"90d\", or \"forever\")"
            ))),
        }
    }
}

impl AdmissionConfig {
    pub fn admission(&self) -> centile_events::Admission {
        centile_events::Admission {
            restatement_horizon_ms: self.restatement_horizon.as_millis() as i64,
            max_future_skew_ms: self.max_future_skew.as_millis() as i64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    pub group_id: String,
    /// Apply pending ClickHouse migrations when `run` starts.
    pub auto_migrate: bool,
    /// A batch is written when it holds this many rows...
    pub batch_max_rows: usize,
    /// ...or when its oldest row has waited this long.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            group_id: "centile-sink".into(),
            auto_migrate: true,
            batch_max_rows: 20_000,
            batch_max_wait: Duration::from_millis(250),
            retry_initial_backoff: Duration::from_millis(200),
            retry_max_backoff: Duration::from_secs(10),
        }
    }
}

/// How producers frame what they publish.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerConfig {
    pub framing: FramingChoice,
}

/// `single-object` needs nothing but the bundled schemas; `confluent`
/// registers them with `schema_registry.url` and uses its ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FramingChoice {
    #[default]
    SingleObject,
    Confluent,
}

/// A Confluent-compatible schema registry: where producers register the
/// schemas they write, and where consumers look up ids they do not know.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistryConfig {
    /// Base URL, such as `http://127.0.0.1:8081`; unset means no registry.
    pub url: Option<String>,
    /// HTTP basic authentication, as Confluent Cloud and Karapace use it.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// How long one registry request may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How often a consumer asks for an unknown id before it dead-letters
    /// the message.
    pub lookup_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub lookup_backoff: Duration,
    /// After a failed lookup, messages with that id are dead-lettered at
    /// once for this long instead of stalling the partition again.
    #[serde(with = "humantime_serde")]
    pub failure_memory: Duration,
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        Self {
            url: None,
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
            lookup_attempts: 4,
            lookup_backoff: Duration::from_millis(250),
            failure_memory: Duration::from_secs(10),
        }
    }
}

/// The HTTP ingest gateway (`centile-producer serve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub addr: SocketAddr,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Requests with more events are refused with 413.
    pub max_batch_events: usize,
    /// How long a request may wait for the broker's acknowledgements before
    /// it is answered 503; the producer keeps trying until
    /// `kafka.delivery_timeout` (at least this long).
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Encoded bytes waiting for acknowledgement across all requests; a
    /// request that does not fit is answered 503.
    pub max_in_flight_bytes: usize,
    /// `Retry-After` for 503 answers.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// How long acknowledged event ids are remembered, so a retried request
    /// does not publish them again.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// At most this many remembered ids (about 60 bytes each); 0 disables.
    pub dedup_capacity: usize,
    /// A file of API keys: one `<sha256-hex> <tenant> [rate]` per line.
    pub keys_file: Option<PathBuf>,
    /// More API keys: SHA-256 hex of the key to `tenant` or `tenant@rate`.
    pub keys: BTreeMap<String, String>,
    /// Each key's request rate unless its entry sets one: `N/s`, `N/min`
    /// or `N/h`; the bucket holds N requests.
    pub rate: String,
    /// Open connections at most; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// A connection that sends and receives nothing for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A request must arrive (head and body) within this long of its first
    /// byte: slow-header and slow-body clients are cut off.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Serve OTLP/gRPC (`TraceService/Export`) on `otlp_grpc_addr`, with
    /// the HTTP listener's connection limits.
    pub otlp_grpc: bool,
    pub otlp_grpc_addr: SocketAddr,
    /// How GenAI spans become events. Each attribute list is tried in
    /// order, on the span and then on its resource; the first found wins.
    /// The latency event's `tool` (else `otlp_default_tool`).
    pub otlp_tool_attributes: Vec<String>,
    pub otlp_default_tool: String,
    /// The usage event's `feature` (else `otlp_default_feature`).
    pub otlp_feature_attributes: Vec<String>,
    pub otlp_default_feature: String,
    /// The model; a span with none of these is not a model call and is
    /// ignored.
    pub otlp_model_attributes: Vec<String>,
    /// Spans whose `gen_ai.operation.name` is one of these are not model
    /// calls even when they name a model: an agent run's span repeats the
    /// model and the run's total tokens of the chat spans inside it.
    pub otlp_ignored_operations: Vec<String>,
    /// The provider; a model call without one is refused.
    pub otlp_provider_attributes: Vec<String>,
    /// The usage event's `user_id`.
    pub otlp_user_attributes: Vec<String>,
    /// Both events' `session_id`.
    pub otlp_session_attributes: Vec<String>,
    /// Performance-affecting parameters: parameter name → span attribute.
    pub otlp_parameters: BTreeMap<String, String>,
    /// CloudEvents `type` → the kind it carries (`latency` or `usage`).
    pub cloudevents_types: BTreeMap<String, String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let strings = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        Self {
            addr: ([127, 0, 0, 1], 8088).into(),
            max_body_bytes: 5 * 1024 * 1024,
            max_batch_events: 5_000,
            ack_timeout: Duration::from_secs(10),
            max_in_flight_bytes: 64 * 1024 * 1024,
            retry_after: Duration::from_secs(1),
            dedup_window: Duration::from_secs(600),
            dedup_capacity: 1_000_000,
            keys_file: None,
            keys: BTreeMap::new(),
            rate: "1000/s".into(),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            otlp_grpc: true,
            otlp_grpc_addr: ([127, 0, 0, 1], 4317).into(),
            otlp_tool_attributes: strings(&["gen_ai.tool.name", "gen_ai.operation.name"]),
            otlp_default_tool: "model".into(),
            otlp_feature_attributes: strings(&[
                "centile.feature",
                "gen_ai.agent.name",
                "service.name",
            ]),
            otlp_default_feature: "default".into(),
            otlp_model_attributes: strings(&["gen_ai.request.model", "gen_ai.response.model"]),
            otlp_ignored_operations: strings(&[
                "invoke_agent",
                "create_agent",
                "execute_tool",
                "invoke_workflow",
            ]),
            otlp_provider_attributes: strings(&["gen_ai.provider.name", "gen_ai.system"]),
            otlp_user_attributes: strings(&["user.id", "enduser.id"]),
            otlp_session_attributes: strings(&["session.id", "gen_ai.conversation.id"]),
            otlp_parameters: [
                ("temperature", "gen_ai.request.temperature"),
                ("max_tokens", "gen_ai.request.max_tokens"),
                ("top_p", "gen_ai.request.top_p"),
                ("stream", "gen_ai.request.stream"),
                ("reasoning_effort", "gen_ai.request.reasoning_effort"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            cloudevents_types: [("centile.latency", "latency"), ("centile.usage", "usage")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

/// The query API and dashboard (`centile-api`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    /// A file of API keys: one `<sha256-hex> admin|tenant:<id>` per line.
    pub keys_file: Option<PathBuf>,
    /// More API keys: SHA-256 hex of the key to `admin` or `tenant:<id>`.
    pub keys: BTreeMap<String, String>,
    /// The model catalog (TOML): ids, names, providers, status, prices.
    pub catalog_file: Option<PathBuf>,
    /// Answers kept in the cache; 0 turns caching off.
    pub cache_entries: usize,
    /// Total bytes of cached answers.
    pub cache_max_bytes: usize,
    /// A data token (the cache's check that nothing below an answer
    /// changed) is reused this long by concurrent requests; answers reflect
    /// every restatement committed at least this long before the request.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Open connections at most; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests running at once; further ones are answered 503.
    pub max_concurrent_queries: usize,
    /// A request still running after this is answered 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A connection that sends and receives nothing for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A request must arrive (head and body) within this long of its first byte.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Time buckets one trend answer may hold.
    pub max_buckets: u64,
    /// How often `/v1/realtime/stream` pushes a new answer.
    #[serde(with = "humantime_serde")]
    pub realtime_interval: Duration,
    /// Serve `/v1` without a key, as admin. For a laptop only.
    pub allow_unauthenticated: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 8089).into(),
            keys_file: None,
            keys: BTreeMap::new(),
            catalog_file: None,
            cache_entries: 4096,
            cache_max_bytes: 64 * 1024 * 1024,
            token_ttl: Duration::from_millis(500),
            max_connections: 1024,
            max_concurrent_queries: 64,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(10),
            max_buckets: 20_000,
            realtime_interval: Duration::from_secs(2),
            allow_unauthenticated: false,
        }
    }
}

impl ApiConfig {
    fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |key: &str, reason: &str| {
            Err(RuntimeError::Config(format!(
                "api.{key} (CENTILE_API_{}): {reason}",
                key.to_uppercase()
            )))
        };
        if self.realtime_interval.is_zero() || self.realtime_interval > Duration::from_secs(5) {
            return bad("realtime_interval", "must be more than 0 and at most 5s");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.max_concurrent_queries == 0 {
            return bad("max_concurrent_queries", "must be at least 1");
        }
        if self.max_buckets == 0 {
            return bad("max_buckets", "must be at least 1");
        }
        Ok(())
    }
}

impl GatewayConfig {
    fn validate(&self) -> Result<(), RuntimeError> {
        for (kind, value) in &self.cloudevents_types {
            if !matches!(value.as_str(), "latency" | "usage") {
                return Err(RuntimeError::Config(format!(
                    "gateway.cloudevents_types (CENTILE_GATEWAY_CLOUDEVENTS_TYPES): {kind:?} maps to {value:?}; the kinds are latency and usage"
                )));
            }
        }
        if self.otlp_model_attributes.is_empty() {
            return Err(RuntimeError::Config(
                "gateway.otlp_model_attributes (CENTILE_GATEWAY_OTLP_MODEL_ATTRIBUTES) must name at least one attribute: without a model no span is a model call".into(),
            ));
        }
        Ok(())
    }
}

/// Sections and the environment prefixes that reach them, longest first.
const ENV_SECTIONS: [(&str, &str); 16] = [
    ("RETENTION_", "retention"),
    ("PRICING_", "pricing"),
    ("SCHEMA_REGISTRY_", "schema_registry"),
    ("AGGREGATOR_", "aggregator"),
    ("ADMISSION_", "admission"),
    ("API_", "api"),
    ("CLICKHOUSE_", "clickhouse"),
    ("METRICS_", "metrics"),
    ("TOPICS_", "topics"),
    ("TOPIC_", "topics"),
    ("KAFKA_", "kafka"),
    ("PRODUCER_", "producer"),
    ("GATEWAY_", "gateway"),
    ("SERVICE_", "service"),
    ("SINK_", "sink"),
    ("LOG_", "log"),
];

impl Config {
    /// Loads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, RuntimeError> {
        Self::load_from(file, std::env::vars())
    }

    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, RuntimeError> {
        let defaults = toml::Value::try_from(Config::default())
            .map_err(|e| RuntimeError::Config(e.to_string()))?;
        let mut merged = defaults.clone();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|source| RuntimeError::ConfigFile {
                    path: path.display().to_string(),
                    source,
                })?;
            let layer: toml::Value = toml::from_str(&text)
                .map_err(|e| RuntimeError::Config(format!("{}: {e}", path.display())))?;
            merge(&mut merged, layer);
        }
        for (var, raw) in env {
            let Some((section, key)) = env_target(&var) else {
                continue;
            };
            let current = defaults.get(section).and_then(|s| s.get(&key));
            let value = parse_env_value(&var, &raw, current)?;
            merged
                .get_mut(section)
                .and_then(toml::Value::as_table_mut)
                .expect("every env section is a table")
                .insert(key, value);
        }
        let config: Config = merged.try_into().map_err(|e: toml::de::Error| {
            RuntimeError::Config(e.message().to_owned() + &location(&e))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings that can be wrong in ways the types do not
    /// catch: the Kafka and ClickHouse security settings (known values,
    /// credentials where they are needed, readable certificate files).
    pub fn validate(&self) -> Result<(), RuntimeError> {
        self.kafka.validate()?;
        self.clickhouse.validate()?;
        self.api.validate()?;
        self.gateway.validate()?;
        self.retention.validate(&self.admission)
    }
}

impl KafkaConfig {
    /// Checks the security settings; the error names the setting and its
    /// environment variable. See [`crate::security`].
    pub fn validate(&self) -> Result<(), RuntimeError> {
        crate::security::validate_kafka(self)
    }

    /// The parsed `security_protocol` (unset is `plaintext`).
    pub fn protocol(&self) -> Result<crate::security::SecurityProtocol, RuntimeError> {
        crate::security::SecurityProtocol::of(self)
    }
}

impl RetentionConfig {
    /// Late data restates minute rows, and through them hours, for up to
    /// the restatement horizon: minute rows must outlive it, and each tier
    /// must keep at least as long as the one below it.
    pub fn validate(&self, admission: &AdmissionConfig) -> Result<(), RuntimeError> {
        let horizon_days = admission.restatement_horizon.as_secs().div_ceil(86_400);
        let at_most = |k: Keep| k.days().unwrap_or(u64::MAX);
        if at_most(self.minute) < horizon_days {
            return Err(RuntimeError::Config(format!(
                "retention.minute (CENTILE_RETENTION_MINUTE) keeps {} days, less than admission.restatement_horizon ({horizon_days} days): late events would restate hours from deleted minutes",
                at_most(self.minute)
            )));
        }
        let tiers = [
            ("minute", self.minute),
            ("hour", self.hour),
            ("day", self.day),
            ("week", self.week),
        ];
        for pair in tiers.windows(2) {
            let ((lower, l), (upper, u)) = (pair[0], pair[1]);
            if at_most(u) < at_most(l) {
                return Err(RuntimeError::Config(format!(
                    "retention.{upper} (CENTILE_RETENTION_{}) must keep at least as long as retention.{lower}",
                    upper.to_uppercase()
                )));
            }
        }
        Ok(())
    }
}

impl ClickHouseConfig {
    /// Checks the url scheme and `ca_file`.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        crate::security::validate_clickhouse(self)
    }
}

fn location(e: &toml::de::Error) -> String {
    e.span().map(|s| format!(" (at {s:?})")).unwrap_or_default()
}

fn env_target(var: &str) -> Option<(&'static str, String)> {
    let rest = var.strip_prefix("CENTILE_")?;
    ENV_SECTIONS.iter().find_map(|(prefix, section)| {
        rest.strip_prefix(prefix)
            .filter(|key| !key.is_empty())
            .map(|key| (*section, key.to_ascii_lowercase()))
    })
}

fn parse_env_value(
    var: &str,
    raw: &str,
    current: Option<&toml::Value>,
) -> Result<toml::Value, RuntimeError> {
    let fail = |expected: &str| RuntimeError::Env {
        var: var.to_owned(),
        reason: format!("expected {expected}, got {raw:?}"),
    };
    Ok(match current {
        Some(toml::Value::Integer(_)) => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| fail("an integer"))?)
        }
        Some(toml::Value::Float(_)) => {
            toml::Value::Float(raw.trim().parse().map_err(|_| fail("a number"))?)
        }
        Some(toml::Value::Boolean(_)) => {
            toml::Value::Boolean(raw.trim().parse().map_err(|_| fail("true or false"))?)
        }
        Some(toml::Value::Array(_)) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        Some(toml::Value::Table(_)) => {
            let mut table = toml::map::Map::new();
            for pair in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| fail("comma-separated key=value pairs"))?;
                table.insert(
                    key.trim().to_owned(),
                    toml::Value::String(value.trim().to_owned()),
                );
            }
            toml::Value::Table(table)
        }
        _ => toml::Value::String(raw.to_owned()),
    })
}

fn merge(base: &mut toml::Value, layer: toml::Value) {
    match (base, layer) {
        (toml::Value::Table(base), toml::Value::Table(layer)) => {
            for (key, value) in layer {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, layer) => *base = layer,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An environment of `(name, value)` pairs, as `Config::load_from` takes it.
    pub(crate) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let config = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(config.clickhouse.url, "http://127.0.0.1:8123");
        assert_eq!(config.clickhouse.database, "centile");
        assert_eq!(config.topics.usage, "centile.usage.v1");
        assert_eq!(config.topics.latency, "centile.latency.v1");
        assert_eq!(config.topics.rollups, "centile.rollups.v1");
        assert_eq!(config.topics.dlq, "centile.dlq.v1");
        assert_eq!(config.aggregator.emit_interval, Duration::from_millis(250));
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("centile-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("centile.toml");
        std::fs::write(
            &path,
            "[kafka]\nbrokers = \"file:1\"\n[sink]\nbatch_max_wait = \"250ms\"\n[topics]\nusage = \"from-file\"\npartitions = 2\n",
        )
        .unwrap();
        let config = Config::load_from(
            Some(&path),
            env(&[
                ("CENTILE_KAFKA_BROKERS", "a:1,b:2"),
                ("CENTILE_TOPIC_PARTITIONS", "6"),
                ("CENTILE_CLICKHOUSE_PASSWORD", "12345"),
                (
                    "CENTILE_AGGREGATOR_PERFORMANCE_PARAMETERS",
                    "streaming, temperature",
                ),
                ("CENTILE_METRICS_ADDR", "127.0.0.1:9999"),
                ("CENTILE_PRICING_BOOK", "/etc/centile/prices.toml"),
                ("CENTILE_STACK_DIR", "/ignored: not a config section"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(config.kafka.brokers, "a:1,b:2");
        assert_eq!(config.topics.usage, "from-file");
        assert_eq!(config.topics.partitions, 6);
        assert_eq!(config.sink.batch_max_wait, Duration::from_millis(250));
        assert_eq!(config.clickhouse.password.unwrap().expose(), "12345");
        assert_eq!(
            config.aggregator.performance_parameters,
            ["streaming", "temperature"]
        );
        assert_eq!(config.metrics.addr.unwrap().port(), 9999);
        assert_eq!(
            config.pricing.book.unwrap(),
            Path::new("/etc/centile/prices.toml")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::load_from(None, env(&[("CENTILE_KAFKA_BROKRES", "x")])).unwrap_err();
        assert!(err.to_string().contains("brokres"), "{err}");
        let err =
            Config::load_from(None, env(&[("CENTILE_TOPIC_PARTITIONS", "many")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable CENTILE_TOPIC_PARTITIONS: expected an integer, got \"many\""
        );
        let err =
            Config::load_from(None, env(&[("CENTILE_SINK_BATCH_MAX_WAIT", "soon")])).unwrap_err();
        assert!(err.to_string().contains("invalid config"), "{err}");
    }

    #[test]
    fn maps_and_admission_come_from_the_environment() {
        let config = Config::load_from(
            None,
            env(&[
                (
                    "CENTILE_KAFKA_EXTRA",
                    "group.instance.id=agg-1, session.timeout.ms=6000",
                ),
                ("CENTILE_ADMISSION_RESTATEMENT_HORIZON", "2days"),
            ]),
        )
        .unwrap();
        assert_eq!(config.kafka.extra["group.instance.id"], "agg-1");
        assert_eq!(config.kafka.extra["session.timeout.ms"], "6000");
        assert_eq!(
            config.admission.restatement_horizon,
            Duration::from_secs(2 * 24 * 3600)
        );
        let err = Config::load_from(None, env(&[("CENTILE_KAFKA_EXTRA", "novalue")])).unwrap_err();
        assert!(err.to_string().contains("key=value"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let config = Config::load_from(
            None,
            env(&[
                ("CENTILE_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
                ("CENTILE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                ("CENTILE_KAFKA_SASL_USERNAME", "centile"),
                ("CENTILE_KAFKA_SASL_PASSWORD", "hunter2"),
                ("CENTILE_KAFKA_SSL_KEY_PASSWORD", "keypass9"),
                ("CENTILE_CLICKHOUSE_PASSWORD", "chpass7"),
            ]),
        );
        // The key password without a key is refused, and the refusal does
        // not show it either.
        let err = config.unwrap_err().to_string();
        assert!(err.contains("kafka.ssl_key_password"), "{err}");
        for secret in ["hunter2", "keypass9", "chpass7"] {
            assert!(!err.contains(secret), "{err}");
        }
        let config = Config::load_from(
            None,
            env(&[
                ("CENTILE_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
                ("CENTILE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                ("CENTILE_KAFKA_SASL_USERNAME", "centile"),
                ("CENTILE_KAFKA_SASL_PASSWORD", "hunter2"),
                ("CENTILE_CLICKHOUSE_PASSWORD", "chpass7"),
            ]),
        )
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("chpass7"));
        let client = crate::kafka::client_config(&config.kafka);
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
