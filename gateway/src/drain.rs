//! Graceful shutdown of the sockets. axum stops accepting connections and
//! finishes plain requests by itself, but upgraded WebSockets run on their
//! own tasks: they are tracked here.
//!
//! On a shutdown signal ([`Drain::stop`]) each socket closes as soon as no
//! prompt of its ACP connection is running; when the deadline passes
//! ([`Drain::force`]) the rest close too. Closing a socket ends its ACP
//! connection, which cancels its turns and waits (bounded) for them to
//! record the cancellation; [`Drain::wait`] waits for all of that.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TrackedFuture;
use tracing::Instrument;

/// Shared by the server and every socket task.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    tasks: TaskTracker,
    stopping: CancellationToken,
    forced: CancellationToken,
}

impl Drain {
    /// Runs `task` (a socket or an ACP connection) as part of the drain, in
    /// the current span (the socket's request: its trace goes on).
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task.in_current_span());
    }

    /// `task`, tracked as part of the drain (for futures someone else
    /// spawns, like axum's upgrade callbacks).
    pub fn track<F: std::future::Future>(&self, task: F) -> TrackedFuture<F> {
        self.tasks.track_future(task)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Resolves once shutdown has begun: sockets close when idle.
    pub async fn stopping(&self) {
        self.stopping.cancelled().await;
    }

    /// Resolves once the deadline has passed: sockets close now.
    pub async fn forced(&self) {
        self.forced.cancelled().await;
    }

    pub fn stop(&self) {
        self.stopping.cancel();
    }

    pub fn force(&self) {
        self.stopping.cancel();
        self.forced.cancel();
    }

    /// After [`stop`](Self::stop): waits up to `deadline` for the sockets to
    /// finish, then forces them closed and waits up to `grace` for their
    /// turns to record the cancellation. `true` if everything finished.
    pub async fn wait(&self, deadline: Duration, grace: Duration) -> bool {
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_ok()
        {
            return true;
        }
        tracing::info!(
            open = self.tasks.len(),
            "shutdown deadline passed; closing the remaining sockets"
        );
        self.force();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_tasks_end_at_once_and_busy_ones_at_the_deadline() {
        let drain = Drain::default();
        let idle = drain.clone();
        drain.spawn(async move { idle.stopping().await });
        let busy = drain.clone();
        drain.spawn(async move { busy.forced().await });
        drain.stop();
        let started = tokio::time::Instant::now();
        assert!(
            drain
                .wait(Duration::from_secs(30), Duration::from_secs(10))
                .await
        );
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_force_is_given_up_on() {
        let drain = Drain::default();
        drain.spawn(std::future::pending());
        drain.stop();
        assert!(
            !drain
                .wait(Duration::from_secs(1), Duration::from_secs(1))
                .await
        );
    }
}
