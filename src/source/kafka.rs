//! The Kafka source: a librdkafka consumer in a consumer group whose resume positions come from
//! Landfall's commit log in the table's store, never from Kafka's group offsets (those are
//! only mirrored after each publish, for lag tools).
//!
//! Rebalances are handled in [`LandfallContext::rebalance`], which runs inside `poll` on the
//! consumer thread: before a partition is assigned, the commit log is recovered (its last
//! commit re-published if a crash interrupted it) and the partition is assigned at the offset
//! after that commit. Assignments and revocations reach the driver as [`SourceEvent`]s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

use super::{Assignment, Delivery, Polled, Positions, Recovery, Source, SourceError, SourceEvent, StreamId, Verdict};
use crate::config::{KafkaSourceConfig, StartPosition};

/// Messages handed to the driver per [`Source::poll`]: enough to amortise the driver's checks
/// between polls (feedback, timers), few enough to react within microseconds.
const BATCH: usize = 64;

/// The consumer context: logs through tracing, recovers positions on assignment.
pub struct LandfallContext {
    pipeline: String,
    start: StartPosition,
    recovery: Recovery,
    events: Mutex<Vec<SourceEvent>>,
    /// Set when `events` holds something: checked per poll without taking the lock.
    has_events: AtomicBool,
    /// Per assigned partition: the pinned origin and the end seen at assignment (the driver
    /// gets both again after a rewind; `--until-caught-up` stops at that end).
    bounds: Mutex<HashMap<StreamId, (Option<i64>, i64)>>,
    /// The last client error logged, to log each state change once.
    last_error: Mutex<Option<String>>,
    /// Set while errors are being reported; cleared (with a log line) when a message arrives.
    failing: AtomicBool,
}

impl LandfallContext {
    fn queue(&self, events: impl IntoIterator<Item = SourceEvent>) {
        self.events.lock().expect("events lock").extend(events);
        self.has_events.store(true, Ordering::Release);
    }
}

impl ClientContext for LandfallContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let pipeline = &self.pipeline;
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(%pipeline, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(%pipeline, facility = fac, "librdkafka: {log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(%pipeline, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(%pipeline, facility = fac, "librdkafka: {log_message}"),
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
            tracing::warn!(pipeline = %self.pipeline, error = %text, "Kafka: {reason}; retrying (is the broker up? check source.kafka.brokers)");
            *last = Some(text);
            self.failing.store(true, Ordering::Relaxed);
        }
    }
}

fn stream_of(elem: &rdkafka::topic_partition_list::TopicPartitionListElem<'_>) -> StreamId {
    StreamId::new(elem.topic(), elem.partition())
}

fn kafka_offset(offset: Option<i64>, start: StartPosition) -> Offset {
    match (offset, start) {
        (Some(o), _) => Offset::Offset(o),
        (None, StartPosition::Earliest) => Offset::Beginning,
        (None, StartPosition::Latest) => Offset::End,
    }
}

impl ConsumerContext for LandfallContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), rdkafka::consumer::RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut assigned = Vec::new();
                let mut list = TopicPartitionList::new();
                for elem in tpl.elements() {
                    let stream = stream_of(&elem);
                    // `None`: shutdown came during recovery; the partition is not taken.
                    let Some(recovered) = self.recovery.recover(&stream) else { continue };
                    let high = consumer
                        .fetch_watermarks(&stream.name, stream.partition, Duration::from_secs(30))
                        .map(|(_, high)| high);
                    let origin = match (recovered.next, self.start) {
                        (None, StartPosition::Latest) => high.as_ref().ok().copied(),
                        _ => None,
                    };
                    let offset = kafka_offset(recovered.next.or(origin), self.start);
                    if let Err(e) = list.add_partition_offset(&stream.name, stream.partition, offset) {
                        tracing::error!(pipeline = %self.pipeline, %stream, error = %e, "cannot set the resume offset");
                        continue;
                    }
                    let end = high.unwrap_or(i64::MAX);
                    assigned.push(Assignment { stream, resume: recovered.next, origin, end, recent_ids: Vec::new() });
                }
                let result = if cooperative { consumer.incremental_assign(&list) } else { consumer.assign(&list) };
                if let Err(e) = result {
                    // Nothing assigned: no events, the group rebalances again.
                    tracing::error!(pipeline = %self.pipeline, error = %e, "Kafka assign failed; waiting for the next rebalance");
                    return;
                }
                let mut bounds = self.bounds.lock().expect("bounds lock");
                for a in &assigned {
                    tracing::info!(pipeline = %self.pipeline, stream = %a.stream, resume_offset = ?a.resume, origin = ?a.origin, end_offset = a.end, "partition assigned");
                    bounds.insert(a.stream.clone(), (a.origin, a.end));
                }
                drop(bounds);
                self.queue(assigned.into_iter().map(SourceEvent::Assigned));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<StreamId> = tpl.elements().iter().map(stream_of).collect();
                for stream in &revoked {
                    tracing::info!(pipeline = %self.pipeline, %stream, "partition revoked");
                }
                self.queue(revoked.into_iter().map(SourceEvent::Revoked));
                let result = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = result {
                    tracing::error!(pipeline = %self.pipeline, error = %e, "Kafka unassign failed");
                }
            }
            other => {
                tracing::warn!(pipeline = %self.pipeline, error = ?other, "rebalance error; dropping the assignment");
                let current = consumer.assignment();
                let _ = consumer.unassign();
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
        let mut client = ClientConfig::new();
        // librdkafka stops fetching a partition whose local queue is full and, by default,
        // waits 1 s (`fetch.queue.backoff.ms`) before fetching it again. Landfall drains the
        // queue in well under a second, so that pause left it idle most of the time: 1 M
        // events took 7.0 s with the default and 1.6 s with 10 ms. Options override it.
        client.set("fetch.queue.backoff.ms", "10");
        for (key, value) in cfg.options.iter() {
            client.set(key, value);
        }
        client
            .set("bootstrap.servers", &brokers)
            .set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            // Only used when a resume offset has left the log (retention): read what is left
            // rather than jump to the end. Resume positions are always explicit otherwise.
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", cfg.session_timeout.get().as_millis().to_string())
            .set("client.id", format!("landfall-{pipeline}"));
        client.set_log_level(RDKafkaLogLevel::Warning);
        let context = LandfallContext {
            pipeline: pipeline.to_string(),
            start: cfg.start,
            recovery,
            events: Mutex::new(Vec::new()),
            has_events: AtomicBool::new(false),
            bounds: Mutex::new(HashMap::new()),
            last_error: Mutex::new(None),
            failing: AtomicBool::new(false),
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

    fn bounds(&self, stream: &StreamId) -> (Option<i64>, i64) {
        self.consumer.context().bounds.lock().expect("bounds lock").get(stream).copied().unwrap_or((None, i64::MAX))
    }
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
        let mut wait = timeout;
        for _ in 0..BATCH {
            let polled = self.consumer.poll(wait);
            wait = Duration::ZERO;
            // Rebalance callbacks ran inside that poll: their events come before its message.
            for event in self.take_events() {
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
                Some(Err(e)) => {
                    let text = e.to_string();
                    if self.consume_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(pipeline = %self.consumer.context().pipeline, error = %text, "Kafka consume error; retrying (check source.kafka.brokers and that the broker is up)");
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

    fn rewind(&mut self, stream: &StreamId) -> Result<Assignment, SourceError> {
        self.mirror.remove(stream);
        let recovered = self
            .consumer
            .context()
            .recovery
            .recover(stream)
            .ok_or_else(|| SourceError::SessionLost("shutting down".into()))?;
        let (origin, end) = self.bounds(stream);
        let to = kafka_offset(recovered.next.or(origin), self.start);
        // Without a seek the consumer would go on past the rewound range: stop and let the
        // restart resume from the commit log.
        self.consumer
            .seek(&stream.name, stream.partition, to, Duration::from_secs(10))
            .map_err(|e| SourceError::Fatal(format!("cannot seek {stream} after a rewind: {e}")))?;
        Ok(Assignment { stream: stream.clone(), resume: recovered.next, origin, end, recent_ids: Vec::new() })
    }

    fn set_paused(&mut self, stream: &StreamId, paused: bool) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&stream.name, stream.partition);
        let result = if paused { self.consumer.pause(&tpl) } else { self.consumer.resume(&tpl) };
        if let Err(e) = result {
            tracing::debug!(%stream, paused, error = %e, "pause/resume failed");
        }
    }

    /// Caught up once the consumer's position reaches the end the partition had when assigned
    /// (looked up again if that lookup failed then).
    fn caught_up(&mut self, stream: &StreamId, next: Option<i64>) -> bool {
        let (origin, mut end) = self.bounds(stream);
        let mut low = None;
        if end == i64::MAX {
            if let Ok((l, high)) =
                self.consumer.fetch_watermarks(&stream.name, stream.partition, Duration::from_secs(5))
            {
                end = high;
                low = Some(l);
                self.consumer.context().bounds.lock().expect("bounds lock").insert(stream.clone(), (origin, high));
            }
        }
        let position = self
            .consumer
            .position()
            .ok()
            .and_then(|p| p.find_partition(&stream.name, stream.partition).and_then(|e| e.offset().to_raw()))
            .filter(|o| *o >= 0);
        position.or(next).or(low).is_some_and(|p| p >= end)
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

    fn close(&mut self) {
        self.flush(true);
    }
}
