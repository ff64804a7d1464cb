//! The writer task: turns chunks of rows into staged Parquet files in the store, and commits a
//! source partition's files when the consumer cuts a range (commit log: commit point, publish).
//! Parquet encoding is CPU work done off the consumer thread; the store calls are async I/O.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;

use super::partitions::Trigger;
use crate::commit::{self, CommitError, CommitLog, RunContext, StagedFile};
use crate::completion::Completion;
use crate::metastore::registrar::Registrar;
use crate::observe::PipelineWatch;
use crate::parquet::StagedParquetFile;
use crate::sink::FileStore;
use crate::source::StreamId;

/// Work for the writer, in the order the consumer produced it.
pub enum WriterMsg {
    /// Rows for the file at `dir` (a Hive path, or the quarantine dir) of `stream`, with the
    /// room they took in the hand-off ([`super::handoff`]), given back once appended.
    Append { stream: StreamId, epoch: u64, dir: String, batch: RecordBatch, room: super::handoff::Room },
    /// Close every file of `stream` and commit them as the offsets `start..=end`; queue sources
    /// also record the `message_id`s published (empty for offset sources).
    /// `rejected`: the range's quarantined rows per reason code, reported once published.
    /// `event_max`: the greatest clock value among its rows, with partition completion.
    /// `trigger`: what cut the range, reported back once published.
    Commit {
        stream: StreamId,
        epoch: u64,
        start: i64,
        end: i64,
        ids: Vec<String>,
        rejected: Vec<(&'static str, u64)>,
        event_max: Option<i64>,
        trigger: Trigger,
    },
    /// `stream` was revoked or fenced: delete its staged files, forget it.
    Drop { stream: StreamId },
}

/// What the writer tells the consumer thread.
#[derive(Debug)]
pub enum Feedback {
    /// Published: the table now holds every offset before `next`.
    /// `rejected`: quarantined rows per reason code. `files` and `bytes` count the quarantine
    /// too; `file_sizes` are the table's files alone (one per Hive directory), as written.
    Committed {
        stream: StreamId,
        epoch: u64,
        next: i64,
        files: usize,
        rows: u64,
        rejected: Vec<(&'static str, u64)>,
        bytes: u64,
        file_sizes: Vec<u64>,
        trigger: Trigger,
    },
    /// A file of `stream` reached `roll.max_bytes`: cut a commit.
    RollRequested { stream: StreamId, epoch: u64 },
    /// The range could not be committed (fenced by another owner, or a staged file was lost
    /// to a store failure): drop the partition's state and resume from the commit log.
    /// `answers_commit` is true when this is the answer to a `Commit` (the consumer counts
    /// commits in flight), false when a write failed before the range was cut.
    /// `superseded` is true when another owner committed the range (the log moved past it, or
    /// the commit was fenced): the fence did its job, nothing is wrong with this member, so
    /// the rewind is not a readiness problem (an idle member would stay unready until its next
    /// commit, which may never come).
    Rewind { stream: StreamId, epoch: u64, reason: String, answers_commit: bool, superseded: bool },
    /// Retrying cannot help (a bad path, a conflict in the table): the pipeline stops.
    /// Refusals that a person ends (permission, quota) rewind instead: the fix is picked up
    /// without a restart.
    Fatal { message: String },
}

/// Why rows could not be added to a staged file.
#[derive(Debug, thiserror::Error)]
enum AppendError {
    #[error("creating a staged file: {0}")]
    Store(crate::sink::StoreError),
    #[error(transparent)]
    Parquet(#[from] crate::parquet::ParquetWriteError),
}

impl AppendError {
    /// Transient failures, and refusals a person ends (permission, quota), rewind the range
    /// and retry it with the capped rewind backoff; others stop the pipeline.
    fn rewinds(&self) -> bool {
        match self {
            AppendError::Store(e) => e.is_transient() || e.needs_person(),
            AppendError::Parquet(e) => e.is_transient() || e.needs_person(),
        }
    }
}

/// How long creating a staged file is retried in place before the range is rewound. The
/// rewind reports the cause (`/ready` names it) and backs off per partition up to a minute;
/// retrying in place for ever held the consumer back silently (a NameNode left in safe mode
/// showed as ready while nothing landed).
const CREATE_RETRY_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

struct OpenFile {
    staged: String,
    writer: StagedParquetFile,
    rows: u64,
}

struct PartitionFiles {
    epoch: u64,
    files: HashMap<String, OpenFile>,
}

/// Commits of one partition running at once: one being recorded, one closing its files.
const COMMITS_PER_PARTITION: usize = 2;

/// Messages waiting in the backlog, at most: past it the writer takes nothing new from the
/// consumer until commit slots free up. Rows there also hold their hand-off room, which
/// bounds their bytes.
const BACKLOG_LIMIT: usize = 1024;

/// The writer's state across messages.
#[derive(Default)]
struct State {
    parts: HashMap<StreamId, PartitionFiles>,
    /// Per partition, the newest epoch that failed: its late appends and commits are void
    /// (the consumer rewinds to a newer epoch, so a failed range can never be committed).
    dead: HashMap<StreamId, u64>,
    backlog: Backlog,
}

/// Per partition, the messages behind a commit that found both of its partition's commit
/// slots taken, in arrival order: they wait there, not in the channel, so the partitions
/// behind them in the channel go on (one partition's slow commits used to hold every other
/// partition's commits and rows back).
#[derive(Default)]
struct Backlog {
    queues: HashMap<StreamId, std::collections::VecDeque<WriterMsg>>,
    len: usize,
}

impl Backlog {
    fn holds(&self, stream: &StreamId) -> bool {
        self.queues.contains_key(stream)
    }

    fn push_back(&mut self, msg: WriterMsg) {
        self.queues.entry(msg.stream().clone()).or_default().push_back(msg);
        self.len += 1;
    }

    fn push_front(&mut self, msg: WriterMsg) {
        self.queues.entry(msg.stream().clone()).or_default().push_front(msg);
        self.len += 1;
    }

    fn pop_front(&mut self, stream: &StreamId) -> Option<WriterMsg> {
        let queue = self.queues.get_mut(stream)?;
        let msg = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(stream);
        }
        self.len -= usize::from(msg.is_some());
        msg
    }
}

impl WriterMsg {
    fn stream(&self) -> &StreamId {
        match self {
            WriterMsg::Append { stream, .. } | WriterMsg::Commit { stream, .. } | WriterMsg::Drop { stream } => stream,
        }
    }
}

pub struct Writer {
    pub store: Arc<dyn FileStore>,
    pub table_root: String,
    pub run: RunContext,
    pub props: WriterProperties,
    /// `roll.max_bytes`: a file this large asks the consumer for a commit.
    pub max_bytes: u64,
    /// `roll.max_buffered_bytes`: over it, the largest in-progress row group is shipped early.
    pub max_buffered_bytes: usize,
    /// Published file suffix, e.g. `zstd.parquet`.
    pub ext: String,
    pub feedback: mpsc::UnboundedSender<Feedback>,
    /// The newest commit of each partition, running or done: the next commit of the
    /// partition waits for it and takes over its commit log. Each answers (its epoch, its log
    /// if it succeeded, whether it failed).
    pub pending: HashMap<StreamId, PendingCommit>,
    /// Per partition, the commits allowed to run at once ([`COMMITS_PER_PARTITION`]).
    pub slots: HashMap<StreamId, Arc<tokio::sync::Semaphore>>,
    /// Where commit durations and the writer's buffers are reported.
    pub watch: Arc<PipelineWatch>,
    /// Who is told what each commit published.
    pub downstream: Downstream,
}

/// Who is told, after each publish, which directories it published into: off the commit path,
/// each one only takes a note.
#[derive(Clone, Default)]
pub struct Downstream {
    /// `sink.hive`: registers the directories as metastore partitions.
    pub registrar: Option<Arc<Registrar>>,
    /// `partition.completion`: counts late rows and marks directories of complete buckets.
    pub completion: Option<Arc<Completion>>,
}

/// Starts the writer task of a pipeline: returns the channel to feed it, the feedback it
/// answers with, and its handle.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub fn spawn(
    plan: &super::plan::Plan,
    store: Arc<dyn FileStore>,
    table_root: &str,
    run_id: &str,
    shutdown: &super::Shutdown,
    handle: &tokio::runtime::Handle,
    watch: Arc<PipelineWatch>,
    downstream: Downstream,
) -> (super::handoff::ToWriter, mpsc::UnboundedReceiver<Feedback>, tokio::task::JoinHandle<()>) {
    let (feedback_tx, feedback_rx) = mpsc::unbounded_channel();
    let (tx, rx) = mpsc::channel::<WriterMsg>(64);
    let writer = Writer {
        store,
        table_root: table_root.to_string(),
        run: RunContext { run_id: run_id.to_string(), config: plan.commit.clone(), stop: shutdown.subscribe_expired() },
        props: plan.parquet.clone(),
        max_bytes: plan.policy.max_bytes,
        max_buffered_bytes: plan.limits.max_buffered_bytes,
        ext: plan.ext.clone(),
        feedback: feedback_tx,
        pending: HashMap::new(),
        slots: HashMap::new(),
        watch,
        downstream,
    };
    let task = handle.spawn(writer.run(rx));
    let tx = super::handoff::ToWriter::new(tx, plan.cfg.roll.handoff_bytes(), handle.clone());
    (tx, feedback_rx, task)
}

/// Memory an open row group holds beyond its buffered bytes, for the budget. Measured: 800
/// open files took ~140 MB more with zstd than with snappy, ~175 KB per file; rounded up for
/// the page buffers every codec has.
pub const ROW_GROUP_OVERHEAD: usize = 256 << 10;

/// A commit running in the background; see [`Writer::pending`].
pub type PendingCommit = tokio::task::JoinHandle<(u64, Option<CommitLog>, bool)>;

/// What a background commit needs: cheap clones of the writer's settings.
#[derive(Clone)]
struct Committer {
    store: Arc<dyn FileStore>,
    table_root: String,
    run: RunContext,
    ext: String,
    downstream: Downstream,
}

impl Writer {
    pub async fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>) {
        let mut state = State::default();
        // Commit tasks say when they give a partition's commit slot back.
        let (freed_tx, mut freed_rx) = mpsc::unbounded_channel::<StreamId>();
        // Staged files of crashed or fenced runs are removed once older than the grace period,
        // at start-up (by the consumer) and every ten minutes while running.
        let mut cleanup = tokio::time::interval(std::time::Duration::from_secs(600));
        cleanup.tick().await;
        loop {
            let msg = tokio::select! {
                Some(stream) = freed_rx.recv() => {
                    self.drain(&mut state, &stream, &freed_tx).await;
                    continue;
                }
                msg = rx.recv(), if state.backlog.len < BACKLOG_LIMIT => msg,
                _ = cleanup.tick() => {
                    let (store, root, grace) = (self.store.clone(), self.table_root.clone(), self.run.config.grace);
                    tokio::spawn(async move {
                        if let Err(e) = commit::clean_orphans(store.as_ref(), &root, grace).await {
                            tracing::debug!(error = %e, "orphan cleanup failed; retrying in ten minutes");
                        }
                    });
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            if state.backlog.holds(msg.stream()) {
                state.backlog.push_back(msg);
            } else if let Some(waiting) = self.handle(&mut state, msg, &freed_tx).await {
                state.backlog.push_back(waiting);
            }
        }
        // The consumer is gone: what waits for a commit slot still goes, in order.
        while state.backlog.len > 0 {
            let Some(stream) = freed_rx.recv().await else { break };
            self.drain(&mut state, &stream, &freed_tx).await;
        }
        for (_, files) in state.parts {
            self.discard(files.files);
        }
        for (_, handle) in self.pending.drain() {
            let _ = handle.await;
        }
    }

    /// Handles the messages of `stream` that waited for one of its commit slots, until the
    /// next commit finds none free.
    async fn drain(&mut self, state: &mut State, stream: &StreamId, freed: &mpsc::UnboundedSender<StreamId>) {
        while let Some(msg) = state.backlog.pop_front(stream) {
            if let Some(waiting) = self.handle(state, msg, freed).await {
                state.backlog.push_front(waiting);
                return;
            }
        }
    }

    /// Handles one message; gives a commit back when its partition has no commit slot free
    /// (it and the partition's later messages then wait in the backlog).
    async fn handle(
        &mut self,
        state: &mut State,
        msg: WriterMsg,
        freed: &mpsc::UnboundedSender<StreamId>,
    ) -> Option<WriterMsg> {
        let State { parts, dead, .. } = state;
        let is_dead = |dead: &HashMap<StreamId, u64>, stream: &StreamId, epoch: u64| {
            dead.get(stream).is_some_and(|d| epoch <= *d)
        };
        match msg {
            WriterMsg::Append { stream, epoch, dir, batch, room } => {
                if is_dead(dead, &stream, epoch) {
                    return None;
                }
                let files =
                    parts.entry(stream.clone()).or_insert_with(|| PartitionFiles { epoch, files: HashMap::new() });
                if files.epoch != epoch {
                    // A newer epoch: whatever the old one staged will never be committed.
                    self.discard(std::mem::take(&mut files.files));
                    files.epoch = epoch;
                }
                if let Err(e) = self.append(files, &stream, &dir, &batch).await {
                    self.void(parts, dead, stream, epoch, e.rewinds(), e.to_string());
                }
                self.enforce_budget(parts, dead).await;
                drop(room); // the rows are in the writer's budget now
            }
            WriterMsg::Commit { stream, epoch, start, end, ids, rejected, event_max, trigger } => {
                let live = parts.get(&stream).is_some_and(|s| s.epoch == epoch) && !is_dead(dead, &stream, epoch);
                // Every commit gets an answer: the consumer counts commits in flight.
                if !live {
                    self.discard(parts.remove(&stream).map(|s| s.files).unwrap_or_default());
                    let reason = "the range was voided by an earlier failure".to_string();
                    let _ = self.feedback.send(Feedback::Rewind {
                        stream,
                        epoch,
                        reason,
                        answers_commit: true,
                        superseded: false,
                    });
                    return None;
                }
                // Partitions commit concurrently. Within a partition, a commit closes its
                // files (each close waits on HDFS) while the previous commit is still being
                // recorded, then waits for it: the log records them in order. At most two
                // commits per partition run at once; a third waits in the backlog with the
                // partition's later messages while other partitions go on, and rows waiting
                // there keep their room in the hand-off, so a slow store still holds the
                // consumer back instead of queueing commits (and staged files aging toward
                // the grace period) without bound.
                let slots = self
                    .slots
                    .entry(stream.clone())
                    .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(COMMITS_PER_PARTITION)))
                    .clone();
                let Ok(slot) = slots.try_acquire_owned() else {
                    return Some(WriterMsg::Commit { stream, epoch, start, end, ids, rejected, event_max, trigger });
                };
                let files = parts.remove(&stream).map(|s| s.files).unwrap_or_default();
                let previous = self.pending.remove(&stream);
                let committer = self.committer();
                let feedback = self.feedback.clone();
                let freed = freed.clone();
                let task_stream = stream.clone();
                let duration = self.watch.metrics.commit_duration.clone();
                let handle = tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let (log, mut fb) = committer
                        .commit(previous, &task_stream, epoch, Cut { start, end, ids, event_max, trigger }, files)
                        .await;
                    duration.observe(started.elapsed().as_secs_f64());
                    if let Feedback::Committed { rejected: reasons, .. } = &mut fb {
                        *reasons = rejected;
                    }
                    drop(slot);
                    let _ = freed.send(task_stream);
                    let failed = !matches!(fb, Feedback::Committed { .. });
                    let _ = feedback.send(fb);
                    (epoch, log, failed)
                });
                self.pending.insert(stream, handle);
                self.report_buffers(parts);
            }
            WriterMsg::Drop { stream } => {
                if let Some(files) = parts.remove(&stream) {
                    dead.insert(stream, files.epoch);
                    self.discard(files.files);
                }
                self.report_buffers(parts);
            }
        }
        None
    }

    fn committer(&self) -> Committer {
        Committer {
            store: self.store.clone(),
            table_root: self.table_root.clone(),
            run: self.run.clone(),
            ext: self.ext.clone(),
            downstream: self.downstream.clone(),
        }
    }

    async fn append(
        &self,
        state: &mut PartitionFiles,
        stream: &StreamId,
        dir: &str,
        batch: &RecordBatch,
    ) -> Result<(), AppendError> {
        if !state.files.contains_key(dir) {
            // A fresh name per attempt: a create that timed out may still have taken effect.
            let backoff =
                commit::Backoff { give_up_after: Some(CREATE_RETRY_LIMIT), ..self.run.config.backoff.clone() };
            let (staged, out) = commit::with_backoff("create a staged file", &backoff, &self.run.stop, || async {
                let staged = commit::staged_path(&self.table_root, &self.run.run_id);
                let out = self.store.create(&staged).await?;
                // Raw payloads may hold personal data: private before the first byte.
                if crate::quarantine::is_rejected_dir(dir) {
                    self.store.set_permission(&staged, self.run.config.quarantine_mode).await?;
                }
                Ok((staged, out))
            })
            .await
            .map_err(|e| AppendError::Store(e.into_last()))?;
            let writer = StagedParquetFile::new(&staged, out, batch.schema(), self.props.clone())?;
            state.files.insert(dir.to_string(), OpenFile { staged, writer, rows: 0 });
        }
        let file = state.files.get_mut(dir).expect("inserted above");
        file.writer.write(batch).await?;
        file.rows += batch.num_rows() as u64;
        if file.writer.estimated_file_bytes() >= self.max_bytes {
            let _ = self.feedback.send(Feedback::RollRequested { stream: stream.clone(), epoch: state.epoch });
        }
        Ok(())
    }

    /// Reports what the open files hold once files were taken away (commit, drop); appends
    /// report it from [`Self::enforce_budget`].
    fn report_buffers(&self, parts: &HashMap<StreamId, PartitionFiles>) {
        let files = parts.values().flat_map(|s| s.files.values());
        let held = |f: &OpenFile| {
            f.writer.in_progress_bytes() + if f.writer.has_open_row_group() { ROW_GROUP_OVERHEAD } else { 0 }
        };
        let (count, bytes) = files.fold((0, 0), |(n, b), f| (n + 1, b + held(f) as u64));
        self.watch.set_writer_buffers(bytes, count);
    }

    /// Keeps the rows buffered in open files (row groups being built) under the budget by
    /// shipping the largest row groups early. Runs after each chunk: O(open files).
    ///
    /// An open row group also costs a fixed [`ROW_GROUP_OVERHEAD`] (a column writer per leaf
    /// column, each with page buffers and a zstd context) that its byte count does not show:
    /// with many small files open at once (800 on the 200-partition benchmark) that overhead
    /// is most of the memory, and counting it makes the budget close those row groups early.
    async fn enforce_budget(&self, parts: &mut HashMap<StreamId, PartitionFiles>, dead: &mut HashMap<StreamId, u64>) {
        let mut total = 0usize;
        let mut open: Vec<(usize, StreamId, String)> = Vec::new();
        let mut files = 0;
        for (stream, state) in parts.iter() {
            files += state.files.len();
            for (dir, file) in &state.files {
                let bytes = file.writer.in_progress_bytes();
                if file.writer.has_open_row_group() {
                    total += bytes + ROW_GROUP_OVERHEAD;
                    open.push((bytes + ROW_GROUP_OVERHEAD, stream.clone(), dir.clone()));
                } else {
                    total += bytes;
                }
            }
        }
        self.watch.set_writer_buffers(total as u64, files as u64);
        if total <= self.max_buffered_bytes {
            return;
        }
        // One pass, largest first: a flush frees the row group (its overhead and most of its
        // bytes); what stays is encoded bytes waiting to ship, which the next chunk ships.
        open.sort_unstable_by_key(|(size, _, _)| std::cmp::Reverse(*size));
        for (size, stream, dir) in open {
            if total <= self.max_buffered_bytes {
                return;
            }
            let Some(state) = parts.get_mut(&stream) else { continue };
            let epoch = state.epoch;
            let Some(file) = state.files.get_mut(&dir) else { continue };
            match file.writer.flush_row_group().await {
                Ok(()) => total = total.saturating_sub(size).saturating_add(file.writer.in_progress_bytes()),
                Err(e) => self.void(parts, dead, stream, epoch, e.is_transient() || e.needs_person(), e.to_string()),
            }
        }
    }

    /// A write of `stream` failed: its staged files go, its epoch is void (late chunks and commits
    /// of it are ignored), and the consumer rewinds (`rewind`: transient, or refused until a
    /// person acts) or the pipeline stops.
    fn void(
        &self,
        parts: &mut HashMap<StreamId, PartitionFiles>,
        dead: &mut HashMap<StreamId, u64>,
        stream: StreamId,
        epoch: u64,
        rewind: bool,
        reason: String,
    ) {
        if let Some(state) = parts.remove(&stream) {
            self.discard(state.files);
        }
        dead.insert(stream.clone(), epoch);
        let fb = if rewind {
            Feedback::Rewind { stream, epoch, reason, answers_commit: false, superseded: false }
        } else {
            Feedback::Fatal { message: reason }
        };
        let _ = self.feedback.send(fb);
    }

    /// Deletes staged files that will never be committed (best effort: orphans are also
    /// removed by age at start-up).
    /// Runs in the background: with the store down each delete waits for its timeout, and the
    /// writer must not stall on best-effort work (orphan cleanup catches what fails here).
    fn discard(&self, files: HashMap<String, OpenFile>) {
        if files.is_empty() {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            for (_, file) in files {
                drop(file.writer);
                if let Err(e) = store.delete(&file.staged).await {
                    tracing::debug!(path = %file.staged, error = %e, "could not delete a discarded staged file");
                    return;
                }
            }
        });
    }
}

/// What a commit covers: offsets `start..=end`, the queue's `message_id`s among them, the
/// greatest clock value of its rows (with partition completion), and what cut it.
struct Cut {
    start: i64,
    end: i64,
    ids: Vec<String>,
    event_max: Option<i64>,
    trigger: Trigger,
}

impl Committer {
    /// Closes `files`, commits them as `start..=end` of `stream` and publishes them. Returns the
    /// log (positioned after this commit) only on success, and the answer for the consumer.
    async fn commit(
        self,
        previous: Option<PendingCommit>,
        stream: &StreamId,
        epoch: u64,
        Cut { start, end, ids, event_max, trigger }: Cut,
        files: HashMap<String, OpenFile>,
    ) -> (Option<CommitLog>, Feedback) {
        let rewind_as = |reason: String, superseded: bool| {
            (None, Feedback::Rewind { stream: stream.clone(), epoch, reason, answers_commit: true, superseded })
        };
        let rewind = |reason: String| rewind_as(reason, false);
        let source_meta = serde_json::json!({
            "topic": stream.name, "partition": stream.partition, "start_offset": start, "end_offset": end,
        })
        .to_string();
        let mut staged = Vec::with_capacity(files.len());
        let (mut rows, mut bytes) = (0, 0);
        let mut dirs: Vec<_> = files.into_iter().collect();
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        // Seal every file at once (the last row group and the footer are written, so sizes
        // are final), then close them in the background while the previous commit finishes
        // and this one's manifest is written: a close waits for the store to complete the
        // file (on HDFS the DataNode's block report), and the commit point waits for both.
        let meta = vec![("landfall.source".to_string(), source_meta)];
        let sealing = dirs.into_iter().map(|(dir, file)| {
            let meta = meta.clone();
            async move {
                let result = file.writer.seal(meta).await;
                (dir, file.staged, result)
            }
        });
        let mut failure = None;
        let mut sealed = Vec::with_capacity(staged.capacity());
        for (dir, staged_path, result) in futures::future::join_all(sealing).await {
            match result {
                Ok(file) => {
                    let summary = *file.summary();
                    if !crate::quarantine::is_rejected_dir(&dir) {
                        rows += summary.rows;
                    }
                    bytes += summary.bytes;
                    staged.push(StagedFile {
                        staged: staged_path,
                        dir,
                        ext: self.ext.clone(),
                        rows: summary.rows,
                        bytes: summary.bytes,
                    });
                    sealed.push(file);
                }
                Err(e) => {
                    let _ = self.store.delete(&staged_path).await;
                    failure.get_or_insert(format!("writing staged file {staged_path}: {e}"));
                }
            }
        }
        let closing = tokio::spawn(async move {
            let closed = futures::future::join_all(sealed.into_iter().map(|file| file.close())).await;
            closed.into_iter().find_map(Result::err).map_or(Ok(()), |e| Err(e.to_string()))
        });
        let closing =
            async move { closing.await.unwrap_or_else(|e| Err(format!("closing staged files panicked: {e}"))) };
        // Wait for the previous commit of this partition even when this one already failed,
        // so commits of one partition never overlap in the log. Its log continues here if it
        // succeeded in this epoch; if it failed in this epoch, this range cannot follow it.
        let previous = match previous {
            None => None,
            Some(p) => match p.await {
                Ok(done) => Some(done),
                Err(e) => return (None, Feedback::Fatal { message: format!("a commit of {stream} panicked: {e}") }),
            },
        };
        let failure = failure.or_else(|| {
            matches!(previous, Some((done, _, true)) if done == epoch)
                .then(|| "the range was voided by an earlier failure".to_string())
        });
        if let Some(reason) = failure {
            let _ = closing.await;
            self.delete_staged(&staged).await;
            return rewind(reason);
        }
        let count = staged.len();
        let file_sizes: Vec<u64> =
            staged.iter().filter(|f| !crate::quarantine::is_rejected_dir(&f.dir)).map(|f| f.bytes).collect();
        let log = previous.and_then(|(done, log, _)| log.filter(|_| done == epoch));
        let mut log = match log {
            Some(log) => log,
            None => match self.recovered_log(stream).await {
                Ok(log) => log,
                Err(e) => return rewind(format!("cannot recover the commit log: {e}")),
            },
        };
        if let Some(next) = log.next_offset() {
            if next != start {
                // The consumer and the log disagree (another owner committed meanwhile).
                return rewind_as(
                    format!("the commit log resumes at offset {next}, this range starts at {start}"),
                    true,
                );
            }
        }
        let dirs: Vec<(String, u64)> = match (&self.downstream.registrar, &self.downstream.completion) {
            (None, None) => Vec::new(),
            _ => staged.iter().map(|f| (f.dir.clone(), f.rows)).collect(),
        };
        match log.commit_while_closing(start, end, staged, ids, event_max, closing).await {
            Ok(_) => {
                // Published: the registration task adds the new Hive partitions, off this path.
                if let Some(registrar) = &self.downstream.registrar {
                    registrar.published(dirs.iter().map(|(d, _)| d.as_str()));
                }
                if let Some(completion) = &self.downstream.completion {
                    completion.published(dirs.iter().map(|(d, rows)| (d.as_str(), *rows)));
                }
                let committed = Feedback::Committed {
                    stream: stream.clone(),
                    epoch,
                    next: end + 1,
                    files: count,
                    rows,
                    rejected: Vec::new(), // the caller knows them
                    bytes,
                    file_sizes,
                    trigger,
                };
                (Some(log), committed)
            }
            Err(CommitError::Fenced { reason, .. }) => {
                rewind_as(format!("offsets {start}..={end} were committed by another owner (fenced: {reason})"), true)
            }
            Err(e) if is_fatal(&e) => (None, Feedback::Fatal { message: e.to_string() }),
            Err(e) => rewind(e.to_string()),
        }
    }

    /// Deletes the staged files of a commit that will not be made (best effort: orphan cleanup
    /// removes what is left).
    async fn delete_staged(&self, files: &[StagedFile]) {
        for file in files {
            let _ = self.store.delete(&file.staged).await;
        }
    }

    async fn recovered_log(&self, stream: &StreamId) -> Result<CommitLog, CommitError> {
        let mut log =
            CommitLog::new(self.store.clone(), &self.table_root, &stream.name, stream.partition, self.run.clone())?
                .quiet();
        log.recover().await?;
        // The consumer judges redeliveries; the writer needs the window only for pruning.
        drop(log.take_recovered_ids());
        Ok(log)
    }
}

/// Errors that stop the pipeline; everything else rewinds and retries from the commit log,
/// including a store's refusal that a person ends (a permission, a quota): retried with the
/// capped rewind backoff and reported, so the fix is picked up without a restart.
fn is_fatal(e: &CommitError) -> bool {
    use crate::sink::StoreError;
    matches!(e, CommitError::Store(s) if !s.is_transient() && !s.needs_person() && !matches!(s, StoreError::NotFound { .. } | StoreError::AlreadyExists { .. }))
        || matches!(e, CommitError::Invalid(_) | CommitError::Lost { .. } | CommitError::Conflict { .. })
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
