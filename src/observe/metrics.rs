//! The Prometheus metrics (`GET /metrics`). Every series carries a `pipeline` label. They are
//! counted where the work is counted already (per poll batch, per commit, per second), never per
//! message. `docs/operations.md` lists them; the help text below is their documentation.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric family of the daemon, registered once.
pub struct Metrics {
    registry: Registry,
    events_received: IntCounterVec,
    events_landed: IntCounterVec,
    events_rejected: IntCounterVec,
    events_duplicate: IntCounterVec,
    bytes_received: IntCounterVec,
    bytes_landed: IntCounterVec,
    files_published: IntCounterVec,
    commits: IntCounterVec,
    file_size: HistogramVec,
    commit_duration: HistogramVec,
    last_commit: IntGaugeVec,
    consumer_lag: IntGaugeVec,
    buffered_bytes: IntGaugeVec,
    open_files: IntGaugeVec,
    pipeline_up: IntGaugeVec,
    restarts: IntCounterVec,
    position_jumps: IntCounterVec,
    rewinds: IntCounterVec,
    hive_partitions_added: IntCounterVec,
    late_events: IntCounterVec,
    partitions_completed: IntCounterVec,
    partitions_compacted: IntCounterVec,
    compaction_files: IntCounterVec,
    compaction_bytes: IntCounterVec,
    watermark: IntGaugeVec,
    completed_until: IntGaugeVec,
    idle_partitions: IntGaugeVec,
    errors: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let p = &["pipeline"];
        // process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds, …
        #[cfg(target_os = "linux")]
        let _ = r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        let commit_duration = HistogramVec::new(
            HistogramOpts::new(
                "landfall_commit_duration_seconds",
                "Time from a cut to its files published and recorded in the commit log (closing the staged files, commit point, renames).",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
            p,
        )
        .expect("valid metric");
        r.register(Box::new(commit_duration.clone())).expect("registered once");
        // Doublings from 64 KiB to 1 GiB: the default roll.max_bytes (128 MiB) is a bucket
        // boundary, and the small files users meet (a fraction of a MiB) are told apart.
        let file_size = HistogramVec::new(
            HistogramOpts::new(
                "landfall_file_size_bytes",
                "Sizes of the table's Parquet files as written, observed when their commit is published (the quarantine's files are not counted).",
            )
            .buckets(prometheus::exponential_buckets((64 << 10) as f64, 2.0, 15).expect("valid buckets")),
            p,
        )
        .expect("valid metric");
        r.register(Box::new(file_size.clone())).expect("registered once");
        Metrics {
            events_received: counter(&r, "landfall_events_received_total", "Messages taken from the source, good and bad (redeliveries included).", p),
            events_landed: counter(&r, "landfall_events_landed_total", "Rows published into the table.", p),
            events_rejected: counter(&r, "landfall_events_rejected_total", "Messages published to the quarantine (_rejected/), by reason code.", &["pipeline", "reason"]),
            events_duplicate: counter(&r, "landfall_events_duplicate_total", "Queue redeliveries dropped because their message_id was already published.", p),
            bytes_received: counter(&r, "landfall_bytes_received_total", "Payload bytes taken from the source.", p),
            bytes_landed: counter(&r, "landfall_bytes_landed_total", "Parquet bytes published (table and quarantine).", p),
            files_published: counter(&r, "landfall_files_published_total", "Parquet files published (table and quarantine).", p),
            commits: counter(&r, "landfall_commits_total", "Commits published, by what cut them: max_rows, max_bytes, max_age, max_open_files (the roll.* limit a file or the range reached), window (a RabbitMQ queue's share of its unacknowledged window), shutdown (the run ended).", &["pipeline", "trigger"]),
            file_size,
            commit_duration,
            last_commit: gauge(&r, "landfall_last_commit_timestamp_seconds", "Unix time of the last published commit (0: none yet).", p),
            consumer_lag: gauge(&r, "landfall_consumer_lag_events", "Messages in the source not landed yet: Kafka high watermark (last stable offset) minus the next position; queues ready + unacknowledged. 0 once caught up.", &["pipeline", "source", "partition"]),
            buffered_bytes: gauge(&r, "landfall_buffered_bytes", "Bytes of rows held in memory: Arrow builders and open Parquet row groups (bounded by roll.max_buffered_bytes).", p),
            open_files: gauge(&r, "landfall_open_files", "Staged Parquet files open for writing (bounded by roll.max_open_files).", p),
            pipeline_up: gauge(&r, "landfall_pipeline_up", "1 while the pipeline runs and reaches its source and its store, else 0.", p),
            restarts: counter(&r, "landfall_pipeline_restarts_total", "Times the daemon restarted the pipeline after it stopped with an error.", p),
            position_jumps: counter(&r, "landfall_position_jumps_total", "Times a partition's committed position was gone from the source (topic recreated or truncated) and on_position_lost moved landing to the log's start or end.", p),
            rewinds: counter(&r, "landfall_commit_rewinds_total", "Ranges that could not be written or committed and are consumed again from the last published position after a backoff (1 s doubling to 60 s per partition); the failures' cause is the open commit problem.", p),
            hive_partitions_added: counter(&r, "landfall_hive_partitions_added_total", "Partitions added to the Hive Metastore table (sink.hive); partitions found already there are not counted.", p),
            late_events: counter(&r, "landfall_late_events_total", "partition.completion: rows published into a partition directory whose bucket was already complete (they land as usual; its _SUCCESS is not rewritten).", p),
            partitions_completed: counter(&r, "landfall_partitions_completed_total", "partition.completion: completion markers (_SUCCESS) this instance created.", p),
            partitions_compacted: counter(&r, "landfall_partitions_compacted_total", "sink.hive.compaction: metastore partitions this instance switched to a new compacted generation.", p),
            compaction_files: counter(&r, "landfall_compaction_files_total", "sink.hive.compaction: data files the switched generations replaced (side=input) and wrote (side=output).", &["pipeline", "side"]),
            compaction_bytes: counter(&r, "landfall_compaction_bytes_total", "sink.hive.compaction: bytes of the files the switched generations replaced (side=input) and wrote (side=output).", &["pipeline", "side"]),
            watermark: gauge(&r, "landfall_watermark_timestamp_seconds", "partition.completion: the table's event-time watermark, Unix time (0: not known yet, completion is off, or another instance is the completer).", p),
            completed_until: gauge(&r, "landfall_completed_until_timestamp_seconds", "partition.completion: every bucket ending at or before this Unix time is complete (0: none yet, or completion is off).", p),
            idle_partitions: gauge(&r, "landfall_completion_idle_partitions", "partition.completion: source partitions counted idle (no commit for idle_timeout, nothing left to land), which no longer hold the watermark back (0 on an instance that is not the completer).", p),
            errors: counter(&r, "landfall_errors_total", "Faults met, by kind: source (broker unreachable, session lost), store (table unreachable), commit (a commit failed and its range is consumed again), recovery (a partition waits for a person), pipeline (the pipeline stopped), metastore (sink.hive: registration failing; landing goes on).", &["pipeline", "kind"]),
            registry: r,
        }
    }

    /// The handles of one pipeline's series, resolved once.
    pub fn pipeline(&self, name: &str) -> PipelineMetrics {
        let l = &[name];
        let m = PipelineMetrics {
            name: name.to_string(),
            events_received: self.events_received.with_label_values(l),
            events_landed: self.events_landed.with_label_values(l),
            events_duplicate: self.events_duplicate.with_label_values(l),
            bytes_received: self.bytes_received.with_label_values(l),
            bytes_landed: self.bytes_landed.with_label_values(l),
            files_published: self.files_published.with_label_values(l),
            commit_duration: self.commit_duration.with_label_values(l),
            last_commit: self.last_commit.with_label_values(l),
            buffered_bytes: self.buffered_bytes.with_label_values(l),
            open_files: self.open_files.with_label_values(l),
            pipeline_up: self.pipeline_up.with_label_values(l),
            restarts: self.restarts.with_label_values(l),
            position_jumps: self.position_jumps.with_label_values(l),
            rewinds: self.rewinds.with_label_values(l),
            hive_partitions_added: self.hive_partitions_added.with_label_values(l),
            late_events: self.late_events.with_label_values(l),
            partitions_completed: self.partitions_completed.with_label_values(l),
            partitions_compacted: self.partitions_compacted.with_label_values(l),
            compaction_files_in: self.compaction_files.with_label_values(&[name, "input"]),
            compaction_files_out: self.compaction_files.with_label_values(&[name, "output"]),
            compaction_bytes_in: self.compaction_bytes.with_label_values(&[name, "input"]),
            compaction_bytes_out: self.compaction_bytes.with_label_values(&[name, "output"]),
            watermark: self.watermark.with_label_values(l),
            completed_until: self.completed_until.with_label_values(l),
            idle_partitions: self.idle_partitions.with_label_values(l),
            file_size: self.file_size.with_label_values(l),
            events_rejected: self.events_rejected.clone(),
            commits: self.commits.clone(),
            consumer_lag: self.consumer_lag.clone(),
            errors: self.errors.clone(),
        };
        // Series that exist from the start read 0 rather than missing.
        for kind in ErrorKind::ALL {
            m.errors.with_label_values(&[name, kind.label()]);
        }
        for trigger in crate::pipeline::partitions::Trigger::ALL {
            m.commits.with_label_values(&[name, trigger.label()]);
        }
        m
    }

    /// The text exposition format (version 0.0.4).
    pub fn encode(&self) -> (String, String) {
        let encoder = TextEncoder::new();
        let mut out = Vec::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "could not encode the metrics");
        }
        (encoder.format_type().to_string(), String::from_utf8_lossy(&out).into_owned())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// What kind of fault an error is, for `landfall_errors_total{kind}` and the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Source,
    Store,
    Commit,
    Recovery,
    Pipeline,
    Metastore,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Source,
        ErrorKind::Store,
        ErrorKind::Commit,
        ErrorKind::Recovery,
        ErrorKind::Pipeline,
        ErrorKind::Metastore,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Source => "source",
            ErrorKind::Store => "store",
            ErrorKind::Commit => "commit",
            ErrorKind::Recovery => "recovery",
            ErrorKind::Pipeline => "pipeline",
            ErrorKind::Metastore => "metastore",
        }
    }
}

/// One pipeline's series.
#[derive(Clone)]
pub struct PipelineMetrics {
    name: String,
    pub events_received: IntCounter,
    pub events_landed: IntCounter,
    pub events_duplicate: IntCounter,
    pub bytes_received: IntCounter,
    pub bytes_landed: IntCounter,
    pub files_published: IntCounter,
    pub commit_duration: prometheus::Histogram,
    pub last_commit: IntGauge,
    pub buffered_bytes: IntGauge,
    pub open_files: IntGauge,
    pub pipeline_up: IntGauge,
    pub restarts: IntCounter,
    pub position_jumps: IntCounter,
    /// Rewinds: a range consumed again after a failed write or commit.
    pub rewinds: IntCounter,
    /// Partitions added to the metastore (`sink.hive`).
    pub hive_partitions_added: IntCounter,
    /// Partition completion (`partition.completion`).
    pub late_events: IntCounter,
    pub partitions_completed: IntCounter,
    pub partitions_compacted: IntCounter,
    pub compaction_files_in: IntCounter,
    pub compaction_files_out: IntCounter,
    pub compaction_bytes_in: IntCounter,
    pub compaction_bytes_out: IntCounter,
    pub watermark: IntGauge,
    pub completed_until: IntGauge,
    pub idle_partitions: IntGauge,
    file_size: prometheus::Histogram,
    events_rejected: IntCounterVec,
    commits: IntCounterVec,
    consumer_lag: IntGaugeVec,
    errors: IntCounterVec,
}

impl PipelineMetrics {
    pub fn rejected(&self, reason: &str, n: u64) {
        self.events_rejected.with_label_values(&[self.name.as_str(), reason]).inc_by(n);
    }

    /// A commit cut by `trigger` was published with table files of `file_sizes` bytes.
    pub fn cut_published(&self, trigger: &str, file_sizes: &[u64]) {
        self.commits.with_label_values(&[self.name.as_str(), trigger]).inc();
        for &bytes in file_sizes {
            self.file_size.observe(bytes as f64);
        }
    }

    pub fn error(&self, kind: ErrorKind) {
        self.errors.with_label_values(&[self.name.as_str(), kind.label()]).inc();
    }

    pub fn set_lag(&self, source: &str, partition: i32, lag: u64) {
        let partition = partition.to_string();
        self.consumer_lag.with_label_values(&[self.name.as_str(), source, &partition]).set(lag as i64);
    }

    /// A stream that left (revoked, pipeline stopped) stops reporting lag.
    pub fn forget_lag(&self, source: &str, partition: i32) {
        let partition = partition.to_string();
        let _ = self.consumer_lag.remove_label_values(&[self.name.as_str(), source, &partition]);
    }
}
