//! Versioned, idempotent ClickHouse migrations from `schemas/clickhouse`.
//!
//! Each file is applied once and recorded in `<database>.schema_migrations`
//! with its checksum; a recorded file that later changes is an error. A file
//! whose first line is `-- centile:min-server-version X.Y` is applied only on
//! servers at least that version (TTL, for example, needs 19.6), and is
//! applied by a later `migrate` once the server has been upgraded.
//!
//! Since 0006 the rollup tables and views are generated from one template
//! per kind and tier (`crate::rollup::sql`); such a migration's checksum is
//! that of its generated text. A file whose statements were superseded may
//! be cut down to a comment; its former checksum stays accepted, so servers
//! that applied the full text do not report a change.

use clickhouse::{Client, Row};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{client::server_client, SinkError};
use centile_runtime::Config;

/// A migration: a file embedded at build time, or generated SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: Sql,
    /// Checksums of earlier texts of this migration that remain valid.
    pub superseded_checksums: &'static [&'static str],
}

#[derive(Debug, Clone, Copy)]
pub enum Sql {
    File(&'static str),
    /// Statements for a database name.
    Generated(fn(&str) -> Vec<String>),
}

macro_rules! migration {
    ($version:expr, $file:literal) => {
        migration!($version, $file, &[])
    };
    ($version:expr, $file:literal, $superseded:expr) => {
        Migration {
            version: $version,
            name: $file,
            sql: Sql::File(include_str!(concat!("../../../schemas/clickhouse/", $file))),
            superseded_checksums: $superseded,
        }
    };
}

pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_raw_events.sql"),
    migration!(2, "0002_panes.sql"),
    // Its views were replaced by 0005 and then by the stored tiers of 0006.
    migration!(3, "0003_views.sql", &["a993f3d63f873658"]),
    migration!(4, "0004_raw_events_ttl.sql"),
    // Its views were replaced by the stored tiers of 0006.
    migration!(
        5,
        "0005_minute_rollups_and_window_status.sql",
        &["8101370d41b23ae8"]
    ),
    Migration {
        version: 6,
        name: "0006_rollup_tiers (generated)",
        sql: Sql::Generated(crate::rollup::sql::migration),
        superseded_checksums: &[],
    },
    Migration {
        version: 7,
        name: "0007_token_classes (generated)",
        sql: Sql::Generated(crate::rollup::sql::token_classes_migration),
        superseded_checksums: &[],
    },
    Migration {
        version: 8,
        name: "0008_price_book (generated)",
        sql: Sql::Generated(crate::rollup::sql::price_book_migration),
        superseded_checksums: &[],
    },
    Migration {
        version: 9,
        name: "0009_usage_by_feature (generated)",
        sql: Sql::Generated(crate::rollup::sql::usage_by_feature_migration),
        superseded_checksums: &[],
    },
    Migration {
        version: 10,
        name: "0010_session_id (generated)",
        sql: Sql::Generated(crate::raw_schema::session_migration),
        superseded_checksums: &[],
    },
];

/// The placeholder generated migrations are checksummed (and printed) with.
const DATABASE_PLACEHOLDER: &str = "${database}";

/// 0004's raw TTL when raw events are kept forever (the retention job
/// then manages it; see `crate::retention`).
const RAW_FOREVER_DAYS: u64 = 36_500;

const MIN_VERSION_MARKER: &str = "-- centile:min-server-version";

/// What `migrate` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub server_version: String,
    pub applied: Vec<&'static str>,
    pub already_applied: Vec<&'static str>,
    /// Waiting for a newer server, with the version each needs.
    pub deferred: Vec<(&'static str, String)>,
}

#[derive(Debug, Row, Deserialize)]
struct Applied {
    version: u32,
    checksum: String,
}

impl Migration {
    /// The migration's text, placeholders unfilled; generated statements
    /// each end with `;` on its own line, as in a file.
    pub fn text(&self) -> String {
        match self.sql {
            Sql::File(text) => text.to_owned(),
            Sql::Generated(make) => make(DATABASE_PLACEHOLDER)
                .iter()
                .map(|s| format!("{s};\n"))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    pub fn checksum(&self) -> String {
        hex::encode(&Sha256::digest(self.text().as_bytes())[..8])
    }

    fn accepts(&self, checksum: &str) -> bool {
        checksum == self.checksum() || self.superseded_checksums.contains(&checksum)
    }

    pub fn min_server_version(&self) -> Option<String> {
        self.text()
            .lines()
            .next()
            .and_then(|line| line.strip_prefix(MIN_VERSION_MARKER))
            .map(|v| v.trim().to_owned())
    }

    /// The statements, with placeholders filled in.
    pub fn statements(&self, database: &str, retention_days: u32) -> Vec<String> {
        split_statements(&self.text())
            .into_iter()
            .map(|s| {
                s.replace(DATABASE_PLACEHOLDER, database)
                    .replace("${raw_retention_days}", &retention_days.to_string())
            })
            .collect()
    }
}

/// Splits on lines ending in `;`, dropping chunks that hold only comments.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            push_statement(&mut statements, &current);
            current.clear();
        }
    }
    push_statement(&mut statements, &current);
    statements
}

fn push_statement(statements: &mut Vec<String>, chunk: &str) {
    let has_code = chunk
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"));
    if has_code {
        statements.push(chunk.trim().trim_end_matches(';').trim_end().to_owned());
    }
}

/// Compares dotted versions numerically; missing parts count as zero.
pub fn version_at_least(server: &str, required: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> {
        v.split('.')
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    };
    let (server, required) = (parse(server), parse(required));
    let len = server.len().max(required.len());
    let pad = |v: &[u64]| {
        (0..len)
            .map(|i| v.get(i).copied().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    pad(&server) >= pad(&required)
}

pub fn check_database_name(name: &str) -> Result<(), SinkError> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(SinkError::DatabaseName(name.to_owned()))
    }
}

/// Creates the database if needed and applies every pending migration.
pub async fn migrate(config: &Config) -> Result<MigrationReport, SinkError> {
    let raw_days = config.retention.raw.days().unwrap_or(RAW_FOREVER_DAYS) as u32;
    let config = &config.clickhouse;
    let database = &config.database;
    check_database_name(database)?;
    let client = server_client(config);
    client
        .query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .execute()
        .await?;
    client
        .query(&format!(
            "CREATE TABLE IF NOT EXISTS {database}.schema_migrations \
             (version UInt32, name String, checksum String, applied_at DateTime('UTC')) \
             ENGINE = MergeTree ORDER BY version"
        ))
        .execute()
        .await?;
    let server_version: String = client.query("SELECT version()").fetch_one().await?;
    let applied: Vec<Applied> = client
        .query(&format!(
            "SELECT version, checksum FROM {database}.schema_migrations"
        ))
        .fetch_all()
        .await?;

    let mut report = MigrationReport {
        server_version: server_version.clone(),
        ..MigrationReport::default()
    };
    for migration in MIGRATIONS {
        if let Some(recorded) = applied.iter().find(|a| a.version == migration.version) {
            if !migration.accepts(&recorded.checksum) {
                return Err(SinkError::MigrationChanged {
                    name: migration.name.to_owned(),
                    recorded: recorded.checksum.clone(),
                    current: migration.checksum(),
                });
            }
            report.already_applied.push(migration.name);
            continue;
        }
        if let Some(required) = migration.min_server_version() {
            if !version_at_least(&server_version, &required) {
                tracing::info!(migration = migration.name, server = %server_version, %required, "deferred until the server is upgraded");
                report.deferred.push((migration.name, required));
                continue;
            }
        }
        apply(&client, migration, database, raw_days).await?;
        report.applied.push(migration.name);
    }
    Ok(report)
}

async fn apply(
    client: &Client,
    migration: &Migration,
    database: &str,
    retention_days: u32,
) -> Result<(), SinkError> {
    let failed = |source| SinkError::Migration {
        name: migration.name.to_owned(),
        source,
    };
    for statement in migration.statements(database, retention_days) {
        if let Some((table, column)) = added_column(&statement) {
            let present: u64 = client
                .query(
                    "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
                )
                .bind(database)
                .bind(table)
                .bind(column)
                .fetch_one()
                .await
                .map_err(failed)?;
            if present > 0 {
                tracing::info!(
                    migration = migration.name,
                    table,
                    column,
                    "column already there"
                );
                continue;
            }
        }
        client.query(&statement).execute().await.map_err(failed)?;
    }
    client
        .query(&format!(
            "INSERT INTO {database}.schema_migrations (version, name, checksum, applied_at) \
             VALUES (?, ?, ?, now())"
        ))
        .bind(migration.version)
        .bind(migration.name)
        .bind(migration.checksum())
        .execute()
        .await
        .map_err(failed)?;
    tracing::info!(migration = migration.name, "applied");
    Ok(())
}

/// The table and column of an `ALTER TABLE db.table ADD COLUMN column …`
/// statement: run only when the column is missing, which makes it
/// idempotent on servers without `ADD COLUMN IF NOT EXISTS` (18.16).
pub fn added_column(statement: &str) -> Option<(&str, &str)> {
    let rest = statement.trim().strip_prefix("ALTER TABLE ")?;
    let (qualified, rest) = rest.split_once(' ')?;
    let column = rest
        .strip_prefix("ADD COLUMN ")?
        .split_whitespace()
        .next()?;
    let table = qualified.rsplit('.').next()?;
    Some((table, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_columns_are_recognised() {
        assert_eq!(
            added_column("ALTER TABLE db.usage_panes ADD COLUMN x_sum Int64 DEFAULT 0"),
            Some(("usage_panes", "x_sum"))
        );
        assert_eq!(added_column("ALTER TABLE db.t MODIFY TTL d"), None);
        assert_eq!(added_column("CREATE TABLE db.t (x UInt8)"), None);
    }

    #[test]
    fn every_schema_file_is_a_migration_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/clickhouse");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS
            .iter()
            .filter(|m| matches!(m.sql, Sql::File(_)))
            .map(|m| m.name)
            .collect();
        assert_eq!(files, listed);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }

    #[test]
    fn statements_split_on_semicolon_lines_and_fill_placeholders() {
        let sql = "-- header;\n-- only comments\nCREATE TABLE ${database}.a (x UInt8)\nENGINE = Memory;\n\n-- c\nALTER TABLE ${database}.a MODIFY TTL d + toIntervalDay(${raw_retention_days});\n-- trailing\n";
        let m = Migration {
            version: 9,
            name: "x",
            sql: Sql::File(sql),
            superseded_checksums: &[],
        };
        assert_eq!(
            m.statements("db1", 30),
            [
                "-- only comments\nCREATE TABLE db1.a (x UInt8)\nENGINE = Memory",
                "-- c\nALTER TABLE db1.a MODIFY TTL d + toIntervalDay(30)"
            ]
        );
    }

    #[test]
    fn version_gate_compares_numerically() {
        assert!(version_at_least("26.9.2.1", "19.6"));
        assert!(version_at_least("19.6", "19.6"));
        assert!(!version_at_least("18.16.1", "19.6"));
        assert!(!version_at_least("9.99", "19.6"));
        let ttl = MIGRATIONS.iter().find(|m| m.name.contains("ttl")).unwrap();
        assert_eq!(ttl.min_server_version().as_deref(), Some("19.6"));
        assert!(MIGRATIONS
            .iter()
            .filter(|m| !m.name.contains("ttl"))
            .all(|m| m.min_server_version().is_none()));
    }

    #[test]
    fn generated_migrations_split_back_into_their_statements() {
        let tiers = MIGRATIONS.iter().find(|m| m.version == 6).unwrap();
        let expected = crate::rollup::sql::migration("db1");
        assert_eq!(tiers.statements("db1", 7), expected);
        assert!(expected.len() > 20);
    }

    #[test]
    fn database_names_are_checked_before_use_in_sql() {
        assert!(check_database_name("centile_test_01").is_ok());
        for bad in ["", "1abc", "a;DROP", "a.b", "a-b"] {
            assert!(check_database_name(bad).is_err(), "{bad}");
        }
    }
}
