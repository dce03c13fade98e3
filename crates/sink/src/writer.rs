//! Writing: one RowBinary `INSERT` per table and batch.

use std::time::Duration;

use clickhouse::{Client, RowOwned, RowWrite};
use serde::Serialize;

use crate::{batch::Batch, metrics::SinkMetrics};

pub const LATENCY_EVENTS: &str = "latency_events";
pub const USAGE_EVENTS: &str = "usage_events";
pub const LATENCY_PANES: &str = "latency_panes";
pub const USAGE_PANES: &str = "usage_panes";
pub const SOURCE_WATERMARKS: &str = "source_watermarks";

#[derive(Clone)]
pub struct Writer {
    client: Client,
    metrics: SinkMetrics,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    pub fn new(client: Client, metrics: SinkMetrics) -> Self {
        Self { client, metrics }
    }

    /// Inserts every row of the batch. Safe to repeat after a partial
    /// failure: raw tables deduplicate by event id and pane tables by pane
    /// id and version.
    pub async fn write(&self, batch: &Batch) -> Result<(), clickhouse::error::Error> {
        self.insert(LATENCY_EVENTS, batch.latency_events.iter())
            .await?;
        self.insert(USAGE_EVENTS, batch.usage_events.iter()).await?;
        self.insert(LATENCY_PANES, batch.latency_panes()).await?;
        self.insert(USAGE_PANES, batch.usage_panes()).await?;
        // Last: a watermark says the panes before it are in.
        self.insert(SOURCE_WATERMARKS, batch.watermarks()).await?;
        Ok(())
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
        insert.end().await.inspect_err(|_| {
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
