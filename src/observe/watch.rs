//! What the daemon knows about each pipeline's health, kept where the pipeline reports it and
//! read by the HTTP endpoints: state, the problems that make it not ready, lag, the last
//! commit, recent errors and the 15-minute history the status page draws.
//!
//! Readiness and liveness are derived here, once:
//! - **ready**: the pipeline runs and has no open problem (its source and store answer, its
//!   commits go through, no partition waits for a person).
//! - **stuck**: it runs, its lag is above zero, and nothing was committed for longer than
//!   [`stuck_after`] (a multiple of `roll.max_age`: a healthy pipeline commits at least once per
//!   `roll.max_age` while it has data).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::metrics::{ErrorKind, Metrics, PipelineMetrics};
use super::status::{DaemonStatus, History, PipelineState, PipelineStatus, RecentError, RECENT_ERRORS};
use crate::retry::cause_key;
use crate::source::StreamId;

/// One point of the history per this interval; 180 points are the status page's 15 minutes.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(5);
const HISTORY_POINTS: usize = 180;

/// A running pipeline with lag that has committed nothing for this long is stuck: three roll
/// ages (a healthy pipeline commits at least once per `roll.max_age` while it has data), and
/// at least two minutes so that a short store hiccup does not count.
pub fn stuck_after(roll_max_age: Duration) -> Duration {
    (roll_max_age * 3).max(Duration::from_secs(120))
}

/// Whose fault a problem is; one open problem per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKey {
    Source,
    Store,
    Commit,
    /// A stream (partition) that waits for a person.
    Stream(String),
    /// The pipeline stopped with an error (restarting).
    Pipeline,
    /// `sink.hive`: the metastore does not answer or refuses the table; files still land, the
    /// table does not show them yet.
    Metastore,
}

impl ProblemKey {
    fn kind(&self) -> ErrorKind {
        match self {
            ProblemKey::Source => ErrorKind::Source,
            ProblemKey::Store => ErrorKind::Store,
            ProblemKey::Commit => ErrorKind::Commit,
            ProblemKey::Stream(_) => ErrorKind::Recovery,
            ProblemKey::Pipeline => ErrorKind::Pipeline,
            ProblemKey::Metastore => ErrorKind::Metastore,
        }
    }

    /// Whether the fault holds the consumer loop back (a store or broker it waits on), so the
    /// watchdog must not take a silent loop for a wedged one. A metastore outage never does:
    /// registration runs beside landing.
    fn holds_back_consumer(&self) -> bool {
        !matches!(self, ProblemKey::Metastore)
    }
}

/// The daemon's view of all pipelines, shared by the pipelines (writers) and the server.
pub struct Observer {
    pub metrics: Metrics,
    started: SystemTime,
    clock: Instant,
    pipelines: Mutex<Vec<Arc<PipelineWatch>>>,
}

impl Observer {
    pub fn new() -> Arc<Observer> {
        Arc::new(Observer {
            metrics: Metrics::new(),
            started: SystemTime::now(),
            clock: Instant::now(),
            pipelines: Mutex::new(Vec::new()),
        })
    }

    /// Registers a pipeline; its series and status exist from now on.
    pub fn pipeline(&self, name: &str, source: &str, table: &str, stuck_after: Duration) -> Arc<PipelineWatch> {
        let watch = Arc::new(PipelineWatch {
            metrics: self.metrics.pipeline(name),
            name: name.to_string(),
            source: source.to_string(),
            table: table.to_string(),
            stuck_after,
            clock: self.clock,
            heartbeat_ms: AtomicU64::new(0),
            writer_buffered: AtomicU64::new(0),
            writer_open_files: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        });
        self.pipelines.lock().expect("pipelines lock").push(watch.clone());
        watch
    }

    fn all(&self) -> Vec<Arc<PipelineWatch>> {
        self.pipelines.lock().expect("pipelines lock").clone()
    }

    /// Adds a history point to every pipeline; called every [`HISTORY_INTERVAL`].
    pub fn sample(&self) {
        for p in self.all() {
            p.sample();
        }
    }

    pub fn status(&self) -> DaemonStatus {
        let now = Instant::now();
        let pipelines: Vec<PipelineStatus> = self.all().iter().map(|p| p.status(now)).collect();
        DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: rfc3339(self.started),
            uptime_seconds: self.clock.elapsed().as_secs_f64(),
            ready: pipelines.iter().all(|p| p.ready),
            healthy: pipelines.iter().all(|p| !p.stuck),
            history_interval_seconds: HISTORY_INTERVAL.as_secs_f64(),
            pipelines,
        }
    }

    /// For the systemd watchdog: every running pipeline's consumer loop went round within
    /// `within`, or it waits on a fault that is already reported (a hung store holds the
    /// consumer back by design; restarting would not help, and `/ready` says so). A silent
    /// wedged loop stops the keep-alives, and systemd restarts the daemon.
    pub fn alive(&self, within: Duration) -> Result<(), String> {
        let now_ms = self.clock.elapsed().as_millis() as u64;
        for p in self.all() {
            {
                let inner = p.inner.lock().expect("watch lock");
                if inner.state != PipelineState::Running || inner.problems.keys().any(ProblemKey::holds_back_consumer) {
                    continue;
                }
            }
            let beat = p.heartbeat_ms.load(Ordering::Relaxed);
            let silent = Duration::from_millis(now_ms.saturating_sub(beat));
            if silent > within {
                return Err(format!(
                    "pipeline {}: its consumer loop has not gone round for {:.0} s",
                    p.name,
                    silent.as_secs_f64()
                ));
            }
        }
        Ok(())
    }
}

/// A problem is one sentence: the first line of an error (a NameNode exception carries its
/// Java stack trace after it), at most 1,000 characters.
fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim_end();
    match line.char_indices().nth(1000) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One pipeline, as its driver, writer and supervisor report it.
pub struct PipelineWatch {
    pub metrics: PipelineMetrics,
    name: String,
    source: String,
    table: String,
    stuck_after: Duration,
    clock: Instant,
    /// Milliseconds after `clock` when the consumer loop last went round.
    heartbeat_ms: AtomicU64,
    /// The writer's share of the buffered bytes and its open staged files.
    writer_buffered: AtomicU64,
    writer_open_files: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    state: PipelineState,
    running_since: Option<Instant>,
    problems: BTreeMap<ProblemKey, String>,
    last_commit: Option<Instant>,
    /// Per stream; `None` until the source has reported once.
    lag: Option<BTreeMap<StreamId, u64>>,
    consumer_buffered: u64,
    landed_at_last_sample: u64,
    rejected_by_reason: BTreeMap<String, u64>,
    restarts: u64,
    recent_errors: VecDeque<RecentError>,
    history: VecDeque<(f64, Option<u64>)>,
    completion: Option<super::status::CompletionStatus>,
    compaction: Option<super::status::CompactionStatus>,
}

impl Inner {
    fn ready(&self) -> bool {
        self.state == PipelineState::Running && self.problems.is_empty()
    }

    fn total_lag(&self) -> Option<u64> {
        self.lag.as_ref().map(|l| l.values().sum())
    }

    fn push_error(&mut self, kind: ErrorKind, message: &str) {
        if self.recent_errors.len() == RECENT_ERRORS {
            self.recent_errors.pop_front();
        }
        self.recent_errors.push_back(RecentError {
            at: rfc3339(SystemTime::now()),
            kind: kind.label().to_string(),
            message: message.to_string(),
        });
    }
}

impl PipelineWatch {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn update_up(&self, inner: &Inner) {
        self.metrics.pipeline_up.set(i64::from(inner.ready()));
    }

    /// What the last completion pass found, for `/status`.
    pub fn set_completion(&self, status: super::status::CompletionStatus) {
        self.inner.lock().expect("watch lock").completion = Some(status);
    }

    /// What compaction did so far, for `/status`.
    pub fn set_compaction(&self, status: super::status::CompactionStatus) {
        self.inner.lock().expect("watch lock").compaction = Some(status);
    }

    #[cfg(test)]
    pub fn completion(&self) -> Option<super::status::CompletionStatus> {
        self.inner.lock().expect("watch lock").completion.clone()
    }

    pub fn set_state(&self, state: PipelineState) {
        let mut inner = self.inner.lock().expect("watch lock");
        if state == PipelineState::Running && inner.state != PipelineState::Running {
            inner.running_since = Some(Instant::now());
            self.beat();
        }
        if state == PipelineState::Restarting {
            inner.restarts += 1;
            self.metrics.restarts.inc();
        }
        if state != PipelineState::Running {
            // A new run reports its own connections; old problems (but the pipeline's own)
            // would otherwise outlive it.
            inner.problems.retain(|k, _| *k == ProblemKey::Pipeline);
            inner.lag = None;
        }
        if state == PipelineState::Running {
            inner.problems.remove(&ProblemKey::Pipeline);
        }
        inner.state = state;
        self.update_up(&inner);
    }

    /// Opens (`Some`) or clears (`None`) a problem. Opening one counts an error and lists it
    /// among the recent errors; a problem already open with the same cause counts nothing
    /// (its text is updated). Causes are compared by [`cause_key`]: a commit that fails again
    /// names another partition and a fresh staged file, but it is not a new fault.
    pub fn problem(&self, key: ProblemKey, problem: Option<String>) {
        let mut inner = self.inner.lock().expect("watch lock");
        match problem.map(|t| one_line(&t)) {
            Some(text) => {
                if let Some(open) = inner.problems.get_mut(&key) {
                    if cause_key(open) == cause_key(&text) {
                        *open = text;
                        return;
                    }
                }
                self.metrics.error(key.kind());
                inner.push_error(key.kind(), &text);
                inner.problems.insert(key, text);
            }
            None => {
                if inner.problems.remove(&key).is_none() {
                    return;
                }
            }
        }
        self.update_up(&inner);
    }

    /// A fault that is over as soon as it is met (counted and listed, no open problem).
    pub fn error(&self, kind: ErrorKind, message: &str) {
        self.metrics.error(kind);
        self.inner.lock().expect("watch lock").push_error(kind, &one_line(message));
    }

    /// A stream's position jumped (`on_position_lost`): counted, and listed among the recent
    /// errors as a source fault, since data the commit log promised was given up or re-read.
    pub fn position_jumped(&self, message: &str) {
        self.metrics.position_jumps.inc();
        self.error(ErrorKind::Source, message);
    }

    /// The consumer loop went round.
    pub fn beat(&self) {
        self.heartbeat_ms.store(self.clock.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// A commit was published: `rows` into the table, `rejected` (reason, count) into the
    /// quarantine.
    pub fn committed(&self, rows: u64, rejected: &[(&'static str, u64)], files: u64, bytes: u64) {
        let m = &self.metrics;
        m.events_landed.inc_by(rows);
        m.files_published.inc_by(files);
        m.bytes_landed.inc_by(bytes);
        m.last_commit.set(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64));
        let mut inner = self.inner.lock().expect("watch lock");
        for (reason, n) in rejected {
            m.rejected(reason, *n);
            *inner.rejected_by_reason.entry((*reason).to_string()).or_default() += n;
        }
        inner.last_commit = Some(Instant::now());
        if inner.problems.remove(&ProblemKey::Commit).is_some() {
            self.update_up(&inner);
        }
    }

    /// The lag of every stream the pipeline consumes now (streams not listed are gone).
    pub fn set_lag(&self, lag: BTreeMap<StreamId, u64>) {
        let mut inner = self.inner.lock().expect("watch lock");
        if let Some(old) = &inner.lag {
            for gone in old.keys().filter(|s| !lag.contains_key(*s)) {
                self.metrics.forget_lag(&gone.name, gone.partition);
            }
        }
        for (s, n) in &lag {
            self.metrics.set_lag(&s.name, s.partition, *n);
        }
        inner.lag = Some(lag);
    }

    /// The consumer side's buffered bytes (the writer reports its own share).
    pub fn set_consumer_buffered(&self, bytes: u64) {
        self.inner.lock().expect("watch lock").consumer_buffered = bytes;
        self.metrics.buffered_bytes.set((bytes + self.writer_buffered.load(Ordering::Relaxed)) as i64);
        self.metrics.open_files.set(self.writer_open_files.load(Ordering::Relaxed) as i64);
    }

    /// The writer's buffered bytes (open row groups) and open staged files.
    pub fn set_writer_buffers(&self, bytes: u64, open_files: u64) {
        self.writer_buffered.store(bytes, Ordering::Relaxed);
        self.writer_open_files.store(open_files, Ordering::Relaxed);
    }

    fn sample(&self) {
        let landed = self.metrics.events_landed.get();
        let mut inner = self.inner.lock().expect("watch lock");
        let rate = landed.saturating_sub(inner.landed_at_last_sample) as f64 / HISTORY_INTERVAL.as_secs_f64();
        inner.landed_at_last_sample = landed;
        let lag = inner.total_lag();
        if inner.history.len() == HISTORY_POINTS {
            inner.history.pop_front();
        }
        inner.history.push_back((rate, lag));
    }

    fn status(&self, now: Instant) -> PipelineStatus {
        let inner = self.inner.lock().expect("watch lock");
        let m = &self.metrics;
        let lag = inner.total_lag();
        let since_commit = inner.last_commit.or(inner.running_since).map(|t| now.duration_since(t));
        let stuck = inner.state == PipelineState::Running
            && lag.is_some_and(|l| l > 0)
            && since_commit.is_some_and(|d| d > self.stuck_after);
        let mut problems: Vec<String> = inner.problems.values().cloned().collect();
        if inner.state == PipelineState::Starting && problems.is_empty() {
            problems.push("starting: connecting to the source and recovering the commit log".into());
        }
        if stuck {
            problems.push(format!(
                "stuck: {} messages wait in the source and nothing was committed for {:.0} s (limit {:.0} s); see recent errors",
                lag.unwrap_or(0),
                since_commit.unwrap_or_default().as_secs_f64(),
                self.stuck_after.as_secs_f64()
            ));
        }
        PipelineStatus {
            name: self.name.clone(),
            source: self.source.clone(),
            table: self.table.clone(),
            state: inner.state,
            ready: inner.ready(),
            stuck,
            problems,
            events_received: m.events_received.get(),
            events_landed: m.events_landed.get(),
            events_rejected: inner.rejected_by_reason.values().sum(),
            rejected_by_reason: inner.rejected_by_reason.clone(),
            events_duplicate: m.events_duplicate.get(),
            bytes_received: m.bytes_received.get(),
            bytes_landed: m.bytes_landed.get(),
            files_published: m.files_published.get(),
            events_per_second: inner.history.back().map_or(0.0, |(rate, _)| *rate),
            lag,
            lag_by_stream: inner.lag.iter().flatten().map(|(s, n)| (s.to_string(), *n)).collect(),
            last_commit_age_seconds: inner.last_commit.map(|t| now.duration_since(t).as_secs_f64()),
            open_files: self.writer_open_files.load(Ordering::Relaxed),
            buffered_bytes: inner.consumer_buffered + self.writer_buffered.load(Ordering::Relaxed),
            restarts: inner.restarts,
            recent_errors: inner.recent_errors.iter().cloned().collect(),
            history: History {
                events_per_second: inner.history.iter().map(|(r, _)| *r).collect(),
                lag: inner.history.iter().map(|(_, l)| *l).collect(),
            },
            completion: inner.completion.clone(),
            compaction: inner.compaction.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> (Arc<Observer>, Arc<PipelineWatch>) {
        let o = Observer::new();
        let w = o.pipeline("clicks", "Kafka", "hdfs://nn/landing/clicks", Duration::from_secs(120));
        (o, w)
    }

    #[test]
    fn ready_only_while_running_without_problems() {
        let (o, w) = watch();
        assert!(!o.status().ready, "starting is not ready");
        w.set_state(PipelineState::Running);
        assert!(o.status().ready);
        assert_eq!(w.metrics.pipeline_up.get(), 1);
        w.problem(ProblemKey::Store, Some("store: hdfs://nn did not answer within 5 s".into()));
        let s = o.status();
        assert!(!s.ready);
        assert_eq!(s.pipelines[0].problems, vec!["store: hdfs://nn did not answer within 5 s".to_string()]);
        assert_eq!(w.metrics.pipeline_up.get(), 0);
        w.problem(ProblemKey::Store, None);
        assert!(o.status().ready);
        w.problem(ProblemKey::Commit, Some("quota exceeded\n\tat org.apache.hadoop.X(X.java:1)".into()));
        assert_eq!(o.status().pipelines[0].problems, vec!["quota exceeded".to_string()], "the first line only");
    }

    #[test]
    fn a_problem_is_counted_once_until_it_changes() {
        let (o, w) = watch();
        w.set_state(PipelineState::Running);
        for _ in 0..3 {
            w.problem(ProblemKey::Source, Some("broker down".into()));
        }
        w.problem(ProblemKey::Source, Some("auth failed".into()));
        let (_, text) = o.metrics.encode();
        assert!(text.contains(r#"landfall_errors_total{kind="source",pipeline="clicks"} 2"#), "{text}");
        assert_eq!(o.status().pipelines[0].recent_errors.len(), 2);
        // A commit failing again on another partition and another staged file is the same cause.
        let denied = |p: u32, file: &str| {
            format!("commit of t/{p} failed: create /t/_landfall/staging/r/{file}: Permission denied: user=lf")
        };
        w.problem(ProblemKey::Commit, Some(denied(0, "a.parquet")));
        w.problem(ProblemKey::Commit, Some(denied(1, "b.parquet")));
        let (_, text) = o.metrics.encode();
        assert!(text.contains(r#"landfall_errors_total{kind="commit",pipeline="clicks"} 1"#), "{text}");
        assert_eq!(o.status().pipelines[0].problems.last(), Some(&denied(1, "b.parquet")), "the newest text");
    }

    #[test]
    fn a_commit_clears_the_commit_problem_and_counts_rejects_by_reason() {
        let (o, w) = watch();
        w.set_state(PipelineState::Running);
        w.problem(ProblemKey::Commit, Some("quota exceeded".into()));
        w.committed(100, &[("invalid_json", 3), ("missing_field", 1)], 2, 4096);
        let s = o.status();
        assert!(s.ready);
        assert_eq!(s.pipelines[0].events_landed, 100);
        assert_eq!(s.pipelines[0].events_rejected, 4);
        let (_, text) = o.metrics.encode();
        assert!(
            text.contains(r#"landfall_events_rejected_total{pipeline="clicks",reason="invalid_json"} 3"#),
            "{text}"
        );
    }

    #[test]
    fn stuck_needs_lag_and_no_commit_for_longer_than_the_limit() {
        let (o, w) = watch();
        w.set_state(PipelineState::Running);
        w.set_lag(BTreeMap::from([(StreamId::new("t", 0), 5)]));
        assert!(o.status().healthy, "just started");
        let later = Instant::now() + Duration::from_secs(121);
        assert!(w.status(later).stuck);
        w.set_lag(BTreeMap::from([(StreamId::new("t", 0), 0)]));
        assert!(!w.status(later).stuck, "no lag, nothing to commit");
    }

    #[test]
    fn lag_of_streams_that_left_is_removed() {
        let (o, w) = watch();
        w.set_lag(BTreeMap::from([(StreamId::new("t", 0), 5), (StreamId::new("t", 1), 7)]));
        w.set_lag(BTreeMap::from([(StreamId::new("t", 1), 2)]));
        let (_, text) = o.metrics.encode();
        assert!(!text.contains(r#"partition="0""#), "{text}");
        assert!(
            text.contains(r#"landfall_consumer_lag_events{partition="1",pipeline="clicks",source="t"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn a_silent_loop_is_not_alive_unless_it_waits_on_a_reported_fault() {
        let (o, w) = watch();
        w.set_state(PipelineState::Running);
        assert!(o.alive(Duration::from_secs(60)).is_ok());
        std::thread::sleep(Duration::from_millis(30));
        let err = o.alive(Duration::from_millis(10)).unwrap_err();
        assert!(err.contains("clicks"), "{err}");
        w.problem(ProblemKey::Store, Some("store: hung".into()));
        assert!(o.alive(Duration::from_millis(10)).is_ok(), "waiting on a reported fault");
        w.problem(ProblemKey::Store, None);
        w.problem(ProblemKey::Metastore, Some("metastore: cannot reach".into()));
        assert!(o.alive(Duration::from_millis(10)).is_err(), "a metastore outage does not hold the loop back");
        w.beat();
        assert!(o.alive(Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn history_keeps_fifteen_minutes_of_rates() {
        let (o, w) = watch();
        for _ in 0..200 {
            w.metrics.events_landed.inc_by(50);
            o.sample();
        }
        let s = o.status();
        assert_eq!(s.pipelines[0].history.events_per_second.len(), HISTORY_POINTS);
        assert_eq!(s.pipelines[0].events_per_second, 10.0);
    }
}
