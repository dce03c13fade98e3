//! Stored rollup tiers: minute, hour, day and ISO-week rows.
//!
//! The aggregator emits minute panes. After the sink has landed a batch's
//! panes, and before it commits the batch's offsets, it recomputes every
//! minute, hour, day and week bucket the batch touched, each from the tier
//! below (minute rows from the panes): [`Compactor::compact`]. A crash
//! between the insert and the commit replays the batch, which recomputes
//! the same buckets from the same stored rows, so every tier is exactly
//! once in effect whenever the panes are. Each row's `revision` is the sum
//! of the revisions below it, so a late pane raises the revision of its
//! minute, hour, day and week rows at once, and a row recomputed from more
//! input always wins `ReplacingMergeTree(revision)`; concurrent sinks
//! converge because the last recomputation of a bucket sees every row
//! written before it.
//!
//! [`tiers`] defines the tiers and kinds once, [`sql`] makes every table,
//! view and statement from them, [`pricing`] splices the price book into
//! them, and [`reprice`] restates computed costs after a price correction.

pub mod pricing;
pub mod reprice;
pub mod sql;
pub mod tiers;

use std::collections::BTreeSet;

use clickhouse::Client;

use crate::prices::Prices;
use pricing::PriceSql;

pub use tiers::{Grouping, Kind, Rollup, Tier};

/// The minute windows (Unix seconds) a batch wrote panes for, per kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    pub latency: BTreeSet<i64>,
    pub usage: BTreeSet<i64>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.latency.is_empty() && self.usage.is_empty()
    }

    fn of(&self, kind: Kind) -> &BTreeSet<i64> {
        match kind {
            Kind::Latency => &self.latency,
            Kind::Usage => &self.usage,
        }
    }
}

/// The buckets of `tier` that hold any of `minutes`.
pub fn buckets(tier: Tier, minutes: &BTreeSet<i64>) -> BTreeSet<i64> {
    minutes.iter().map(|m| tier.bucket_of(*m)).collect()
}

/// The statements that recompute, tier by tier from the bottom, every
/// bucket holding a dirty minute, in the order they must run.
pub fn compact_statements(database: &str, dirty: &Dirty, prices: &PriceSql) -> Vec<String> {
    let mut statements = Vec::new();
    for (rollup, tiers) in Rollup::all() {
        let minutes = dirty.of(rollup.kind);
        if minutes.is_empty() {
            continue;
        }
        for tier in tiers {
            statements.push(sql::compact(
                database,
                rollup,
                *tier,
                &buckets(*tier, minutes),
                prices,
            ));
        }
    }
    statements
}

/// Minute windows (Unix seconds) that have panes of `kind` from `since` on.
async fn pane_minutes(
    client: &Client,
    database: &str,
    kind: Kind,
    since: i64,
) -> Result<BTreeSet<i64>, clickhouse::error::Error> {
    let minutes: Vec<u32> = client
        .query(&format!(
            "SELECT DISTINCT toUInt32(window_start) FROM {database}.{} \
             WHERE granularity = 'minute' AND window_start >= toDateTime({since}, 'UTC')",
            kind.panes_table()
        ))
        .fetch_all()
        .await?;
    Ok(minutes.into_iter().map(i64::from).collect())
}

/// Recomputes stored tiers in ClickHouse.
#[derive(Clone)]
pub struct Compactor {
    client: Client,
    database: String,
    prices: Prices,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Compactor {
    pub fn new(client: Client, database: impl Into<String>, prices: Prices) -> Self {
        Self {
            client,
            database: database.into(),
            prices,
        }
    }

    /// The price book the compactor prices with.
    pub fn prices(&self) -> &Prices {
        &self.prices
    }

    /// Recomputes, tier by tier from the bottom, every bucket holding a
    /// dirty minute. Safe to repeat; returns the statements run.
    pub async fn compact(&self, dirty: &Dirty) -> Result<usize, clickhouse::error::Error> {
        let statements = compact_statements(&self.database, dirty, &self.prices.sql());
        for sql in &statements {
            self.client.query(sql).execute().await?;
        }
        Ok(statements.len())
    }

    /// Recomputes every tier of every minute that has panes from `since`
    /// on, a day of minutes at a time: fills the tiers after an upgrade
    /// from a release that merged panes at query time, or after tier rows
    /// were lost. Returns the minutes covered.
    pub async fn backfill(&self, since: i64) -> Result<usize, clickhouse::error::Error> {
        let latency = pane_minutes(&self.client, &self.database, Kind::Latency, since).await?;
        let usage = pane_minutes(&self.client, &self.database, Kind::Usage, since).await?;
        let days: BTreeSet<i64> = latency
            .iter()
            .chain(&usage)
            .map(|m| Tier::Day.bucket_of(*m))
            .collect();
        for day in &days {
            let in_day = |m: &&i64| Tier::Day.bucket_of(**m) == *day;
            let dirty = Dirty {
                latency: latency.iter().filter(in_day).copied().collect(),
                usage: usage.iter().filter(in_day).copied().collect(),
            };
            self.compact(&dirty).await?;
            tracing::info!(day, "tiers recomputed");
        }
        Ok(latency.len() + usage.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_dirties_its_hour_day_and_week() {
        // 2026-12-02 13:05 and 13:59 UTC, and 2026-12-07 00:00 (next Monday).
        let minutes = BTreeSet::from([1_796_216_700, 1_796_219_940, 1_796_601_600]);
        assert_eq!(buckets(Tier::Minute, &minutes), minutes);
        assert_eq!(
            buckets(Tier::Hour, &minutes),
            BTreeSet::from([1_796_216_400, 1_796_601_600])
        );
        assert_eq!(
            buckets(Tier::Day, &minutes),
            BTreeSet::from([1_796_169_600, 1_796_601_600])
        );
        assert_eq!(
            buckets(Tier::Week, &minutes),
            BTreeSet::from([1_795_996_800, 1_796_601_600])
        );
    }
}
