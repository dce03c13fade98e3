//! `centile-producer import`: loads history (NDJSON or CSV files, plain or
//! gzip, or standard input) so that re-running an interrupted or finished
//! import of the same file counts nothing twice.
//!
//! - Every row goes through the gateway's converter and value rules
//!   ([`convert`]); refused rows are reported by file and line. Events of
//!   any age are accepted: the restatement horizon does not apply.
//! - Each input is read twice: first to check every row and take its
//!   digest (the first 16 hex digits of the SHA-256 of its decompressed
//!   bytes), then to publish. With `--all-or-nothing`, nothing is published
//!   when any row is refused.
//! - Rollups: the import runs the aggregator's own engine over each input
//!   as the source partition `import:<digest>` ([`panes`]) and publishes the
//!   minute panes itself. Their ids and versions depend only on the input,
//!   so a re-run publishes the same panes again and ClickHouse keeps one.
//! - Raw events younger than the restatement horizon minus an hour are also
//!   published to the events topics, with the header
//!   [`ORIGIN_HEADER`]` = `[`ORIGIN_IMPORT`] so the live aggregator does not
//!   count them a second time; raw tables deduplicate them by `event_id`
//!   (rows without one get ids derived from the digest and their line).
//!   Older rows are counted in the rollups only.

pub mod convert;
pub mod input;
pub mod panes;
pub mod publish;
pub mod report;

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant, SystemTime},
};

use centile_runtime::{kafka::ensure_centile_topics, Config};

use crate::{epoch_ms, gateway::EventKind, EventPublisher, ProducerError};
use convert::Converter;
use input::{Format, Input};
use panes::PaneBuilder;
use publish::Outbox;
use report::{Counters, Refusals, Summary};

pub use centile_events::{ORIGIN_HEADER, ORIGIN_IMPORT};

/// Raw events are published when younger than the restatement horizon
/// minus this margin, so the sink still admits them when it reads them.
pub const RAW_MARGIN: Duration = Duration::from_secs(3600);

/// Exit statuses of `centile-producer import`.
pub mod exit {
    /// Every row was valid; everything was published and acknowledged.
    pub const OK: i32 = 0;
    /// The import failed (unreadable input, broker unreachable or not
    /// acknowledging, bad configuration). Re-running it is safe.
    pub const FAILED: i32 = 1;
    /// The command line was wrong.
    pub const USAGE: i32 = 2;
    /// Some rows were refused; every other row was published.
    pub const REFUSED: i32 = 3;
    /// Some rows were refused and `--all-or-nothing` was given: nothing was
    /// published.
    pub const NOTHING_PUBLISHED: i32 = 4;
}

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub kind: EventKind,
    /// Paths, `-` for standard input.
    pub files: Vec<String>,
    pub format: Format,
    pub all_or_nothing: bool,
}

impl Summary {
    /// The exit status this outcome calls for.
    pub fn exit_code(&self) -> i32 {
        match (self.refused, self.nothing_published) {
            (0, _) => exit::OK,
            (_, true) => exit::NOTHING_PUBLISHED,
            (_, false) => exit::REFUSED,
        }
    }
}

/// Runs an import; refused rows are printed to standard error as found.
pub async fn run(
    config: &Config,
    options: &ImportOptions,
    counters: Arc<Counters>,
) -> Result<Summary, ProducerError> {
    let started = Instant::now();
    let now = epoch_ms(SystemTime::now());
    let inputs = options
        .files
        .iter()
        .map(|name| Input::open(name, options.format))
        .collect::<Result<Vec<_>, _>>()?;
    ensure_centile_topics(config).await?;
    let max_future_skew_ms = config.admission.max_future_skew.as_millis() as i64;

    let mut summary = Summary {
        files: inputs.len(),
        ..Summary::default()
    };
    let mut refusals = Refusals::new();
    let mut digests = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let converter = Converter::new(options.kind, max_future_skew_ms, now, None);
        let digest = check(input, &converter, &mut refusals, &counters)?;
        summary.digests.push((input.name.clone(), digest.clone()));
        digests.push(digest);
    }
    refusals.close();
    summary.read = counters.checked.load(Ordering::Relaxed);
    summary.refused = refusals.rows;
    if options.all_or_nothing && refusals.rows > 0 {
        summary.nothing_published = true;
        summary.finish(started.elapsed());
        return Ok(summary);
    }

    let horizon = config
        .admission
        .restatement_horizon
        .saturating_sub(RAW_MARGIN);
    let raw_after = now - horizon.as_millis() as i64;
    let mut outbox = Outbox::new(
        EventPublisher::from_config(config)?,
        &config.topics.rollups,
        counters.acknowledged.clone(),
    );
    let engine = centile_aggregator::runner::engine_config(config);
    for (input, digest) in inputs.iter().zip(&digests) {
        let converter = Converter::new(options.kind, max_future_skew_ms, now, Some(digest));
        let mut builder = PaneBuilder::new(engine.clone(), digest);
        let mut rows = input.rows(options.kind)?;
        while let Some(row) = rows.next_row()? {
            counters.read.fetch_add(1, Ordering::Relaxed);
            let Ok(event) = converter.convert(&row) else {
                continue; // reported while checking
            };
            summary.accepted += 1;
            outbox.panes(builder.add(row.index, &event)).await?;
            if event.occurred_at() > raw_after {
                outbox.raw(event).await?;
            } else {
                summary.skipped_raw += 1;
            }
        }
        outbox.panes(builder.finish()).await?;
        if rows.digest()? != *digest {
            return Err(ProducerError::Changed(input.name.clone()));
        }
    }
    outbox.finish().await?;
    summary.published_raw = counters.acknowledged.raw.load(Ordering::Relaxed);
    summary.published_panes = counters.acknowledged.panes.load(Ordering::Relaxed);
    summary.finish(started.elapsed());
    Ok(summary)
}

/// Reads every row of `input`, reporting refused ones; returns its digest.
pub fn check(
    input: &Input,
    converter: &Converter,
    refusals: &mut Refusals,
    counters: &Counters,
) -> Result<String, ProducerError> {
    let mut rows = input.rows(converter.kind)?;
    while let Some(row) = rows.next_row()? {
        counters.checked.fetch_add(1, Ordering::Relaxed);
        if let Err(problems) = converter.convert(&row) {
            refusals.refuse(&input.name, row.line, &problems);
        }
    }
    rows.digest()
}

#[cfg(test)]
mod tests;
