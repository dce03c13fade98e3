//! ClickHouse over HTTPS for real: a private ClickHouse (the Debian 18.16
//! server) serving HTTPS with a certificate from a throwaway CA made at
//! test time.
//!
//! - `centile-sink migrate` works over `https://` with `clickhouse.ca_file`
//!   set, by host name and by IP address, with a password-protected user;
//! - it stops at once with a TLS error when the CA is another one or when
//!   only the system's roots are trusted; an `https://` url on the plain
//!   HTTP port is reported with a hint, at worst after the check's timeout,
//!   never a hang;
//! - refused credentials are named as such, without the password;
//! - `centile-sink run` stops at start-up on an untrusted certificate
//!   instead of retrying forever.
//!
//! The whole pipeline over HTTPS (with Kafka over SASL_SSL) is in
//! `tests/kafka_security.rs`.

use std::time::{Duration, Instant};

use centile::{
    secure_kit::{scratch_dir, Pki, PrivateClickHouse},
    testkit::{bin_path, TestEnv},
};
use centile_runtime::{RuntimeError, Secret};
use centile_sink::client::{check_connection, CHECK_TIMEOUT};

struct Setup {
    pki: Pki,
    clickhouse: PrivateClickHouse,
}

impl Setup {
    async fn start(name: &str) -> Self {
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            let pki = Pki::generate(&scratch_dir(&format!("pki-{name}")));
            let clickhouse = PrivateClickHouse::start(&name, &pki.server_cert, &pki.server_key);
            Setup { pki, clickhouse }
        })
        .await
        .expect("clickhouse starts")
    }

    /// A test env whose ClickHouse settings are `url` and `ca`, as the
    /// `centile` user.
    fn env(&self, name: &str, url: &str, ca: Option<&std::path::Path>) -> TestEnv {
        let mut env = TestEnv::new(name);
        env.config.clickhouse.url = url.to_owned();
        env.config.clickhouse.ca_file = ca.map(ToOwned::to_owned);
        env.config.clickhouse.user = Some(PrivateClickHouse::USER.into());
        env.config.clickhouse.password = Some(Secret::new(PrivateClickHouse::PASSWORD));
        if let Some(ca) = ca {
            env.set("CENTILE_CLICKHOUSE_CA_FILE", &ca.display().to_string());
        }
        env.set("CENTILE_CLICKHOUSE_USER", PrivateClickHouse::USER);
        env.set("CENTILE_CLICKHOUSE_PASSWORD", PrivateClickHouse::PASSWORD);
        env
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pki.dir);
    }
}

/// Runs `centile-sink <args>` to its end: exit status, output, duration.
fn sink(env: &TestEnv, args: &[&str]) -> (std::process::ExitStatus, String, Duration) {
    bin_path("centile-sink"); // built before the clock starts
    loop {
        let started = Instant::now();
        let mut process = env.spawn("centile-sink", args);
        let status = process.wait_exit(Duration::from_secs(60));
        let log = process.log();
        // Another process took the metrics port between pick and bind.
        if !log.contains("Address already in use") {
            return (status, log, started.elapsed());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_over_https_with_the_configured_ca() {
    let setup = Setup::start("https-ok").await;
    for host in ["localhost", "127.0.0.1"] {
        let url = setup.clickhouse.https_url(host);
        let env = setup.env("chtls", &url, Some(&setup.pki.ca));
        env.config.validate().expect("valid");

        let version = check_connection(&env.config.clickhouse)
            .await
            .expect("HTTPS with the test CA");
        assert_eq!(version, "18.16.1", "{url}");

        let (status, log, elapsed) = sink(&env, &["migrate"]);
        println!("centile-sink migrate over {url}: {status} in {elapsed:?}");
        assert!(status.success(), "{log}");
        assert!(log.contains("clickhouse 18.16.1 database"), "{log}");
        assert!(!log.contains(PrivateClickHouse::PASSWORD), "{log}");

        // The test's own client reads through the same TLS settings.
        let applied = env
            .query_u64("SELECT count() FROM schema_migrations")
            .await
            .expect("migrations recorded");
        assert!(applied >= 4, "{applied} migrations");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_stops_the_sink_with_a_tls_error() {
    let setup = Setup::start("https-bad").await;
    let url = setup.clickhouse.https_url("localhost");

    // Another CA, and the system's roots alone: neither signed the server's
    // certificate.
    for (what, ca) in [
        ("another CA", Some(setup.pki.other_ca.as_path())),
        ("system roots", None),
    ] {
        let env = setup.env("chtls_bad", &url, ca);
        let started = Instant::now();
        let err = check_connection(&env.config.clickhouse)
            .await
            .expect_err("untrusted");
        println!("{what}: refused in {:?}: {err}", started.elapsed());
        assert!(
            matches!(err, RuntimeError::ClickHouseTls { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("UnknownIssuer"), "{what}: {err}");

        let (status, log, elapsed) = sink(&env, &["migrate"]);
        println!("centile-sink migrate with {what}: {status} after {elapsed:?}");
        assert!(!status.success(), "{log}");
        assert!(
            log.contains("clickhouse TLS handshake with") && log.contains("clickhouse.ca_file"),
            "{log}"
        );
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    }

    // `run` stops at start-up too, rather than retrying the migrations
    // forever.
    let env = setup.env("chtls_run", &url, Some(&setup.pki.other_ca));
    let (status, log, elapsed) = sink(&env, &["run"]);
    println!("centile-sink run with another CA: {status} after {elapsed:?}");
    assert!(!status.success(), "{log}");
    assert!(log.contains("clickhouse TLS handshake with"), "{log}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(!log.contains(PrivateClickHouse::PASSWORD), "{log}");

    // An https:// url on the plain HTTP port: depending on the bytes of the
    // TLS hello, ClickHouse answers in plain HTTP (a TLS error) or waits for
    // a request line that never comes (the check gives up after its
    // timeout); either way it is reported with a hint, never a hang.
    let plain = format!("https://127.0.0.1:{}", setup.clickhouse.http_port);
    let env = setup.env("chtls_plain", &plain, Some(&setup.pki.ca));
    let started = Instant::now();
    let err = check_connection(&env.config.clickhouse)
        .await
        .expect_err("not TLS");
    println!(
        "https:// to the HTTP port, after {:?}: {err}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            RuntimeError::ClickHouseUnreachable { .. } | RuntimeError::ClickHouseTls { .. }
        ) && err.to_string().contains("https_port"),
        "{err}"
    );
    assert!(started.elapsed() < CHECK_TIMEOUT + Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_named_without_the_password() {
    let setup = Setup::start("https-auth").await;
    let url = setup.clickhouse.https_url("localhost");
    let mut env = setup.env("chtls_auth", &url, Some(&setup.pki.ca));
    env.config.clickhouse.password = Some(Secret::new("not-the-ch-pw"));
    let err = check_connection(&env.config.clickhouse)
        .await
        .expect_err("wrong password");
    let text = err.to_string();
    println!("wrong password: {text}");
    assert!(
        matches!(err, RuntimeError::ClickHouseAuthentication { .. }),
        "{text}"
    );
    assert!(text.contains("user \"centile\""), "{text}");
    assert!(!text.contains("not-the-ch-pw"), "{text}");

    env.set("CENTILE_CLICKHOUSE_PASSWORD", "not-the-ch-pw");
    let (status, log, _) = sink(&env, &["migrate"]);
    assert!(!status.success(), "{log}");
    assert!(log.contains("refused the credentials"), "{log}");
    assert!(!log.contains("not-the-ch-pw"), "{log}");
}
