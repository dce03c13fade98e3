//! `centile-api` under hostile clients: idle and never-reading connections
//! are closed after `api.idle_timeout`, the connection cap holds while the
//! API keeps serving, and SIGTERM stops it promptly with a live stream
//! and idle connections open.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use centile::{
    api_kit::TestApi,
    testkit::{metric_value, TestEnv},
};

const KEY: &str = "ca_limits_key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_cannot_exhaust_the_api_and_shutdown_stays_prompt() {
    let env = TestEnv::new("api_limits");
    centile_sink::migrate::migrate(&env.config)
        .await
        .expect("migrate");
    let mut api = TestApi::start(
        &env,
        &[(KEY, "admin")],
        &[
            ("CENTILE_API_MAX_CONNECTIONS", "8"),
            ("CENTILE_API_IDLE_TIMEOUT", "1s"),
        ],
    )
    .await;
    let addr = api.url.trim_start_matches("http://").to_owned();

    // Fill every slot with clients that connect and send nothing, or only
    // half a request head.
    let mut idle: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            if i % 2 == 0 {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    .unwrap();
            }
            s
        })
        .collect();
    // More than the cap wait in the backlog; a real request still gets
    // its answer once the idle ones are closed (1 s), not never.
    idle.extend((0..20).map(|_| TcpStream::connect(&addr).expect("connect")));
    let started = Instant::now();
    let reply = api.get_with("/healthz", None, &[]).await;
    assert_eq!(reply.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "served while idle clients pile up"
    );
    // The first idle clients were closed by the server: reading gives EOF
    // (or a reset), not a hang.
    for s in idle.iter_mut().take(8) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(n) => assert_eq!(n, 0, "an idle connection is closed, not answered"),
            Err(e) => assert!(
                matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
                "an idle connection is closed: {e}"
            ),
        }
    }
    let scrape = api.service.metrics().await;
    assert!(
        metric_value(&scrape, "centile_api_connection_cap_reached_total").unwrap() >= 1.0,
        "{scrape}"
    );
    assert!(metric_value(&scrape, "centile_api_connections").unwrap() <= 8.0);

    // A live stream and fresh idle connections do not hold shutdown.
    drop(idle);
    let mut stream = api
        .http
        .get(format!("{}/v1/realtime/stream", api.url))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("stream opens");
    assert_eq!(stream.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await;
    assert!(matches!(first, Ok(Ok(Some(_)))), "a first event at once");
    let _more_idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let stopping = Instant::now();
    let status = api.service.terminate(Duration::from_secs(15));
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "stopped in {:?}",
        stopping.elapsed()
    );
    assert!(
        api.service.log().contains("api stopped"),
        "{}",
        api.service.log()
    );
}
