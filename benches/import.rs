//! History import: how long `centile-producer import` takes, from start to
//! the broker's acknowledgement of every raw event and pane.
//!
//! Needs the local stack (`deploy/local/stack up`). Run with
//! `cargo bench --bench import [-- ROWS REPS]` (defaults 10000 rows, 3
//! repetitions). Each repetition writes ROWS latency rows from the last
//! hour (so each is published raw as well as rolled up) as NDJSON, runs the
//! release binary against fresh topics, and times it to its exit: the
//! command exits only once every message is acknowledged. Prints each
//! run's time, rows/s and what was published, then the median.

use centile::bench_kit::arg;
use std::{
    process::Command,
    time::{Duration, Instant},
};

use centile::testkit::{bin_path, now_ms, workspace_root, TestEnv};
use centile_producer::generator::{Generator, GeneratorConfig};

/// `rows` NDJSON latency rows spread over the last hour.
fn rows(rows: usize, seed: u64) -> String {
    let mut generator = Generator::new(GeneratorConfig {
        seed,
        usage_ratio: 0.0,
        ..GeneratorConfig::default()
    });
    let now = now_ms();
    let mut text = String::new();
    for i in 0..rows {
        let at = now - 3_600_000 + 3_500_000 * i as i64 / rows as i64;
        let (call, _) = generator.next(at);
        text.push_str(&serde_json::to_string(&call).expect("json"));
        text.push('\n');
    }
    text
}

#[tokio::main]
async fn main() {
    let count = arg(0, 10_000);
    let reps = arg(1, 3).max(1);
    let bin = bin_path("centile-producer");
    let mut times = Vec::new();
    for rep in 0..reps {
        let env = TestEnv::new("bench_import");
        env.create_topics().await;
        let dir = workspace_root().join("target/bench-imports");
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(format!("{}.ndjson", env.id));
        std::fs::write(&path, rows(count, rep as u64 + 1)).expect("write");
        let started = Instant::now();
        let output = Command::new(&bin)
            .args(["import", "--kind", "latency", "--json"])
            .arg(&path)
            .envs(env.env())
            .output()
            .expect("centile-producer runs");
        let elapsed = started.elapsed();
        let _ = std::fs::remove_file(&path);
        assert!(
            output.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("json summary");
        println!(
            "run {}: {count} rows acknowledged in {:.2} s ({:.0} rows/s): {} raw events, {} panes",
            rep + 1,
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64(),
            summary["published_raw"],
            summary["published_panes"],
        );
        times.push(elapsed);
    }
    times.sort();
    let median: Duration = times[times.len() / 2];
    println!(
        "import of {count} rows: median {:.2} s over {reps} runs ({:.0} rows/s), target < 5 s",
        median.as_secs_f64(),
        count as f64 / median.as_secs_f64()
    );
}
