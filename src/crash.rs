//! Fault injection for tests: `LF_TEST_CRASH_POINT=<name>` aborts the process (as `kill -9`
//! would stop it) at the named point, so a test can leave exactly the state a crash there
//! leaves and check that the next run recovers from it. Not a `LANDFALL_*` variable: those are
//! daemon settings. Read once; unset in production, where every point is a no-op.
//!
//! Points:
//! - `before_ack` (RabbitMQ): a commit is published, its deliveries are not yet acknowledged.
//! - `local_publish_linked` (local store): a data or quarantine file has its published name
//!   (a hard link) and still its staged name.

/// Aborts the process if `LF_TEST_CRASH_POINT` names `point`.
pub fn point(point: &str, what: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if POINT.get_or_init(|| std::env::var("LF_TEST_CRASH_POINT").ok()).as_deref() == Some(point) {
        tracing::error!(point, "LF_TEST_CRASH_POINT={point}: aborting {what}");
        std::process::abort();
    }
}
