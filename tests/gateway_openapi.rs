//! The gateway's OpenAPI document is the one in the repository, and
//! schemathesis, generating hundreds of requests from it (valid, invalid and
//! edge cases) against the live gateway, finds no 5xx answer and no answer
//! that breaks the document: statuses, content types, headers and bodies.

use std::{process::Command, time::Duration};

use centile::{
    gateway_kit::TestGateway,
    testkit::{metric_value, workspace_root, TestEnv},
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
        "/healthz",
        "/readyz",
        "/openapi.json",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} is described");
    }

    let url = format!("{}/openapi.json", gateway.url);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([
                "-m",
                "schemathesis.cli",
                "run",
                &url,
                "--header",
                &format!("Authorization: Bearer {KEY}"),
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
                "--max-examples",
                "60",
                "--seed",
                "20261123",
                "--no-color",
            ])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            // It keeps a cache in its working directory; keep that out of the tree.
            .current_dir(workspace_root().join("target"))
            .output()
            .expect("python3 runs (schemathesis is installed by deploy/local/stack up)")
    })
    .await
    .expect("schemathesis thread");
    let report = String::from_utf8_lossy(&output.stdout);
    let tail: String = report
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{tail}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated: u64 = report
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_suffix(" passed")
                .and_then(|l| l.split(" generated, ").next())
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0);
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
        .filter(|l| l.starts_with("centile_gateway_requests_total") && l.contains("status=\"5"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(server_errors, 0.0);
    assert!(
        metric_value(
            &scrape,
            "centile_gateway_requests_total{route=\"/v1/events/latency\",status=\"400\"}"
        )
        .unwrap_or(0.0)
            > 0.0,
        "invalid requests were tried"
    );
}
