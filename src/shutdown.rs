//! The shutdown signal: set once (by the signal handler, or a test), awaited by whoever must
//! stop. Waits `select!` on [`Shutdown::wait`] instead of sleep-polling a flag, so a stop
//! request ends a backoff or a wait for the writer at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Cheap to clone; every clone sees the same request.
#[derive(Clone)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(watch::channel(false).0))
    }
}

impl Shutdown {
    pub fn request(&self) {
        self.0.send_replace(true);
    }

    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// For the commit protocol's retry loops ([`crate::retry::with_backoff`]).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }

    /// Resolves once shutdown is requested.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we hold it.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Sleeps `delay` unless shutdown comes first; returns whether it did.
    pub async fn sleep(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => self.requested(),
            _ = self.wait() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_ends_a_sleep_at_once() {
        let shutdown = Shutdown::default();
        let waker = shutdown.clone();
        let started = std::time::Instant::now();
        let (stopped, ()) = tokio::join!(shutdown.sleep(Duration::from_secs(3600)), async move {
            tokio::task::yield_now().await;
            waker.request();
        });
        assert!(stopped && shutdown.requested());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!Shutdown::default().sleep(Duration::from_millis(1)).await, "no request: the sleep runs out");
    }
}
