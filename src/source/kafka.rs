//! The Kafka source: a librdkafka consumer in a consumer group whose resume positions come from
//! Landfall's commit log in the table's store, never from Kafka's group offsets (those are
//! only mirrored after each publish, for lag tools).
//!
//! Rebalances are handled in [`LandfallContext::rebalance`], which runs inside `poll` on the
//! consumer thread: before a partition is assigned, the commit log is recovered (its last
//! commit re-published if a crash interrupted it) and the partition is assigned at the offset
//! after that commit. Revocations are queued as events for the pipeline to drop its state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::TopicPartition;
use crate::config::{KafkaSourceConfig, StartPosition};

/// Why the Kafka source could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("cannot create the Kafka consumer for brokers {brokers}: {source}; check source.kafka.options")]
    Create { brokers: String, source: KafkaError },
    #[error("cannot subscribe to topics {topics:?}: {source}")]
    Subscribe { topics: Vec<String>, source: KafkaError },
}

/// Where a partition resumes: looked up (and the last commit re-published) before assignment.
pub trait ResumePositions: Send + Sync {
    /// The next offset to consume for `tp`, or `None` if nothing was ever committed.
    /// Blocks until the store answers (retrying transient errors); runs on the consumer thread.
    fn resume_position(&self, tp: &TopicPartition) -> Option<i64>;
}

/// What changed in the assignment during a `poll`.
#[derive(Debug)]
pub enum AssignmentEvent {
    /// Assigned at `offset`, the position after the last commit (`None`: nothing committed
    /// yet). `origin` is where consumption starts then: the high watermark for `start: latest`
    /// (pinned, so a rewind before the first commit returns there, not to a later end),
    /// `None` for `earliest` (the beginning). `end_at_start` is the high watermark when
    /// assigned, for `--until-caught-up`.
    Assigned { tp: TopicPartition, offset: Option<i64>, origin: Option<i64>, end_at_start: i64 },
    Revoked { tp: TopicPartition },
}

/// The consumer context: logs through tracing, recovers positions on assignment.
pub struct LandfallContext {
    pipeline: String,
    start: StartPosition,
    positions: Arc<dyn ResumePositions>,
    events: Mutex<Vec<AssignmentEvent>>,
    /// The last client error logged, to log each state change once.
    last_error: Mutex<Option<String>>,
    /// Set while errors are being reported; cleared (with a log line) when a message arrives.
    failing: std::sync::atomic::AtomicBool,
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
            self.failing.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl ConsumerContext for LandfallContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), rdkafka::consumer::RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut events = Vec::new();
                for elem in tpl.elements() {
                    let tp = TopicPartition { topic: elem.topic().to_string(), partition: elem.partition() };
                    let offset = self.positions.resume_position(&tp);
                    let high = consumer.fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(30)).map(|(_, high)| high);
                    let origin = match (offset, self.start) {
                        (None, StartPosition::Latest) => high.as_ref().ok().copied(),
                        _ => None,
                    };
                    events.push((tp, offset, origin, high.unwrap_or(i64::MAX)));
                }
                for (tp, offset, origin, _) in &events {
                    let kafka_offset = match (offset.or(*origin), self.start) {
                        (Some(o), _) => Offset::Offset(o),
                        (None, StartPosition::Earliest) => Offset::Beginning,
                        (None, StartPosition::Latest) => Offset::End,
                    };
                    if let Err(e) = tpl.set_partition_offset(&tp.topic, tp.partition, kafka_offset) {
                        tracing::error!(pipeline = %self.pipeline, %tp, error = %e, "cannot set the resume offset");
                    }
                }
                let result = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(e) = result {
                    // Nothing assigned: no events, the group rebalances again.
                    tracing::error!(pipeline = %self.pipeline, error = %e, "Kafka assign failed; waiting for the next rebalance");
                    return;
                }
                let mut queue = self.events.lock().expect("events lock");
                for (tp, offset, origin, end_at_start) in events {
                    tracing::info!(pipeline = %self.pipeline, %tp, resume_offset = ?offset, ?origin, end_offset = end_at_start, "partition assigned");
                    queue.push(AssignmentEvent::Assigned { tp, offset, origin, end_at_start });
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let mut queue = self.events.lock().expect("events lock");
                for elem in tpl.elements() {
                    let tp = TopicPartition { topic: elem.topic().to_string(), partition: elem.partition() };
                    tracing::info!(pipeline = %self.pipeline, %tp, "partition revoked");
                    queue.push(AssignmentEvent::Revoked { tp });
                }
                drop(queue);
                let result = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = result {
                    tracing::error!(pipeline = %self.pipeline, error = %e, "Kafka unassign failed");
                }
            }
            other => {
                tracing::warn!(pipeline = %self.pipeline, error = ?other, "rebalance error; dropping the assignment");
                let current = consumer.assignment();
                let _ = consumer.unassign();
                let mut queue = self.events.lock().expect("events lock");
                if let Ok(current) = current {
                    for elem in current.elements() {
                        queue.push(AssignmentEvent::Revoked {
                            tp: TopicPartition { topic: elem.topic().to_string(), partition: elem.partition() },
                        });
                    }
                }
            }
        }
    }
}

/// The consumer plus the events its callbacks queued.
pub struct KafkaSource {
    pub consumer: BaseConsumer<LandfallContext>,
}

impl KafkaSource {
    /// Creates the consumer and subscribes; partitions arrive through rebalance callbacks.
    pub fn build(
        pipeline: &str,
        cfg: &KafkaSourceConfig,
        positions: Arc<dyn ResumePositions>,
    ) -> Result<KafkaSource, KafkaSourceError> {
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
            positions,
            events: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
            failing: std::sync::atomic::AtomicBool::new(false),
        };
        let consumer: BaseConsumer<LandfallContext> = client
            .create_with_context(context)
            .map_err(|source| KafkaSourceError::Create { brokers: brokers.clone(), source })?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| KafkaSourceError::Subscribe { topics: cfg.topics.clone(), source })?;
        Ok(KafkaSource { consumer })
    }

    /// Call when a message arrived: logs the recovery once after client errors.
    pub fn delivering(&self) {
        let ctx = self.consumer.context();
        if ctx.failing.load(std::sync::atomic::Ordering::Relaxed) && ctx.failing.swap(false, std::sync::atomic::Ordering::Relaxed) {
            ctx.last_error.lock().expect("error lock").take();
            tracing::info!(pipeline = %ctx.pipeline, "Kafka is delivering again");
        }
    }

    /// Assignment changes queued by the rebalance callback during the last `poll`.
    pub fn take_events(&self) -> Vec<AssignmentEvent> {
        std::mem::take(&mut *self.consumer.context().events.lock().expect("events lock"))
    }

    /// Mirrors published positions to the group's committed offsets, for lag tools only.
    pub fn mirror_offsets(&self, positions: &HashMap<TopicPartition, i64>, mode: rdkafka::consumer::CommitMode) {
        if positions.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, next) in positions {
            let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next));
        }
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::debug!(error = %e, "mirroring offsets to the consumer group failed; lag tools lag");
        }
    }

    /// Stops or restarts fetching `tp` (backoff after repeated rewinds).
    pub fn set_paused(&self, tp: &TopicPartition, paused: bool) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.topic, tp.partition);
        let result = if paused { self.consumer.pause(&tpl) } else { self.consumer.resume(&tpl) };
        if let Err(e) = result {
            tracing::debug!(%tp, paused, error = %e, "pause/resume failed");
        }
    }

    /// Moves an assigned partition to `offset` (after a fence or a re-recovery).
    pub fn seek(&self, tp: &TopicPartition, offset: Option<i64>, start: StartPosition) -> Result<(), KafkaError> {
        let o = match (offset, start) {
            (Some(o), _) => Offset::Offset(o),
            (None, StartPosition::Earliest) => Offset::Beginning,
            (None, StartPosition::Latest) => Offset::End,
        };
        self.consumer.seek(&tp.topic, tp.partition, o, Duration::from_secs(10))
    }
}
