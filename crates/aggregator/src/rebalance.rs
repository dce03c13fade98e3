//! Positions newly assigned partitions at their last checkpoint before the
//! consumer fetches anything, and tells the run loop which partitions came
//! and went, so it never mixes state across owners.
//!
//! The positions are set inside the rebalance callback, on the assignment
//! itself: a partition is never read from a committed offset that its
//! checkpoint does not match, not even for one fetch.

use centile_runtime::kafka_health::ConsumerLag;
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol},
    types::RDKafkaRespErr,
    ClientContext, Offset, TopicPartitionList,
};

use crate::{
    checkpoints::{CheckpointStore, ResumePoint},
    engine::Checkpoint,
};

/// A change of ownership, applied by the run loop in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Assigned {
        topic: String,
        partition: i32,
        checkpoint: Option<Checkpoint>,
        offset: i64,
    },
    Revoked {
        topic: String,
        partition: i32,
    },
    /// Resume points could not be read; the partitions were not taken.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Assignments {
    store: Arc<CheckpointStore>,
    changes: Arc<Mutex<VecDeque<Change>>>,
    /// Turns the consumer's statistics into log-end offsets and lag.
    lag: ConsumerLag,
}

impl Assignments {
    pub fn new(store: Arc<CheckpointStore>, lag: ConsumerLag) -> Self {
        Self {
            store,
            changes: Arc::default(),
            lag,
        }
    }

    pub fn take_changes(&self) -> VecDeque<Change> {
        std::mem::take(&mut *self.changes.lock().expect("changes lock"))
    }

    fn push(&self, change: Change) {
        self.changes.lock().expect("changes lock").push_back(change);
    }

    /// Sets each partition of `tpl` to its resume point and records the
    /// assignment; false when the resume points could not be read.
    pub fn position(&self, tpl: &mut TopicPartitionList) -> bool {
        let wanted: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let points = match self.store.resume_points(&wanted) {
            Ok(points) => points,
            Err(e) => {
                tracing::error!(error = %e, "cannot read checkpoints; not taking the partitions");
                self.push(Change::Failed(e.to_string()));
                return false;
            }
        };
        for (topic, partition) in wanted {
            let Some(ResumePoint { checkpoint, offset }) =
                points.get(&(topic.clone(), partition)).cloned()
            else {
                continue;
            };
            if let Err(e) = tpl.set_partition_offset(&topic, partition, Offset::Offset(offset)) {
                self.push(Change::Failed(e.to_string()));
                return false;
            }
            tracing::info!(
                topic,
                partition,
                offset,
                from_checkpoint = checkpoint.is_some(),
                "partition assigned"
            );
            self.push(Change::Assigned {
                topic,
                partition,
                checkpoint,
                offset,
            });
        }
        true
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        if !self.position(tpl) {
            return;
        }
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = result {
            self.push(Change::Failed(e.to_string()));
        }
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        for element in tpl.elements() {
            tracing::info!(
                topic = element.topic(),
                partition = element.partition(),
                "partition revoked"
            );
            self.push(Change::Revoked {
                topic: element.topic().to_owned(),
                partition: element.partition(),
            });
        }
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "unassign failed");
        }
    }
}

impl ClientContext for Assignments {
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        self.lag.record(&statistics);
    }
}

impl ConsumerContext for Assignments {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                tracing::warn!(error = ?other, "rebalance error; dropping the assignment");
                self.revoke(consumer, tpl);
            }
        }
    }
}
