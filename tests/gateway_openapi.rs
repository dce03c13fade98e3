//! The gateway's OpenAPI document is the one in the repository, and
//! schemathesis, generating hundreds of requests from it (valid, invalid and
//! edge cases) against the live gateway, finds no 5xx answer and no answer
//! that breaks the document: statuses, content types, headers and bodies.

use std::time::Duration;

use centile::{
    gateway_kit::TestGateway,
    testkit::{metric_sum, schemathesis, workspace_root, TestEnv},
};

const KEY: &str = "ck_openapi_fuzz_key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_gateway_conforms_to_its_openapi_document() {
    let env = TestEnv::new("gw_openapi");
    env.create_topics().await;
    let gateway = TestGateway::start(&env, &[(KEY, "fuzz-tenant@100000/s")], &[]).await;

    let served = gateway
        .http
        .get(format!("{}/openapi.json", gateway.url))
        .send()
        .await
        .expect("openapi.json")
        .text()
        .await
        .expect("body");
    let in_repo = std::fs::read_to_string(workspace_root().join("schemas/openapi/gateway.json"))
        .expect("repo copy");
    assert_eq!(served, in_repo, "the served document is the repository's");
    let document: serde_json::Value = serde_json::from_str(&served).expect("valid JSON");
    for path in [
        "/v1/events/latency",
        "/v1/events/usage",
        "/v1/events",
        "/v1/traces",
        "/healthz",
        "/readyz",
        "/openapi.json",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} is described");
    }

    let fuzzed = schemathesis(
        &format!("{}/openapi.json", gateway.url),
        KEY,
        "20261123",
        &[],
        40,
    )
    .await;
    let (generated, tail) = (fuzzed.generated, fuzzed.tail);
    assert!(
        fuzzed.passed,
        "schemathesis found problems:\n{tail}\n{}",
        fuzzed.stderr
    );
    println!("{tail}");
    assert!(
        generated >= 200,
        "schemathesis ran {generated} cases:\n{tail}"
    );

    // The gateway's own count agrees: no 5xx at all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let scrape = gateway.service.metrics().await;
    let server_errors: f64 = scrape
        .lines()
        .filter(|l| l.starts_with("centile_gateway_requests_total") && l.contains("code=\"5"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(server_errors, 0.0);
    assert!(
        metric_sum(
            &scrape,
            "centile_gateway_requests_total",
            &["route=\"/v1/events/latency\"", "code=\"400\""]
        )
        .unwrap_or(0.0)
            > 0.0,
        "invalid requests were tried"
    );
}
