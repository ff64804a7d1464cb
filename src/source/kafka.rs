//! The Kafka source: a librdkafka consumer in a consumer group whose resume positions come from
//! Landfall's commit log in the table's store, never from Kafka's group offsets (those are
//! only mirrored after each publish, for lag tools).
//!
//! Rebalances are handled in [`LandfallContext::rebalance`], which runs inside `poll` on the
//! consumer thread and does no store I/O: a newly assigned partition is assigned paused and
//! queued for recovery. [`KafkaSource::poll`] then recovers queued partitions one attempt at a
//! time, outside the callback (so a slow or broken store never holds up a rebalance, and
//! never gets the member evicted): the commit log is read (its last commit re-published if a
//! crash interrupted it), the resume offset is checked against what the broker still has, and
//! the partition is sought there and resumed. A transient failure is retried with backoff; one
//! that needs a person (a manifest it cannot use, a committed position the topic no longer
//! has) keeps that partition stopped, says why once, and is retried slowly, while the other
//! partitions go on. Assignments and revocations reach the driver as [`SourceEvent`]s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

use super::{
    Assignment, Backlog, Delivery, Polled, PositionJump, Positions, Recovered, Recovery, RecoveryError, Rewound,
    Source, SourceError, SourceEvent, SourceHealth, StreamId, Verdict,
};
use crate::config::source::kafka::DEFAULT_ASSIGNMENT_STRATEGY;
use crate::config::{KafkaSourceConfig, OnPositionLost, StartPosition};
use crate::retry::Backoff;

/// How often librdkafka reports its statistics (broker states, partition offsets), read for
/// `/ready` and the lag metric (`statistics.interval.ms` in `source.kafka.options` overrides it).
const STATS_INTERVAL_MS: u64 = 5000;

/// Messages handed to the driver per [`Source::poll`]: enough to amortise the driver's checks
/// between polls (feedback, timers), few enough to react within microseconds.
const BATCH: usize = 64;

/// Retries of a recovery that failed transiently (store or broker unreachable): from 200 ms,
/// doubling to 30 s.
fn transient_backoff() -> Backoff {
    Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(30), give_up_after: None }
}

/// Retries of a recovery that needs a person: slow, so a fixed table or topic is noticed
/// within minutes without hammering the store.
const PERMANENT_RETRY: Duration = Duration::from_secs(300);

/// A partition assigned (or rewound) and not yet handed to the driver: paused until its
/// commit log is read and its resume offset is placed.
#[derive(Debug)]
struct Pending {
    /// No attempt before this.
    due: Instant,
    /// Failed attempts so far.
    failures: u32,
    /// The last failure, logged once per change.
    error: Option<RecoveryError>,
    /// `start: latest` before the first commit: the end pinned at the first assignment.
    origin: Option<i64>,
}

impl Pending {
    fn new(due: Instant, origin: Option<i64>) -> Pending {
        Pending { due, failures: 0, error: None, origin }
    }
}

/// What an assigned partition's consumption is measured against.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// `start: latest` before the first commit: the end pinned at the first assignment.
    origin: Option<i64>,
    /// The end seen at assignment (`i64::MAX`: unknown), where `--until-caught-up` stops.
    end: i64,
    /// The offset consumption was sought to at assignment (the earliest offset when nothing
    /// is committed), the position until the consumer reports one.
    first: Option<i64>,
}

/// The consumer context: logs through tracing, recovers positions on assignment.
pub struct LandfallContext {
    pipeline: String,
    recovery: Recovery,
    /// Assigned partitions waiting for recovery (filled by the rebalance callback, drained by
    /// [`KafkaSource::poll`]; both run on the consumer thread).
    pending: Mutex<HashMap<StreamId, Pending>>,
    events: Mutex<Vec<SourceEvent>>,
    /// Set when `events` holds something: checked per poll without taking the lock.
    has_events: AtomicBool,
    /// Per assigned partition: the pinned origin, the end seen at assignment and the offset
    /// sought to then (the driver gets the origin again after a rewind; `--until-caught-up`
    /// stops at that end).
    bounds: Mutex<HashMap<StreamId, Bounds>>,
    /// The last client error logged, to log each state change once.
    last_error: Mutex<Option<String>>,
    /// Set while errors are being reported; cleared (with a log line) when a message arrives.
    failing: AtomicBool,
    /// What the newest statistics said (every [`STATS_INTERVAL_MS`]).
    stats: Mutex<Option<stats::Seen>>,
}

impl LandfallContext {
    fn queue(&self, events: impl IntoIterator<Item = SourceEvent>) {
        self.events.lock().expect("events lock").extend(events);
        self.has_events.store(true, Ordering::Release);
    }
}

impl ClientContext for LandfallContext {
    /// librdkafka's own messages, under the target `librdkafka` (filter them with
    /// `log_level: info,librdkafka=warn`), with the pipeline and librdkafka's facility.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let pipeline = &self.pipeline;
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", %pipeline, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", %pipeline, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", %pipeline, facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", %pipeline, facility = fac, "{log_message}"),
        }
    }

    /// Only the few fields `/ready` and the lag need are parsed (see [`stats`]).
    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<stats::Raw>(statistics) {
            Ok(raw) => *self.stats.lock().expect("stats lock") = Some(raw.into()),
            Err(e) => tracing::debug!(pipeline = %self.pipeline, error = %e, "unreadable librdkafka statistics"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            return; // reaching the end of a partition is news only to --until-caught-up
        }
        // librdkafka retries by itself and repeats the same error on every attempt: log a
        // line when the error changes, and one when messages flow again (`delivering`).
        let text = error.to_string();
        let mut last = self.last_error.lock().expect("error lock");
        if last.as_deref() != Some(text.as_str()) {
            tracing::warn!(pipeline = %self.pipeline, error = %text, "Kafka: {reason}; retrying ({})", advice(&error));
            *last = Some(text);
            self.failing.store(true, Ordering::Relaxed);
        }
    }
}

/// What to check for a client error librdkafka keeps retrying.
fn advice(error: &KafkaError) -> &'static str {
    use rdkafka::types::RDKafkaErrorCode as Code;
    match error.rdkafka_error_code() {
        Some(Code::InconsistentGroupProtocol) => {
            "the group's members have no partition.assignment.strategy in common (eager `range`/`roundrobin` \
             vs `cooperative-sticky`, Landfall's default): stop every instance of the group, then start \
             them all with the same source.kafka.options"
        }
        _ => "is the broker up? check source.kafka.brokers",
    }
}

fn stream_of(elem: &rdkafka::topic_partition_list::TopicPartitionListElem<'_>) -> StreamId {
    StreamId::new(elem.topic(), elem.partition())
}

impl ConsumerContext for LandfallContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), rdkafka::consumer::RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Assigned at the beginning and paused at once: nothing is fetched before the
                // partition is recovered and sought to its resume offset (a seek also voids
                // anything fetched before it).
                let mut list = TopicPartitionList::new();
                for elem in tpl.elements() {
                    let _ = list.add_partition_offset(elem.topic(), elem.partition(), Offset::Beginning);
                }
                let result = if cooperative { consumer.incremental_assign(&list) } else { consumer.assign(&list) };
                if let Err(e) = result {
                    // Nothing assigned: no events, the group rebalances again.
                    tracing::error!(pipeline = %self.pipeline, error = %e, "Kafka assign failed; waiting for the next rebalance");
                    return;
                }
                if let Err(e) = consumer.pause(&list) {
                    tracing::error!(pipeline = %self.pipeline, error = %e, "cannot pause newly assigned partitions");
                }
                let now = Instant::now();
                let mut pending = self.pending.lock().expect("pending lock");
                for elem in list.elements() {
                    let stream = stream_of(&elem);
                    tracing::info!(pipeline = %self.pipeline, %stream, "partition assigned; recovering its commit log");
                    pending.insert(stream, Pending::new(now, None));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<StreamId> = tpl.elements().iter().map(stream_of).collect();
                let mut pending = self.pending.lock().expect("pending lock");
                for stream in &revoked {
                    pending.remove(stream);
                    tracing::info!(pipeline = %self.pipeline, %stream, "partition revoked");
                }
                drop(pending);
                self.queue(revoked.into_iter().map(SourceEvent::Revoked));
                let result = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = result {
                    tracing::error!(pipeline = %self.pipeline, error = %e, "Kafka unassign failed");
                }
            }
            other => {
                tracing::warn!(pipeline = %self.pipeline, error = ?other, "rebalance error; dropping the assignment");
                let current = consumer.assignment();
                // A cooperative consumer may only change its assignment incrementally.
                let _ = match (&current, cooperative) {
                    (Ok(current), true) => consumer.incremental_unassign(current),
                    _ => consumer.unassign(),
                };
                self.pending.lock().expect("pending lock").clear();
                if let Ok(current) = current {
                    self.queue(current.elements().iter().map(|e| SourceEvent::Revoked(stream_of(e))));
                }
            }
        }
    }
}

/// A consumer-group member whose positions live in the commit log.
pub struct KafkaSource {
    consumer: BaseConsumer<LandfallContext>,
    topics: Vec<String>,
    brokers: String,
    start: StartPosition,
    on_position_lost: OnPositionLost,
    subscribed: bool,
    /// Published positions not yet mirrored to the consumer group.
    mirror: HashMap<StreamId, i64>,
    /// The last consume error logged (one line per change).
    consume_error: Option<String>,
}

impl KafkaSource {
    /// Creates the consumer; [`Source::connect`] subscribes, and partitions then arrive
    /// through rebalance callbacks.
    pub fn build(pipeline: &str, cfg: &KafkaSourceConfig, recovery: Recovery) -> Result<KafkaSource, SourceError> {
        let brokers = cfg.brokers.join(",");
        let mut client = client_config(cfg);
        // librdkafka stops fetching a partition whose local queue is full and, by default,
        // waits 1 s (`fetch.queue.backoff.ms`) before fetching it again. Landfall drains the
        // queue in well under a second, so that pause left it idle most of the time: 1 M
        // events took 7.0 s with the default and 1.6 s with 10 ms. Options override it.
        if client.get("fetch.queue.backoff.ms").is_none() {
            client.set("fetch.queue.backoff.ms", "10");
        }
        client
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            // Resume offsets are always explicit and checked against the log before a seek; a
            // position that leaves the log while consuming (truncation by an unclean leader
            // election) must be reported, not silently moved to an end.
            .set("auto.offset.reset", "error")
            .set("client.id", format!("landfall-{pipeline}"));
        if !cfg.next_gen_protocol() {
            // The classic protocol: the client asks for its session timeout and picks the
            // assignor. Cooperative: a rebalance revokes only the partitions that move, so the
            // others keep landing through a member's restart.
            client.set("session.timeout.ms", cfg.session_timeout().as_millis().to_string());
            if client.get("partition.assignment.strategy").is_none() {
                client.set("partition.assignment.strategy", DEFAULT_ASSIGNMENT_STRATEGY);
            }
        }
        if client.get("statistics.interval.ms").is_none() {
            client.set("statistics.interval.ms", STATS_INTERVAL_MS.to_string());
        }
        client.set_log_level(RDKafkaLogLevel::Warning);
        let context = LandfallContext {
            pipeline: pipeline.to_string(),
            recovery,
            pending: Mutex::new(HashMap::new()),
            events: Mutex::new(Vec::new()),
            has_events: AtomicBool::new(false),
            bounds: Mutex::new(HashMap::new()),
            last_error: Mutex::new(None),
            failing: AtomicBool::new(false),
            stats: Mutex::new(None),
        };
        let consumer: BaseConsumer<LandfallContext> = client.create_with_context(context).map_err(|e| {
            SourceError::Fatal(format!(
                "cannot create the Kafka consumer for brokers {brokers}: {e}; check source.kafka.options"
            ))
        })?;
        Ok(KafkaSource {
            consumer,
            topics: cfg.topics.clone(),
            brokers,
            start: cfg.start,
            on_position_lost: cfg.on_position_lost,
            subscribed: false,
            mirror: HashMap::new(),
            consume_error: None,
        })
    }

    /// Logs the recovery once after client errors.
    fn delivering(&mut self) {
        self.consume_error = None;
        let ctx = self.consumer.context();
        if ctx.failing.load(Ordering::Relaxed) && ctx.failing.swap(false, Ordering::Relaxed) {
            ctx.last_error.lock().expect("error lock").take();
            tracing::info!(pipeline = %ctx.pipeline, "Kafka is delivering again");
        }
    }

    fn take_events(&self) -> Vec<SourceEvent> {
        let ctx = self.consumer.context();
        if !ctx.has_events.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *ctx.events.lock().expect("events lock"))
    }

    fn bounds(&self, stream: &StreamId) -> Bounds {
        let known = self.consumer.context().bounds.lock().expect("bounds lock").get(stream).copied();
        known.unwrap_or(Bounds { origin: None, end: i64::MAX, first: None })
    }

    /// One recovery attempt for each queued partition that is due; the recovered ones are
    /// sought, resumed and handed to the driver.
    fn recover_due(&mut self, on: &mut dyn FnMut(Polled<'_>) -> Verdict) {
        let now = Instant::now();
        let due: Vec<(StreamId, Option<i64>)> = {
            let pending = self.consumer.context().pending.lock().expect("pending lock");
            pending.iter().filter(|(_, p)| p.due <= now).map(|(s, p)| (s.clone(), p.origin)).collect()
        };
        for (stream, origin) in due {
            let recovery = self.consumer.context().recovery.clone();
            let outcome = recovery.attempt(&stream).and_then(|r| self.place(&stream, r, origin));
            let ctx = self.consumer.context();
            let mut pending = ctx.pending.lock().expect("pending lock");
            let Some(entry) = pending.get_mut(&stream) else { continue };
            match outcome {
                Ok((assignment, first)) => {
                    if entry.failures > 0 {
                        tracing::info!(pipeline = %ctx.pipeline, %stream, failures = entry.failures, "partition recovered after failed attempts");
                    }
                    pending.remove(&stream);
                    drop(pending);
                    set_paused(&self.consumer, &stream, false);
                    tracing::info!(pipeline = %ctx.pipeline, stream = %assignment.stream, resume_offset = ?assignment.resume, origin = ?assignment.origin, end_offset = assignment.end, "partition ready");
                    let bounds = Bounds { origin: assignment.origin, end: assignment.end, first: Some(first) };
                    ctx.bounds.lock().expect("bounds lock").insert(stream, bounds);
                    on(Polled::Event(SourceEvent::Assigned(assignment)));
                }
                Err(RecoveryError::Stopping) => {}
                Err(error) => {
                    entry.failures += 1;
                    let permanent = matches!(error, RecoveryError::Permanent(_));
                    let delay = if permanent { PERMANENT_RETRY } else { transient_backoff().delay(entry.failures) };
                    entry.due = now + delay;
                    if entry.error.as_ref() == Some(&error) {
                        continue;
                    }
                    entry.error = Some(error.clone());
                    drop(pending);
                    let retry_in_s = delay.as_secs_f32();
                    if permanent {
                        tracing::error!(pipeline = %ctx.pipeline, %stream, %error, retry_in_s, "partition stopped: it cannot be consumed until this is fixed; the other partitions go on");
                        on(Polled::Event(SourceEvent::Failed { stream, reason: error.to_string() }));
                    } else {
                        tracing::warn!(pipeline = %ctx.pipeline, %stream, %error, retry_in_s, "partition not recovered yet; retrying");
                    }
                }
            }
        }
    }

    /// Where a recovered partition resumes, checked against the offsets the broker still
    /// has, and the seek there; returns the assignment and the offset sought to.
    fn place(
        &mut self,
        stream: &StreamId,
        recovered: Recovered,
        origin: Option<i64>,
    ) -> Result<(Assignment, i64), RecoveryError> {
        let (low, high) =
            self.consumer.fetch_watermarks(&stream.name, stream.partition, Duration::from_secs(10)).map_err(|e| {
                RecoveryError::Transient(format!("cannot read the offsets of {stream} from the broker: {e}"))
            })?;
        let mut resume = recovered.next;
        if let Some(next) = resume.filter(|next| *next > high) {
            resume = Some(self.jump(stream, next, low, high)?);
        }
        let (to, origin) = match (resume, self.start) {
            (Some(next), _) if next < low => {
                tracing::error!(pipeline = %self.consumer.context().pipeline, %stream, committed_next = next, earliest = low, lost = low - next, "the broker deleted offsets {next}..{} (retention) before Landfall landed them; resuming at {low}; raise the topic's retention.ms above the longest outage you must survive", low - 1);
                (Offset::Offset(low), None)
            }
            (Some(next), _) => (Offset::Offset(next), None),
            (None, StartPosition::Earliest) => (Offset::Beginning, None),
            (None, StartPosition::Latest) => {
                let pinned = origin.unwrap_or(high);
                (Offset::Offset(pinned), Some(pinned))
            }
        };
        self.consumer
            .seek(&stream.name, stream.partition, to, Duration::from_secs(10))
            .map_err(|e| RecoveryError::Transient(format!("cannot seek {stream} to its resume offset: {e}")))?;
        let first = match to {
            Offset::Offset(offset) => offset,
            _ => low,
        };
        Ok((Assignment { stream: stream.clone(), resume, origin, end: high, recent_ids: Vec::new() }, first))
    }

    /// A committed position past the partition's end: stop (`on_position_lost: fail`), or
    /// record a jump to the log's start or end in the commit log and resume there.
    fn jump(&self, stream: &StreamId, next: i64, low: i64, high: i64) -> Result<i64, RecoveryError> {
        let to = match self.on_position_lost {
            OnPositionLost::Fail => return Err(position_lost(stream, next, low, high)),
            OnPositionLost::Earliest => low,
            OnPositionLost::Latest => high,
        };
        let policy = self.on_position_lost.as_str();
        let ctx = self.consumer.context();
        let jump = PositionJump { to, earliest: low, latest: high, policy };
        let recovered = ctx.recovery.jump(stream, &jump)?;
        let resume = recovered.next.unwrap_or(to);
        if resume != to {
            tracing::info!(pipeline = %ctx.pipeline, %stream, resume, "another member already recorded this partition's position jump");
            return Ok(resume);
        }
        let message = format!(
            "{stream}: the commit log resumed at offset {next}, but the partition holds offsets {low}..{high} \
             (the topic was deleted and recreated, or truncated); on_position_lost: {policy} moved landing to \
             offset {to}{}",
            if to > low { format!("; offsets {low}..={} are given up", to - 1) } else { String::new() }
        );
        tracing::error!(pipeline = %ctx.pipeline, %stream, committed_next = next, earliest = low, latest = high, to, policy, "{message}");
        ctx.queue([SourceEvent::PositionJumped { stream: stream.clone(), message }]);
        Ok(to)
    }

    /// librdkafka stopped a partition whose position left the log (`auto.offset.reset=error`;
    /// the error names no partition): every assigned partition whose position is outside its
    /// log goes back to recovery, which names the problem.
    fn position_left_the_log(&mut self, on: &mut dyn FnMut(Polled<'_>) -> Verdict) {
        let Ok(positions) = self.consumer.position() else { return };
        let now = Instant::now();
        for elem in positions.elements() {
            let stream = stream_of(&elem);
            let Some(position) = elem.offset().to_raw().filter(|o| *o >= 0) else { continue };
            let Ok((low, high)) =
                self.consumer.fetch_watermarks(&stream.name, stream.partition, Duration::from_secs(10))
            else {
                continue;
            };
            if (low..=high).contains(&position) {
                continue;
            }
            let ctx = self.consumer.context();
            tracing::warn!(pipeline = %ctx.pipeline, %stream, position, earliest = low, latest = high, "the partition's position left its log while consuming; recovering it again");
            let origin = ctx.bounds.lock().expect("bounds lock").get(&stream).and_then(|b| b.origin);
            ctx.pending.lock().expect("pending lock").insert(stream.clone(), Pending::new(now, origin));
            set_paused(&self.consumer, &stream, true);
            self.mirror.remove(&stream);
            on(Polled::Event(SourceEvent::Revoked(stream)));
        }
    }
}

fn set_paused(consumer: &BaseConsumer<LandfallContext>, stream: &StreamId, paused: bool) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&stream.name, stream.partition);
    let result = if paused { consumer.pause(&tpl) } else { consumer.resume(&tpl) };
    if let Err(e) = result {
        tracing::debug!(%stream, paused, error = %e, "pause/resume failed");
    }
}

/// The committed position is past the end of the partition: the topic was deleted and
/// recreated, or an unclean leader election truncated it. Resuming anywhere would skip or
/// re-land data without a word, so the partition stops until a person decides.
/// The client settings every Kafka client of a pipeline shares: `source.kafka.options` (security
/// settings…), the brokers, the group, and no automatic offset commits.
pub(crate) fn client_config(cfg: &KafkaSourceConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (key, value) in cfg.options.iter() {
        client.set(key, value);
    }
    client
        .set("bootstrap.servers", cfg.brokers.join(","))
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false");
    client
}

fn position_lost(stream: &StreamId, next: i64, low: i64, high: i64) -> RecoveryError {
    RecoveryError::Permanent(format!(
        "the commit log of {stream} resumes at offset {next}, but the partition now holds offsets {low}..{high} \
         (earliest {low}, latest {high}): the topic was deleted and recreated, or truncated by an unclean \
         leader election; offsets below {next} would be skipped as already landed. Check the topic; to land \
         the partition's current data set `on_position_lost: earliest` (or `latest` to land only what \
         arrives from now on) in source.kafka and restart, or point the pipeline at a new table path"
    ))
}

impl Source for KafkaSource {
    fn kind(&self) -> &'static str {
        "Kafka"
    }

    fn positions(&self) -> Positions {
        Positions::SourceOffsets
    }

    fn connect(&mut self) -> Result<(), SourceError> {
        if self.subscribed {
            return Ok(()); // librdkafka reconnects by itself
        }
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&topics)
            .map_err(|e| SourceError::Fatal(format!("cannot subscribe to topics {:?}: {e}", self.topics)))?;
        self.subscribed = true;
        Ok(())
    }

    fn poll(&mut self, timeout: Duration, on: &mut dyn FnMut(Polled<'_>) -> Verdict) -> Result<(), SourceError> {
        self.recover_due(on);
        let mut wait = timeout;
        for _ in 0..BATCH {
            let polled = self.consumer.poll(wait);
            wait = Duration::ZERO;
            // Rebalance callbacks ran inside that poll: their events come before its message.
            for event in self.take_events() {
                if let SourceEvent::Revoked(stream) = &event {
                    // Its offsets are the new owner's to mirror now (a cooperative rebalance
                    // moves single partitions while this member goes on committing others).
                    self.mirror.remove(stream);
                }
                on(Polled::Event(event));
            }
            match polled {
                None => return Ok(()),
                Some(Ok(msg)) => {
                    let delivery = Delivery {
                        name: msg.topic(),
                        partition: msg.partition(),
                        offset: msg.offset(),
                        payload: msg.payload(),
                        timestamp_ms: msg.timestamp().to_millis(),
                        message_id: None,
                        redelivered: false,
                        token: 0,
                    };
                    on(Polled::Delivery(delivery));
                    drop(msg);
                    if self.consume_error.is_some() || self.consumer.context().failing.load(Ordering::Relaxed) {
                        self.delivering();
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    on(Polled::Event(SourceEvent::ReachedEnd { partition }));
                    return Ok(());
                }
                Some(Err(KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::AutoOffsetReset))) => {
                    self.position_left_the_log(on);
                    return Ok(());
                }
                Some(Err(e)) => {
                    let text = e.to_string();
                    if self.consume_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(pipeline = %self.consumer.context().pipeline, error = %text, "Kafka consume error; retrying ({})", advice(&e));
                        self.consume_error = Some(text);
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn published(&mut self, stream: &StreamId, next: i64, _token: Option<u64>) -> Result<(), SourceError> {
        self.mirror.insert(stream.clone(), next);
        Ok(())
    }

    /// Copies published positions to the group's offsets, for lag tools (never read back).
    fn flush(&mut self, last: bool) {
        if self.mirror.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (stream, next) in self.mirror.drain() {
            let _ = tpl.add_partition_offset(&stream.name, stream.partition, Offset::Offset(next));
        }
        let mode = if last { CommitMode::Sync } else { CommitMode::Async };
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::debug!(error = %e, "mirroring offsets to the consumer group failed; lag tools lag");
        }
    }

    /// Pauses the partition and queues it for recovery after `delay`; it comes back as an
    /// assignment once its commit log says where to resume.
    fn rewind(&mut self, stream: &StreamId, delay: Duration) -> Result<Rewound, SourceError> {
        self.mirror.remove(stream);
        self.set_paused(stream, true);
        let pending = Pending::new(Instant::now() + delay, self.bounds(stream).origin);
        self.consumer.context().pending.lock().expect("pending lock").insert(stream.clone(), pending);
        Ok(Rewound::Later)
    }

    /// Partitions assigned and not yet recovered, unless they wait for a person.
    fn settling(&self) -> bool {
        let pending = self.consumer.context().pending.lock().expect("pending lock");
        pending.values().any(|p| !matches!(p.error, Some(RecoveryError::Permanent(_))))
    }

    fn set_paused(&mut self, stream: &StreamId, paused: bool) {
        set_paused(&self.consumer, stream, paused);
    }

    /// Caught up once the consumer's position reaches the end the partition had when assigned
    /// (looked up again if that lookup failed then). Before anything is delivered or committed
    /// the consumer has no position: the offset it was sought to stands for it, so an empty
    /// partition (earliest = end) is caught up at once instead of holding `--until-caught-up`
    /// open for ever. No broker call unless the end is unknown: this runs on the consumer
    /// thread, and a request queues behind the connection's long-polling fetch.
    fn caught_up(&mut self, stream: &StreamId, next: Option<i64>) -> bool {
        let Bounds { origin, mut end, mut first } = self.bounds(stream);
        if end == i64::MAX {
            if let Ok((low, high)) =
                self.consumer.fetch_watermarks(&stream.name, stream.partition, Duration::from_secs(5))
            {
                (end, first) = (high, first.or(Some(low)));
                let bounds = Bounds { origin, end, first };
                self.consumer.context().bounds.lock().expect("bounds lock").insert(stream.clone(), bounds);
            }
        }
        let position = self
            .consumer
            .position()
            .ok()
            .and_then(|p| p.find_partition(&stream.name, stream.partition).and_then(|e| e.offset().to_raw()))
            .filter(|o| *o >= 0);
        position.or(next).or(first).is_some_and(|p| p >= end)
    }

    /// The broker answers with metadata for every topic (no group is joined).
    fn probe(&mut self) -> Result<(), SourceError> {
        let brokers = &self.brokers;
        for topic in &self.topics {
            let md = self.consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(|e| {
                SourceError::Fatal(format!(
                    "source.kafka.brokers: no metadata from {brokers} within 10 s ({e}); is the broker up?"
                ))
            })?;
            if !md.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()) {
                return Err(SourceError::Fatal(format!(
                    "source.kafka.topics: topic `{topic}` does not exist at {brokers}"
                )));
            }
        }
        Ok(())
    }

    /// From the newest statistics: a problem when no broker is up, and every partition's
    /// low offset and end (the last stable offset: Landfall reads committed transactions).
    fn health(&mut self) -> SourceHealth {
        let seen = self.consumer.context().stats.lock().expect("stats lock").clone();
        let Some(seen) = seen else { return SourceHealth::default() };
        let problem = (!seen.any_broker_up).then(|| {
            format!(
                "source: no Kafka broker of {} is reachable ({}); is the broker up? check source.kafka.brokers",
                self.brokers, seen.broker_states
            )
        });
        let backlog = seen.partitions.into_iter().map(|(s, (low, end))| (s, Backlog::Offsets { low, end })).collect();
        SourceHealth { problem, backlog }
    }

    fn close(&mut self) {
        self.flush(true);
    }
}

/// librdkafka's statistics, the parts Landfall reads.
mod stats {
    use std::collections::HashMap;

    use serde::Deserialize;

    use crate::source::StreamId;

    #[derive(Deserialize)]
    pub struct Raw {
        #[serde(default)]
        brokers: HashMap<String, Broker>,
        #[serde(default)]
        topics: HashMap<String, Topic>,
    }

    #[derive(Deserialize)]
    struct Broker {
        state: String,
        nodeid: i32,
    }

    #[derive(Deserialize)]
    struct Topic {
        #[serde(default)]
        partitions: HashMap<String, Partition>,
    }

    #[derive(Deserialize)]
    struct Partition {
        partition: i32,
        lo_offset: i64,
        hi_offset: i64,
        ls_offset: i64,
    }

    /// What one statistics report says.
    #[derive(Debug, Clone)]
    pub struct Seen {
        /// A broker learned from metadata (not only the bootstrap address) is connected.
        pub any_broker_up: bool,
        /// `name=STATE` of every broker, for the problem text.
        pub broker_states: String,
        /// Per partition with known offsets: (low, end).
        pub partitions: Vec<(StreamId, (i64, i64))>,
    }

    impl From<Raw> for Seen {
        fn from(raw: Raw) -> Seen {
            let any_broker_up = raw.brokers.values().any(|b| b.nodeid >= 0 && b.state == "UP");
            let mut states: Vec<String> = raw.brokers.iter().map(|(name, b)| format!("{name}={}", b.state)).collect();
            states.sort();
            let mut partitions = Vec::new();
            for (topic, t) in raw.topics {
                // Partition -1 is librdkafka's internal unassigned partition.
                for p in t.partitions.into_values().filter(|p| p.partition >= 0 && p.hi_offset >= 0) {
                    let end = if p.ls_offset >= 0 { p.ls_offset } else { p.hi_offset };
                    partitions.push((StreamId::new(topic.clone(), p.partition), (p.lo_offset.max(0), end)));
                }
            }
            Seen { any_broker_up, broker_states: states.join(", "), partitions }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_broker_states_and_partition_ends() {
            let json = r#"{"name":"c","brokers":{
                "127.0.0.1:9092/bootstrap":{"state":"UP","nodeid":-1},
                "127.0.0.1:9092/1":{"state":"DOWN","nodeid":1}},
              "topics":{"clicks":{"topic":"clicks","partitions":{
                "0":{"partition":0,"lo_offset":5,"hi_offset":120,"ls_offset":100,"app_offset":90},
                "-1":{"partition":-1,"lo_offset":-1,"hi_offset":-1,"ls_offset":-1}}}}}"#;
            let seen: Seen = serde_json::from_str::<Raw>(json).unwrap().into();
            assert!(!seen.any_broker_up, "only the bootstrap connection is up");
            assert_eq!(seen.partitions, vec![(StreamId::new("clicks", 0), (5, 100))]);
            assert!(seen.broker_states.contains("127.0.0.1:9092/1=DOWN"), "{}", seen.broker_states);
        }
    }
}
