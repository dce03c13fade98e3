//! ClickHouse client construction. Validation is off because RowBinary
//! schema validation needs `RowBinaryWithNamesAndTypes`, which old servers
//! (18.16) lack; the row types mirror the migrations instead.
//!
//! `https://` urls are served by rustls trusting the system's roots plus
//! `clickhouse.ca_file`; `http://` urls stay plain.

use std::time::Duration;

use centile_runtime::{
    config::ClickHouseConfig,
    tls::{client_config, error_chain, tls_failure},
    RuntimeError,
};
use clickhouse::Client;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client as HyperClient},
    rt::TokioExecutor,
};

/// As the clickhouse crate's own client: ClickHouse closes idle
/// connections after 3 s by default, so the pool lets them go after 2 s.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`check_connection`] waits for an answer. A server that does
/// not answer at all (an `https://` url on a plain HTTP port: the server
/// waits for a request line that never comes) would otherwise hang it.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// A client bound to the configured database.
pub fn database_client(config: &ClickHouseConfig) -> Client {
    server_client(config).with_database(&config.database)
}

/// A client for server-level statements such as `CREATE DATABASE`.
///
/// The config was checked when it loaded (`clickhouse.ca_file` readable);
/// should the CA file have gone since, the error is logged and only the
/// system's roots are trusted, so requests fail with a TLS error naming the
/// untrusted certificate. [`check_connection`] reports it as an error.
pub fn server_client(config: &ClickHouseConfig) -> Client {
    let connector = connector(config).unwrap_or_else(|e| {
        tracing::error!(error = %e, "clickhouse TLS setup failed; trusting only the system's roots");
        let mut fallback = config.clone();
        fallback.ca_file = None;
        connector(&fallback).expect("TLS setup without a CA file")
    });
    with_credentials(config, connector)
}

fn with_credentials(config: &ClickHouseConfig, connector: HttpsConnector<HttpConnector>) -> Client {
    let http = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector);
    let mut client = Client::with_http_client(http)
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

/// HTTP for `http://` urls, rustls for `https://` ones.
fn connector(config: &ClickHouseConfig) -> Result<HttpsConnector<HttpConnector>, RuntimeError> {
    let tls = client_config(config.ca_file.as_deref())
        .map_err(|reason| RuntimeError::Config(format!("clickhouse.ca_file: {reason}")))?;
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.enforce_http(false);
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// Asks the server for its version once and sorts a failure into what it
/// is: a TLS failure (untrusted or mismatched certificate, not TLS at all),
/// refused credentials, or an unreachable (or silent, [`CHECK_TIMEOUT`])
/// server. The first two will not
/// heal by retrying; the sink stops on them at start-up.
pub async fn check_connection(config: &ClickHouseConfig) -> Result<String, RuntimeError> {
    let client = with_credentials(config, connector(config)?);
    let url = redacted_url(&config.url);
    let answer = tokio::time::timeout(
        CHECK_TIMEOUT,
        client.query("SELECT version()").fetch_one::<String>(),
    )
    .await;
    let Ok(answer) = answer else {
        return Err(RuntimeError::ClickHouseUnreachable {
            reason: format!(
                "no answer within {CHECK_TIMEOUT:?}{}",
                if url.starts_with("https") {
                    " (is the port serving TLS? an https:// url needs ClickHouse's https_port)"
                } else {
                    ""
                }
            ),
            url,
        });
    };
    match answer {
        Ok(version) => Ok(version),
        Err(e) => {
            if let Some(tls) = tls_failure(&e) {
                let tls = tls.to_string();
                // What a plain HTTP answer to a TLS hello looks like.
                let hint = if tls.contains("corrupt message") {
                    "; the port does not seem to serve TLS (an https:// url needs ClickHouse's https_port)"
                } else {
                    ""
                };
                return Err(RuntimeError::ClickHouseTls {
                    url,
                    reason: format!("{tls} ({}){hint}", error_chain(&e)),
                });
            }
            let reason = error_chain(&e);
            if let clickhouse::error::Error::BadResponse(body) = &e {
                if is_authentication_failure(body) {
                    return Err(RuntimeError::ClickHouseAuthentication {
                        url,
                        user: config
                            .user
                            .as_ref()
                            .map(|u| format!(" for user {u:?}"))
                            .unwrap_or_default(),
                        reason,
                    });
                }
            }
            Err(RuntimeError::ClickHouseUnreachable { url, reason })
        }
    }
}

/// `Code: 192` unknown user, `193` wrong password, `194` password required,
/// `516` authentication failed (newer servers).
fn is_authentication_failure(body: &str) -> bool {
    ["Code: 192", "Code: 193", "Code: 194", "Code: 516"]
        .iter()
        .any(|code| body.contains(code))
}

/// The url without any `user:password@`.
fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_not_repeated() {
        assert_eq!(
            redacted_url("https://u:secret@ch.example:8443"),
            "https://***@ch.example:8443"
        );
        assert_eq!(
            redacted_url("http://127.0.0.1:8123"),
            "http://127.0.0.1:8123"
        );
    }

    #[test]
    fn authentication_codes_are_recognised() {
        assert!(is_authentication_failure(
            "Code: 193, e.displayText() = DB::Exception: Wrong password for user default"
        ));
        assert!(!is_authentication_failure("Code: 60, Table does not exist"));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_not_tls() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = ClickHouseConfig {
            url: format!("https://127.0.0.1:{port}"),
            ..ClickHouseConfig::default()
        };
        let err = check_connection(&config).await.unwrap_err();
        assert!(
            matches!(err, RuntimeError::ClickHouseUnreachable { .. }),
            "{err}"
        );
    }
}
