//! Publishing an import: raw events to the events topics exactly as the SDK
//! frames them, plus the origin header, and panes to the rollups topic
//! exactly as the aggregator encodes them. Messages go out in batches of at
//! most [`BATCH`], at most [`IN_FLIGHT`] batches awaiting acknowledgement
//! while the next is prepared, and [`Outbox::finish`] returns only once the
//! broker has acknowledged every message (idempotent producer, `acks=all`).

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use centile_events::{encode, Decoded, Event, Schemas};
use centile_runtime::kafka::{send_all, OutMessage};
use tokio::task::JoinHandle;

use super::{ORIGIN_HEADER, ORIGIN_IMPORT};
use crate::{EventPublisher, ProducerError};

/// Messages per batch handed to the producer.
pub const BATCH: usize = 5_000;
/// Batches sent and not yet acknowledged, at most.
pub const IN_FLIGHT: usize = 4;

/// What the broker has acknowledged so far.
#[derive(Debug, Default)]
pub struct Acknowledged {
    pub raw: AtomicU64,
    pub panes: AtomicU64,
}

/// Batches messages and keeps a bounded number of batches in flight.
#[derive(Debug)]
pub struct Outbox {
    publisher: Arc<EventPublisher>,
    rollups_topic: String,
    schemas: Schemas,
    raw: Vec<Event>,
    panes: Vec<OutMessage>,
    in_flight: VecDeque<JoinHandle<Result<(), ProducerError>>>,
    acknowledged: Arc<Acknowledged>,
}

impl Outbox {
    pub fn new(
        publisher: EventPublisher,
        rollups_topic: &str,
        acknowledged: Arc<Acknowledged>,
    ) -> Self {
        Self {
            publisher: Arc::new(publisher),
            rollups_topic: rollups_topic.to_owned(),
            schemas: Schemas::new(),
            raw: Vec::with_capacity(BATCH),
            panes: Vec::new(),
            in_flight: VecDeque::with_capacity(IN_FLIGHT),
            acknowledged,
        }
    }

    /// Queues a raw event (already validated by the converter).
    pub async fn raw(&mut self, event: Event) -> Result<(), ProducerError> {
        self.raw.push(event);
        if self.raw.len() >= BATCH {
            self.send_raw().await?;
        }
        Ok(())
    }

    /// Queues panes, encoded and keyed as the aggregator does.
    pub async fn panes(&mut self, panes: Vec<Decoded>) -> Result<(), ProducerError> {
        for pane in panes {
            self.panes
                .push(pane_message(&self.schemas, &self.rollups_topic, &pane));
            if self.panes.len() >= BATCH {
                self.send_panes().await?;
            }
        }
        Ok(())
    }

    /// Sends what is queued and waits for every acknowledgement.
    pub async fn finish(&mut self) -> Result<(), ProducerError> {
        self.send_raw().await?;
        self.send_panes().await?;
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    async fn send_raw(&mut self) -> Result<(), ProducerError> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let events = std::mem::replace(&mut self.raw, Vec::with_capacity(BATCH));
        let mut messages = self.publisher.messages(&events).await?;
        for message in &mut messages {
            message
                .headers
                .push((ORIGIN_HEADER.to_owned(), ORIGIN_IMPORT.to_owned()));
        }
        self.launch(messages, true).await
    }

    async fn send_panes(&mut self) -> Result<(), ProducerError> {
        if self.panes.is_empty() {
            return Ok(());
        }
        let messages = std::mem::take(&mut self.panes);
        self.launch(messages, false).await
    }

    /// Sends `messages` in the background, once fewer than [`IN_FLIGHT`]
    /// batches await acknowledgement.
    async fn launch(&mut self, messages: Vec<OutMessage>, raw: bool) -> Result<(), ProducerError> {
        while self.in_flight.len() >= IN_FLIGHT {
            self.settle_oldest().await?;
        }
        let publisher = self.publisher.clone();
        let acknowledged = self.acknowledged.clone();
        self.in_flight.push_back(tokio::spawn(async move {
            send_all(publisher.producer(), &messages).await?;
            let counter = if raw {
                &acknowledged.raw
            } else {
                &acknowledged.panes
            };
            counter.fetch_add(messages.len() as u64, Ordering::Relaxed);
            Ok(())
        }));
        Ok(())
    }

    async fn settle_oldest(&mut self) -> Result<(), ProducerError> {
        match self.in_flight.pop_front() {
            None => Ok(()),
            Some(task) => task
                .await
                .map_err(|e| ProducerError::Interrupted(e.to_string()))?,
        }
    }
}

/// A pane as the aggregator publishes it: single-object Avro, keyed by the
/// pane's partition key, no headers.
pub fn pane_message(schemas: &Schemas, topic: &str, pane: &Decoded) -> OutMessage {
    OutMessage {
        topic: topic.to_owned(),
        partition: None,
        key: Some(pane.partition_key()),
        payload: encode(schemas, pane),
        headers: Vec::new(),
    }
}
