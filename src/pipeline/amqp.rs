//! The consumer thread of a RabbitMQ pipeline.
//!
//! **Queues** (classic, quorum) have no offsets, so Landfall numbers the messages it lands: a
//! *landing sequence* that continues the commit log (`_landfall/commits/<queue>/0/`), which
//! makes every commit tile the one before exactly like a Kafka partition. A delivery is
//! acknowledged (`multiple=true`, up to the last delivery tag of the range) only after the
//! commit holding it is published. Each commit records its `message_id`s; when a session
//! starts (first connect, reconnect, rewind) it waits for the commits in flight, then reads
//! the newest `dedup_window` ids back, and a redelivered message whose id is among them is
//! acknowledged on its own and dropped. A crash between publishing and acknowledging thus
//! lands nothing twice. Messages without a `message_id` cannot be recognised: at-least-once.
//!
//! **Streams** are read by offset (`x-stream-offset` from the commit log) and land exactly
//! once like Kafka; acknowledgements only return credit to the broker.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::consume::RunSummary;
use super::dedup::DedupWindow;
use super::partitions::{PartitionBuffer, RollPolicy};
use super::route::{send_cut, Router};
use super::writer::{Feedback, WriterMsg};
use super::{RunMode, RunOptions, Shutdown};
use crate::commit::{self, CommitConfig, CommitLog, RunContext};
use crate::config::{PipelineConfig, RabbitMqSourceConfig, SourceConfig, StartPosition};
use crate::quarantine::SourcePosition;
use crate::sink::FileStore;
use crate::source::rabbitmq::{self, AmqpError, AmqpSession, StreamStart};
use crate::source::TopicPartition;

/// Deliveries handled per wake-up before feedback and timers are looked at again.
const BATCH: usize = 512;

/// How long a queue must be quiet before `--until-caught-up` asks whether it is empty.
const IDLE: Duration = Duration::from_millis(500);

/// Runs the consumer side of a RabbitMQ pipeline to completion.
pub fn run(
    cfg: PipelineConfig,
    opts: RunOptions,
    shutdown: Shutdown,
    store: Arc<dyn FileStore>,
    table_root: String,
    handle: Handle,
) -> Result<RunSummary, String> {
    let started = Instant::now();
    let SourceConfig::RabbitMq(source) = &cfg.source else {
        return Err("the RabbitMQ consumer was given another source".into());
    };
    let source = source.clone();
    let mut router = Router::new(&cfg)?;
    let mut policy = RollPolicy::of(&cfg.roll);
    if !source.is_stream() {
        policy.max_rows = policy.max_rows.min(source.commit_every());
    }
    let run_id = commit::new_run_id();
    let keep_ids = if source.is_stream() { 0 } else { source.dedup_window };
    let commit_config = CommitConfig { keep_ids, ..CommitConfig::default() };
    let (tx, feedback, writer_task) =
        super::writer::spawn(&cfg, store.clone(), &table_root, &run_id, commit_config.clone(), &shutdown, &handle)?;

    let mut c = Consumer {
        pipeline: cfg.name.clone(),
        tp: TopicPartition { topic: source.queue.clone(), partition: 0 },
        source,
        store,
        table_root,
        run_id,
        commit_config,
        handle: handle.clone(),
        shutdown: shutdown.clone(),
        tx,
        feedback,
        summary: RunSummary { pipeline: cfg.name.clone(), ..Default::default() },
        epoch: 0,
        inflight: 0,
        cut_tags: VecDeque::new(),
        failures: 0,
        last_error: None,
        until_caught_up: opts.mode == RunMode::UntilCaughtUp,
    };
    let outcome = c.sessions(&mut router, &policy, &opts, started);
    drop(c.tx);
    let _ = handle.block_on(async { tokio::time::timeout(Duration::from_secs(5), writer_task).await });
    c.summary.seconds = started.elapsed().as_secs_f64();
    outcome.map(|()| c.summary)
}

/// Why a session ended.
enum SessionEnd {
    /// Shutdown requested or caught up: buffered data was published and acknowledged.
    Done,
    /// The connection or channel was lost, or a commit failed: start a new session.
    Restart(String),
}

struct Consumer {
    pipeline: String,
    tp: TopicPartition,
    source: RabbitMqSourceConfig,
    store: Arc<dyn FileStore>,
    table_root: String,
    run_id: String,
    commit_config: CommitConfig,
    handle: Handle,
    shutdown: Shutdown,
    tx: mpsc::Sender<WriterMsg>,
    feedback: std::sync::mpsc::Receiver<Feedback>,
    summary: RunSummary,
    /// One per session: feedback of an older session's commits must not acknowledge
    /// delivery tags of the current channel.
    epoch: u64,
    inflight: usize,
    /// Cut ranges awaiting publication: (epoch, last sequence of the range, its last tag).
    cut_tags: VecDeque<(u64, i64, u64)>,
    /// Consecutive failed sessions, for the reconnect backoff.
    failures: u32,
    last_error: Option<String>,
    until_caught_up: bool,
}

/// One connection's worth of consuming.
struct Session {
    amqp: AmqpSession,
    buf: PartitionBuffer,
    window: DedupWindow,
    /// Next landing sequence (queues).
    next_seq: i64,
    /// Tag of the last delivery that got a sequence or offset.
    last_tag: u64,
    /// Streams: deliveries since the last credit acknowledgement.
    unacked: u64,
    /// Streams in `--until-caught-up`: the last offset when the session started (`None`:
    /// the stream was empty).
    stream_end: Option<i64>,
    /// The stream was started at `next` (nothing landed, `start: latest`): what was there is
    /// skipped by definition.
    started_at_end: bool,
    last_delivery: Instant,
}

impl Consumer {
    /// Runs sessions until shutdown, until caught up, or a fatal error.
    fn sessions(&mut self, router: &mut Router, policy: &RollPolicy, opts: &RunOptions, started: Instant) -> Result<(), String> {
        loop {
            if self.shutdown.requested() {
                return Ok(());
            }
            let end = match self.start_session()? {
                Ok(session) => {
                    if self.failures > 0 {
                        tracing::info!(pipeline = %self.pipeline, failures = self.failures, "RabbitMQ session restored; consuming again");
                    }
                    self.failures = 0;
                    self.last_error = None;
                    self.consume(session, router, policy, opts, started)?
                }
                Err(e) if e.is_transient() => SessionEnd::Restart(e.to_string()),
                Err(e) => return Err(e.to_string()),
            };
            match end {
                SessionEnd::Done => return Ok(()),
                SessionEnd::Restart(reason) => {
                    self.failures += 1;
                    let delay = Duration::from_millis(500 << self.failures.min(6)).min(Duration::from_secs(30));
                    if self.last_error.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(pipeline = %self.pipeline, %reason, retry_in_ms = delay.as_millis() as u64, "RabbitMQ session ended; reconnecting with backoff (unacknowledged messages are redelivered and deduplicated)");
                        self.last_error = Some(reason);
                    }
                    let until = Instant::now() + delay;
                    while Instant::now() < until && !self.shutdown.requested() {
                        std::thread::sleep(Duration::from_millis(50));
                        self.drain_feedback(None)?;
                    }
                }
            }
        }
    }

    /// Waits for the commits in flight (their ids must be in the window before any
    /// redelivery is judged), reads where the log stands, and connects.
    /// The outer error is fatal to the pipeline (a commit failed for good); the inner one is
    /// RabbitMQ's (retried when transient).
    fn start_session(&mut self) -> Result<Result<Session, AmqpError>, String> {
        let _ = self.tx.blocking_send(WriterMsg::Drop { tp: self.tp.clone() });
        while self.inflight > 0 && !self.shutdown.requested() {
            self.drain_feedback(None)?;
            std::thread::sleep(Duration::from_millis(20));
        }
        let (next, ids) = self.recover();
        let window = DedupWindow::from_ids(&ids);
        drop(ids);
        let stream_start = self.source.is_stream().then(|| match next {
            Some(n) => StreamStart::Offset(n),
            None if self.source.start == StartPosition::Latest => StreamStart::Next,
            None => StreamStart::First,
        });
        let amqp = match self.handle.block_on(AmqpSession::open(&self.pipeline, &self.source, stream_start)) {
            Ok(amqp) => amqp,
            Err(e) => return Ok(Err(e)),
        };
        let stream_end = match self.source.is_stream() && self.until_caught_up {
            true => match self.handle.block_on(amqp.stream_end()) {
                Ok(end) => end,
                Err(e) => return Ok(Err(e)),
            },
            false => None,
        };
        let started_at_end = stream_start == Some(StreamStart::Next);
        self.epoch += 1;
        // Queues number their messages from where the log ends; a stream's first delivery
        // sets its start (the log's next offset, or the stream's first retained offset).
        let next_seq = if self.source.is_stream() { next } else { Some(next.unwrap_or(0)) };
        let buf = PartitionBuffer::new(self.epoch, next_seq, None, i64::MAX);
        tracing::info!(
            pipeline = %self.pipeline, queue = %self.source.queue, uri = %rabbitmq::describe(&self.source),
            ready = amqp.ready_at_start, resume = ?next, dedup_ids = window.len(), "consuming from RabbitMQ"
        );
        Ok(Ok(Session {
            amqp,
            buf,
            window,
            next_seq: next_seq.unwrap_or(0),
            last_tag: 0,
            unacked: 0,
            stream_end,
            started_at_end,
            last_delivery: Instant::now(),
        }))
    }

    /// The commit log's resume point and (queues) the ids of its newest commits, retried
    /// with backoff until the store answers.
    fn recover(&self) -> (Option<i64>, Vec<String>) {
        let mut delay = Duration::from_millis(200);
        let mut failures = 0u32;
        loop {
            let run = RunContext { run_id: self.run_id.clone(), config: self.commit_config.clone(), stop: self.shutdown.subscribe() };
            let recovered = match CommitLog::new(self.store.clone(), &self.table_root, &self.tp.topic, 0, run) {
                Ok(mut log) => self.handle.block_on(log.recover()).map(|next| (next, log.take_recovered_ids())),
                Err(e) => Err(e),
            };
            match recovered {
                Ok(found) => return found,
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(pipeline = %self.pipeline, error = %e, "cannot read the commit log; retrying with backoff");
                    }
                    failures += 1;
                    if self.shutdown.requested() {
                        return (None, Vec::new());
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn consume(&mut self, mut s: Session, router: &mut Router, policy: &RollPolicy, opts: &RunOptions, started: Instant) -> Result<SessionEnd, String> {
        let mut last_tick = Instant::now();
        let mut last_progress = Instant::now();
        let progress = opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let end = loop {
            if self.shutdown.requested() {
                break None;
            }
            if let Some(reason) = self.drain_feedback(Some(&mut s))? {
                break Some(reason);
            }
            let batch = self.handle.block_on(async {
                let mut batch = Vec::new();
                match tokio::time::timeout(Duration::from_millis(100), s.amqp.next()).await {
                    Err(_) => return Ok(batch),
                    Ok(None) => return Err("the consumer was cancelled by the broker (queue deleted?)".to_string()),
                    Ok(Some(d)) => batch.push(d?),
                }
                while batch.len() < BATCH {
                    match s.amqp.next().now_or_never() {
                        Some(Some(Ok(d))) => batch.push(d),
                        Some(Some(Err(e))) => return Err(e),
                        Some(None) | None => break,
                    }
                }
                Ok(batch)
            });
            let batch = match batch {
                Ok(b) => b,
                Err(reason) => break Some(reason),
            };
            let now = Instant::now();
            if !batch.is_empty() {
                s.last_delivery = now;
            }
            let mut lost = None;
            for d in batch {
                self.summary.source_bytes += d.data.len() as u64;
                let position = if self.source.is_stream() {
                    s.unacked += 1;
                    let Some(offset) = rabbitmq::stream_offset(&d.properties) else {
                        return Err(format!(
                            "queue `{}` delivered a message without an x-stream-offset header: it is not a stream; \
                             set source.rabbitmq.queue_type to the queue's type (quorum or classic)",
                            self.source.queue
                        ));
                    };
                    if s.buf.next_expected.is_some_and(|n| offset < n) {
                        s.last_tag = d.delivery_tag;
                        continue; // before the resume point: streams restart at a chunk boundary
                    }
                    offset
                } else {
                    let id = d.properties.message_id().as_ref().map(|m| m.as_str());
                    if d.redelivered && id.is_some_and(|id| s.window.contains(id)) {
                        // Published before its acknowledgement was lost: acknowledge it alone.
                        self.summary.duplicates += 1;
                        if let Err(e) = self.handle.block_on(s.amqp.ack_one(d.delivery_tag)) {
                            lost = Some(e.to_string());
                            break;
                        }
                        continue;
                    }
                    let seq = s.next_seq;
                    s.next_seq += 1;
                    match id {
                        Some(id) => s.buf.ids.push(id.to_string()),
                        None => self.summary.without_message_id += 1,
                    }
                    seq
                };
                s.last_tag = d.delivery_tag;
                let timestamp_ms = d.properties.timestamp().map(|t| (t as i64).saturating_mul(1000));
                let at = SourcePosition { topic: &self.tp.topic, partition: 0, offset: position, timestamp_ms };
                let routed = router.route(&mut s.buf, Some(&d.data), &at, policy);
                s.buf.consumed(position, now);
                if let Some((dir, batch)) = routed.chunk {
                    let (tp, epoch) = (self.tp.clone(), s.buf.epoch);
                    self.tx.blocking_send(WriterMsg::Append { tp, epoch, dir, batch }).map_err(|_| "the writer task stopped".to_string())?;
                }
                if routed.roll || (!self.source.is_stream() && s.buf.open_rows() >= self.source.commit_every()) {
                    self.cut(&mut s)?;
                }
            }
            if let Some(reason) = lost {
                break Some(reason);
            }
            // Streams: acknowledgements are credit only; return it in steps of half the prefetch.
            if self.source.is_stream() && s.unacked >= self.source.commit_every() && s.last_tag > 0 {
                s.unacked = 0;
                if let Err(e) = self.handle.block_on(s.amqp.ack_through(s.last_tag)) {
                    break Some(e.to_string());
                }
            }
            if now.duration_since(last_tick) >= Duration::from_millis(100) {
                last_tick = now;
                if s.buf.should_roll(policy, now) {
                    self.cut(&mut s)?;
                }
                if progress && now.duration_since(last_progress) >= Duration::from_secs(1) {
                    last_progress = now;
                    let secs = started.elapsed().as_secs_f64().max(0.001);
                    eprint!("\r{}: {} events published, {:.0} events/s    ", self.pipeline, self.summary.events, self.summary.events as f64 / secs);
                }
                // A stream is done at the end it had when the session started, busy or not; a
                // queue has no end, so it is done when quiet and empty.
                let stream_done = self.source.is_stream() && self.caught_up(&s);
                if opts.mode == RunMode::UntilCaughtUp && (stream_done || now.duration_since(s.last_delivery) >= IDLE) {
                    // Quiet: publish what is open, then ask whether anything is left.
                    self.cut(&mut s)?;
                    if self.inflight == 0 && self.caught_up(&s) {
                        break None;
                    }
                }
            }
        };
        if progress {
            eprintln!();
        }
        match end {
            Some(reason) => {
                // The channel is gone (or a commit failed): what is open will be redelivered.
                self.handle.block_on(s.amqp.close());
                Ok(SessionEnd::Restart(reason))
            }
            None => self.finish(s, opts),
        }
    }

    /// Whether the source holds nothing more for us.
    fn caught_up(&self, s: &Session) -> bool {
        if self.source.is_stream() {
            let Some(end) = s.stream_end else { return true };
            let position = s.buf.last.or(s.buf.next_expected.map(|n| n - 1));
            return s.started_at_end && position.is_none() || position.is_some_and(|p| p >= end);
        }
        matches!(self.handle.block_on(s.amqp.ready()), Ok(0))
    }

    /// Publishes what is buffered, waits for the commits (acknowledging them), and closes.
    fn finish(&mut self, mut s: Session, opts: &RunOptions) -> Result<SessionEnd, String> {
        self.cut(&mut s)?;
        let backfill = opts.mode == RunMode::UntilCaughtUp && !self.shutdown.requested();
        let deadline = Instant::now() + opts.shutdown_deadline;
        let mut failed = None;
        while self.inflight > 0 && (backfill || Instant::now() < deadline) {
            if let Some(reason) = self.drain_feedback(Some(&mut s))? {
                failed = Some(reason);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.inflight > 0 {
            tracing::error!(pipeline = %self.pipeline, commits = self.inflight, "shutdown deadline passed with commits unpublished; the broker redelivers them (no loss; redelivered messages already published are dropped by message_id, those without one land twice)");
        }
        self.handle.block_on(s.amqp.close());
        match failed {
            Some(reason) if backfill => {
                Err(format!("a commit failed while finishing the backfill ({reason}); run again to land the rest (nothing is lost or doubled)"))
            }
            _ => Ok(SessionEnd::Done),
        }
    }

    /// Sends the open range to the writer and remembers which tag it ends at.
    fn cut(&mut self, s: &mut Session) -> Result<(), String> {
        let ids = std::mem::take(&mut s.buf.ids);
        let last = s.buf.last;
        if send_cut(&self.tx, &self.tp, &mut s.buf, ids)? {
            self.inflight += 1;
            if let Some(end) = last {
                self.cut_tags.push_back((s.buf.epoch, end, s.last_tag));
            }
        }
        Ok(())
    }

    /// Handles the writer's answers: a published commit acknowledges its deliveries (on the
    /// session that received them); a failed one ends the session (returns why).
    fn drain_feedback(&mut self, mut session: Option<&mut Session>) -> Result<Option<String>, String> {
        let mut ack: Option<u64> = None;
        let mut restart = None;
        while let Ok(fb) = self.feedback.try_recv() {
            match fb {
                Feedback::Committed { epoch, next, files, rows, rejected, bytes, .. } => {
                    self.inflight = self.inflight.saturating_sub(1);
                    self.summary.files += files as u64;
                    self.summary.parquet_bytes += bytes;
                    self.summary.events += rows;
                    self.summary.rejected += rejected;
                    while let Some(&(e, end, tag)) = self.cut_tags.front() {
                        if e > epoch || (e == epoch && end >= next) {
                            break;
                        }
                        self.cut_tags.pop_front();
                        if session.as_ref().is_some_and(|s| s.buf.epoch == e) {
                            ack = Some(tag);
                        }
                    }
                }
                Feedback::RollRequested { epoch, .. } => {
                    if let Some(s) = session.as_mut().filter(|s| s.buf.epoch == epoch) {
                        s.buf.roll_requested = true;
                    }
                }
                Feedback::Rewind { epoch, reason, answers_commit, .. } => {
                    if answers_commit {
                        self.inflight = self.inflight.saturating_sub(1);
                    }
                    self.cut_tags.retain(|(e, _, _)| *e != epoch);
                    if session.as_ref().is_some_and(|s| s.buf.epoch == epoch) {
                        restart.get_or_insert(format!("publishing failed: {reason}"));
                    }
                }
                Feedback::Fatal { message } => return Err(message),
            }
        }
        if let (Some(tag), Some(s)) = (ack, session) {
            if !self.source.is_stream() {
                if crash_point("before_ack") {
                    tracing::error!(pipeline = %self.pipeline, "LF_TEST_CRASH_POINT=before_ack: aborting after a publish, before its acknowledgement");
                    std::process::abort();
                }
                if let Err(e) = self.handle.block_on(s.amqp.ack_through(tag)) {
                    restart.get_or_insert(e.to_string());
                }
            }
        }
        Ok(restart)
    }
}

/// Fault injection for tests (not `LANDFALL_*`: those are daemon settings):
/// `LF_TEST_CRASH_POINT=before_ack` aborts the process right after
/// a commit is published and before its deliveries are acknowledged, the window the
/// deduplication exists for. Read once; unset in production.
fn crash_point(name: &str) -> bool {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    POINT.get_or_init(|| std::env::var("LF_TEST_CRASH_POINT").ok()).as_deref() == Some(name)
}
