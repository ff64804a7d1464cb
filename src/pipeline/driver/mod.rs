//! The pipeline driver: the one consumer loop behind every [`Source`]. It owns routing (decode
//! → Hive path or quarantine), the per-stream buffers, cuts, roll timers, the open-file cap,
//! the consumer-side memory budget, the writer's feedback (publish → acknowledge, failure →
//! rewind), session loss and reconnects, `--until-caught-up`, finishing within the shutdown
//! deadline, and the run summary. A rule written here holds for every source.
//!
//! It runs on a blocking thread; the writer task runs on the runtime, joined by a bounded
//! channel so that a slow store holds consumption back instead of filling memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::mpsc;

mod feedback;

use super::handoff::ToWriter;
use super::partitions::{RollPolicy, Trigger};
use super::route::{send_cut, Router};
use super::sizes::SizeAdvisor;
use super::stream::{Flow, Lane, Stream};
use super::summary::{print_progress, RunSummary};
use super::writer::{Feedback, WriterMsg};
use super::{RunMode, RunOptions};
use crate::observe::{PipelineWatch, ProblemKey};
use crate::quarantine::SourcePosition;
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::source::{Backlog, Delivery, Polled, Positions, Source, SourceError, SourceEvent, StreamId, Verdict};

/// How long a stream must be quiet before `--until-caught-up` asks the source whether it is at
/// its end (a queue has no end to compare with).
const IDLE: Duration = Duration::from_millis(500);

/// Timers (rolls, backoff, progress, catch-up) are looked at this often.
const TICK: Duration = Duration::from_millis(100);

/// Metrics and the heartbeat are reported this often (the counters in between are the
/// summary's plain integers: nothing per message reaches a shared counter).
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The source is asked for its health and backlog this often (Kafka's statistics interval).
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// A clock read costs as much as decoding a few fields: messages share one reading per
/// `CLOCK_EVERY` (it only dates a range's first message and paces the tick).
const CLOCK_EVERY: u32 = 64;

/// The consumer-side budget is measured again after each 1/16 of `roll.max_buffered_bytes` of
/// payload taken, so it is never exceeded by more than that (it was measured per tick, and one
/// tick of large messages could overshoot it many times).
const BUDGET_SLICES: usize = 16;

/// After a failed commit a stream pauses 1 s, doubling to 60 s, so a store that keeps
/// failing is not hammered.
fn rewind_backoff() -> Backoff {
    Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(60), give_up_after: None }
}

/// A lost session is reopened after 1 s, doubling to 30 s.
fn session_backoff() -> Backoff {
    Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(30), give_up_after: None }
}

/// Limits that hold across the streams of a pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `roll.max_open_files`.
    pub max_open_files: usize,
    /// `roll.max_buffered_bytes`: half of it may sit in consumer-side builders.
    pub max_buffered_bytes: usize,
}

/// Why the loop stops consuming: the session is gone (reconnect) or the pipeline must stop.
enum Stop {
    Lost(String),
    Fatal(String),
}

impl From<SourceError> for Stop {
    fn from(e: SourceError) -> Stop {
        match e {
            SourceError::SessionLost(reason) => Stop::Lost(reason),
            SourceError::Fatal(message) => Stop::Fatal(message),
        }
    }
}

impl From<String> for Stop {
    fn from(message: String) -> Stop {
        Stop::Fatal(message)
    }
}

/// One pipeline's consumer side.
pub struct Driver {
    source: Box<dyn Source>,
    positions: Positions,
    max_open_range: Option<u64>,
    opts: RunOptions,
    shutdown: Shutdown,
    handle: Handle,
    router: Router,
    policy: RollPolicy,
    limits: Limits,
    /// Assigned streams (few: a linear scan beats hashing the name per message).
    streams: Vec<Stream>,
    /// Index of the stream of the previous delivery: the next one is usually the same.
    last_index: usize,
    next_epoch: u64,
    /// Commits sent to the writer and not yet answered.
    inflight: usize,
    tx: ToWriter,
    feedback: mpsc::UnboundedReceiver<Feedback>,
    summary: RunSummary,
    /// Rewinds handled so far (a backfill fails if one happens while it finishes).
    rewinds: u64,
    /// The cause ([`crate::retry::cause_key`]) of the rewinds last warned about, until every
    /// stream publishes again: a store that refuses every partition is named once.
    rewind_cause: Option<String>,
    /// Sessions lost in a row, for the reconnect backoff, and the last reason logged.
    session_failures: u32,
    session_error: Option<String>,
    /// Streams paused by the driver: librdkafka keeps a pause across re-assignment, so a
    /// stream revoked while paused is resumed when it comes back.
    paused: HashSet<StreamId>,
    /// Streams rewound and taken back by the source ([`crate::source::Rewound::Later`]): their
    /// consecutive failures and the last reason, restored when they are assigned again.
    rewound: HashMap<StreamId, (u32, String)>,
    /// Streams the source reported as waiting for a person, with why.
    failed: BTreeMap<StreamId, String>,
    /// Work for after the poll (the source is busy during it): streams to resume, partition
    /// numbers that reached their end.
    to_resume: Vec<StreamId>,
    ended: Vec<i32>,
    /// A failure inside the poll callback (the writer stopped).
    failure: Option<String>,
    /// Payload bytes taken since the consumer-side budget was last measured: the budget is
    /// measured again once they could have filled a slice of it, so it holds per message
    /// without summing every builder per message.
    unmeasured_bytes: usize,
    now: Instant,
    unclocked: u32,
    /// Deliveries in the current poll.
    delivered: usize,
    /// Where the pipeline's health and metrics are reported.
    watch: Arc<PipelineWatch>,
    /// The summary's counters as last reported to the metrics.
    reported: Reported,
    /// `partition.completion`: the source partition whose holder completes, and where to say
    /// whether this driver holds it.
    completer_seat: Option<CompleterSeat>,
    /// What cut the commits published lately and how large their files were: explains small
    /// files in a log line, now and then.
    sizes: SizeAdvisor,
}

/// The source partition whose holder is the pipeline's completer, and the completion state
/// told whether this driver holds it.
pub struct CompleterSeat {
    pub first: StreamId,
    pub completion: Arc<crate::completion::Completion>,
}

/// Counters already added to the metrics.
#[derive(Default)]
struct Reported {
    received: u64,
    bytes: u64,
    duplicates: u64,
}

/// What the driver needs besides the source.
pub struct DriverParts {
    pub pipeline: String,
    pub router: Router,
    pub policy: RollPolicy,
    pub limits: Limits,
    pub opts: RunOptions,
    pub shutdown: Shutdown,
    pub handle: Handle,
    pub tx: ToWriter,
    pub feedback: mpsc::UnboundedReceiver<Feedback>,
    pub watch: Arc<PipelineWatch>,
    pub completer_seat: Option<CompleterSeat>,
}

impl Driver {
    pub fn new(source: Box<dyn Source>, parts: DriverParts) -> Driver {
        let sizes = super::sizes::Settings {
            policy: parts.policy,
            max_open_files: parts.limits.max_open_files,
            window: source.max_open_range(),
        };
        Driver {
            positions: source.positions(),
            max_open_range: sizes.window,
            source,
            opts: parts.opts,
            shutdown: parts.shutdown,
            handle: parts.handle,
            router: parts.router,
            policy: parts.policy,
            limits: parts.limits,
            streams: Vec::new(),
            last_index: 0,
            next_epoch: 1,
            inflight: 0,
            unmeasured_bytes: 0,
            tx: parts.tx,
            feedback: parts.feedback,
            summary: RunSummary { pipeline: parts.pipeline, ..Default::default() },
            rewinds: 0,
            rewind_cause: None,
            session_failures: 0,
            session_error: None,
            paused: HashSet::new(),
            rewound: HashMap::new(),
            failed: BTreeMap::new(),
            to_resume: Vec::new(),
            ended: Vec::new(),
            failure: None,
            now: Instant::now(),
            unclocked: 0,
            delivered: 0,
            watch: parts.watch,
            reported: Reported::default(),
            completer_seat: parts.completer_seat,
            sizes: SizeAdvisor::new(sizes, Instant::now()),
        }
    }

    fn pipeline(&self) -> &str {
        &self.summary.pipeline
    }

    /// Consumes until shutdown, until caught up, or a fatal error; then publishes what is
    /// buffered within the deadline and returns what the run did.
    /// The writer's channel closes when the driver is dropped: await the writer after this.
    pub fn run(mut self) -> Result<RunSummary, String> {
        let started = Instant::now();
        let outcome = self.consume(started);
        let mut result = self.finish(outcome, started);
        if result.is_ok() && self.opts.mode == RunMode::UntilCaughtUp && !self.failed.is_empty() {
            let failed: Vec<String> = self.failed.iter().map(|(s, why)| format!("{s}: {why}")).collect();
            result = Err(format!(
                "the other streams are landed, but {} could not be consumed: {}",
                self.failed.len(),
                failed.join("; ")
            ));
        }
        self.summary.seconds = started.elapsed().as_secs_f64();
        self.report();
        result.map(|()| std::mem::take(&mut self.summary))
    }

    fn consume(&mut self, started: Instant) -> Result<(), String> {
        if let Err(e) = self.source.connect() {
            self.on_stop(e.into())?;
        }
        let mut last_tick = Instant::now();
        let mut last_progress = Instant::now();
        let (mut last_report, mut last_health) = (Instant::now(), Instant::now() - HEALTH_EVERY);
        let progress = self.opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
        loop {
            if self.shutdown.requested() {
                return Ok(());
            }
            if let Err(stop) = self.drain_feedback() {
                self.on_stop(stop)?;
                continue;
            }
            if let Err(e) = self.poll() {
                self.on_stop(e.into())?;
                continue;
            }
            if let Some(message) = self.failure.take() {
                return Err(message);
            }
            self.after_poll();
            if self.delivered == 0 {
                self.now = Instant::now();
            }
            let now = self.now;
            if now.duration_since(last_tick) >= TICK {
                last_tick = now;
                self.report_completer();
                self.periodic_rolls(now)?;
                self.resume_due(now);
                if now.duration_since(last_report) >= REPORT_EVERY {
                    last_report = now;
                    self.report();
                }
                if now.duration_since(last_health) >= HEALTH_EVERY {
                    last_health = now;
                    self.report_health();
                }
                if progress && now.duration_since(last_progress) >= Duration::from_secs(1) {
                    last_progress = now;
                    print_progress(&self.summary, started, self.remaining());
                }
                if self.opts.mode == RunMode::UntilCaughtUp && self.all_caught_up(now) {
                    return Ok(());
                }
            }
        }
    }

    /// Tells partition completion whether this driver holds the completer's source partition
    /// (assigned, or failed and waiting for a person: it is still this instance's).
    fn report_completer(&self) {
        if let Some(seat) = &self.completer_seat {
            let holds = self.failed.contains_key(&seat.first) || self.streams.iter().any(|s| s.id == seat.first);
            seat.completion.set_completer(holds);
        }
    }

    /// A lost session reconnects; anything else ends the run.
    fn on_stop(&mut self, stop: Stop) -> Result<(), String> {
        match stop {
            Stop::Fatal(message) => Err(message),
            Stop::Lost(reason) => self.reconnect(reason),
        }
    }

    /// Drops every stream, waits for the commits in flight (a queue's recovery must see their
    /// `message_id`s), backs off and opens a new session; repeats while sessions fail.
    fn reconnect(&mut self, mut reason: String) -> Result<(), String> {
        loop {
            if self.shutdown.requested() {
                return Ok(());
            }
            self.session_failures += 1;
            let delay = session_backoff().delay(self.session_failures);
            self.watch.beat();
            self.watch.problem(ProblemKey::Source, Some(format!("source: {reason}")));
            if self.session_error.as_deref() != Some(reason.as_str()) {
                let kind = self.source.kind();
                tracing::warn!(pipeline = %self.pipeline(), %reason, retry_in_ms = delay.as_millis() as u64, "{kind} session ended; reconnecting with backoff (what was not acknowledged is delivered again; published redeliveries are dropped)");
                self.session_error = Some(reason.clone());
            }
            for stream in std::mem::take(&mut self.streams) {
                let _ = self.tx.send(WriterMsg::Drop { stream: stream.id });
            }
            self.report_completer();
            match self.wait_inflight(|d| d.shutdown.requested()) {
                Ok(()) => {}
                Err(Stop::Fatal(message)) => return Err(message),
                Err(Stop::Lost(_)) => {} // acknowledgements of the lost session are void anyway
            }
            let shutdown = self.shutdown.clone();
            if self.handle.block_on(shutdown.sleep(delay)) {
                return Ok(());
            }
            match self.source.connect() {
                Ok(()) => {
                    let kind = self.source.kind();
                    tracing::info!(pipeline = %self.pipeline(), failures = self.session_failures, "{kind} session restored; consuming again");
                    self.session_failures = 0;
                    self.session_error = None;
                    self.watch.problem(ProblemKey::Source, None);
                    return Ok(());
                }
                Err(SourceError::SessionLost(r)) => reason = r,
                Err(SourceError::Fatal(message)) => return Err(message),
            }
        }
    }

    /// One poll: every delivery and event goes through [`Self::on_polled`]. The source is
    /// lent out for the call (the callback needs the rest of the driver mutably), and
    /// [`Detached`] stands in for it meanwhile.
    fn poll(&mut self) -> Result<(), SourceError> {
        self.delivered = 0;
        let mut source = std::mem::replace(&mut self.source, Box::new(Detached));
        let result = source.poll(TICK, &mut |polled| self.on_polled(polled));
        self.source = source;
        result
    }

    fn on_polled(&mut self, polled: Polled<'_>) -> Verdict {
        match polled {
            Polled::Delivery(d) => self.on_delivery(d),
            Polled::Event(event) => {
                self.on_event(event);
                Verdict::Taken
            }
        }
    }

    fn index(&mut self, name: &str, partition: i32) -> Option<usize> {
        let hit = self.streams.get(self.last_index).is_some_and(|s| s.id.partition == partition && s.id.name == name);
        if !hit {
            self.last_index = self.streams.iter().position(|s| s.id.partition == partition && s.id.name == name)?;
        }
        Some(self.last_index)
    }

    fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    fn on_event(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Assigned(a) => {
                let epoch = self.epoch();
                let id = a.stream.clone();
                let mut stream = Stream::new(a, epoch, self.positions, Instant::now());
                if let Some((failures, reason)) = self.rewound.remove(&id) {
                    stream.flow = Flow::Rewound { failures, paused_until: None, reason };
                }
                if self.failed.remove(&id).is_some() {
                    self.watch.problem(ProblemKey::Stream(id.to_string()), None);
                    tracing::info!(pipeline = %self.summary.pipeline, stream = %id, "stream consumed again after its failure");
                }
                match self.index(&id.name, id.partition) {
                    Some(i) => self.streams[i] = stream,
                    None => self.streams.push(stream),
                }
                if self.paused.remove(&id) {
                    self.to_resume.push(id);
                }
            }
            SourceEvent::Revoked(id) => {
                if let Some(i) = self.index(&id.name, id.partition) {
                    self.streams.swap_remove(i);
                }
                self.rewound.remove(&id);
                if self.failed.remove(&id).is_some() {
                    self.watch.problem(ProblemKey::Stream(id.to_string()), None);
                }
                if self.tx.send(WriterMsg::Drop { stream: id }).is_err() {
                    self.failure.get_or_insert_with(|| "the writer task stopped".into());
                }
            }
            SourceEvent::ReachedEnd { partition } => self.ended.push(partition),
            SourceEvent::Failed { stream, reason } => {
                if let Some(i) = self.index(&stream.name, stream.partition) {
                    self.streams.swap_remove(i);
                }
                self.watch.problem(ProblemKey::Stream(stream.to_string()), Some(format!("{stream}: {reason}")));
                self.failed.insert(stream, reason);
            }
            SourceEvent::PositionJumped { message, .. } => self.watch.position_jumped(&message),
        }
    }

    /// Numbers, decodes and buffers one delivery (the hot path: one lookup, no allocation
    /// for an offset source).
    fn on_delivery(&mut self, d: Delivery<'_>) -> Verdict {
        self.delivered += 1;
        self.summary.received += 1;
        self.unclocked += 1;
        if self.unclocked >= CLOCK_EVERY {
            self.unclocked = 0;
            self.now = Instant::now();
        }
        let Some(i) = self.index(d.name, d.partition) else { return Verdict::Taken };
        let now = self.now;
        let s = &mut self.streams[i];
        let position = match &mut s.lane {
            Lane::Offsets => {
                // Offsets only grow within a partition. An offset below the resume position
                // was published; one at or below the last consumed is a stale copy (fetched
                // before a seek and delivered after it): taking it would double a row.
                if s.buf.next_expected.is_some_and(|n| d.offset < n) || s.buf.last.is_some_and(|l| d.offset <= l) {
                    return Verdict::Taken;
                }
                d.offset
            }
            Lane::Sequence { next, window, last_token, .. } => {
                if d.redelivered && d.message_id.is_some_and(|id| window.contains(id)) {
                    self.summary.duplicates += 1;
                    return Verdict::Duplicate;
                }
                let seq = *next;
                *next += 1;
                *last_token = d.token;
                match d.message_id {
                    Some(id) => s.buf.ids.push(id.to_string()),
                    None => self.summary.without_message_id += 1,
                }
                seq
            }
        };
        s.last_delivery = now;
        self.summary.source_bytes += d.payload.map_or(0, <[u8]>::len) as u64;
        let at =
            SourcePosition { topic: d.name, partition: d.partition, offset: position, timestamp_ms: d.timestamp_ms };
        let routed = self.router.route(&mut s.buf, d.payload, &at, &self.policy);
        s.buf.consumed(position, now);
        if let Some((dir, batch)) = routed.chunk {
            if self.tx.append(s.id.clone(), s.buf.epoch, dir, batch).is_err() {
                self.failure.get_or_insert_with(|| "the writer task stopped".into());
            }
        }
        self.unmeasured_bytes += d.payload.map_or(0, <[u8]>::len);
        let roll = routed.roll.or_else(|| {
            let window = self.max_open_range.is_some_and(|max| self.streams[i].buf.open_rows() >= max);
            window.then_some(Trigger::Window)
        });
        let cut = if let Some(trigger) = roll {
            self.cut(i, trigger)
        } else if routed.opened {
            self.cap_open_files()
        } else {
            Ok(())
        };
        let cut = cut.and_then(|()| {
            if self.unmeasured_bytes < (self.limits.max_buffered_bytes / BUDGET_SLICES).max(1) {
                return Ok(());
            }
            self.unmeasured_bytes = 0;
            self.ship_over_budget()
        });
        if let Err(e) = cut {
            self.failure.get_or_insert(e);
        }
        Verdict::Taken
    }

    /// `roll.max_open_files`, checked whenever a row opens a file: past the cap, the stream
    /// holding the most open files is committed, so no more than the cap are ever open.
    fn cap_open_files(&mut self) -> Result<(), String> {
        let open: usize = self.streams.iter().map(|s| s.buf.open_files()).sum();
        if open <= self.limits.max_open_files {
            return Ok(());
        }
        let Some(i) = (0..self.streams.len()).max_by_key(|&i| self.streams[i].buf.open_files()) else { return Ok(()) };
        tracing::debug!(pipeline = %self.pipeline(), open_files = open, stream = %self.streams[i].id, "too many open files; committing the stream with the most");
        self.cut(i, Trigger::MaxOpenFiles)
    }

    fn after_poll(&mut self) {
        for id in std::mem::take(&mut self.to_resume) {
            self.source.set_paused(&id, false);
        }
        let ended = std::mem::take(&mut self.ended);
        if self.opts.mode != RunMode::UntilCaughtUp {
            return;
        }
        for partition in ended {
            for s in self.streams.iter_mut().filter(|s| s.id.partition == partition && !s.buf.caught_up) {
                s.buf.caught_up = self.source.caught_up(&s.id, s.next_position());
            }
        }
    }

    /// Sends the open range of stream `i` to the writer as a commit, cut by `trigger`.
    fn cut(&mut self, i: usize, trigger: Trigger) -> Result<(), String> {
        let s = &mut self.streams[i];
        let ids = std::mem::take(&mut s.buf.ids);
        let last = s.buf.last;
        if send_cut(&self.tx, &s.id, &mut s.buf, ids, trigger)? {
            self.inflight += 1;
            if let (Lane::Sequence { cuts, last_token, .. }, Some(end)) = (&mut s.lane, last) {
                cuts.push_back((end, *last_token));
            }
        }
        Ok(())
    }

    /// Age and size rolls.
    fn periodic_rolls(&mut self, now: Instant) -> Result<(), String> {
        for i in 0..self.streams.len() {
            if let Some(trigger) = self.streams[i].buf.should_roll(&self.policy, now) {
                self.cut(i, trigger)?;
            }
        }
        Ok(())
    }

    /// The consumer side of the memory budget: while the builders hold more than half of
    /// `roll.max_buffered_bytes`, the largest ships to the writer (whose half is kept by
    /// [`Writer`](crate::pipeline::writer::Writer)). O(open files): called once per slice of
    /// the budget taken, not per message.
    fn ship_over_budget(&mut self) -> Result<(), String> {
        let mut buffered: usize = self.streams.iter().map(|s| s.buf.buffered_bytes()).sum();
        self.summary.peak_consumer_bytes = self.summary.peak_consumer_bytes.max(buffered as u64);
        while buffered > self.limits.max_buffered_bytes / 2 {
            let Some(i) = (0..self.streams.len()).max_by_key(|&i| self.streams[i].buf.buffered_bytes()) else { break };
            let Some((dir, batch, size)) = self.streams[i].buf.ship_largest() else { break };
            let (stream, epoch) = (self.streams[i].id.clone(), self.streams[i].buf.epoch);
            self.tx.append(stream, epoch, dir, batch).map_err(|e| e.to_string())?;
            buffered = buffered.saturating_sub(size.max(1));
        }
        Ok(())
    }

    /// Resumes streams whose rewind backoff has passed.
    fn resume_due(&mut self, now: Instant) {
        for s in &mut self.streams {
            if let Flow::Rewound { paused_until, .. } = &mut s.flow {
                if paused_until.is_some_and(|t| now >= t) {
                    *paused_until = None;
                    self.paused.remove(&s.id);
                    self.source.set_paused(&s.id, false);
                }
            }
        }
    }

    /// Every stream is at its end; a quiet stream is asked (at most once per tick).
    fn all_caught_up(&mut self, now: Instant) -> bool {
        for s in self.streams.iter_mut().filter(|s| !s.buf.caught_up) {
            if now.duration_since(s.last_delivery) >= IDLE {
                s.buf.caught_up = self.source.caught_up(&s.id, s.next_position());
            }
        }
        (!self.streams.is_empty() || !self.failed.is_empty())
            && !self.source.settling()
            && self.streams.iter().all(|s| s.buf.caught_up)
    }

    /// Adds what was counted since the last report to the metrics; the heartbeat and buffers.
    fn report(&mut self) {
        let (s, r, m) = (&self.summary, &mut self.reported, &self.watch.metrics);
        m.events_received.inc_by(s.received - r.received);
        m.bytes_received.inc_by(s.source_bytes - r.bytes);
        m.events_duplicate.inc_by(s.duplicates - r.duplicates);
        (r.received, r.bytes, r.duplicates) = (s.received, s.source_bytes, s.duplicates);
        self.watch.beat();
        self.watch.set_consumer_buffered(self.streams.iter().map(|s| s.buf.buffered_bytes() as u64).sum());
    }

    /// The source's reachability and each consumed stream's lag.
    fn report_health(&mut self) {
        let health = self.source.health();
        if self.session_error.is_none() {
            self.watch.problem(ProblemKey::Source, health.problem);
        }
        if health.backlog.is_empty() {
            return; // not known (yet): keep the last figures
        }
        let mut lag = BTreeMap::new();
        for (id, backlog) in health.backlog {
            let Some(s) = self.streams.iter().find(|s| s.id == id) else { continue };
            let behind = match backlog {
                Backlog::Messages(n) => n,
                Backlog::Offsets { low, end } => (end - s.next_position().unwrap_or(low).max(low)).max(0) as u64,
            };
            lag.insert(id, behind);
        }
        self.watch.set_lag(lag);
    }

    /// Positions left to the known ends, for the progress line.
    fn remaining(&self) -> Option<i64> {
        let known: Vec<i64> = self
            .streams
            .iter()
            .filter(|s| s.buf.end_at_start < i64::MAX)
            .map(|s| (s.buf.end_at_start - s.next_position().unwrap_or(0)).max(0))
            .collect();
        (!known.is_empty()).then(|| known.iter().sum())
    }

    /// Publishes what is buffered, waits for the writer (a backfill for every commit, the
    /// daemon within the deadline), and closes the source.
    fn finish(&mut self, outcome: Result<(), String>, started: Instant) -> Result<(), String> {
        let deadline = Instant::now() + self.opts.shutdown_deadline;
        let mut result = outcome;
        if result.is_ok() {
            for i in 0..self.streams.len() {
                if let Err(e) = self.cut(i, Trigger::Shutdown) {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            let rewinds_before = self.rewinds;
            let until_caught_up = self.opts.mode == RunMode::UntilCaughtUp;
            // A backfill waits for every commit (its exit code says "landed"), unless asked to
            // stop; the daemon has a deadline from its supervisor.
            let waited = self.wait_inflight(|d| {
                d.shutdown.expired() || (!until_caught_up || d.shutdown.requested()) && Instant::now() >= deadline
            });
            let backfill = until_caught_up && !self.shutdown.requested();
            match waited {
                Err(Stop::Fatal(message)) => result = Err(message),
                Err(Stop::Lost(reason)) if backfill => {
                    result = Err(format!("a commit failed while finishing the backfill ({reason}); run again to land the rest (nothing is lost or doubled)"));
                }
                _ => {}
            }
            if self.inflight > 0 {
                tracing::error!(pipeline = %self.pipeline(), commits = self.inflight, "shutdown deadline passed with commits unpublished; they are consumed again at the next start (no loss; offsets land once, queue redeliveries already published are dropped by message_id)");
            }
            if backfill && result.is_ok() && self.rewinds > rewinds_before {
                result = Err("a commit failed while finishing the backfill; run again to land the rest (nothing is lost or doubled)".into());
            }
        }
        if self.opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            print_progress(&self.summary, started, self.remaining());
            eprintln!();
        }
        // A synchronous mirror of the positions waits for the broker: not after expiry.
        self.source.flush(!self.shutdown.expired());
        self.source.close();
        result
    }
}

/// Stands in for the source while the driver lends it to its own poll.
struct Detached;

impl Source for Detached {
    fn kind(&self) -> &'static str {
        "detached"
    }
    fn positions(&self) -> Positions {
        Positions::SourceOffsets
    }
    fn connect(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
    fn poll(&mut self, _: Duration, _: &mut dyn FnMut(Polled<'_>) -> Verdict) -> Result<(), SourceError> {
        Ok(())
    }
    fn published(&mut self, _: &StreamId, _: i64, _: Option<u64>) -> Result<(), SourceError> {
        Ok(())
    }
    fn rewind(&mut self, stream: &StreamId, _: Duration) -> Result<crate::source::Rewound, SourceError> {
        Err(SourceError::Fatal(format!("{stream}: the source is detached")))
    }
    fn caught_up(&mut self, _: &StreamId, _: Option<i64>) -> bool {
        false
    }
    fn probe(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}
