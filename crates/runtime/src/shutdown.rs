//! Cooperative shutdown: one `CancellationToken` per process, cancelled by
//! SIGTERM or SIGINT, or by any supervised task that fails, so one task's
//! error stops all of them in order.

use std::{future::Future, time::Duration};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT; the service then
/// flushes, commits and returns within `service.shutdown_grace`. A second
/// signal (or any signal once the service is already stopping on its own)
/// exits at once with 128 + the signal's number, without a final flush:
/// nothing is lost, since uncommitted input is read again on restart.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT");
                return;
            }
        };
        let first = tokio::select! {
            _ = term.recv() => Some(("SIGTERM", 15)),
            _ = int.recv() => Some(("SIGINT", 2)),
            _ = token.cancelled() => None,
        };
        if let Some((name, _)) = first {
            tracing::info!(
                signal = name,
                "shutting down: finishing work (a second signal exits at once)"
            );
            token.cancel();
        }
        let (name, number) = tokio::select! {
            _ = term.recv() => ("SIGTERM", 15),
            _ = int.recv() => ("SIGINT", 2),
        };
        tracing::warn!(
            signal = name,
            "second signal: exiting at once without the final flush"
        );
        std::process::exit(128 + number);
    });
}

/// A token cancelled `grace` after `shutdown` is: it bounds every final
/// flush and drain, which retry only until then.
pub fn deadline_after(shutdown: &CancellationToken, grace: Duration) -> CancellationToken {
    let deadline = CancellationToken::new();
    let (shutdown, timer) = (shutdown.clone(), deadline.clone());
    tokio::spawn(async move {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
        if !timer.is_cancelled() {
            tracing::warn!(
                ?grace,
                "service.shutdown_grace is over: final flushes stop retrying"
            );
        }
        timer.cancel();
    });
    deadline
}

/// Tasks that live and die together.
#[derive(Debug)]
pub struct Supervisor<E> {
    token: CancellationToken,
    tasks: JoinSet<(&'static str, Result<(), E>)>,
}

impl<E: std::fmt::Display + Send + 'static> Supervisor<E> {
    pub fn new(token: CancellationToken) -> Self {
        Self {
            token,
            tasks: JoinSet::new(),
        }
    }

    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// Waits for every task; the first failure cancels the rest and is returned.
    pub async fn wait(mut self) -> Result<(), E> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((name, Ok(()))) => {
                    tracing::debug!(task = name, "task finished");
                    self.token.cancel();
                }
                Ok((name, Err(e))) => {
                    tracing::error!(task = name, error = %e, "task failed, stopping the service");
                    self.token.cancel();
                    first_error.get_or_insert(e);
                }
                Err(join_error) => {
                    tracing::error!(error = %join_error, "task panicked, stopping the service");
                    self.token.cancel();
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_task_stops_the_others() {
        let token = CancellationToken::new();
        let mut supervisor = Supervisor::<String>::new(token.clone());
        let waiter = token.clone();
        supervisor.spawn("waits", async move {
            waiter.cancelled().await;
            Ok(())
        });
        supervisor.spawn("fails", async { Err("boom".to_owned()) });
        assert_eq!(supervisor.wait().await, Err("boom".to_owned()));
        assert!(token.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_follows_shutdown_by_the_grace() {
        let shutdown = CancellationToken::new();
        let deadline = deadline_after(&shutdown, Duration::from_secs(20));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!deadline.is_cancelled(), "no shutdown, no deadline");
        shutdown.cancel();
        tokio::time::sleep(Duration::from_secs(19)).await;
        assert!(!deadline.is_cancelled());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(deadline.is_cancelled());
    }
}
