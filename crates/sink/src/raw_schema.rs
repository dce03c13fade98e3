//! The raw tables' later columns and their `*_dedup` views (each raw event
//! exactly once), made by generated migrations.

/// Every column of `latency_events_dedup` as of migration 10: the table's,
/// in the table's order (columns added later come last).
const LATENCY_COLUMNS: &[&str] = &[
    "event_id",
    "occurred_at",
    "occurred_at_ms",
    "tenant_id",
    "model_id",
    "provider",
    "tool",
    "parameters",
    "parameter_hash",
    "response_time_ms",
    "success",
    "error_type",
    "input_tokens",
    "output_tokens",
    "source_partition",
    "source_offset",
    "ingested_at",
    "session_id",
];

/// Every column of `usage_events_dedup` as of migration 10, in the table's
/// order.
const USAGE_COLUMNS: &[&str] = &[
    "event_id",
    "occurred_at",
    "occurred_at_ms",
    "tenant_id",
    "user_id",
    "model_id",
    "provider",
    "feature",
    "input_tokens",
    "output_tokens",
    "cost_usd_nanos",
    "source_partition",
    "source_offset",
    "ingested_at",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "reasoning_output_tokens",
    "cost_reported",
    "session_id",
];

/// Migration 10: `session_id` (OpenTelemetry `session.id`) in both raw
/// tables, kept with the event and not a rollup dimension; then the
/// `*_dedup` views again with every raw column (0003 made them before the
/// token classes, the reported-cost flag and the session existed).
pub fn session_migration(database: &str) -> Vec<String> {
    let mut statements: Vec<String> = ["latency_events", "usage_events"]
        .iter()
        .map(|table| {
            format!("ALTER TABLE {database}.{table} ADD COLUMN session_id Nullable(String)")
        })
        .collect();
    for (table, columns) in [
        ("latency_events", LATENCY_COLUMNS),
        ("usage_events", USAGE_COLUMNS),
    ] {
        statements.push(format!("DROP TABLE IF EXISTS {database}.{table}_dedup"));
        statements.push(format!(
            "CREATE VIEW {database}.{table}_dedup AS\nSELECT\n    {}\nFROM {database}.{table} FINAL",
            columns.join(", ")
        ));
    }
    statements
}
