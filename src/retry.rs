//! Retrying transient failures with bounded, jittered exponential backoff.
//!
//! Generic so any module can reuse it (sources reconnecting, the sink's probes): the error
//! type only has to say whether it is worth retrying ([`Retryable`]). Logging follows state
//! changes, not attempts: one `warn` when an operation starts failing (the error text carries
//! the store's hint), another only if the cause changes, one `info` when it recovers. A
//! NameNode in safe mode for ten minutes thus costs three log lines, not three hundred.
//!
//! "The cause changes" is judged on [`cause_key`], not on the whole text: a retried create
//! names a fresh staged file each time, and a NameNode exception carries its Java stack trace,
//! so two texts of one cause rarely match. A warn line carries the first line of the error
//! ([`first_line`]); the whole text goes to `debug`. Callers that loop around
//! [`with_backoff`] (a partition rewinds and writes again) would get a warn per call; the last
//! cause warned per operation is therefore remembered until that operation succeeds again.
//!
//! The closure is re-run from the start on every attempt, so it must re-read whatever state
//! it decides on: a retried rename may have succeeded the first time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

/// Whether an error is worth retrying.
pub trait Retryable: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Retryable for crate::sink::StoreError {
    fn is_transient(&self) -> bool {
        crate::sink::StoreError::is_transient(self)
    }
}

/// How long to wait between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second attempt; doubles after each failure.
    pub initial: Duration,
    /// Cap on one delay: long enough not to hammer a NameNode leaving safe mode, short
    /// enough to resume within half a minute of the store coming back.
    pub max: Duration,
    /// Stop retrying after this long and return the last error; `None` retries until shutdown
    /// (a daemon should wait out an outage rather than drop its partitions).
    pub give_up_after: Option<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(30), give_up_after: None }
    }
}

impl Backoff {
    /// The delay after the `failures`-th consecutive failure (1-based): `initial · 2^(n-1)`
    /// capped at `max`, then "equal jitter" (uniform in [d/2, d]) so that many partitions
    /// failing together do not retry in lock-step.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
        let base = self.initial.saturating_mul(factor).min(self.max);
        let half = base / 2;
        half + rand::rng().random_range(Duration::ZERO..=base - half)
    }
}

/// Why [`with_backoff`] returned without a result.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E: std::fmt::Display> {
    /// The error was not transient.
    #[error("{0}")]
    Failed(E),
    /// Shutdown was requested while waiting for the next attempt.
    #[error("{op}: stopped after {attempts} failed attempts; last error: {last}")]
    Stopped { op: String, attempts: u32, last: E },
    /// `give_up_after` elapsed.
    #[error("{op}: gave up after {attempts} attempts in {elapsed:?}; last error: {last}")]
    GaveUp { op: String, attempts: u32, elapsed: Duration, last: E },
}

impl<E: std::fmt::Display> RetryError<E> {
    /// The underlying error, whatever ended the retries.
    pub fn into_last(self) -> E {
        match self {
            RetryError::Failed(e) => e,
            RetryError::Stopped { last, .. } | RetryError::GaveUp { last, .. } => last,
        }
    }
}

/// Runs `f` until it succeeds, fails with a non-transient error, `stop` turns true, or the
/// backoff gives up. `op` names the operation in logs ("publish /t/dt=1/part-…").
pub async fn with_backoff<T, E, F, Fut>(
    op: &str,
    backoff: &Backoff,
    stop: &watch::Receiver<bool>,
    mut f: F,
) -> Result<T, RetryError<E>>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut failures: u32 = 0;
    let mut last_key = String::new();
    loop {
        let err = match f().await {
            Ok(value) => {
                if failures > 0 {
                    forget_warned(op);
                    tracing::info!(
                        op,
                        attempts = failures + 1,
                        "{op}: recovered after {} attempts, {:.1} s",
                        failures + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(value);
            }
            Err(e) if !e.is_transient() => return Err(RetryError::Failed(e)),
            Err(e) => e,
        };
        failures += 1;
        let text = err.to_string();
        let key = cause_key(&text);
        if key != last_key {
            let error = first_line(&text);
            if failures > 1 {
                tracing::warn!(op, attempts = failures, error, "{op} still failing, now with another error");
            } else if warned_before(op, &key) {
                tracing::debug!(op, error, "{op} failed again with the cause already reported; retrying with backoff");
            } else {
                tracing::warn!(op, error, "{op} failed; retrying with backoff");
            }
            last_key = key;
        }
        tracing::debug!(op, attempts = failures, error = %text, "{op} failed");
        let elapsed = started.elapsed();
        if backoff.give_up_after.is_some_and(|limit| elapsed >= limit) {
            return Err(RetryError::GaveUp { op: op.to_string(), attempts: failures, elapsed, last: err });
        }
        if *stop.borrow() {
            return Err(RetryError::Stopped { op: op.to_string(), attempts: failures, last: err });
        }
        let mut stop_rx = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff.delay(failures)) => {}
            _ = stopped(&mut stop_rx) => {
                return Err(RetryError::Stopped { op: op.to_string(), attempts: failures, last: err });
            }
        }
    }
}

/// The first line of an error, trimmed: a NameNode exception carries its Java stack trace
/// after it, which belongs in a `debug` line, not in every `warn`.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim_end()
}

/// What makes two errors "the same cause" for logging: the first line with every token that
/// names a path (`/` in it) replaced by `…` and every number by `#`, so that a fresh staged
/// file name, a run id, a partition number or a byte count does not make a new cause, while
/// another exception class or another hint does.
pub fn cause_key(text: &str) -> String {
    first_line(text)
        .split_whitespace()
        .map(|token| if token.contains('/') { "…".to_string() } else { mask_numbers(token) })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `consumed=402653184B` → `consumed=#B`: each run of digits becomes one `#`.
fn mask_numbers(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for c in token.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// Per operation, the cause last warned about, until the operation succeeds again.
static WARNED: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// True if `key` is the cause last warned about for `op` (the caller logs at `debug`); else
/// remembers it (the caller warns).
fn warned_before(op: &str, key: &str) -> bool {
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    let map = warned.get_or_insert_with(HashMap::new);
    let op = cause_key(op);
    if map.get(&op).is_some_and(|k| k == key) {
        return true;
    }
    map.insert(op, key.to_string());
    false
}

/// `op` succeeded: its next failure is news again.
fn forget_warned(op: &str) {
    if let Some(map) = WARNED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        map.remove(&cause_key(op));
    }
}

/// Resolves once `rx` reads true; never, if the sender is gone (nobody can ask to stop).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug, PartialEq)]
    struct E(bool);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "e{}", self.0)
        }
    }
    impl Retryable for E {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    fn fast() -> Backoff {
        Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(2), give_up_after: None }
    }

    #[test]
    fn delay_doubles_is_capped_and_jittered() {
        let b = Backoff::default();
        for _ in 0..50 {
            let d1 = b.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d4 = b.delay(4);
            assert!(d4 >= Duration::from_millis(400) && d4 <= Duration::from_millis(800), "{d4:?}");
            let d99 = b.delay(99);
            assert!(d99 >= Duration::from_secs(15) && d99 <= Duration::from_secs(30), "{d99:?}");
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let (_tx, rx) = watch::channel(false);
        let calls = Cell::new(0);
        let out = with_backoff("op", &fast(), &rx, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(E(true))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(out.unwrap(), 3);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn fatal_errors_return_at_once() {
        let (_tx, rx) = watch::channel(false);
        let calls = Cell::new(0);
        let out: Result<(), _> = with_backoff("op", &fast(), &rx, || {
            calls.set(calls.get() + 1);
            async { Err(E(false)) }
        })
        .await;
        assert!(matches!(out, Err(RetryError::Failed(E(false)))));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test]
    async fn stop_ends_the_retries() {
        let (tx, rx) = watch::channel(false);
        let slow = Backoff { initial: Duration::from_secs(3600), max: Duration::from_secs(3600), give_up_after: None };
        let calls = Cell::new(0);
        let retry = with_backoff("op", &slow, &rx, || {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(E(true)) }
        });
        let stopper = async {
            tokio::task::yield_now().await;
            tx.send(true).unwrap();
        };
        let (out, ()) = tokio::join!(retry, stopper);
        match out {
            Err(RetryError::Stopped { attempts: 1, last: E(true), .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn a_cause_is_the_first_line_without_paths_and_numbers() {
        let a = "create /t/_landfall/staging/r1/0a1b.parquet: Permission denied: user=lf, access=WRITE, \
                 inode=\"/t/_landfall/staging/r1\":lf:supergroup:dr-xr-xr-x (check /t)\n\tat org.apache.X(X.java:12)";
        let b = "create /t/_landfall/staging/r1/9f8e.parquet: Permission denied: user=lf, access=WRITE, \
                 inode=\"/t/_landfall/staging/r1\":lf:supergroup:dr-xr-xr-x (check /t)";
        assert_eq!(first_line(a), a.lines().next().unwrap());
        assert!(!first_line(a).contains("X.java"));
        assert_eq!(cause_key(a), cause_key(b), "another staged file, the same cause");
        let quota = |used: u32| {
            format!("close /t/x: The DiskSpace quota of /t is exceeded: quota = 1 B but diskspace consumed = {used} B")
        };
        assert_eq!(cause_key(&quota(402653184)), cause_key(&quota(12)));
        let safe_mode = "create /t/y: Cannot create file/t/y. Name node is in safe mode.";
        assert_ne!(cause_key(a), cause_key(safe_mode));
        assert!(!cause_key(a).contains('/') && cause_key(a).contains("Permission denied"), "{}", cause_key(a));
    }

    #[test]
    fn a_cause_warned_once_is_news_again_after_a_success() {
        let op = "op only this test uses";
        assert!(!warned_before(op, "k1"));
        assert!(warned_before(op, "k1"));
        assert!(!warned_before(op, "k2"), "another cause");
        forget_warned(op);
        assert!(!warned_before(op, "k2"), "after a success");
    }

    #[tokio::test]
    async fn gives_up_when_configured() {
        let (_tx, rx) = watch::channel(false);
        let b = Backoff { give_up_after: Some(Duration::from_millis(5)), ..fast() };
        let out: Result<(), _> = with_backoff("op", &b, &rx, || async { Err(E(true)) }).await;
        match out {
            Err(e @ RetryError::GaveUp { .. }) => assert_eq!(e.into_last(), E(true)),
            other => panic!("{other:?}"),
        }
    }
}
