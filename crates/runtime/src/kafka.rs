//! Kafka client configuration and topic creation, broker-agnostic: nothing
//! here depends on a particular broker implementation.

use std::{
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::{ClientContext, DefaultClientContext},
    error::KafkaError,
    producer::{BaseProducer, Producer},
    types::RDKafkaErrorCode,
    ClientConfig,
};

use crate::{
    config::KafkaConfig,
    security::{sasl_mechanism, SecurityProtocol},
    RuntimeError,
};

/// Connection and security settings common to producers, consumers and admin.
///
/// Expects a config that passed [`KafkaConfig::validate`] (as every loaded
/// [`crate::Config`] has); a protocol it cannot parse is left to librdkafka,
/// which refuses it when the client is created.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    if let Some(id) = &kafka.client_id {
        config.set("client.id", id);
    }
    let protocol = kafka.protocol().ok();
    match (protocol, &kafka.security_protocol) {
        (Some(protocol), _) => {
            config.set("security.protocol", protocol.as_str());
        }
        (None, Some(raw)) => {
            config.set("security.protocol", raw);
        }
        (None, None) => {}
    }
    if let Some(mechanism) = sasl_mechanism(kafka) {
        config.set("sasl.mechanism", mechanism);
    }
    if let Some(user) = &kafka.sasl_username {
        config.set("sasl.username", user);
    }
    if let Some(password) = &kafka.sasl_password {
        config.set("sasl.password", password.expose());
    }
    if let Some(ca) = &kafka.ssl_ca_location {
        config.set("ssl.ca.location", ca.display().to_string());
    }
    if let Some(cert) = &kafka.ssl_certificate_location {
        config.set("ssl.certificate.location", cert.display().to_string());
    }
    if let Some(key) = &kafka.ssl_key_location {
        config.set("ssl.key.location", key.display().to_string());
    }
    if let Some(password) = &kafka.ssl_key_password {
        config.set("ssl.key.password", password.expose());
    }
    if protocol.is_some_and(SecurityProtocol::uses_tls) {
        config.set(
            "ssl.endpoint.identification.algorithm",
            if kafka.ssl_endpoint_identification {
                "https"
            } else {
                "none"
            },
        );
    }
    apply_extra(&mut config, kafka);
    config
}

/// librdkafka's `builtin.features` for this build, such as `ssl`,
/// `sasl_scram`; security settings are checked against it.
pub fn builtin_features() -> &'static [String] {
    static FEATURES: OnceLock<Vec<String>> = OnceLock::new();
    FEATURES.get_or_init(|| {
        ClientConfig::new()
            .create_native_config()
            .and_then(|native| native.get("builtin.features"))
            .map(|list| list.split(',').map(|f| f.trim().to_owned()).collect())
            .unwrap_or_default()
    })
}

/// Remembers the first authentication or TLS failure librdkafka reports,
/// and the other errors, while [`verify_connection`] waits.
#[derive(Debug, Default)]
struct ConnectionWatch {
    fatal: Mutex<Option<(RDKafkaErrorCode, String)>>,
    others: Mutex<Vec<String>>,
}

impl ConnectionWatch {
    /// What went wrong, most telling first: the distinct reasons, without
    /// librdkafka's summary `n/m brokers are down` unless it is all there is.
    fn reasons(&self) -> String {
        let others = self.others.lock().expect("watch lock");
        let telling: Vec<&str> = others
            .iter()
            .map(String::as_str)
            .filter(|r| !r.contains("brokers are down"))
            .collect();
        if telling.is_empty() {
            others.last().cloned().unwrap_or_else(|| "no answer".into())
        } else {
            telling.join("; ")
        }
    }
}

impl ClientContext for ConnectionWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        // A TLS alert from the broker after the handshake (with TLS 1.3 a
        // missing client certificate is reported so: "tlsv13 alert
        // certificate required: SSL alert number 116") is as final as a
        // failed handshake.
        let fatal = matches!(
            code,
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
        ) || reason.contains("SSL handshake failed")
            || reason.contains("SSL alert number");
        if fatal {
            let mut first = self.fatal.lock().expect("watch lock");
            if first.is_none() {
                *first = Some((code.unwrap_or(RDKafkaErrorCode::SSL), reason.to_owned()));
            }
        } else {
            tracing::debug!(error = %error, reason, "kafka connection check");
            let mut others = self.others.lock().expect("watch lock");
            let gist = |r: &str| r.split(" (after ").next().unwrap_or(r).to_owned();
            if !others.iter().any(|r| gist(r) == gist(reason)) && others.len() < 8 {
                others.push(reason.to_owned());
            }
        }
    }
}

impl rdkafka::producer::ProducerContext for ConnectionWatch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

const TLS_FILES_HINT: &str = "check kafka.ssl_certificate_location, kafka.ssl_key_location, kafka.ssl_key_password and kafka.ssl_ca_location";
const TLS_REFUSED_HINT: &str = "the broker refused this client's TLS certificate (it requires mutual TLS): check kafka.ssl_certificate_location and kafka.ssl_key_location";
const TLS_TRUST_HINT: &str = "check kafka.ssl_ca_location (the CA that signed the brokers' certificates), kafka.ssl_endpoint_identification (the certificate must name the host connected to) and kafka.security_protocol";

/// Checks at start-up that the brokers answer with these settings: a
/// metadata request, retried until `kafka.connect_timeout`. A wrong
/// password or an untrusted certificate ends the wait at once with an
/// error that says so ([`RuntimeError::KafkaAuthentication`],
/// [`RuntimeError::KafkaTls`]) instead of the endless reconnecting
/// librdkafka would otherwise do. Nothing secret is in the error.
pub async fn verify_connection(kafka: &KafkaConfig) -> Result<(), RuntimeError> {
    kafka.validate()?;
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || verify_connection_blocking(&kafka))
        .await
        .map_err(|e| RuntimeError::Config(format!("kafka connection check: {e}")))?
}

fn verify_connection_blocking(kafka: &KafkaConfig) -> Result<(), RuntimeError> {
    let started = Instant::now();
    let brokers = kafka.brokers.clone();
    let mut config = client_config(kafka);
    // Only the check's own client: it never produces.
    config.set("enable.idempotence", "false");
    let producer: BaseProducer<ConnectionWatch> = config
        .create_with_context(ConnectionWatch::default())
        .map_err(|e| match e {
            // Unreadable or mismatched certificate or key files surface here.
            KafkaError::ClientCreation(reason) if reason.contains("ssl") => {
                RuntimeError::KafkaTls {
                    brokers: brokers.clone(),
                    reason,
                    hint: TLS_FILES_HINT,
                }
            }
            other => RuntimeError::Kafka(other),
        })?;
    let outcome = loop {
        let left = kafka.connect_timeout.saturating_sub(started.elapsed());
        let attempt = producer
            .client()
            .fetch_metadata(None, left.min(Duration::from_millis(250)));
        // Serves the error callbacks queued meanwhile (one event per poll
        // of the queue, as many as come within the 20 ms).
        producer.poll(Duration::from_millis(20));
        let context = producer.context();
        if let Some((code, reason)) = context.fatal.lock().expect("watch lock").take() {
            break Err(if code == RDKafkaErrorCode::Authentication {
                RuntimeError::KafkaAuthentication {
                    brokers: brokers.clone(),
                    mechanism: sasl_mechanism(kafka).unwrap_or_else(|| "-".into()),
                    username: kafka.sasl_username.clone().unwrap_or_default(),
                    reason,
                }
            } else {
                let hint = if reason.contains("SSL alert number") {
                    TLS_REFUSED_HINT
                } else {
                    TLS_TRUST_HINT
                };
                RuntimeError::KafkaTls {
                    brokers: brokers.clone(),
                    reason,
                    hint,
                }
            });
        }
        match attempt {
            Ok(metadata) if !metadata.brokers().is_empty() => break Ok(()),
            Ok(_) => {}
            Err(e) => {
                let mut others = context.others.lock().expect("watch lock");
                if others.is_empty() {
                    others.push(e.to_string());
                }
            }
        }
        if started.elapsed() >= kafka.connect_timeout {
            break Err(RuntimeError::KafkaUnreachable {
                brokers: brokers.clone(),
                waited: kafka.connect_timeout,
                reason: context.reasons(),
            });
        }
    };
    if outcome.is_ok() {
        tracing::debug!(brokers, elapsed = ?started.elapsed(), "kafka brokers answer");
    }
    drop_detached(producer, Duration::from_secs(2));
    outcome
}

/// Drops a client on its own thread and waits for it at most `timeout`:
/// destroying a client whose broker never let it in can take long.
fn drop_detached<T: Send + 'static>(client: T, timeout: Duration) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(client);
        let _ = done.send(());
    });
    let _ = finished.recv_timeout(timeout);
}

/// Applied last by every builder, so a user's `[kafka.extra]` setting
/// overrides Centile's defaults for that client role too.
fn apply_extra(config: &mut ClientConfig, kafka: &KafkaConfig) {
    for (key, value) in &kafka.extra {
        config.set(key, value);
    }
}

/// A producer that returns only once every replica has the message
/// (`acks=all`), de-duplicated by the broker on retry when idempotence is on.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = client_config(kafka);
    config
        .set("acks", "all")
        .set("enable.idempotence", kafka.idempotence.to_string())
        .set("compression.type", &kafka.compression)
        .set("linger.ms", kafka.linger.as_millis().to_string())
        .set(
            "message.timeout.ms",
            kafka.delivery_timeout.as_millis().to_string(),
        );
    apply_extra(&mut config, kafka);
    config
}

/// A group consumer that commits only what its caller has made durable.
pub fn consumer_config(kafka: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut config = client_config(kafka);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Log-end offsets and lag per partition (kafka_health::ConsumerLag).
        .set("statistics.interval.ms", "5000");
    apply_extra(&mut config, kafka);
    config
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    topics: &[&str],
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) -> Result<(), RuntimeError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| {
            configs.iter().fold(
                NewTopic::new(
                    name,
                    partitions,
                    TopicReplication::Fixed(replication_factor),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(topic) => tracing::info!(topic, partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(RuntimeError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Creates Centile's topics if they are missing and the config allows it.
/// Checkpoints live in one partition, so the latest ones are at its end.
///
/// Every service calls this first, so it also runs the start-up
/// [`verify_connection`] check: a wrong password or an untrusted broker
/// certificate stops the service at once with a clear error.
pub async fn ensure_centile_topics(config: &crate::Config) -> Result<(), RuntimeError> {
    verify_connection(&config.kafka).await?;
    let t = &config.topics;
    if !t.create_missing {
        return Ok(());
    }
    ensure_topics(
        &config.kafka,
        &[&t.latency, &t.usage, &t.rollups, &t.dlq],
        t.partitions,
        t.replication_factor,
        &[],
    )
    .await?;
    // Only each partition's latest checkpoint matters, and busy partitions
    // write one per emit: compaction keeps the topic small.
    ensure_topics(
        &config.kafka,
        &[&t.checkpoints],
        1,
        t.replication_factor,
        &[("cleanup.policy", "compact")],
    )
    .await
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    pub topic: String,
    /// Chosen by the key's hash when not set.
    pub partition: Option<i32>,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Publishes every message and returns once the broker has acknowledged all
/// of them, or with the first delivery error. A full local queue is waited
/// out rather than treated as failure.
pub async fn send_all(
    producer: &rdkafka::producer::FutureProducer,
    messages: &[OutMessage],
) -> Result<(), rdkafka::error::KafkaError> {
    use rdkafka::{
        error::KafkaError,
        message::{Header, OwnedHeaders},
        producer::FutureRecord,
        types::RDKafkaErrorCode,
    };
    use std::collections::VecDeque;

    let mut pending = VecDeque::with_capacity(messages.len());
    for message in messages {
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
            for (key, value) in &message.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let mut record = FutureRecord::<str, [u8]>::to(&message.topic)
                .payload(&message.payload)
                .headers(headers);
            if let Some(key) = &message.key {
                record = record.key(key.as_str());
            }
            if let Some(partition) = message.partition {
                record = record.partition(partition);
            }
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    match pending.pop_front() {
                        Some(oldest) => settle(oldest.await)?,
                        None => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
    for delivery in pending {
        settle(delivery.await)?;
    }
    Ok(())
}

fn settle(
    outcome: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) -> Result<(), rdkafka::error::KafkaError> {
    match outcome {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(rdkafka::error::KafkaError::Canceled),
    }
}

/// Closes a group consumer so that it leaves its group at once, without
/// risking a hang on exit.
///
/// Leaving matters: a member that just disappears stays in the group until
/// its session times out, and some brokers (Tansu 0.6) never evict a vanished
/// group leader, which stalls the group for good. Dropping the consumer
/// closes it (revoke, commit nothing further, LeaveGroup); the destroy that
/// follows can block forever in `rd_kafka_destroy` against Tansu, so the drop
/// runs on its own thread and is waited for at most `timeout`.
pub fn close_consumer<C: rdkafka::consumer::ConsumerContext + 'static>(
    consumer: rdkafka::consumer::StreamConsumer<C>,
    timeout: Duration,
) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(consumer);
        let _ = done.send(());
    });
    if finished.recv_timeout(timeout).is_err() {
        tracing::debug!(
            ?timeout,
            "consumer close still running; exiting without waiting for it"
        );
    }
}

/// The one consumer set-up of the aggregator and the sink: read `inputs`
/// as a member of the consumer group (`kafka.assignment = "group"`), or by
/// assigning every partition directly (`"all"`), each partition from its
/// committed offset unless `position` sets another. `position` returns
/// false to take no partitions (its reason already logged).
pub fn attach_inputs<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl rdkafka::consumer::Consumer<C>,
    assignment: crate::Assignment,
    inputs: &[&str],
    position: impl FnOnce(&mut rdkafka::TopicPartitionList) -> bool,
) -> Result<(), KafkaError> {
    match assignment {
        crate::Assignment::Group => consumer.subscribe(inputs),
        crate::Assignment::All => {
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (topic, partition) in all_partitions(consumer, inputs)? {
                tpl.add_partition_offset(&topic, partition, rdkafka::Offset::Stored)?;
            }
            if position(&mut tpl) {
                consumer.assign(&tpl)?;
            }
            Ok(())
        }
    }
}

/// Every partition of `topics`, as the broker's metadata lists them.
pub fn all_partitions<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl rdkafka::consumer::Consumer<C>,
    topics: &[&str],
) -> Result<Vec<(String, i32)>, rdkafka::error::KafkaError> {
    let mut partitions = Vec::new();
    for topic in topics {
        let metadata = consumer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in metadata.topics() {
            partitions.extend(t.partitions().iter().map(|p| (t.name().to_owned(), p.id())));
        }
    }
    Ok(partitions)
}
