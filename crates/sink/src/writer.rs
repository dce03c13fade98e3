//! Writing: one RowBinary `INSERT` per table and batch, then the stored
//! tiers the batch's panes touched.

use std::{sync::Arc, time::Duration};

use tokio::sync::Mutex;

use clickhouse::{Client, RowOwned, RowWrite};
use serde::Serialize;

use crate::{
    batch::Batch,
    metrics::SinkMetrics,
    prices::Prices,
    rollup::{Compactor, Dirty},
};

pub const LATENCY_EVENTS: &str = "latency_events";
pub const USAGE_EVENTS: &str = "usage_events";
pub const LATENCY_PANES: &str = "latency_panes";
pub const USAGE_PANES: &str = "usage_panes";
pub const SOURCE_WATERMARKS: &str = "source_watermarks";

#[derive(Clone)]
pub struct Writer {
    client: Client,
    compactor: Compactor,
    /// Held while a batch is written and its tiers recomputed; the
    /// retention job takes it before dropping partitions.
    lock: Arc<Mutex<()>>,
    metrics: SinkMetrics,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    pub fn new(client: Client, database: &str, prices: Prices, metrics: SinkMetrics) -> Self {
        metrics.price_book_versions.set(prices.versions() as i64);
        Self {
            compactor: Compactor::new(client.clone(), database, prices),
            lock: Arc::default(),
            client,
            metrics,
        }
    }

    /// Inserts every row of the batch, then recomputes the minute, hour,
    /// day and week rows its panes touched. Safe to repeat after a partial
    /// failure: raw tables deduplicate by event id, pane tables by pane id
    /// and version, and the tiers are recomputed from what is stored.
    pub fn lock(&self) -> Arc<Mutex<()>> {
        self.lock.clone()
    }

    pub async fn write(&self, batch: &Batch) -> Result<(), clickhouse::error::Error> {
        let _guard = self.lock.lock().await;
        self.insert(LATENCY_EVENTS, batch.latency_events.iter())
            .await?;
        self.insert(USAGE_EVENTS, batch.usage_events.iter()).await?;
        self.insert(LATENCY_PANES, batch.latency_panes()).await?;
        self.insert(USAGE_PANES, batch.usage_panes()).await?;
        // Last: a watermark says the panes before it are in.
        self.insert(SOURCE_WATERMARKS, batch.watermarks()).await?;
        let dirty = Dirty {
            latency: batch
                .latency_panes()
                .map(|p| i64::from(p.window_start))
                .collect(),
            usage: batch
                .usage_panes()
                .map(|p| i64::from(p.window_start))
                .collect(),
        };
        if !dirty.is_empty() {
            self.refresh_prices();
            let started = std::time::Instant::now();
            let statements = self.compactor.compact(&dirty).await.inspect_err(|_| {
                self.metrics.compaction_failures.inc();
            })?;
            self.metrics.compactions.inc_by(statements as u64);
            self.metrics
                .compaction_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Reads the price book again if its file changed: a book that cannot
    /// be used is refused, counted and logged, and the last good one kept.
    fn refresh_prices(&self) {
        let prices = self.compactor.prices();
        match prices.refresh() {
            Ok(false) => {}
            Ok(true) => {
                self.metrics
                    .price_book_reloads
                    .with_label_values(&["loaded"])
                    .inc();
                self.metrics
                    .price_book_versions
                    .set(prices.versions() as i64);
            }
            Err(error) => {
                self.metrics
                    .price_book_reloads
                    .with_label_values(&["refused"])
                    .inc();
                tracing::error!(%error, digest = %prices.digest(), "price book refused; pricing with the last good one");
            }
        }
    }

    async fn insert<'a, T>(
        &self,
        table: &'static str,
        rows: impl Iterator<Item = &'a T>,
    ) -> Result<(), clickhouse::error::Error>
    where
        T: RowOwned + RowWrite + Serialize + 'a,
    {
        let mut rows = rows.peekable();
        if rows.peek().is_none() {
            return Ok(());
        }
        // Any step may fail (connect, send, the server's answer): each
        // failure counts once, for the table.
        let attempt = async {
            let mut insert = self
                .client
                .insert::<T>(table)
                .await?
                .with_timeouts(Some(Duration::from_secs(30)), Some(Duration::from_secs(60)));
            let mut written = 0u64;
            for row in rows {
                insert.write(row).await?;
                written += 1;
            }
            insert.end().await?;
            Ok::<u64, clickhouse::error::Error>(written)
        };
        let written = attempt.await.inspect_err(|_| {
            self.metrics
                .insert_failures
                .with_label_values(&[table])
                .inc();
        })?;
        self.metrics
            .rows_written
            .with_label_values(&[table])
            .inc_by(written);
        Ok(())
    }
}
