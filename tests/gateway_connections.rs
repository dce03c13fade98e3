//! The gateway under hostile connections (issue 12's adversarial trial):
//! thousands of idle connections, slow-header and slow-body clients. The
//! gateway keeps serving, closes them on `idle_timeout` / `read_timeout`,
//! its memory stays bounded, and SIGTERM with them connected exits within
//! `service.shutdown_grace`. Before, idle connections were never closed (the
//! file limit ran out and requests timed out for 30 s) and slow clients
//! held SIGTERM forever.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use centile::{
    gateway_kit::TestGateway,
    testkit::{metric_value, now_ms, TestEnv},
};

const KEY: &str = "ck_connections_key";

fn event() -> serde_json::Value {
    serde_json::json!([{
        "occurred_at": now_ms(), "model_id": "m", "provider": "p", "tool": "t",
        "response_time_ms": 10.0, "success": true
    }])
}

/// Reading gives EOF or a reset within `within`: the server closed it.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An answer (408/400) before the close is fine; keep reading.
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_cannot_exhaust_or_hold_the_gateway() {
    let env = TestEnv::new("gw_conns");
    env.create_topics().await;
    let mut gateway = TestGateway::start(
        &env,
        &[(KEY, "acme@100000/s")],
        &[
            ("CENTILE_GATEWAY_MAX_CONNECTIONS", "256"),
            ("CENTILE_GATEWAY_IDLE_TIMEOUT", "2s"),
            ("CENTILE_GATEWAY_READ_TIMEOUT", "3s"),
            ("CENTILE_SERVICE_SHUTDOWN_GRACE", "3s"),
        ],
    )
    .await;
    let addr = gateway.url.trim_start_matches("http://").to_owned();
    let rss_before = gateway.service.rss_bytes().unwrap_or(0);

    // 3,000 bare connections: far more than the cap.
    let mut idle: Vec<TcpStream> = (0..3_000)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(
        idle.len() >= 1_000,
        "only {} connections opened",
        idle.len()
    );
    // A slow-header client: one byte every 500 ms never idles, but its
    // request never arrives within read_timeout.
    let mut slow_header = TcpStream::connect(&addr).unwrap();
    // A slow-body client: a full head, then a trickle of the body.
    let mut slow_body = TcpStream::connect(&addr).unwrap();
    slow_body
        .write_all(
            format!(
                "POST /v1/events/latency HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n["
            )
            .as_bytes(),
        )
        .unwrap();
    let trickle = std::thread::spawn(move || {
        let head =
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let started = Instant::now();
        for i in 0..40 {
            let a = slow_header.write_all(&head[i % head.len()..i % head.len() + 1]);
            let b = slow_body.write_all(b" ");
            if a.is_err() && b.is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let (mut h, mut b) = (slow_header, slow_body);
        (
            closed_by_server(&mut h, Duration::from_secs(1)),
            closed_by_server(&mut b, Duration::from_secs(1)),
            started.elapsed(),
        )
    });

    // Real requests keep being served while all that is open.
    let started = Instant::now();
    let answer = gateway.post_json("latency", KEY, &event()).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "served after {:?}",
        started.elapsed()
    );

    let (header_closed, body_closed, took) =
        tokio::task::spawn_blocking(move || trickle.join().unwrap())
            .await
            .unwrap();
    assert!(header_closed, "the slow-header client was cut off");
    assert!(body_closed, "the slow-body client was cut off");
    assert!(
        took < Duration::from_secs(19),
        "cut off within read_timeout, not after the trickle ended: {took:?}"
    );

    // The first idle connections were closed by the server.
    for s in idle.iter_mut().take(50) {
        assert!(
            closed_by_server(s, Duration::from_secs(10)),
            "an idle connection is closed"
        );
    }
    let scrape = gateway.service.metrics().await;
    assert!(
        metric_value(&scrape, "centile_gateway_connection_cap_reached_total").unwrap() >= 1.0,
        "{scrape}"
    );
    assert!(
        metric_value(&scrape, "centile_gateway_connections_timed_out_total").unwrap() >= 50.0,
        "{scrape}"
    );
    assert!(metric_value(&scrape, "centile_gateway_connections").unwrap() <= 256.0);
    let rss = gateway.service.rss_bytes().unwrap_or(0);
    assert!(
        rss < rss_before + 200 * 1024 * 1024,
        "memory stays bounded: {rss_before} -> {rss} bytes"
    );

    // SIGTERM with idle and slow clients connected exits within the grace.
    let mut holders: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    for h in holders.iter_mut().take(10) {
        let _ = h.write_all(
            b"POST /v1/events/latency HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n[",
        );
    }
    let stopping = Instant::now();
    let status = gateway.service.terminate(Duration::from_secs(20));
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "stopped after {:?}",
        stopping.elapsed()
    );
    assert!(status.success(), "{status:?}");
    drop((idle, holders));
}
