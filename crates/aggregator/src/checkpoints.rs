//! Persists segment checkpoints in a one-partition Kafka topic and finds
//! each partition's latest one again by reading that topic from its end.
//!
//! Kafka's own committed offsets cannot carry the watermark state on every
//! broker (Tansu drops commit metadata), and a checkpoint must be durable
//! before the segment after it is published, so checkpoints are records of
//! their own. Keys are `group/topic/partition`, so a compacted topic keeps
//! only the latest of each.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use centile_runtime::{
    kafka::{client_config, OutMessage},
    Config,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    Message, Offset, TopicPartitionList,
};
use serde::{Deserialize, Serialize};

use crate::engine::Checkpoint;

/// How many records are read per step back from the end.
const CHUNK: i64 = 2_000;
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    group_id: String,
    checkpoint: Checkpoint,
}

/// Where an assigned partition resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    pub checkpoint: Option<Checkpoint>,
    /// The offset to read from: the checkpoint's, else the group's committed
    /// offset, else the partition's earliest.
    pub offset: i64,
}

pub struct CheckpointStore {
    topic: String,
    group_id: String,
    /// Assign-only: it never joins the group and never commits.
    reader: BaseConsumer,
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("topic", &self.topic)
            .field("group_id", &self.group_id)
            .finish_non_exhaustive()
    }
}

impl CheckpointStore {
    pub fn new(config: &Config) -> Result<Self, KafkaError> {
        let group_id = config.aggregator.group_id.clone();
        let reader = client_config(&config.kafka)
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()?;
        Ok(Self {
            topic: config.topics.checkpoints.clone(),
            group_id,
            reader,
        })
    }

    /// The records that persist `checkpoints`.
    pub fn messages(&self, checkpoints: &[Checkpoint]) -> Vec<OutMessage> {
        checkpoints
            .iter()
            .map(|c| OutMessage {
                topic: self.topic.clone(),
                partition: None,
                key: Some(format!("{}/{}/{}", self.group_id, c.topic, c.partition)),
                payload: serde_json::to_vec(&Record {
                    group_id: self.group_id.clone(),
                    checkpoint: c.clone(),
                })
                .expect("checkpoints serialize"),
                headers: Vec::new(),
            })
            .collect()
    }

    /// Where each of `partitions` resumes. Blocking: it runs inside the
    /// rebalance callback, before the consumer fetches anything.
    pub fn resume_points(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<HashMap<(String, i32), ResumePoint>, KafkaError> {
        let checkpoints = self.latest(partitions)?;
        let mut missing = TopicPartitionList::new();
        for tp in partitions
            .iter()
            .filter(|tp| !checkpoints.contains_key(*tp))
        {
            missing.add_partition(&tp.0, tp.1);
        }
        let committed = if missing.count() == 0 {
            TopicPartitionList::new()
        } else {
            self.reader.committed_offsets(missing, BROKER_TIMEOUT)?
        };
        let mut points = HashMap::new();
        for (topic, partition) in partitions {
            let key = (topic.clone(), *partition);
            let point = match checkpoints.get(&key) {
                Some(c) => ResumePoint {
                    checkpoint: Some(c.clone()),
                    offset: c.next_offset,
                },
                None => {
                    let offset = match committed
                        .find_partition(topic, *partition)
                        .map(|e| e.offset())
                    {
                        Some(Offset::Offset(o)) => o,
                        _ => {
                            self.reader
                                .fetch_watermarks(topic, *partition, BROKER_TIMEOUT)?
                                .0
                        }
                    };
                    ResumePoint {
                        checkpoint: None,
                        offset,
                    }
                }
            };
            points.insert(key, point);
        }
        Ok(points)
    }

    /// The latest checkpoint of each wanted partition, reading back from the
    /// end of the topic one chunk at a time until all are found.
    fn latest(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<HashMap<(String, i32), Checkpoint>, KafkaError> {
        let (low, high) = self
            .reader
            .fetch_watermarks(&self.topic, 0, BROKER_TIMEOUT)?;
        let mut found: HashMap<(String, i32), Checkpoint> = HashMap::new();
        let mut end = high;
        while end > low && found.len() < partitions.len() {
            let start = (end - CHUNK).max(low);
            let mut in_chunk = HashMap::new();
            for record in self.read(start, end)? {
                if record.group_id != self.group_id {
                    continue;
                }
                let key = (record.checkpoint.topic.clone(), record.checkpoint.partition);
                if partitions.contains(&key) && !found.contains_key(&key) {
                    in_chunk.insert(key, record.checkpoint);
                }
            }
            found.extend(in_chunk);
            end = start;
        }
        Ok(found)
    }

    /// The records at offsets `start..end`, in order.
    fn read(&self, start: i64, end: i64) -> Result<Vec<Record>, KafkaError> {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&self.topic, 0, Offset::Offset(start))?;
        self.reader.assign(&assignment)?;
        let deadline = Instant::now() + BROKER_TIMEOUT;
        let mut records = Vec::new();
        let mut next = start;
        while next < end {
            if Instant::now() > deadline {
                self.reader.unassign()?;
                return Err(KafkaError::Global(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ));
            }
            let Some(message) = self.reader.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message?;
            next = message.offset() + 1;
            if message.offset() >= end {
                break;
            }
            match serde_json::from_slice(message.payload().unwrap_or_default()) {
                Ok(record) => records.push(record),
                Err(e) => tracing::warn!(
                    offset = message.offset(),
                    error = %e,
                    "ignoring an unreadable checkpoint record"
                ),
            }
        }
        self.reader.unassign()?;
        Ok(records)
    }
}
