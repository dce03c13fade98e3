//! Kafka client configuration and topic creation, broker-agnostic: nothing
//! here depends on a particular broker implementation.

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
    ClientConfig,
};

use crate::{config::KafkaConfig, RuntimeError};

/// Connection and security settings common to producers, consumers and admin.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    if let Some(id) = &kafka.client_id {
        config.set("client.id", id);
    }
    if let Some(protocol) = &kafka.security_protocol {
        config.set("security.protocol", protocol);
    }
    if let Some(mechanism) = &kafka.sasl_mechanism {
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
    apply_extra(&mut config, kafka);
    config
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
        .set("enable.partition.eof", "false");
    apply_extra(&mut config, kafka);
    config
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    topics: &[&str],
    partitions: i32,
    replication_factor: i32,
) -> Result<(), RuntimeError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                partitions,
                TopicReplication::Fixed(replication_factor),
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
pub async fn ensure_centile_topics(config: &crate::Config) -> Result<(), RuntimeError> {
    let t = &config.topics;
    if !t.create_missing {
        return Ok(());
    }
    ensure_topics(
        &config.kafka,
        &[&t.latency, &t.usage, &t.rollups, &t.dlq],
        t.partitions,
        t.replication_factor,
    )
    .await?;
    ensure_topics(&config.kafka, &[&t.checkpoints], 1, t.replication_factor).await
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
