//! Fault injection for tests: `LF_TEST_CRASH_POINT=<name>` aborts the process (as `kill -9`
//! would stop it) at the named point, so a test can leave exactly the state a crash there
//! leaves and check that the next run recovers from it. Not a `LANDFALL_*` variable: those are
//! daemon settings. Read once; unset in production, where every point is a no-op.
//!
//! `LF_TEST_CRASH_COUNT=<k>` (default 1) aborts at the k-th time the point is reached, so a
//! seeded test can crash a run that already committed a few times.
//!
//! Points, in the order a commit reaches them (docs/exactly-once.md, "Protocol"):
//! - `before_manifest`: a commit's data files are staged and closed, no manifest is written.
//! - `before_commit_point`: the manifest is in `_landfall/tmp/`, not yet renamed into its slot.
//! - `after_commit_point`: the manifest is in its slot, nothing is published.
//! - `mid_publish`: the first file of a commit has its published name, the others do not.
//! - `after_publish`: every file is published; the log is not pruned, the Kafka offset not mirrored.
//! - `before_ack` (RabbitMQ): a commit is published, its deliveries are not yet acknowledged.
//! - `local_publish_linked` (local store): a data or quarantine file has its published name
//!   (a hard link) and still its staged name.
//!
//! Partition completion (`src/completion/task.rs`), in the order a pass reaches them:
//! - `before_decision`: the watermark is computed, the frontier not recorded.
//! - `after_decision`: `_landfall/completion/<F>.decided` exists, no marker of it does.
//! - `after_markers`: every marker of a decision exists, `<F>.marked` does not.
//! - `mid_metastore`: one metastore partition has `landfall.complete`, others may not.
//!
//! `LF_TEST_STALL_POINT=<name>` instead stalls the task that reaches the point, once per
//! process, for `LF_TEST_STALL_SECS` seconds (default 20), as a long pause or a frozen VM
//! would, while the rest of the process (its broker connections) goes on. Points:
//! - `after_commit_point`: a manifest is in its slot, the zombie check has not run.

/// Aborts the process if `LF_TEST_CRASH_POINT` names `point` and this is its
/// `LF_TEST_CRASH_COUNT`-th arrival there.
pub fn point(point: &str, what: &str) {
    static POINT: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static ARRIVALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let configured = POINT.get_or_init(|| {
        let name = std::env::var("LF_TEST_CRASH_POINT").ok()?;
        let count = std::env::var("LF_TEST_CRASH_COUNT").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
        Some((name, count))
    });
    let Some((name, count)) = configured else { return };
    if name != point || ARRIVALS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 != *count {
        return;
    }
    tracing::error!(point, count, "LF_TEST_CRASH_POINT={point}: aborting {what}");
    std::process::abort();
}

/// Stalls the calling task once if `LF_TEST_STALL_POINT` names `point` (see the module doc).
pub async fn stall(point: &str, what: &str) {
    static POINT: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static STALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let configured = POINT.get_or_init(|| {
        let name = std::env::var("LF_TEST_STALL_POINT").ok()?;
        let secs = std::env::var("LF_TEST_STALL_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
        Some((name, secs))
    });
    let Some((name, secs)) = configured else { return };
    if name != point || STALLED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    tracing::warn!(point, secs, "LF_TEST_STALL_POINT={point}: stalling {what}");
    tokio::time::sleep(std::time::Duration::from_secs(*secs)).await;
    tracing::warn!(point, "LF_TEST_STALL_POINT={point}: going on");
}
