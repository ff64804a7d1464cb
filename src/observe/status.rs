//! The daemon's state as one JSON document (`GET /api/status`): what the status page draws and
//! what `landfall status` prints. These types are the contract between the server and both
//! readers; a field added here is added at the end of its struct and is optional for readers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole daemon.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DaemonStatus {
    /// Landfall's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// When the process started, RFC 3339 in UTC.
    pub started_at: String,
    pub uptime_seconds: f64,
    /// Every pipeline is ready (what `GET /ready` answers).
    pub ready: bool,
    /// No pipeline is stuck (what `GET /health` answers).
    pub healthy: bool,
    /// Seconds between two points of every `history` series.
    pub history_interval_seconds: f64,
    pub pipelines: Vec<PipelineStatus>,
}

/// One pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PipelineStatus {
    pub name: String,
    /// `Kafka` or `RabbitMQ`.
    pub source: String,
    /// The table's root: `hdfs://host:port/path` or a local directory.
    pub table: String,
    pub state: PipelineState,
    /// Connected to its source and its store, and its commits go through.
    pub ready: bool,
    /// Lag above zero and no commit for longer than the stuck limit (see [`crate::observe`]).
    pub stuck: bool,
    /// Why it is not ready or is stuck, one sentence each, naming what to check; empty when fine.
    pub problems: Vec<String>,
    pub events_received: u64,
    pub events_landed: u64,
    pub events_rejected: u64,
    /// Quarantined events by reason code (`invalid_json`, `missing_field`, …).
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub events_duplicate: u64,
    pub bytes_received: u64,
    pub bytes_landed: u64,
    pub files_published: u64,
    /// Rows landed per second over the last history interval.
    pub events_per_second: f64,
    /// Messages in the source not yet landed (sum over its partitions); `None` until known.
    pub lag: Option<u64>,
    /// Lag per stream (`topic[partition]` → messages).
    pub lag_by_stream: BTreeMap<String, u64>,
    /// Seconds since the last published commit; `None` before the first one.
    pub last_commit_age_seconds: Option<f64>,
    pub open_files: u64,
    pub buffered_bytes: u64,
    pub restarts: u64,
    /// The newest errors, newest last (at most [`RECENT_ERRORS`]).
    pub recent_errors: Vec<RecentError>,
    /// The last 15 minutes, oldest first, one point per `history_interval_seconds`.
    pub history: History,
    /// `partition.completion`: where the watermark and the completed frontier stand; absent
    /// when completion is off or before its first pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<CompletionStatus>,
    /// `sink.hive.compaction`: what this instance compacted since it started, and what fails;
    /// absent when compaction is off or before this instance's first round as the completer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<CompactionStatus>,
}

/// Compaction on this instance since it started (`docs/hive.md`, "Compaction").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CompactionStatus {
    /// Metastore partitions switched to a new generation.
    pub partitions: u64,
    /// Data files those generations replaced, and wrote.
    pub files_in: u64,
    pub files_out: u64,
    /// Bytes of the replaced files, and of the written ones.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The last round's first failure (one line), while partitions fail.
    pub failing: Option<String>,
    /// Partitions waiting out a backoff after a failure.
    pub deferred: Vec<String>,
}

/// Partition completion as the last pass saw it (`docs/hive.md`, "Completion").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CompletionStatus {
    /// Whether this instance is the pipeline's completer (it holds the pipeline's first
    /// source partition): only the completer computes the watermark and decides; the others
    /// follow the frontier and mark the directories their late rows went to.
    #[serde(default)]
    pub completer: bool,
    /// The table's event-time watermark (RFC 3339); `None` while a partition's is unknown, or
    /// on an instance that is not the completer.
    pub watermark: Option<String>,
    /// Every bucket ending at or before this time (RFC 3339) is complete; `None`: none yet.
    pub completed_until: Option<String>,
    /// The source partition holding the watermark where it is (`clicks[3]`).
    pub held_by: Option<String>,
    /// Source partitions counted idle, which no longer hold the watermark back.
    pub idle: Vec<String>,
}

/// How many errors [`PipelineStatus::recent_errors`] keeps.
pub const RECENT_ERRORS: usize = 10;

/// What a pipeline is doing.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PipelineState {
    /// Connecting, recovering its commit log.
    #[default]
    Starting,
    /// Consuming and landing.
    Running,
    /// Stopped with an error; the daemon restarts it after a pause.
    Restarting,
    /// Finished (shutdown or caught up).
    Stopped,
}

/// An error as the status page lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecentError {
    /// RFC 3339 in UTC.
    pub at: String,
    /// `source`, `store`, `commit`, `recovery`, `pipeline` (the same values as the `kind`
    /// label of `landfall_errors_total`).
    pub kind: String,
    pub message: String,
}

/// Sampled series for the charts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    /// Rows landed per second in each interval.
    pub events_per_second: Vec<f64>,
    /// Lag at the end of each interval (`None` where unknown).
    pub lag: Vec<Option<u64>>,
}
