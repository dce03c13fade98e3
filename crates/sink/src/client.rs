//! ClickHouse client construction. Validation is off because RowBinary
//! schema validation needs `RowBinaryWithNamesAndTypes`, which old servers
//! (18.16) lack; the row types mirror the migrations instead.

use centile_runtime::config::ClickHouseConfig;
use clickhouse::Client;

/// A client bound to the configured database.
pub fn database_client(config: &ClickHouseConfig) -> Client {
    server_client(config).with_database(&config.database)
}

/// A client for server-level statements such as `CREATE DATABASE`.
pub fn server_client(config: &ClickHouseConfig) -> Client {
    let mut client = Client::default()
        .with_url(&config.url)
        .with_validation(false);
    if let Some(user) = &config.user {
        client = client.with_user(user);
    }
    if let Some(password) = &config.password {
        client = client.with_password(password.expose());
    }
    client
}
