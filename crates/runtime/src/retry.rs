//! Retrying with exponential backoff until success or shutdown, for writes
//! that must not be dropped (panes to the broker, batches to ClickHouse).

use std::{fmt::Display, future::Future, time::Duration};

use tokio_util::sync::CancellationToken;

/// The first wait and the cap of a doubling backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

/// Runs `attempt` until it succeeds; after a failure waits, doubling the
/// wait up to `backoff.max`. Once `stop` is cancelled the next failure is
/// returned instead of retried. `on_retry` runs before every wait.
pub async fn with_backoff<T, E, F, Fut>(
    backoff: Backoff,
    stop: &CancellationToken,
    what: &str,
    mut on_retry: impl FnMut(&E),
    mut attempt: F,
) -> Result<T, E>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut wait = backoff.initial;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if stop.is_cancelled() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "{what} failed, retrying");
                on_retry(&e);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => {}
                }
                wait = (wait * 2).min(backoff.max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_with_doubling_waits_until_success() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        let started = tokio::time::Instant::now();
        let (mut calls, mut retries) = (0, 0);
        let result: Result<u32, String> = with_backoff(
            backoff,
            &CancellationToken::new(),
            "test",
            |_| retries += 1,
            || {
                calls += 1;
                let outcome = if calls < 4 {
                    Err(format!("fail {calls}"))
                } else {
                    Ok(calls)
                };
                async move { outcome }
            },
        )
        .await;
        assert_eq!(result, Ok(4));
        assert_eq!(retries, 3);
        // 100 + 200 + 300 (capped) ms of waiting.
        assert_eq!(started.elapsed(), Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_once_stopped() {
        let stop = CancellationToken::new();
        stop.cancel();
        let result: Result<(), &str> = with_backoff(
            Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(1),
            },
            &stop,
            "test",
            |_| {},
            || async { Err("down") },
        )
        .await;
        assert_eq!(result, Err("down"));
    }
}
