//! The consumer thread: polls Kafka, decodes each payload in place into Arrow builders, routes
//! rows to their Hive path (or to quarantine), cuts commits by the roll policy, and reacts to
//! the writer's feedback (published → mirror offsets; rewind → resume from the commit log).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::Message;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::partitions::{PartitionBuffer, RollPolicy};
use super::route::{send_cut, Router};
use super::writer::{Feedback, WriterMsg};
use super::{RunMode, RunOptions, Shutdown};
use crate::commit::{self, CommitConfig, CommitLog, RunContext};
use crate::config::{PipelineConfig, SourceConfig, StartPosition};
use crate::quarantine::SourcePosition;
use crate::sink::FileStore;
use crate::source::kafka::{AssignmentEvent, KafkaSource, ResumePositions};
use crate::source::TopicPartition;

/// What a run did, printed at the end of `--until-caught-up` and logged at shutdown.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub pipeline: String,
    /// Rows published to the table.
    pub events: u64,
    /// Messages published to quarantine.
    pub rejected: u64,
    /// Queue sources: redelivered messages dropped because their `message_id` was published.
    pub duplicates: u64,
    /// Queue sources: messages without a `message_id` (landed at-least-once).
    pub without_message_id: u64,
    /// Payload bytes consumed from the source.
    pub source_bytes: u64,
    /// Parquet files published (table and quarantine).
    pub files: u64,
    /// Bytes of Parquet published.
    pub parquet_bytes: u64,
    pub seconds: f64,
}

/// Resume positions from the commit log, retried until the store answers (or shutdown).
struct StoreResume {
    run_id: String,
    store: Arc<dyn FileStore>,
    table_root: String,
    handle: Handle,
    shutdown: Shutdown,
}

impl ResumePositions for StoreResume {
    fn resume_position(&self, tp: &TopicPartition) -> Option<i64> {
        let mut delay = Duration::from_millis(200);
        let mut failures = 0u32;
        loop {
            let run = RunContext { run_id: self.run_id.clone(), config: CommitConfig::default(), stop: self.shutdown.subscribe() };
            let recovered = CommitLog::new(self.store.clone(), &self.table_root, &tp.topic, tp.partition, run);
            let recovered = match recovered {
                Ok(mut log) => self.handle.block_on(log.recover()),
                Err(e) => Err(e),
            };
            match recovered {
                Ok(pos) => {
                    if failures > 0 {
                        tracing::info!(%tp, failures, "commit log readable again");
                    }
                    return pos;
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(%tp, error = %e, "cannot read the commit log; retrying with backoff");
                    }
                    failures += 1;
                    if self.shutdown.requested() {
                        // The partition is assigned but nothing will be consumed: shutting down.
                        return None;
                    }
                    let until = Instant::now() + delay;
                    while Instant::now() < until && !self.shutdown.requested() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

/// Runs the consumer side of a pipeline to completion. Errors are fatal to the pipeline.
pub fn run(
    cfg: PipelineConfig,
    opts: RunOptions,
    shutdown: Shutdown,
    store: Arc<dyn FileStore>,
    table_root: String,
    handle: Handle,
) -> Result<RunSummary, String> {
    let started = Instant::now();
    let SourceConfig::Kafka(kafka_cfg) = &cfg.source else {
        return Err("the Kafka consumer was given another source".into());
    };
    let mut router = Router::new(&cfg)?;
    let policy = RollPolicy::of(&cfg.roll);
    let run_id = commit::new_run_id();


    let (tx, feedback_rx, writer_task) =
        super::writer::spawn(&cfg, store.clone(), &table_root, &run_id, CommitConfig::default(), &shutdown, &handle)?;

    let resume = Arc::new(StoreResume { run_id, store, table_root, handle: handle.clone(), shutdown: shutdown.clone() });
    let source = KafkaSource::build(&cfg.name, kafka_cfg, resume.clone()).map_err(|e| e.to_string())?;

    let mut ctx = ConsumerState {
        pipeline: cfg.name.clone(),
        max_open_files: cfg.roll.max_open_files,
        start: kafka_cfg.start,
        parts: Vec::new(),
        next_epoch: 1,
        inflight: 0,
        tx,
        summary: RunSummary { pipeline: cfg.name.clone(), ..Default::default() },
        mirror: HashMap::new(),
        rewinds: 0,
        backoff: HashMap::new(),
        max_buffered_bytes: cfg.roll.max_buffered_bytes.bytes() as usize,
    };
    let mut last_tick = Instant::now();
    let mut last_progress = Instant::now();
    let progress = opts.progress && std::io::stderr().is_terminal();
    let mut kafka_error: Option<String> = None;
    // A clock read costs as much as decoding a few fields: messages share one reading per
    // CLOCK_EVERY (it only dates a range's first message and paces the 100 ms tick).
    const CLOCK_EVERY: u32 = 64;
    let mut now = Instant::now();
    let mut unclocked = 0u32;

    let outcome: Result<(), String> = loop {
        if shutdown.requested() {
            break Ok(());
        }
        if let Err(e) = ctx.drain_feedback(&feedback_rx, &source, resume.as_ref()) {
            break Err(e);
        }
        let polled = source.consumer.poll(Duration::from_millis(100));
        let polled_message = matches!(polled, Some(Ok(_)));
        for event in source.take_events() {
            ctx.on_assignment(event);
        }
        match polled {
            None => {}
            Some(Ok(msg)) => {
                kafka_error = None;
                source.delivering();
                unclocked += 1;
                if unclocked >= CLOCK_EVERY {
                    unclocked = 0;
                    now = Instant::now();
                }
                let topic = msg.topic();
                let Some(i) = ctx.index(topic, msg.partition()) else { continue };
                let offset = msg.offset();
                let buf = &mut ctx.parts[i].1;
                if buf.next_expected.is_some_and(|n| offset < n) {
                    continue; // already published: delivered again right after a seek
                }
                let at = SourcePosition { topic, partition: msg.partition(), offset, timestamp_ms: msg.timestamp().to_millis() };
                ctx.summary.source_bytes += msg.payload_len() as u64;
                let routed = router.route(buf, msg.payload(), &at, &policy);
                buf.consumed(offset, now);
                let epoch = buf.epoch;
                drop(msg);
                if let Some((dir, batch)) = routed.chunk {
                    let tp = ctx.parts[i].0.clone();
                    ctx.send(WriterMsg::Append { tp, epoch, dir, batch })?;
                }
                if routed.roll {
                    ctx.cut(i)?;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => ctx.mark_caught_up(&source, p),
            Some(Err(e)) => {
                let text = e.to_string();
                if kafka_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(pipeline = %ctx.pipeline, error = %text, "Kafka consume error; retrying (check source.kafka.brokers and that the broker is up)");
                    kafka_error = Some(text);
                }
            }
        }
        if !polled_message {
            now = Instant::now();
        }
        if now.duration_since(last_tick) >= Duration::from_millis(100) {
            last_tick = now;
            ctx.periodic_rolls(&policy, now)?;
            ctx.resume_due(&source, now);
            if progress && now.duration_since(last_progress) >= Duration::from_secs(1) {
                last_progress = now;
                ctx.print_progress(started);
            }
            if opts.mode == RunMode::UntilCaughtUp && ctx.all_caught_up() {
                break Ok(());
            }
        }
    };

    // Publish what is buffered, then wait for the writer within the deadline.
    let deadline = Instant::now() + opts.shutdown_deadline;
    let mut result = outcome;
    if result.is_ok() {
        for i in 0..ctx.parts.len() {
            if let Err(e) = ctx.cut(i) {
                result = Err(e);
                break;
            }
        }
        // A backfill waits for every commit (its exit code says "landed"); the daemon has a
        // deadline from its supervisor. A range that rewinds now is not re-read in this run.
        let backfill = opts.mode == RunMode::UntilCaughtUp && !shutdown.requested();
        let rewinds_before = ctx.rewinds;
        while ctx.inflight > 0 && (backfill || Instant::now() < deadline) {
            if let Err(e) = ctx.drain_feedback(&feedback_rx, &source, resume.as_ref()) {
                result = Err(e);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if ctx.inflight > 0 {
            tracing::error!(pipeline = %ctx.pipeline, commits = ctx.inflight, "shutdown deadline passed with commits unpublished; they are consumed again at the next start (no loss, no duplicates)");
        }
        if backfill && result.is_ok() && ctx.rewinds > rewinds_before {
            result = Err("a commit failed while finishing the backfill; run again to land the rest (nothing is lost or doubled)".into());
        }
    }
    if progress {
        eprintln!();
    }
    ctx.flush_mirror(&source, rdkafka::consumer::CommitMode::Sync);
    drop(ctx.tx);
    let _ = handle.block_on(async { tokio::time::timeout(Duration::from_secs(5), writer_task).await });
    ctx.summary.seconds = started.elapsed().as_secs_f64();
    result.map(|()| ctx.summary)
}

struct ConsumerState {
    pipeline: String,
    /// `roll.max_open_files`.
    max_open_files: usize,
    start: StartPosition,
    /// Assigned partitions and their buffers (few: a linear scan beats hashing the topic name).
    parts: Vec<(TopicPartition, PartitionBuffer)>,
    next_epoch: u64,
    /// Commits sent to the writer and not yet answered.
    inflight: usize,
    tx: mpsc::Sender<WriterMsg>,
    summary: RunSummary,
    /// Published positions not yet mirrored to the consumer group.
    mirror: HashMap<TopicPartition, i64>,
    /// Rewinds handled so far (a backfill fails if one happens while it finishes).
    rewinds: u64,
    /// Partitions paused after repeated rewinds: consecutive failures, resume time, reason.
    backoff: HashMap<TopicPartition, (u32, Option<Instant>, String)>,
    /// `roll.max_buffered_bytes`: half of it may sit in consumer-side builders.
    max_buffered_bytes: usize,
}

impl ConsumerState {
    fn index(&self, topic: &str, partition: i32) -> Option<usize> {
        self.parts.iter().position(|(tp, _)| tp.partition == partition && tp.topic == topic)
    }

    fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    fn send(&self, msg: WriterMsg) -> Result<(), String> {
        self.tx.blocking_send(msg).map_err(|_| "the writer task stopped".to_string())
    }

    fn on_assignment(&mut self, event: AssignmentEvent) {
        match event {
            AssignmentEvent::Assigned { tp, offset, origin, end_at_start } => {
                let epoch = self.epoch();
                let buf = PartitionBuffer::new(epoch, offset, origin, end_at_start);
                self.backoff.remove(&tp);
                match self.index(&tp.topic, tp.partition) {
                    Some(i) => self.parts[i].1 = buf,
                    None => self.parts.push((tp, buf)),
                }
            }
            AssignmentEvent::Revoked { tp } => {
                if let Some(i) = self.index(&tp.topic, tp.partition) {
                    self.parts.swap_remove(i);
                }
                self.backoff.remove(&tp);
                let _ = self.send(WriterMsg::Drop { tp });
            }
        }
    }

    /// Sends the open range of partition `i` to the writer as a commit.
    fn cut(&mut self, i: usize) -> Result<(), String> {
        let (tp, buf) = &mut self.parts[i];
        if send_cut(&self.tx, tp, buf, Vec::new())? {
            self.inflight += 1;
        }
        Ok(())
    }

    fn periodic_rolls(&mut self, policy: &RollPolicy, now: Instant) -> Result<(), String> {
        for i in 0..self.parts.len() {
            if self.parts[i].1.should_roll(policy, now) {
                self.cut(i)?;
            }
        }
        let open: usize = self.parts.iter().map(|(_, b)| b.open_files()).sum();
        if open > self.max_open_files {
            if let Some(i) = (0..self.parts.len()).max_by_key(|&i| self.parts[i].1.open_files()) {
                tracing::info!(pipeline = %self.pipeline, open_files = open, tp = %self.parts[i].0, "too many open files; committing the partition with the most");
                self.cut(i)?;
            }
        }
        // Consumer-side builders may hold half the memory budget; ship the largest past it.
        let mut buffered: usize = self.parts.iter().map(|(_, b)| b.buffered_bytes()).sum();
        while buffered > self.max_buffered_bytes / 2 {
            let Some(i) = (0..self.parts.len()).max_by_key(|&i| self.parts[i].1.buffered_bytes()) else { break };
            let Some((dir, batch, size)) = self.parts[i].1.ship_largest() else { break };
            let (tp, epoch) = (self.parts[i].0.clone(), self.parts[i].1.epoch);
            self.send(WriterMsg::Append { tp, epoch, dir, batch })?;
            buffered = buffered.saturating_sub(size.max(1));
        }
        Ok(())
    }

    /// Resumes partitions whose rewind backoff has passed.
    fn resume_due(&mut self, source: &KafkaSource, now: Instant) {
        for (tp, (_, until, _)) in self.backoff.iter_mut() {
            if until.is_some_and(|t| now >= t) {
                *until = None;
                source.set_paused(tp, false);
            }
        }
    }

    fn drain_feedback(
        &mut self,
        rx: &std::sync::mpsc::Receiver<Feedback>,
        source: &KafkaSource,
        resume: &dyn ResumePositions,
    ) -> Result<(), String> {
        let mut any = false;
        while let Ok(fb) = rx.try_recv() {
            match fb {
                Feedback::Committed { tp, epoch: _, next, files, rows, rejected, bytes } => {
                    self.inflight = self.inflight.saturating_sub(1);
                    self.summary.files += files as u64;
                    self.summary.parquet_bytes += bytes;
                    self.summary.events += rows;
                    self.summary.rejected += rejected;
                    if let Some((failures, _, _)) = self.backoff.remove(&tp) {
                        tracing::info!(pipeline = %self.pipeline, %tp, failures, "publishing again after rewinds");
                    }
                    self.mirror.insert(tp, next);
                    any = true;
                }
                Feedback::RollRequested { tp, epoch } => {
                    if let Some(i) = self.index(&tp.topic, tp.partition) {
                        if self.parts[i].1.epoch == epoch {
                            self.parts[i].1.roll_requested = true;
                        }
                    }
                }
                Feedback::Rewind { tp, epoch, reason, answers_commit } => {
                    if answers_commit {
                        self.inflight = self.inflight.saturating_sub(1);
                    }
                    let Some(i) = self.index(&tp.topic, tp.partition) else { continue };
                    if self.parts[i].1.epoch != epoch {
                        continue; // already rewound past that epoch
                    }
                    self.rewinds += 1;
                    // Back off per partition (1 s doubling to 60 s) so a store that keeps
                    // failing is not hammered; one log line per new reason.
                    let entry = self.backoff.entry(tp.clone()).or_insert((0, None, String::new()));
                    entry.0 += 1;
                    let delay = Duration::from_secs(1 << (entry.0 - 1).min(6)).min(Duration::from_secs(60));
                    if entry.2 != reason {
                        tracing::warn!(pipeline = %self.pipeline, %tp, %reason, failures = entry.0, retry_in_s = delay.as_secs(), "rewinding the partition to its last published offset");
                        entry.2 = reason;
                    }
                    entry.1 = Some(Instant::now() + delay);
                    self.send(WriterMsg::Drop { tp: tp.clone() })?;
                    let offset = resume.resume_position(&tp);
                    let (end, origin) = (self.parts[i].1.end_at_start, self.parts[i].1.origin);
                    let new_epoch = self.epoch();
                    self.parts[i].1 = PartitionBuffer::new(new_epoch, offset, origin, end);
                    if let Err(e) = source.seek(&tp, offset.or(origin), self.start) {
                        // Without a seek the consumer would go on past the rewound range: stop
                        // and let the restart resume from the commit log.
                        return Err(format!("cannot seek {tp} after a rewind: {e}"));
                    }
                    source.set_paused(&tp, true);
                }
                Feedback::Fatal { message } => return Err(message),
            }
        }
        if any {
            self.flush_mirror(source, rdkafka::consumer::CommitMode::Async);
        }
        Ok(())
    }

    /// Copies published positions to the group's offsets, for lag tools (never read back).
    fn flush_mirror(&mut self, source: &KafkaSource, mode: rdkafka::consumer::CommitMode) {
        let assigned: HashMap<TopicPartition, i64> = self
            .mirror
            .drain()
            .filter(|(tp, _)| self.parts.iter().any(|(p, _)| p == tp))
            .collect();
        source.mirror_offsets(&assigned, mode);
    }

    /// Partition number `partition` reached its end (librdkafka's EOF names no topic): each
    /// assigned partition of that number is caught up once its position reaches the end it
    /// had at assignment (re-read if that lookup failed then).
    fn mark_caught_up(&mut self, source: &KafkaSource, partition: i32) {
        let positions = source.consumer.position().ok();
        for (tp, buf) in self.parts.iter_mut() {
            if tp.partition != partition || buf.caught_up {
                continue;
            }
            let watermarks = source.consumer.fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(5)).ok();
            if buf.end_at_start == i64::MAX {
                if let Some((_, high)) = watermarks {
                    buf.end_at_start = high;
                }
            }
            let position = positions
                .as_ref()
                .and_then(|p| p.find_partition(&tp.topic, tp.partition))
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0);
            let pos = position
                .or(buf.last.map(|l| l + 1))
                .or(buf.next_expected)
                .or(watermarks.map(|(low, _)| low));
            if pos.is_some_and(|p| p >= buf.end_at_start) {
                buf.caught_up = true;
            }
        }
    }

    fn all_caught_up(&self) -> bool {
        !self.parts.is_empty() && self.parts.iter().all(|(_, b)| b.caught_up)
    }

    fn print_progress(&self, started: Instant) {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let remaining: i64 = self
            .parts
            .iter()
            .map(|(_, b)| {
                let pos = b.last.map(|l| l + 1).or(b.next_expected).unwrap_or(0);
                (b.end_at_start.min(i64::MAX / 4) - pos).max(0)
            })
            .sum();
        let rate = self.summary.events as f64 / secs;
        let eta = if rate > 0.0 { format!("{:.0} s", remaining as f64 / rate) } else { "?".into() };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{}: {} events published, {:.0} events/s, {} to go, ETA {}    ",
            self.pipeline, self.summary.events, rate, remaining, eta
        );
    }
}
