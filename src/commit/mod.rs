//! Exactly-once commits: which positions of a stream (a Kafka partition's offsets, a RabbitMQ
//! stream's offsets, a queue's landing sequence) became which files, recorded atomically in the
//! table itself. A queue's manifests also record the `message_id`s they published, the
//! deduplication window ([`CommitConfig::keep_ids`]).
//!
//! The protocol (two-phase commit vocabulary; full analysis in `docs/exactly-once.md`):
//!
//! 1. **Stage**: writers close files hidden under `<table>/_landfall/staging/<run-id>/`
//!    ([`staged_path`]). Every file holds rows of one (topic, partition) only.
//! 2. **Pre-commit**: [`CommitLog::commit`] writes a [`Manifest`] for a contiguous offset range
//!    and renames it, without overwrite, to `_landfall/commits/<topic>/<partition>/<seq>.json`.
//!    That rename is the commit point and the fence between writers.
//! 3. **Zombie check**: a newer manifest in the log means this writer is stale → `Fenced`.
//! 4. **Publish**: rename each staged file to its deterministic name ([`final_file_name`]).
//! 5. **Acknowledge**: the driver tells the source (`Source::published`): Kafka mirrors `end + 1`
//!    to the group (for lag tools only), a queue acknowledges the range's deliveries.
//!
//! [`CommitLog::recover`] on assignment (and before every queue session) re-drives the newest manifest's publish and returns the
//! offset to seek to; [`clean_orphans`] deletes staged files no manifest references once they
//! are older than the grace period. [`with_backoff`] retries transient store errors.

mod error;
mod log;
mod manifest;
mod orphans;
pub(crate) mod paths;
mod publish;

#[cfg(test)]
mod tests;

use std::time::Duration;

use tokio::sync::watch;

pub use crate::retry::{with_backoff, Backoff, RetryError, Retryable};
pub use error::CommitError;
pub use log::{CommitLog, StagedFile};
pub use manifest::{EventTime, Fence, Manifest, ManifestError, ManifestFile, MANIFEST_VERSION};
pub(crate) use orphans::store_now_ms;
pub use orphans::{clean_orphans, CleanReport};
pub use paths::{
    commit_dir, escape_name, final_file_name, final_path, manifest_path, new_run_id, staged_path, staging_dir,
};

/// Tuning of the commit protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitConfig {
    /// How old an unreferenced staged file must be before orphan cleanup deletes it; the
    /// committer refuses staged files older than half of it. Must exceed the longest time a
    /// file stays open plus the commit interval (an HDFS file being written keeps its
    /// creation time as mtime until closed), with room for clock skew.
    pub grace: Duration,
    /// Manifests kept per partition (at least 1: the newest is the resume point). A few
    /// more help operators see recent history; the directory stays small either way.
    pub keep: usize,
    /// Retry policy for transient store errors.
    pub backoff: Backoff,
    /// Queue sources: keep (and recover the `message_id`s of) the newest manifests until they
    /// cover at least this many messages, the deduplication window. 0 for offset sources.
    pub keep_ids: usize,
    /// Permission bits of quarantine files (`quarantine.permissions`); their directories get
    /// the same plus `x` where `r` is set.
    pub quarantine_mode: u32,
    /// Record how far each partition's event time has reached ([`Manifest::event_time`]):
    /// on while `partition.completion` is configured, off otherwise so that manifests stay
    /// readable by Landfall versions without the field.
    pub record_event_time: bool,
}

/// Default orphan grace period: one hour, far above any sane roll interval.
pub fn default_grace() -> Duration {
    Duration::from_secs(3600)
}

/// Default number of manifests kept per partition.
pub fn default_keep() -> usize {
    3
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            grace: default_grace(),
            keep: default_keep(),
            backoff: Backoff::default(),
            keep_ids: 0,
            quarantine_mode: crate::config::FileMode::default().0,
            record_event_time: false,
        }
    }
}

/// What every [`CommitLog`] of one process run shares.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// This run's id ([`new_run_id`]); names its staging directory and is recorded in manifests.
    pub run_id: String,
    pub config: CommitConfig,
    /// Turns true on shutdown: ends retry loops early (the commit then fails with
    /// [`CommitError::Stopped`], which recovery handles like a crash).
    pub stop: watch::Receiver<bool>,
}
