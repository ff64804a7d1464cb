//! The completion pass: every [`pass_every`], read every source partition's progress, compute
//! the watermark, decide the frontier, write the markers, then the metastore parameters. Every
//! write creates an empty file if absent, so a crash anywhere is re-driven by the next pass
//! (the crash table of `docs/design/partition-completion.md`, section 5) and two instances
//! completing at once write the same files.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::logs::LogReader;
use super::records::{self, Step};
use super::watermark::{watermark, Progress, Watermark};
use super::Completion;
use crate::commit::paths::commit_dir;
use crate::config::{CompletionConfig, HiveConfig};
use crate::metastore::MetastoreClient;
use crate::observe::PipelineWatch;
use crate::retry::{cause_key, first_line};
use crate::shutdown::Shutdown;
use crate::sink::{FileStore, StoreError};
use crate::source::kafka_ends::KafkaEnds;

/// How often a pass runs at most: completion is a signal for batch jobs that wait for hours,
/// so a few dozen NameNode calls every 30 s are plenty.
pub const PASS_EVERY: Duration = Duration::from_secs(30);

/// How often a pass runs: [`PASS_EVERY`], or a quarter of a shorter `idle_timeout` (at least
/// every second), so an idle partition is noticed within a quarter of its timeout.
pub fn pass_every(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).clamp(Duration::from_secs(1), PASS_EVERY)
}

/// Parameters set on a completed metastore partition (`sink.hive`).
pub const HIVE_COMPLETE: &str = "landfall.complete";
pub const HIVE_WATERMARK: &str = "landfall.watermark";

/// `sink.hive`: where completed partitions are marked.
#[derive(Clone)]
pub struct HiveTarget {
    pub config: HiveConfig,
    /// Partition keys in path order.
    pub keys: Vec<String>,
    /// The table's location (`hdfs://…/landing/clicks`), as the registrar adds partitions.
    pub location: String,
}

/// One pipeline's completion task.
pub struct CompletionTask {
    pub pipeline: String,
    pub store: Arc<dyn FileStore>,
    pub root: String,
    pub completion: Arc<Completion>,
    pub settings: CompletionConfig,
    /// Kafka sources: the client that reads partition ends.
    pub ends: Option<Arc<KafkaEnds>>,
    /// `start: latest` (a partition without commits has nothing old to land).
    pub starts_at_latest: bool,
    /// Commit logs that hold the watermark even before they exist (a queue's lane 0).
    pub expected_logs: Vec<String>,
    pub hive: Option<HiveTarget>,
    /// `sink.hive.compaction` is on: every directory marked complete goes on the compaction
    /// round's todo list (`crate::compaction::todo`).
    pub compaction: bool,
    pub watch: Arc<PipelineWatch>,
    /// What the task learns as it runs (empty at start).
    pub state: State,
}

/// A completion task's memory between passes; a restart starts empty and rebuilds it from the
/// store.
#[derive(Default)]
pub struct State {
    reader: LogReader,
    /// Per commit directory without a manifest: (store time first seen empty, end then).
    empty_since: HashMap<String, (u64, i64)>,
    idle: BTreeSet<String>,
    failing: Option<String>,
    hive_client: Option<MetastoreClient>,
    /// The cause of the metastore step's current failure, logged once.
    hive_failing: Option<String>,
    /// Directories marked after their frontier's metastore step (late rows, or born after
    /// the decision's listing), waiting for their metastore parameter.
    hive_late: BTreeSet<String>,
}

impl CompletionTask {
    /// Runs passes until shutdown, or until `finish` turns true: then one last pass over what
    /// the pipeline's final commits published (a backfill with `--until-caught-up` completes
    /// the buckets it finished).
    pub async fn run(mut self, shutdown: Shutdown, mut finish: tokio::sync::watch::Receiver<bool>) {
        loop {
            let last = *finish.borrow();
            self.pass_and_report().await;
            if last {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(pass_every(self.settings.idle_timeout.get())) => {}
                _ = shutdown.wait() => return,
                _ = finish.wait_for(|f| *f) => {}
            }
        }
    }

    /// One pass; a failure is logged once per cause.
    async fn pass_and_report(&mut self) {
        match self.pass().await {
            Ok(()) => {
                if self.state.failing.take().is_some() {
                    tracing::info!(pipeline = %self.pipeline, "partition completion works again");
                }
            }
            Err(e) => {
                let key = cause_key(&e);
                if self.state.failing.as_deref() != Some(key.as_str()) {
                    tracing::warn!(
                        pipeline = %self.pipeline, error = first_line(&e),
                        "partition completion pass failed; landing goes on, markers wait; retrying every {} s",
                        pass_every(self.settings.idle_timeout.get()).as_secs()
                    );
                    self.state.failing = Some(key);
                }
            }
        }
    }

    /// One pass; an error ends it (the next pass starts over from the store).
    pub async fn pass(&mut self) -> Result<(), String> {
        let store = self.store.clone();
        // Only the completer reads every log and decides; every instance marks the directories
        // its own late rows went to and follows the frontier.
        let completer = self.completion.is_completer();
        let w = if completer {
            let now_ms = crate::commit::store_now_ms(store.as_ref(), &self.root).await.map_err(|e| e.to_string())?;
            let progress = self.progress(now_ms).await?;
            let lateness = self.settings.allowed_lateness.get().as_micros() as i64;
            let idle_ms = self.settings.idle_timeout.get().as_millis() as u64;
            watermark(&progress, now_ms as i64 * 1000, lateness, idle_ms)
        } else {
            Watermark::default()
        };
        self.report(&w, completer);

        let mut recs = records::read(store.as_ref(), &self.root).await.map_err(|e| e.to_string())?;
        if let Some(f) = recs.frontier() {
            self.completion.advance(f);
        }
        if !completer {
            self.mark_published().await;
            self.report_status(&w, false);
            if self.hive.is_some() {
                self.hive_mark_late(&w).await;
            }
            return Ok(());
        }
        // Re-drive decisions whose markers may be missing (a crash between records).
        for f in recs.unmarked() {
            self.mark_range(recs.before(f), f).await?;
            records::create_empty(store.as_ref(), &records::path(&self.root, f, Step::Marked))
                .await
                .map_err(|e| e.to_string())?;
            recs.marked.insert(f);
        }
        if let Some((at, f)) = w.at.and_then(|at| Some((at, self.completion.clock.bucket_at(at)?.start))) {
            let previous = recs.frontier();
            if previous.is_none_or(|p| f > p) && f > 0 {
                crate::crash::point("before_decision", "with the watermark computed, before recording the decision");
                records::create_empty(store.as_ref(), &records::path(&self.root, f, Step::Decided))
                    .await
                    .map_err(|e| e.to_string())?;
                recs.decided.insert(f);
                self.completion.advance(f);
                crate::crash::point("after_decision", "with the decision recorded, before its markers");
                let dirs = self.mark_range(previous, f).await?;
                records::create_empty(store.as_ref(), &records::path(&self.root, f, Step::Marked))
                    .await
                    .map_err(|e| e.to_string())?;
                recs.marked.insert(f);
                tracing::info!(
                    pipeline = %self.pipeline, until = %micros_text(f), watermark = %micros_text(at),
                    dirs, held_by = w.held_by.as_deref().unwrap_or("-"), "partitions complete"
                );
            }
        }
        self.mark_published().await;
        self.report_status(&w, true);
        if self.hive.is_some() {
            for f in recs.without_hive() {
                if !self.set_hive_parameters(recs.before(f), f, w.at.unwrap_or(f)).await {
                    break; // the next pass tries again; markers never wait for the metastore
                }
                records::create_empty(store.as_ref(), &records::path(&self.root, f, Step::Hive))
                    .await
                    .map_err(|e| e.to_string())?;
                recs.hive.insert(f);
            }
            self.hive_mark_late(&w).await;
        }
        for (f, step) in recs.prunable(self.hive.is_some()) {
            let _ = store.delete(&records::path(&self.root, f, step)).await;
        }
        Ok(())
    }

    /// The frontier in the metrics, and the completion block of `/api/status`.
    fn report_status(&self, w: &Watermark, completer: bool) {
        let frontier = self.completion.frontier();
        if let Some(f) = frontier {
            self.watch.metrics.completed_until.set(f.div_euclid(1_000_000));
        }
        self.watch.set_completion(crate::observe::status::CompletionStatus {
            completer,
            watermark: w.at.map(micros_text),
            completed_until: frontier.map(micros_text),
            held_by: w.held_by.clone(),
            idle: w.idle.clone(),
        });
    }

    /// The metastore parameter for directories marked after their frontier's metastore step
    /// (late rows, or born after the decision's listing).
    async fn hive_mark_late(&mut self, w: &Watermark) {
        if !self.state.hive_late.is_empty() {
            let late: Vec<String> = self.state.hive_late.iter().cloned().collect();
            let at = self.completion.frontier().unwrap_or_default();
            if self.hive_mark(&late, w.at.unwrap_or(at)).await {
                self.state.hive_late.clear();
            }
        }
    }

    /// Every source partition's progress: each commit log under `_landfall/commits/`, and
    /// (Kafka) every partition of the topics, with or without a log.
    async fn progress(&mut self, now_ms: u64) -> Result<Vec<Progress>, String> {
        let store = self.store.clone();
        let mut dirs: HashMap<String, Option<(String, i32)>> = HashMap::new();
        for dir in LogReader::list_logs(store.as_ref(), &self.root).await.map_err(|e| e.to_string())? {
            dirs.insert(dir, None);
        }
        for dir in &self.expected_logs {
            dirs.entry(dir.clone()).or_insert(None);
        }
        if let Some(ends) = self.ends.clone() {
            let listed = tokio::task::spawn_blocking(move || ends.partitions())
                .await
                .map_err(|e| format!("the Kafka partition lookup panicked: {e}"))??;
            for (topic, p) in listed {
                dirs.insert(commit_dir(&self.root, &topic, p), Some((topic, p)));
            }
        }
        let idle_ms = self.settings.idle_timeout.get().as_millis() as u64;
        let mut out = Vec::with_capacity(dirs.len());
        let mut sorted: Vec<_> = dirs.into_iter().collect();
        sorted.sort();
        for (dir, kafka) in sorted {
            let view = self.state.reader.read(store.as_ref(), &dir).await.map_err(|e| e.to_string())?;
            let source = match (&view, &kafka) {
                (Some(v), _) => v.source.clone(),
                (None, Some((t, p))) => format!("{t}[{p}]"),
                (None, None) => dir.clone(),
            };
            let progress = match view {
                Some(v) => {
                    self.state.empty_since.remove(&dir);
                    let quiet_ms = now_ms.saturating_sub(v.newest_ms);
                    let caught_up = if quiet_ms < idle_ms || !v.published {
                        None
                    } else {
                        match &kafka {
                            // A queue's lane (no end position to ask), or a log no topic of this
                            // pipeline lists (a topic dropped from the config): its commit age
                            // decides.
                            None => Some(true),
                            Some((t, p)) => self.nothing_left(t, *p, v.next).await,
                        }
                    };
                    Progress { source, reached: v.reached, quiet_ms, caught_up }
                }
                None => {
                    let Some((t, p)) = kafka else {
                        // A queue's lane without a commit yet: its event time is unknown.
                        out.push(Progress { source, reached: None, quiet_ms: 0, caught_up: None });
                        continue;
                    };
                    let Some((low, high)) = self.end(&t, p).await else {
                        out.push(Progress { source, reached: None, quiet_ms: 0, caught_up: None });
                        continue;
                    };
                    let (since, end_then) = *self.state.empty_since.entry(dir.clone()).or_insert((now_ms, high));
                    let quiet_ms = now_ms.saturating_sub(since);
                    // Nothing committed yet: nothing left if the partition is empty, or (with
                    // `start: latest`) if nothing arrived since it was first seen, or if all it
                    // holds is transaction markers and aborted records.
                    let caught_up = if high == low || (self.starts_at_latest && high == end_then) {
                        Some(true)
                    } else if quiet_ms >= idle_ms {
                        self.holds_records(&t, p, low, high).await.map(|holds| !holds)
                    } else {
                        Some(false)
                    };
                    Progress { source, reached: None, quiet_ms, caught_up }
                }
            };
            out.push(progress);
        }
        Ok(out)
    }

    /// Whether a Kafka partition committed up to `next` has nothing left to land: its end is at
    /// `next`, or everything between is transaction markers and aborted records. `None` if the
    /// broker did not answer (not idle then).
    async fn nothing_left(&self, topic: &str, partition: i32, next: i64) -> Option<bool> {
        let (_, high) = self.end(topic, partition).await?;
        if high <= next {
            return Some(true);
        }
        self.holds_records(topic, partition, next, high).await.map(|holds| !holds)
    }

    /// [`KafkaEnds::holds_records`] off the runtime; `None` if the broker did not answer.
    async fn holds_records(&self, topic: &str, partition: i32, from: i64, high: i64) -> Option<bool> {
        let ends = self.ends.clone()?;
        let topic = topic.to_string();
        match tokio::task::spawn_blocking(move || ends.holds_records(&topic, partition, from, high)).await {
            Ok(Ok(holds)) => Some(holds),
            Ok(Err(e)) => {
                tracing::debug!(pipeline = %self.pipeline, error = %e, "completion: cannot tell what the partition holds past its commits; not counted idle");
                None
            }
            Err(_) => None,
        }
    }

    /// (low, high) of a Kafka partition; `None` if the broker did not answer (not idle then).
    async fn end(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let ends = self.ends.clone()?;
        let topic = topic.to_string();
        match tokio::task::spawn_blocking(move || ends.end(&topic, partition)).await {
            Ok(Ok(end)) => Some(end),
            Ok(Err(e)) => {
                tracing::debug!(pipeline = %self.pipeline, error = %e, "completion: partition end unknown; not counted idle");
                None
            }
            Err(_) => None,
        }
    }

    /// Metrics and the idle transitions, one log line per change. An instance that is not the
    /// completer reports no watermark (0) and no idle partitions, and logs no transitions.
    fn report(&mut self, w: &Watermark, completer: bool) {
        let m = &self.watch.metrics;
        m.watermark.set(w.at.map_or(0, |at| at.div_euclid(1_000_000)));
        m.idle_partitions.set(w.idle.len() as i64);
        if !completer {
            self.state.idle.clear();
            return;
        }
        let now: BTreeSet<String> = w.idle.iter().cloned().collect();
        for p in now.difference(&self.state.idle) {
            tracing::info!(pipeline = %self.pipeline, partition = %p, "source partition idle; it no longer holds the watermark back");
        }
        for p in self.state.idle.difference(&now) {
            tracing::info!(pipeline = %self.pipeline, partition = %p, "source partition active again");
        }
        self.state.idle = now;
    }

    /// Creates the marker in every partition directory whose bucket ends in `(from, to]`
    /// (`from` `None`: every bucket ending at or before `to`). Returns how many directories.
    async fn mark_range(&self, from: Option<i64>, to: i64) -> Result<usize, String> {
        let dirs = self.dirs_in(from, to).await?;
        for dir in &dirs {
            self.mark(dir).await.map_err(|e| e.to_string())?;
        }
        crate::crash::point("after_markers", "with the markers written, before recording them");
        Ok(dirs.len())
    }

    /// The partition directories (relative to the table) of buckets ending in `(from, to]`.
    async fn dirs_in(&self, from: Option<i64>, to: i64) -> Result<Vec<String>, String> {
        let clock = &self.completion.clock;
        let leaves = crate::sink::partition_dirs(self.store.as_ref(), &self.root, clock.segment_count())
            .await
            .map_err(|e| e.to_string())?;
        Ok(leaves
            .into_iter()
            .filter(|d| clock.bucket_of_dir(d).is_some_and(|b| b.end <= to && from.is_none_or(|f| b.end > f)))
            .collect())
    }

    /// Creates `dir`'s marker if absent, and with compaction puts `dir` on the compaction
    /// round's todo list (again: late rows may have come with this marking).
    async fn mark(&self, dir: &str) -> Result<(), StoreError> {
        let path = format!("{}/{dir}/{}", self.root, self.settings.marker);
        if records::create_empty(self.store.as_ref(), &path).await? {
            self.watch.metrics.partitions_completed.inc();
            tracing::debug!(pipeline = %self.pipeline, dir, "partition complete: marker created");
        }
        if self.compaction {
            crate::compaction::todo::add(self.store.as_ref(), &self.root, dir).await?;
        }
        Ok(())
    }

    /// Markers for directories published by this instance whose bucket is complete: late rows,
    /// and directories born after the pass that decided their bucket listed the table.
    /// With `sink.hive` they also wait for their metastore parameter ([`Self::hive_late`]).
    async fn mark_published(&mut self) {
        let dirs = self.completion.take_to_mark();
        let mut failed = Vec::new();
        for dir in dirs {
            match self.mark(&dir).await {
                Ok(()) if self.hive.is_some() => {
                    self.state.hive_late.insert(dir);
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::debug!(pipeline = %self.pipeline, dir, error = %e, "completion: marker not created; retrying next pass");
                    failed.push(dir);
                }
            }
        }
        self.completion.retry_later(failed);
    }

    /// `sink.hive`: sets [`HIVE_COMPLETE`] and [`HIVE_WATERMARK`] on the metastore partition of
    /// every directory of buckets ending in `(from, to]`, adding it first if its registration
    /// is still pending. A partition that already says complete is not written again. True
    /// when every partition says so; false (logged) to try again on the next pass.
    async fn set_hive_parameters(&mut self, from: Option<i64>, to: i64, watermark_at: i64) -> bool {
        let dirs = match self.dirs_in(from, to).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(pipeline = %self.pipeline, error = %e, "completion: cannot list partitions for the metastore");
                return false;
            }
        };
        self.hive_mark(&dirs, watermark_at).await
    }

    /// Sets the completion parameters on the metastore partitions of `dirs` (see
    /// [`Self::set_hive_parameters`]). A failure is logged once per cause.
    async fn hive_mark(&mut self, dirs: &[String], watermark_at: i64) -> bool {
        let Some(HiveTarget { config: hive, keys, location }) = self.hive.clone() else { return true };
        if self.state.hive_client.is_none() {
            match MetastoreClient::new(&hive.metastore, crate::metastore::registrar::CALL_TIMEOUT) {
                Ok(c) => self.state.hive_client = Some(c),
                Err(e) => {
                    tracing::warn!(pipeline = %self.pipeline, error = %e, "completion: no metastore client");
                    return false;
                }
            }
        }
        let client = self.state.hive_client.as_ref().expect("just set");
        let location = location.trim_end_matches('/');
        let result: Result<bool, crate::metastore::MetastoreError> = async {
            let mut table = None;
            for dir in dirs {
                let Some(values) = crate::partition::hive_values(dir, &keys) else { continue };
                let mut part = client.get_partition(&hive.database, &hive.table, &values).await?;
                if part.is_none() {
                    if table.is_none() {
                        table = client.get_table(&hive.database, &hive.table).await?;
                    }
                    // The registrar creates the table (the metastore may have been down at start).
                    let Some(t) = &table else { return Ok(false) };
                    client.add_partition(t, &values, &format!("{location}/{dir}")).await?;
                    part = client.get_partition(&hive.database, &hive.table, &values).await?;
                }
                let Some(mut part) = part else { continue };
                if part.parameters.contains_key(HIVE_COMPLETE) {
                    continue;
                }
                part.parameters.insert(HIVE_COMPLETE.to_string(), "true".to_string());
                part.parameters.insert(HIVE_WATERMARK.to_string(), micros_text(watermark_at));
                client.alter_partition(&hive.database, &hive.table, &part).await?;
                crate::crash::point("mid_metastore", "with a metastore partition marked complete");
            }
            Ok(true)
        }
        .await;
        match result {
            Ok(done) => {
                if done && self.state.hive_failing.take().is_some() {
                    tracing::info!(pipeline = %self.pipeline, "completion: metastore partitions are marked complete again");
                }
                done
            }
            Err(e) => {
                let text = e.to_string();
                let key = cause_key(&text);
                if self.state.hive_failing.as_deref() != Some(key.as_str()) {
                    tracing::warn!(
                        pipeline = %self.pipeline, error = first_line(&text),
                        "completion: cannot mark metastore partitions complete; markers are written, the parameters follow when it answers"
                    );
                    self.state.hive_failing = Some(key);
                }
                false
            }
        }
    }
}

/// µs since the epoch as RFC 3339 UTC, for logs and the metastore parameter.
pub fn micros_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| us.to_string())
}
