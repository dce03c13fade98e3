//! Retention tiers: raw events, minute rows (and the panes they are made
//! from), hour, day and week rows, each kept for its configured time.
//!
//! Two mechanisms, the same boundaries:
//! - **TTL** where the server has it (19.6+): set at start-up, and changed
//!   only when the configured period changes.
//! - **Dropping whole partitions** on every server (18.16 has no TTL): a
//!   partition goes once everything it can hold is older than its tier.
//!
//! Either way a row goes only when the whole bucket of the tier above it
//! is past the limit (a minute row with its hour, an hour row with its
//! day, a day row with its ISO week), so a higher tier is never recomputed
//! from a lower tier that is half gone. Nothing younger than its tier is
//! ever deleted; a partition may outlive its tier by up to its own span.

use centile_runtime::config::{Keep, RetentionConfig};
use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::{
    migrate::version_at_least,
    rollup::{Rollup, Tier},
    writer::{LATENCY_EVENTS, LATENCY_PANES, USAGE_EVENTS, USAGE_PANES},
    SinkError,
};

const DAY: i64 = 86_400;

/// How a table is partitioned, which fixes how far a partition reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `toYYYYMMDD(…)`: one UTC day.
    Day,
    /// `toYYYYMM(…)`: one calendar month.
    Month,
    /// `toMonday(…)`: one ISO week.
    Week,
    /// `toYYYYMM(toMonday(…))`: the ISO weeks starting in one month.
    WeeksOfMonth,
    /// `toYear(…)`.
    Year,
}

/// A table under retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub table: String,
    pub keep: Keep,
    pub layout: Layout,
    /// The TTL expression's start of "too old": the end of the enclosing
    /// bucket of the tier above.
    pub ttl_base: &'static str,
}

/// Every table's policy under `config`.
pub fn policies(config: &RetentionConfig) -> Vec<Policy> {
    let mut out = Vec::new();
    for table in [LATENCY_EVENTS, USAGE_EVENTS] {
        out.push(Policy {
            table: table.into(),
            keep: config.raw,
            layout: Layout::Day,
            ttl_base: "occurred_at",
        });
    }
    for table in [LATENCY_PANES, USAGE_PANES] {
        out.push(Policy {
            table: table.into(),
            keep: config.minute,
            layout: Layout::Month,
            ttl_base: "toStartOfHour(window_start) + toIntervalHour(1)",
        });
    }
    // Every stored rollup, the grouped ones included: a tier's retention
    // is the tier's, whatever the rows are grouped by.
    for (rollup, tiers) in Rollup::all() {
        for &tier in tiers {
            let (keep, layout, ttl_base) = match tier {
                Tier::Minute => (
                    config.minute,
                    Layout::Day,
                    "toStartOfHour(window_start) + toIntervalHour(1)",
                ),
                Tier::Hour => (
                    config.hour,
                    Layout::Week,
                    "toStartOfDay(window_start) + toIntervalDay(1)",
                ),
                Tier::Day => (
                    config.day,
                    Layout::WeeksOfMonth,
                    "toMonday(window_start) + toIntervalDay(7)",
                ),
                Tier::Week => (config.week, Layout::Year, "window_start + toIntervalDay(7)"),
            };
            out.push(Policy {
                table: rollup.table(tier),
                keep,
                layout,
                ttl_base,
            });
        }
    }
    out
}

impl Policy {
    /// The TTL clause this policy wants (`None`: keep forever).
    pub fn ttl(&self) -> Option<String> {
        self.keep
            .days()
            .map(|days| format!("{} + toIntervalDay({days})", self.ttl_base))
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The first Monday on or after `day` (days since epoch; day 0 was a Thursday).
fn monday_on_or_after(day: i64) -> i64 {
    day + (7 - (day + 3).rem_euclid(7)) % 7
}

/// The end (exclusive, Unix seconds) of everything a partition can hold,
/// from its `system.parts.partition_id` (the same digits on 18.16 and
/// modern servers: `YYYYMMDD` for days and Mondays, `YYYYMM`, `YYYY`).
pub fn partition_end(layout: Layout, partition_id: &str) -> Option<i64> {
    let text = partition_id;
    let num = |a: usize, b: usize| text.get(a..b).and_then(|s| s.parse::<i64>().ok());
    let day = match layout {
        Layout::Day => {
            let (y, m, d) = (num(0, 4)?, num(4, 6)?, num(6, 8)?);
            days_from_civil(y, m, d) + 1
        }
        Layout::Month => {
            let (y, m) = (num(0, 4)?, num(4, 6)?);
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(y, m, 1)
        }
        Layout::Week => {
            let (y, m, d) = (num(0, 4)?, num(4, 6)?, num(6, 8)?);
            days_from_civil(y, m, d) + 7
        }
        Layout::WeeksOfMonth => {
            let (y, m) = (num(0, 4)?, num(4, 6)?);
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            // The last week whose Monday is in the month ends on the first
            // Monday on or after the next month's first day.
            monday_on_or_after(days_from_civil(y, m, 1))
        }
        Layout::Year => days_from_civil(num(0, 4)? + 1, 1, 1) + 7,
    };
    Some(day * DAY)
}

/// A partition whose every row is past its tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub table: String,
    pub partition_id: String,
    /// Unix seconds: the end of what the partition can hold.
    pub ends: i64,
    pub keep_days: u64,
}

#[derive(Debug, Row, Deserialize)]
struct PartitionRow {
    table: String,
    partition_id: String,
}

/// What one run did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub dropped: Vec<Expired>,
    /// `ALTER … MODIFY TTL` statements run (or due).
    pub ttl_changes: Vec<String>,
}

/// Finds (and unless `dry_run`, drops) every expired partition, and on
/// servers with TTL brings each table's TTL in line with `config`.
pub async fn run(
    client: &Client,
    database: &str,
    config: &RetentionConfig,
    now: i64,
    dry_run: bool,
) -> Result<RetentionReport, SinkError> {
    let policies = policies(config);
    let mut report = RetentionReport::default();
    let parts: Vec<PartitionRow> = client
        .query(
            "SELECT DISTINCT table, partition_id FROM system.parts \
             WHERE database = ? AND active ORDER BY table, partition_id",
        )
        .bind(database)
        .fetch_all()
        .await?;
    for part in parts {
        let Some(policy) = policies.iter().find(|p| p.table == part.table) else {
            continue;
        };
        let Some(days) = policy.keep.days() else {
            continue;
        };
        let Some(ends) = partition_end(policy.layout, &part.partition_id) else {
            tracing::warn!(table = %part.table, partition_id = %part.partition_id, "partition not understood; kept");
            continue;
        };
        if ends + days as i64 * DAY <= now {
            report.dropped.push(Expired {
                table: part.table,
                partition_id: part.partition_id,
                ends,
                keep_days: days,
            });
        }
    }
    if !dry_run {
        for expired in &report.dropped {
            client
                .query(&format!(
                    "ALTER TABLE {database}.{} DROP PARTITION ID '{}'",
                    expired.table, expired.partition_id
                ))
                .execute()
                .await?;
            tracing::info!(table = %expired.table, partition_id = %expired.partition_id, keep_days = expired.keep_days, "dropped an expired partition");
        }
    }
    let version: String = client.query("SELECT version()").fetch_one().await?;
    if version_at_least(&version, "19.6") {
        report.ttl_changes = ttl_changes(client, database, &policies).await?;
        if !dry_run {
            for statement in &report.ttl_changes {
                client.query(statement).execute().await?;
                tracing::info!(%statement, "retention TTL changed");
            }
        }
    }
    Ok(report)
}

/// Runs [`run`] every `config.interval` until `shutdown`, holding `lock`
/// (the writer's) so that no partition is dropped while a batch's tiers
/// are being recomputed from it. Failures are logged and retried next time.
pub async fn run_periodically(
    client: Client,
    database: String,
    config: RetentionConfig,
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    metrics: crate::metrics::SinkMetrics,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        {
            let _guard = lock.lock().await;
            match run(
                &client,
                &database,
                &config,
                crate::runner::now_ms() / 1000,
                false,
            )
            .await
            {
                Ok(report) => {
                    for expired in &report.dropped {
                        metrics
                            .retention_dropped_partitions
                            .with_label_values(&[&expired.table])
                            .inc();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention run failed; retrying at the next interval")
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
    }
}

#[derive(Debug, Row, Deserialize)]
struct EngineRow {
    name: String,
    engine_full: String,
}

/// The TTL statements that would bring each table in line with its policy.
/// A TTL change applies as parts merge (`materialize_ttl_after_modify = 0`):
/// rewriting every part at start-up would cost more than the partition
/// drops, which remove whole expired partitions anyway.
async fn ttl_changes(
    client: &Client,
    database: &str,
    policies: &[Policy],
) -> Result<Vec<String>, SinkError> {
    let tables: Vec<EngineRow> = client
        .query("SELECT name, engine_full FROM system.tables WHERE database = ?")
        .bind(database)
        .fetch_all()
        .await?;
    let normalise = |s: &str| s.replace([' ', '\n'], "");
    let mut out = Vec::new();
    for policy in policies {
        let Some(table) = tables.iter().find(|t| t.name == policy.table) else {
            continue;
        };
        let current = normalise(&table.engine_full);
        match policy.ttl() {
            Some(ttl) if !current.contains(&normalise(&format!("TTL {ttl}"))) => {
                out.push(format!(
                    "ALTER TABLE {database}.{} MODIFY TTL {ttl} SETTINGS materialize_ttl_after_modify = 0",
                    policy.table
                ));
            }
            None if current.contains("TTL") => {
                out.push(format!(
                    "ALTER TABLE {database}.{} REMOVE TTL",
                    policy.table
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2025, 1, 15) * DAY, 1_736_899_200);
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28),
            2
        );
    }

    #[test]
    fn partitions_end_after_their_whole_span() {
        // A day of minute rows ends at the next midnight.
        assert_eq!(partition_end(Layout::Day, "20250115"), Some(1_736_985_600));
        // A month of panes ends on the 1st of the next month.
        assert_eq!(
            partition_end(Layout::Month, "202412"),
            Some(days_from_civil(2025, 1, 1) * DAY)
        );
        // An ISO week of hour rows (Monday 2025-01-13) ends the next Monday.
        assert_eq!(
            partition_end(Layout::Week, "20250113"),
            Some(days_from_civil(2025, 1, 20) * DAY)
        );
        // Weeks starting in March 2025: the last starts Monday 03-31 and
        // ends Monday 04-07.
        assert_eq!(
            partition_end(Layout::WeeksOfMonth, "202503"),
            Some(days_from_civil(2025, 4, 7) * DAY)
        );
        // Weeks starting in September 2025: 2025-09-29 is the last Monday;
        // October 1st is a Wednesday, so the week ends Monday 10-06.
        assert_eq!(
            partition_end(Layout::WeeksOfMonth, "202509"),
            Some(days_from_civil(2025, 10, 6) * DAY)
        );
        assert_eq!(partition_end(Layout::Day, "garbage"), None);
    }

    #[test]
    fn ttls_follow_the_tier_above() {
        let p = policies(&RetentionConfig::default());
        let ttl = |t: &str| p.iter().find(|p| p.table == t).unwrap().ttl();
        assert_eq!(
            ttl("latency_rollup_minute").as_deref(),
            Some("toStartOfHour(window_start) + toIntervalHour(1) + toIntervalDay(7)")
        );
        assert_eq!(
            ttl("usage_rollup_hour").as_deref(),
            Some("toStartOfDay(window_start) + toIntervalDay(1) + toIntervalDay(90)")
        );
        assert_eq!(ttl("latency_rollup_week"), None);
        assert_eq!(
            ttl("latency_events").as_deref(),
            Some("occurred_at + toIntervalDay(7)")
        );
    }
}
