//! Kafka security for real: SASL/SCRAM over TLS against a Tansu broker of
//! each test's own that requires authentication, with certificates made at
//! test time by a throwaway CA.
//!
//! Tansu 0.6.0 does not serve TLS (see `centile::secure_kit`), so each test
//! terminates TLS in front of it with rustls ([`TlsProxy`]); the broker
//! advertises that TLS address, so every connection a client makes,
//! bootstrap and advertised, is TLS, and the SCRAM exchange inside it is
//! checked by the broker against the credentials it stores.
//!
//! - events published with SCRAM-SHA-512 over TLS are rolled up by the real
//!   aggregator (SCRAM-SHA-512) and landed by the real sink (SCRAM-SHA-256)
//!   in a ClickHouse served over HTTPS, exactly; `centile-producer
//!   generate` publishes over SASL_SSL too;
//! - a wrong password fails fast with an error that says authentication
//!   failed, in process and from the service binaries (non-zero exit), and
//!   the password is in no log;
//! - a client trusting another CA, or connecting to a certificate for
//!   another host, is refused with a TLS error; hostname verification can
//!   be turned off;
//! - mutual TLS works with a client certificate and an encrypted key;
//! - `sasl_mechanism = "GSSAPI"` stops a service at start-up with the reason.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use centile::{
    secure_kit::{scratch_dir, Pki, PrivateClickHouse, ScramBroker, ScramUser},
    testkit::{bin_path, eventually, free_port, now_ms, TestEnv},
    truth::{assert_exact_aggregates, assert_raw_exactly_once, wait_until_complete, Truth},
};
use centile_events::Event;
use centile_producer::generator::{Generator, GeneratorConfig};
use centile_runtime::{config::KafkaConfig, kafka::verify_connection, RuntimeError, Secret};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio::{net::TcpListener, task::AbortHandle};

const HOUR_MS: i64 = 3_600_000;
const WRONG_PASSWORD: &str = "wrong-pw-3d9a61";

/// Terminates TLS on `port` and forwards the plaintext to a local port.
struct TlsProxy {
    port: u16,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl TlsProxy {
    /// With `client_ca`, a client certificate signed by it is required.
    async fn start(
        port: u16,
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        target: u16,
    ) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("server certificate")
            .map(|c| c.expect("server certificate"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).expect("server key");
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let config = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).expect("client CA") {
                    roots.add(cert.expect("client CA")).expect("client CA");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        }
        .with_single_cert(certs, key)
        .expect("server certificate and key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("TLS port");
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let open = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let task = tokio::spawn(async move {
                    // A failed handshake just closes the connection; the
                    // client reports why.
                    let mut tls = match acceptor.accept(inbound).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            eprintln!("TLS proxy on {port}: handshake refused: {e}");
                            return;
                        }
                    };
                    match tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                        Ok(mut outbound) => {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut outbound).await;
                        }
                        Err(e) => eprintln!("TLS proxy on {port}: broker at {target}: {e}"),
                    }
                });
                open.lock().expect("proxy lock").push(task.abort_handle());
            }
        });
        tasks
            .lock()
            .expect("proxy lock")
            .push(accept.abort_handle());
        Self { port, tasks }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("proxy lock").drain(..) {
            task.abort();
        }
    }
}

/// A SCRAM broker behind TLS, its certificates and its two users.
struct SecureKafka {
    dir: PathBuf,
    pki: Pki,
    broker: ScramBroker,
    proxy: TlsProxy,
    /// SCRAM-SHA-512.
    alice: ScramUser,
    /// SCRAM-SHA-256.
    bob: ScramUser,
}

impl SecureKafka {
    async fn start(name: &str) -> Self {
        Self::start_with(name, false).await
    }

    /// With `mutual_tls`, the TLS port requires a client certificate.
    async fn start_with(name: &str, mutual_tls: bool) -> Self {
        let dir = scratch_dir(&format!("pki-{name}"));
        let pki = Pki::generate(&dir);
        let alice = ScramUser::new("alice", "alice-pw-7f3e0c", "SCRAM-SHA-512");
        let bob = ScramUser::new("bob", "bob-pw-91ab44", "SCRAM-SHA-256");
        let tls_port = free_port();
        let users = [alice.clone(), bob.clone()];
        let name = name.to_owned();
        let broker =
            tokio::task::spawn_blocking(move || ScramBroker::start(&name, tls_port, &users))
                .await
                .expect("broker starts");
        let client_ca = mutual_tls.then_some(pki.ca.as_path());
        let proxy = TlsProxy::start(
            tls_port,
            &pki.server_cert,
            &pki.server_key,
            client_ca,
            broker.port,
        )
        .await;
        Self {
            dir,
            pki,
            broker,
            proxy,
            alice,
            bob,
        }
    }

    /// `sasl_ssl` as `user` with `password`, trusting the test CA.
    fn config(&self, user: &ScramUser, password: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: format!("127.0.0.1:{}", self.proxy.port),
            security_protocol: Some("sasl_ssl".into()),
            sasl_mechanism: Some(user.mechanism.into()),
            sasl_username: Some(user.name.clone()),
            sasl_password: Some(Secret::new(password)),
            ssl_ca_location: Some(self.pki.ca.clone()),
            connect_timeout: Duration::from_secs(15),
            ..KafkaConfig::default()
        }
    }
}

impl Drop for SecureKafka {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `CENTILE_KAFKA_*` variables a service process needs for `kafka`.
fn kafka_env(kafka: &KafkaConfig) -> Vec<(String, String)> {
    let mut vars = vec![("CENTILE_KAFKA_BROKERS".to_owned(), kafka.brokers.clone())];
    let mut add = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            vars.push((format!("CENTILE_KAFKA_{key}"), value));
        }
    };
    add("SECURITY_PROTOCOL", kafka.security_protocol.clone());
    add("SASL_MECHANISM", kafka.sasl_mechanism.clone());
    add("SASL_USERNAME", kafka.sasl_username.clone());
    add(
        "SASL_PASSWORD",
        kafka.sasl_password.as_ref().map(|p| p.expose().to_owned()),
    );
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    add("SSL_CA_LOCATION", path(&kafka.ssl_ca_location));
    add(
        "SSL_CERTIFICATE_LOCATION",
        path(&kafka.ssl_certificate_location),
    );
    add("SSL_KEY_LOCATION", path(&kafka.ssl_key_location));
    add(
        "SSL_KEY_PASSWORD",
        kafka
            .ssl_key_password
            .as_ref()
            .map(|p| p.expose().to_owned()),
    );
    add(
        "SSL_ENDPOINT_IDENTIFICATION",
        Some(kafka.ssl_endpoint_identification.to_string()),
    );
    add(
        "CONNECT_TIMEOUT",
        Some(format!("{}ms", kafka.connect_timeout.as_millis())),
    );
    vars
}

/// Latency and usage events over the two whole hours before the current one.
fn events(count: usize) -> Vec<Event> {
    let mut generator = Generator::new(GeneratorConfig {
        seed: 23,
        tenants: 2,
        models: 3,
        tools: 2,
        parameter_sets: 2,
        usage_ratio: 0.25,
    });
    let start = (now_ms() / HOUR_MS - 2) * HOUR_MS + 60_000;
    let span = 2 * HOUR_MS - 120_000;
    (0..count)
        .flat_map(|i| generator.next_events(start + span * i as i64 / count as i64))
        .collect()
}

/// Runs a service that is expected to stop by itself and waits for its
/// exit: status, log and how long it ran. A start that lost its metrics
/// port to another process (tests share the machine) is retried.
fn run_to_exit(
    env: &TestEnv,
    bin: &str,
    args: &[&str],
    vars: &[(String, String)],
    timeout: Duration,
) -> (std::process::ExitStatus, String, Duration) {
    bin_path(bin); // built before the clock starts
    loop {
        let started = Instant::now();
        let mut service = env.spawn_with(bin, args, vars);
        let status = service.wait_exit(timeout);
        let elapsed = started.elapsed();
        let log = service.log();
        if !log.contains("Address already in use") {
            return (status, log, elapsed);
        }
    }
}

fn assert_no_secret(log: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(!log.contains(secret), "{what} log shows a secret:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_over_tls_carries_events_end_to_end() {
    let kafka = SecureKafka::start("e2e").await;
    let (cert, key) = (kafka.pki.server_cert.clone(), kafka.pki.server_key.clone());
    let clickhouse =
        tokio::task::spawn_blocking(move || PrivateClickHouse::start("kafka-e2e", &cert, &key))
            .await
            .expect("clickhouse starts");

    let mut env = TestEnv::new("kafkasec");
    env.config.kafka = kafka.config(&kafka.alice, &kafka.alice.password);
    env.config.clickhouse.url = clickhouse.https_url("localhost");
    env.config.clickhouse.ca_file = Some(kafka.pki.ca.clone());
    env.config.clickhouse.user = Some(PrivateClickHouse::USER.into());
    env.config.clickhouse.password = Some(Secret::new(PrivateClickHouse::PASSWORD));
    env.config.validate().expect("the secure config is valid");
    env.set(
        "CENTILE_CLICKHOUSE_CA_FILE",
        &kafka.pki.ca.display().to_string(),
    );
    env.set("CENTILE_CLICKHOUSE_USER", PrivateClickHouse::USER);
    env.set("CENTILE_CLICKHOUSE_PASSWORD", PrivateClickHouse::PASSWORD);

    let started = Instant::now();
    verify_connection(&env.config.kafka)
        .await
        .expect("SCRAM-SHA-512 over TLS is accepted");
    println!(
        "SCRAM-SHA-512 over TLS: connected in {:?}",
        started.elapsed()
    );

    let publisher = env.publisher().await;
    let alice_env = kafka_env(&env.config.kafka);
    let bob_kafka = kafka.config(&kafka.bob, &kafka.bob.password);
    let bob_env = kafka_env(&bob_kafka);
    let mut aggregator = env.spawn_with("centile-aggregator", &[], &alice_env);
    let mut sink = env.spawn_with("centile-sink", &[], &bob_env);

    let events = events(3_000);
    let mut truth = Truth::default();
    events.iter().for_each(|e| truth.add(e));
    truth.seal();
    for chunk in events.chunks(1_000) {
        publisher
            .send_batch(chunk)
            .await
            .expect("publish over SASL_SSL");
    }
    let started = Instant::now();
    wait_until_complete(&env, &truth, Duration::from_secs(180)).await;
    println!(
        "{} latency and {} usage events landed through SASL_SSL Kafka and HTTPS ClickHouse {:?} after publishing",
        truth.latency_events,
        truth.usage_events,
        started.elapsed()
    );
    let client = env.clickhouse();
    assert_exact_aggregates(&client, &truth).await;
    assert_raw_exactly_once(&env, &truth).await;

    // The producer binary publishes over SASL_SSL as well (SCRAM-SHA-256),
    // and its events reach the raw tables through the same services.
    let mut producer = env.spawn_with(
        "centile-producer",
        &[
            "generate", "--count", "200", "--rate", "2000", "--seed", "5",
        ],
        &bob_env,
    );
    let status = producer.wait_exit(Duration::from_secs(60));
    let log = producer.log();
    assert!(status.success(), "producer failed: {log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("no summary line in {log}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let (latency, usage): (u64, u64) = (words[1].parse().unwrap(), words[4].parse().unwrap());
    assert_eq!(latency, 200, "{line}");
    let expected = (truth.latency_events + latency, truth.usage_events + usage);
    eventually(
        "the generated events in ClickHouse",
        Duration::from_secs(120),
        || async {
            let raw_latency = env
                .query_u64("SELECT count() FROM latency_events_dedup")
                .await?;
            let raw_usage = env
                .query_u64("SELECT count() FROM usage_events_dedup")
                .await?;
            ((raw_latency, raw_usage) == expected).then_some(())
        },
    )
    .await;

    for (service, secret_holder) in [(&mut aggregator, "aggregator"), (&mut sink, "sink")] {
        let status = service.terminate(Duration::from_secs(30));
        assert!(status.success(), "{secret_holder} exit: {status}");
    }
    for (log, what) in [
        (aggregator.log(), "aggregator"),
        (sink.log(), "sink"),
        (producer.log(), "producer"),
    ] {
        assert_no_secret(
            &log,
            &[
                &kafka.alice.password,
                &kafka.bob.password,
                PrivateClickHouse::PASSWORD,
            ],
            what,
        );
    }
    assert!(
        !kafka.broker.log().contains("panicked"),
        "broker: {}",
        kafka.broker.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_fast_and_names_authentication() {
    let kafka = SecureKafka::start("badpw").await;
    for user in [&kafka.alice, &kafka.bob] {
        let started = Instant::now();
        let err = verify_connection(&kafka.config(user, WRONG_PASSWORD))
            .await
            .expect_err("a wrong password is refused");
        let elapsed = started.elapsed();
        let text = err.to_string();
        println!(
            "{} wrong password refused after {elapsed:?}: {text}",
            user.mechanism
        );
        assert!(
            matches!(err, RuntimeError::KafkaAuthentication { .. }),
            "{text}"
        );
        assert!(
            text.contains("authentication failed") && text.contains(user.mechanism),
            "{text}"
        );
        assert!(!text.contains(WRONG_PASSWORD), "{text}");
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        // The right password on the same broker is accepted.
        verify_connection(&kafka.config(user, &user.password))
            .await
            .expect("the right password is accepted");
    }

    // The service binaries stop at start-up with a non-zero exit status,
    // well before kafka.connect_timeout (15 s here).
    let env = TestEnv::new("badpw");
    let vars = kafka_env(&kafka.config(&kafka.alice, WRONG_PASSWORD));
    for (bin, args) in [
        ("centile-aggregator", vec![]),
        ("centile-producer", vec!["generate", "--count", "10"]),
    ] {
        let (status, log, elapsed) = run_to_exit(&env, bin, &args, &vars, Duration::from_secs(30));
        println!("{bin} with a wrong password exited {status} after {elapsed:?}");
        assert!(!status.success(), "{bin} exited successfully: {log}");
        assert!(
            elapsed < Duration::from_secs(12),
            "{bin} took {elapsed:?}: {log}"
        );
        assert!(log.contains("kafka authentication failed"), "{bin}: {log}");
        assert_no_secret(&log, &[WRONG_PASSWORD, &kafka.alice.password], bin);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_ca_is_refused() {
    let kafka = SecureKafka::start("ca").await;
    let alice = &kafka.alice;

    let mut other_ca = kafka.config(alice, &alice.password);
    other_ca.ssl_ca_location = Some(kafka.pki.other_ca.clone());
    let started = Instant::now();
    let err = verify_connection(&other_ca).await.expect_err("untrusted");
    let text = err.to_string();
    println!("another CA refused after {:?}: {text}", started.elapsed());
    assert!(matches!(err, RuntimeError::KafkaTls { .. }), "{text}");
    assert!(
        text.contains("kafka TLS") && text.contains("certificate verify failed"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Without ssl_ca_location only the system's roots are trusted, which
    // did not sign the test certificate either.
    let mut system_roots = kafka.config(alice, &alice.password);
    system_roots.ssl_ca_location = None;
    let err = verify_connection(&system_roots)
        .await
        .expect_err("untrusted");
    assert!(matches!(err, RuntimeError::KafkaTls { .. }), "{err}");

    // A certificate from the trusted CA but for another host is refused
    // unless hostname verification is turned off.
    let wrong_host = TlsProxy::start(
        free_port(),
        &kafka.pki.wrong_host_cert,
        &kafka.pki.wrong_host_key,
        None,
        kafka.broker.port,
    )
    .await;
    let mut other_host = kafka.config(alice, &alice.password);
    other_host.brokers = format!("127.0.0.1:{}", wrong_host.port);
    let err = verify_connection(&other_host)
        .await
        .expect_err("wrong host");
    println!("certificate for another host refused: {err}");
    assert!(matches!(err, RuntimeError::KafkaTls { .. }), "{err}");
    other_host.ssl_endpoint_identification = false;
    verify_connection(&other_host)
        .await
        .expect("accepted without hostname verification");

    // A service binary trusting another CA stops with the TLS error.
    let env = TestEnv::new("badca");
    let (status, log, elapsed) = run_to_exit(
        &env,
        "centile-producer",
        &["generate", "--count", "10"],
        &kafka_env(&other_ca),
        Duration::from_secs(30),
    );
    println!("centile-producer trusting another CA exited {status} after {elapsed:?}");
    assert!(!status.success(), "{log}");
    assert!(elapsed < Duration::from_secs(12), "{log}");
    assert!(
        log.contains("kafka TLS") && log.contains("certificate verify failed"),
        "{log}"
    );
    assert_no_secret(&log, &[&alice.password], "producer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_uses_the_client_certificate_and_its_key_password() {
    let kafka = SecureKafka::start_with("mtls", true).await;
    let alice = &kafka.alice;

    let without_cert = kafka.config(alice, &alice.password);
    let err = verify_connection(&without_cert)
        .await
        .expect_err("a client certificate is required");
    println!("without a client certificate: {err}");
    assert!(matches!(err, RuntimeError::KafkaTls { .. }), "{err}");
    assert!(err.to_string().contains("certificate required"), "{err}");

    let mut with_cert = kafka.config(alice, &alice.password);
    with_cert.ssl_certificate_location = Some(kafka.pki.client_cert.clone());
    with_cert.ssl_key_location = Some(kafka.pki.client_key.clone());
    with_cert.ssl_key_password = Some(Secret::new(Pki::CLIENT_KEY_PASSWORD));
    with_cert.validate().expect("valid");
    verify_connection(&with_cert)
        .await
        .expect("mutual TLS with the encrypted key");

    let mut bad_key_password = with_cert.clone();
    bad_key_password.ssl_key_password = Some(Secret::new("not-the-key-pw"));
    let err = verify_connection(&bad_key_password)
        .await
        .expect_err("the key cannot be decrypted");
    let text = err.to_string();
    println!("wrong key password: {text}");
    assert!(matches!(err, RuntimeError::KafkaTls { .. }), "{text}");
    assert!(
        text.contains("ssl.key.location failed") && text.contains("kafka.ssl_key_password"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-key-pw")
            && !format!("{bad_key_password:?}").contains("not-the-key-pw"),
        "{text}"
    );

    // A service binary with the client certificate publishes.
    let env = TestEnv::new("mtls");
    let mut producer = env.spawn_with(
        "centile-producer",
        &["generate", "--count", "20"],
        &kafka_env(&with_cert),
    );
    let status = producer.wait_exit(Duration::from_secs(60));
    let log = producer.log();
    assert!(status.success(), "{log}\nbroker: {}", kafka.broker.log());
    assert!(log.contains("published 20 latency"), "{log}");
    assert_no_secret(
        &log,
        &[Pki::CLIENT_KEY_PASSWORD, &alice.password],
        "producer",
    );
}

#[tokio::test]
async fn gssapi_stops_a_service_at_start_up_with_the_reason() {
    let env = TestEnv::new("gssapi");
    let vars: Vec<(String, String)> = [
        ("CENTILE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ("CENTILE_KAFKA_SASL_MECHANISM", "GSSAPI"),
        ("CENTILE_KAFKA_SASL_USERNAME", "centile"),
        ("CENTILE_KAFKA_SASL_PASSWORD", "kerberos-pw-55"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (status, log, elapsed) = run_to_exit(
        &env,
        "centile-aggregator",
        &[],
        &vars,
        Duration::from_secs(20),
    );
    println!("GSSAPI refused after {elapsed:?}: {}", log.trim());
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("kafka.sasl_mechanism (CENTILE_KAFKA_SASL_MECHANISM)")
            && log.contains("GSSAPI")
            && log.contains("Kerberos"),
        "{log}"
    );
    assert_no_secret(&log, &["kerberos-pw-55"], "aggregator");
}
