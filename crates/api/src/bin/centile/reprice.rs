//! `centile reprice`: restates the computed cost of a range after a price
//! correction, with the price book the configuration names
//! (`pricing.book`), and prints what changed per tier. See
//! `centile_sink::rollup::reprice`.

use std::path::PathBuf;

use centile_api::params::parse_time;
use centile_runtime::Config;
use centile_sink::{
    client::database_client,
    prices::Prices,
    rollup::reprice::{reprice, Outcome, Request},
};
use clap::Args;

#[derive(Debug, Args)]
pub struct RepriceArgs {
    /// Start of the range: RFC 3339 time, date or Unix seconds. Rows
    /// overlapping `[from, to)` are repriced.
    #[arg(long)]
    from: String,
    /// End of the range (exclusive).
    #[arg(long)]
    to: String,
    /// Only this model.
    #[arg(long)]
    model: Option<String>,
    /// Price with this book instead of the configured `pricing.book`.
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Who asks, for the audit record (default: $USER).
    #[arg(long, env = "USER", default_value = "unknown")]
    by: String,
    /// Count what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs the command; the error is printed by the caller.
pub async fn run(args: &RepriceArgs, config: Option<PathBuf>) -> anyhow::Result<()> {
    let start = parse_time(&args.from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let end = parse_time(&args.to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    anyhow::ensure!(start < end, "--from must be before --to");
    let config = Config::load(config.as_deref())?;
    let book = args.prices.as_deref().or(config.pricing.book.as_deref());
    anyhow::ensure!(
        book.is_some(),
        "no price book: set pricing.book (CENTILE_PRICING_BOOK) or pass --prices"
    );
    let prices = Prices::load(book)?;
    let client = database_client(&config.clickhouse);
    let request = Request {
        start,
        end,
        model_id: args.model.clone(),
        requested_by: args.by.clone(),
        dry_run: args.dry_run,
    };
    let outcome = reprice(
        &client,
        &config.clickhouse.database,
        &prices.sql(),
        &prices.digest(),
        &request,
    )
    .await?;
    print!("{}", report(&outcome, &prices.digest(), args.dry_run));
    Ok(())
}

fn dollars(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    format!("{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

fn report(outcome: &Outcome, book: &str, dry_run: bool) -> String {
    let mut out = format!(
        "{} with price book {book}{}\n{:<8} {:>10} {:>8} {:>22} {:>22}\n",
        if dry_run { "would reprice" } else { "repriced" },
        if dry_run {
            String::new()
        } else {
            format!(" (audit run {})", outcome.run_id)
        },
        "tier",
        "rows",
        "skipped",
        "old computed USD",
        "new computed USD"
    );
    for t in &outcome.tiers {
        out.push_str(&format!(
            "{:<8} {:>10} {:>8} {:>22} {:>22}\n",
            t.tier.name(),
            t.restated,
            t.skipped,
            dollars(t.old_nanos),
            dollars(t.new_nanos)
        ));
    }
    if outcome.tiers.iter().any(|t| t.skipped > 0) {
        out.push_str("skipped: weeks a new price version begins inside whose daily rows have expired keep their cost\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_exact() {
        assert_eq!(dollars(1_500_000), "0.001500000");
        assert_eq!(dollars(-12_000_000_001), "-12.000000001");
    }
}
