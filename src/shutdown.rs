//! The shutdown signal: set once (by the signal handler, or a test), awaited by whoever must
//! stop. Waits `select!` on [`Shutdown::wait`] instead of sleep-polling a flag, so a stop
//! request ends a backoff or a wait for the writer at once.
//!
//! Two moments: *requested* (stop consuming, publish what is buffered) and *expired* (the
//! shutdown deadline is near: stop retrying). Between them, commits go on retrying a store that
//! failed, so a short NameNode hiccup during a stop loses no work; after `expired`, nothing
//! waits any more.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Cheap to clone; every clone sees the same request.
#[derive(Clone)]
pub struct Shutdown {
    requested: Arc<watch::Sender<bool>>,
    expired: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { requested: Arc::new(watch::channel(false).0), expired: Arc::new(watch::channel(false).0) }
    }
}

impl Shutdown {
    /// Stop consuming and publish; retries go on until [`Shutdown::expire`].
    pub fn request(&self) {
        self.requested.send_replace(true);
    }

    /// The deadline is near: retry loops and waits for the writer end.
    pub fn expire(&self) {
        self.expired.send_replace(true);
    }

    pub fn requested(&self) -> bool {
        *self.requested.borrow()
    }

    pub fn expired(&self) -> bool {
        *self.expired.borrow()
    }

    /// Set on request: for loops that have no business running during a stop (recovery).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.requested.subscribe()
    }

    /// Set on expiry: for the commit protocol's retry loops ([`crate::retry::with_backoff`]),
    /// which should finish the publish a stop asked for if the store lets them in time.
    pub fn subscribe_expired(&self) -> watch::Receiver<bool> {
        self.expired.subscribe()
    }

    /// Resolves once shutdown is requested.
    pub async fn wait(&self) {
        let mut rx = self.requested.subscribe();
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

    #[test]
    fn a_graceful_request_leaves_retries_running_until_expiry() {
        let shutdown = Shutdown::default();
        let retries = shutdown.subscribe_expired();
        shutdown.request();
        assert!(shutdown.requested() && !shutdown.expired() && !*retries.borrow());
        shutdown.expire();
        assert!(*retries.borrow());
    }
}
