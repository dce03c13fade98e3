//! The gateway's memory and answers under hostile connections (issue 12):
//! N bare idle connections (default 19,000: the file limit here is 20,000)
//! plus slow-header and slow-body clients, while one client keeps sending
//! valid requests.
//!
//! Needs the local stack (`deploy/local/stack up`). Run with
//! `cargo bench --bench gateway_connections [-- IDLE SLOW]`. Reports the
//! gateway's RSS before, under load and after the idle timeout, the open
//! connection gauge, and the p50/p99 latency of the valid requests during
//! the load beside the same requests on a quiet gateway.

use centile::bench_kit::{arg, percentile};
use std::{
    io::Write,
    net::TcpStream,
    time::{Duration, Instant},
};

use centile::{
    gateway_kit::TestGateway,
    testkit::{metric_value, now_ms, TestEnv},
};

const KEY: &str = "ck_bench_connections";

/// `n` valid requests of 10 events, one after the other: latencies in ms.
async fn requests(gateway: &TestGateway, n: usize) -> Vec<f64> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let events: Vec<serde_json::Value> = (0..10)
            .map(|_| {
                serde_json::json!({"occurred_at": now_ms(), "model_id": "m", "provider": "p",
                    "tool": "t", "response_time_ms": 12.5, "success": true})
            })
            .collect();
        let started = Instant::now();
        let answer = gateway
            .post_json("latency", KEY, &serde_json::Value::Array(events))
            .await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
}

#[tokio::main]
async fn main() {
    let idle_count = arg(0, 19_000);
    let slow_count = arg(1, 200);
    let env = TestEnv::new("bench_conns");
    env.create_topics().await;
    let gateway = TestGateway::start(
        &env,
        &[(KEY, "bench@1000000/s")],
        &[
            ("CENTILE_GATEWAY_IDLE_TIMEOUT", "10s"),
            ("CENTILE_GATEWAY_READ_TIMEOUT", "20s"),
        ],
    )
    .await;
    let addr = gateway.url.trim_start_matches("http://").to_owned();
    requests(&gateway, 50).await; // warm up
    let quiet = requests(&gateway, 300).await;
    let rss_quiet = gateway.service.rss_bytes();

    let opening = Instant::now();
    let mut idle = Vec::with_capacity(idle_count);
    for _ in 0..idle_count {
        match TcpStream::connect(&addr) {
            Ok(s) => idle.push(s),
            Err(e) => {
                eprintln!("stopped opening at {} connections: {e}", idle.len());
                break;
            }
        }
    }
    let opened = idle.len();
    let slow: Vec<TcpStream> = (0..slow_count)
        .filter_map(|i| {
            let mut s = TcpStream::connect(&addr).ok()?;
            let head: &[u8] = if i % 2 == 0 {
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a"
            } else {
                b"POST /v1/events/latency HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n["
            };
            s.write_all(head).ok()?;
            Some(s)
        })
        .collect();
    let open_for = opening.elapsed();
    let loaded = requests(&gateway, 300).await;
    let scrape = gateway.service.metrics().await;
    let rss_loaded = gateway.service.rss_bytes();
    let gauge = metric_value(&scrape, "centile_gateway_connections").unwrap_or(f64::NAN);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let after = requests(&gateway, 100).await;
    let scrape = gateway.service.metrics().await;
    let rss_after = gateway.service.rss_bytes();
    let timed_out =
        metric_value(&scrape, "centile_gateway_connections_timed_out_total").unwrap_or(f64::NAN);
    drop((idle, slow));

    println!("gateway under {opened} idle + {} slow connections (opened in {open_for:.1?}); max_connections 1024", slow_count);
    println!(
        "{:<34} {:>10} {:>10} {:>12}",
        "phase", "p50 ms", "p99 ms", "gateway RSS"
    );
    for (phase, lat, rss) in [
        ("quiet", &quiet, rss_quiet),
        ("idle + slow clients connected", &loaded, rss_loaded),
        ("after the idle/read timeouts", &after, rss_after),
    ] {
        println!(
            "{phase:<34} {:>10.2} {:>10.2} {:>12}",
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            mib(rss)
        );
    }
    println!("open connections while loaded (gauge): {gauge}; closed by timeouts: {timed_out}");
    println!(
        "p50 ratio loaded/quiet: {:.2}",
        percentile(&loaded, 0.5) / percentile(&quiet, 0.5)
    );
}
