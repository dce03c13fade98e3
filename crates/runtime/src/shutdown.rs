//! Cooperative shutdown: one `CancellationToken` per process, cancelled by
//! SIGTERM or SIGINT, or by any supervised task that fails, so one task's
//! error stops all of them in order.

use std::future::Future;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
            _ = token.cancelled() => return,
        }
        token.cancel();
    });
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
}
