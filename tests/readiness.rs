//! Readiness tells the truth about the broker: a service started before its
//! broker says what it waits for (log and `/readyz`), keeps retrying and
//! becomes ready once the broker answers; a broker that dies under running
//! services turns their `/readyz` red within a minute, naming the check,
//! and green again when it is back.

use std::time::Duration;

use centile::testkit::{eventually, metric_value, PrivateBroker, Service, TestEnv};
use serde_json::Value;

/// `/readyz` of `service` as (status, body), once it answers at all.
async fn readyz(service: &Service) -> Option<(u16, Value)> {
    service.metrics_if_up().await?;
    let (status, body) = service.get("/readyz").await;
    Some((status, serde_json::from_str(&body).ok()?))
}

async fn wait_ready(name: &str, service: &Service, timeout: Duration) {
    eventually(&format!("{name} to be ready"), timeout, || async {
        let (status, _) = readyz(service).await?;
        (status == 200).then_some(())
    })
    .await;
}

/// Waits until `/readyz` is 503 and names `check` as failing; returns its reason.
async fn wait_failing(name: &str, service: &Service, check: &str, timeout: Duration) -> String {
    eventually(
        &format!("{name}'s /readyz to name {check} as failing"),
        timeout,
        || async {
            let (status, body) = readyz(service).await?;
            let reason = body["failing"][check].as_str()?.to_owned();
            (status == 503 && body["ready"] == Value::Bool(false)).then_some(reason)
        },
    )
    .await
}

/// A key grant line for the key `k` (the gateway's and the API's format).
fn key_grant(role: &str) -> String {
    format!(
        "{}={role}",
        hex::encode(centile_producer::gateway::hash_key("k"))
    )
}

fn services(env: &TestEnv) -> Vec<(&'static str, Service)> {
    vec![
        ("aggregator", env.spawn("centile-aggregator", &[])),
        ("sink", env.spawn("centile-sink", &["run"])),
        ("gateway", env.spawn("centile-producer", &["serve"])),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_wait_for_a_broker_that_is_not_up_yet_and_say_so() {
    let mut broker = PrivateBroker::start("readiness_late_broker");
    broker.stop();
    let mut env = TestEnv::new("readiness_late");
    env.config.kafka.brokers = broker.brokers();
    env.set("CENTILE_KAFKA_BROKERS", &broker.brokers());
    env.set("CENTILE_GATEWAY_ADDR", "127.0.0.1:0");
    env.set("CENTILE_GATEWAY_KEYS", &key_grant("tenant"));
    let mut running = services(&env);

    for (name, service) in &running {
        let reason = wait_failing(name, service, "kafka", Duration::from_secs(30)).await;
        assert!(
            reason.contains(&broker.brokers()),
            "{name}: the reason names the brokers: {reason}"
        );
    }
    // Still waiting, not gone (it used to exit silently after 60 s), and
    // each failed attempt is logged with its reason.
    for (name, service) in &mut running {
        eventually(
            &format!("{name} to log two attempts"),
            Duration::from_secs(45),
            || async {
                let log = service.log();
                (log.matches("waiting for the kafka brokers").count() >= 2
                    && log.contains("Connection refused"))
                .then_some(())
            },
        )
        .await;
        assert!(service.is_running(), "{name} exited:\n{}", service.log());
        let scrape = service.metrics().await;
        assert_eq!(
            metric_value(&scrape, "centile_readiness_check_up{check=\"kafka\"}"),
            Some(0.0),
            "{name}"
        );
    }

    broker.restart();
    for (name, service) in &running {
        wait_ready(name, service, Duration::from_secs(90)).await;
    }
    for (_, service) in &mut running {
        service.terminate(Duration::from_secs(30));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_goes_red_when_the_broker_dies_and_names_it() {
    let mut broker = PrivateBroker::start("readiness_dead_broker");
    let mut env = TestEnv::new("readiness_dead");
    env.config.kafka.brokers = broker.brokers();
    env.set("CENTILE_KAFKA_BROKERS", &broker.brokers());
    env.set("CENTILE_GATEWAY_ADDR", "127.0.0.1:0");
    env.set("CENTILE_GATEWAY_KEYS", &key_grant("tenant"));
    env.create_topics().await;
    let mut running = services(&env);
    for (name, service) in &running {
        wait_ready(name, service, Duration::from_secs(90)).await;
    }

    broker.stop();
    let stopped = std::time::Instant::now();
    for (name, service) in &running {
        let reason = wait_failing(name, service, "kafka", Duration::from_secs(60)).await;
        println!("{name}: red after {:?}: {reason}", stopped.elapsed());
        let scrape = service.metrics().await;
        assert_eq!(
            metric_value(&scrape, "centile_readiness_check_up{check=\"kafka\"}"),
            Some(0.0),
            "{name}"
        );
    }
    assert!(
        stopped.elapsed() < Duration::from_secs(60),
        "readiness went red only after {:?}",
        stopped.elapsed()
    );

    broker.restart();
    for (name, service) in &running {
        wait_ready(name, service, Duration::from_secs(90)).await;
    }
    for (_, service) in &mut running {
        service.terminate(Duration::from_secs(30));
    }
}

/// The API reads tables that the sink's migrations make. Against a database
/// the sink has not migrated yet (or an older sink), `/readyz` is red and
/// says what to do, rather than answering queries with errors; once the
/// schema is there, it turns green by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_not_ready_before_the_sink_has_migrated_and_says_so() {
    let env = TestEnv::new("readiness_schema");
    // The database exists (made by an older sink, say) but holds no schema.
    let database = &env.config.clickhouse.database;
    centile_sink::client::server_client(&env.config.clickhouse)
        .query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .execute()
        .await
        .expect("create the database");
    let port = centile::testkit::free_port();
    let mut api = env.spawn_with(
        "centile-api",
        &[],
        &[
            ("CENTILE_API_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("CENTILE_API_KEYS".to_owned(), key_grant("admin")),
        ],
    );
    let reason = wait_failing("api", &api, "schema", Duration::from_secs(60)).await;
    assert!(
        reason.contains("run the sink") && reason.contains(database.as_str()),
        "{reason}"
    );

    centile_sink::migrate::migrate(&env.config)
        .await
        .expect("migrate");
    wait_ready("api", &api, Duration::from_secs(30)).await;
    api.terminate(Duration::from_secs(30));
}
