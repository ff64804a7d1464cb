//! Sources: where messages come from, behind one seam, [`Source`], so that the pipeline driver
//! (`pipeline/driver/`) exists once and every roll, memory and commit rule holds for every
//! source by construction.
//!
//! Three implementations: [`kafka::KafkaSource`] (a consumer group), [`rabbitmq::QueueSource`]
//! (a quorum or classic queue) and [`rabbitmq::StreamSource`] (a RabbitMQ stream). They differ
//! in how positions are numbered ([`Positions`]):
//!
//! - **Source offsets** (Kafka, streams): the broker numbers its messages; Landfall's commit log
//!   records the next offset and the source seeks there on assignment. Exactly once.
//! - **Landing sequence** (queues): a queue has no positions, so the driver numbers what it lands,
//!   continuing the commit log; a delivery is acknowledged only once its commit is published,
//!   and a redelivered message whose `message_id` a recent commit recorded is dropped.
//!
//! `docs/adding-a-source.md` walks through adding a fourth.

pub mod kafka;
pub mod kafka_ends;
pub mod rabbitmq;

use std::sync::Arc;
use std::time::Duration;

/// One ordered lane of a source: the unit of positions, commits and of the commit log
/// directory `_landfall/commits/<name>/<partition>/`. A Kafka topic partition; a RabbitMQ queue
/// or stream is lane 0 of its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// Topic, queue or stream name.
    pub name: String,
    pub partition: i32,
}

impl StreamId {
    pub fn new(name: impl Into<String>, partition: i32) -> StreamId {
        StreamId { name: name.into(), partition }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.name, self.partition)
    }
}

/// Who numbers the messages of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// The broker does (Kafka offsets, stream offsets): resume by seeking.
    SourceOffsets,
    /// Nobody does (queues): the driver numbers the messages it lands, continuing the commit
    /// log, and judges redeliveries by `message_id` against the recent commits.
    LandingSequence,
}

/// One message, borrowed from the client's buffer for as long as the driver looks at it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub name: &'a str,
    pub partition: i32,
    /// The broker's offset ([`Positions::SourceOffsets`]); ignored for a landing sequence.
    pub offset: i64,
    /// `None`: the message had no payload (a Kafka tombstone).
    pub payload: Option<&'a [u8]>,
    /// Broker or producer timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// AMQP `message_id`, the key of the deduplication window.
    pub message_id: Option<&'a str>,
    /// The broker delivered it before (AMQP `redelivered`).
    pub redelivered: bool,
    /// What [`Source::published`] acknowledges up to (an AMQP delivery tag); 0 where unused.
    pub token: u64,
}

/// What the driver did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Buffered (or quarantined) for the next commit, or skipped as already published.
    Taken,
    /// A redelivery of a published message: the source acknowledges it alone, now.
    Duplicate,
}

/// Where a stream resumes, found in the commit log when it is assigned.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub stream: StreamId,
    /// The next position to land (`None`: nothing committed yet; a landing sequence always
    /// has one).
    pub resume: Option<i64>,
    /// Where consumption starts while nothing is committed: `start: latest` pins the end seen
    /// at assignment, so a rewind before the first commit returns there and not to a later end.
    pub origin: Option<i64>,
    /// The end of the stream when assigned (`i64::MAX`: unknown), for `--until-caught-up`.
    pub end: i64,
    /// Landing sequence: the `message_id`s of the newest commits (the deduplication window).
    pub recent_ids: Vec<String>,
}

/// How a rewind goes on.
#[derive(Debug)]
pub enum Rewound {
    /// Resumed at once from this assignment (the driver keeps it paused for the delay).
    Now(Assignment),
    /// The stream is taken back; a [`SourceEvent::Assigned`] follows once it is recovered.
    Later,
}

/// What a poll hands the driver besides messages.
#[derive(Debug)]
pub enum SourceEvent {
    Assigned(Assignment),
    /// Revoked: drop the stream's buffers; what is unpublished is consumed again by its next
    /// owner.
    Revoked(StreamId),
    /// Partition number `partition` reached its end (librdkafka's EOF names no topic).
    ReachedEnd {
        partition: i32,
    },
    /// The stream cannot be consumed until a person acts (its commit log cannot be
    /// recovered, or its committed position is gone from the source); `reason` says what to
    /// check. The source keeps it stopped and retries slowly; the other streams go on, and
    /// `--until-caught-up` ends with an error once they are done.
    Failed {
        stream: StreamId,
        reason: String,
    },
    /// The stream's committed position was gone from the source and, as its
    /// `on_position_lost` setting says, landing goes on elsewhere (recorded in its commit
    /// log); `message` says where and what was given up. Counted and shown, once.
    PositionJumped {
        stream: StreamId,
        message: String,
    },
}

/// An item of a poll.
#[derive(Debug)]
pub enum Polled<'a> {
    Delivery(Delivery<'a>),
    Event(SourceEvent),
}

/// Why a source call failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The session is gone (connection or channel lost, consumer cancelled): what was not
    /// acknowledged comes back. The driver drops its buffers, waits for the commits in flight,
    /// backs off and calls [`Source::connect`] again.
    #[error("{0}")]
    SessionLost(String),
    /// Retrying cannot help: the pipeline stops with this message.
    #[error("{0}")]
    Fatal(String),
}

/// What a source tells `/ready` and the lag metric. Asked every few seconds on the consumer
/// thread, never per message; it answers from what the client already knows (Kafka's
/// statistics) or with one short broker call (a queue's depth).
#[derive(Debug, Default)]
pub struct SourceHealth {
    /// Why the broker cannot be reached now, naming what to check (`None`: it can, or the
    /// source cannot tell; a lost session is reported by the driver).
    pub problem: Option<String>,
    /// How much each stream holds, for the lag.
    pub backlog: Vec<(StreamId, Backlog)>,
}

/// How much a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    /// Offsets `low..end` are in the log (`end`: the next offset to be written, or the last
    /// stable offset for transactional reads): the lag is `end` minus the next position.
    Offsets { low: i64, end: i64 },
    /// Messages waiting for the driver, counted by the broker (a queue: ready + unacknowledged).
    Messages(u64),
}

/// The commit log's answer for one stream.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The next position after the newest commit (`None`: nothing committed).
    pub next: Option<i64>,
    /// Landing sequence: the recent commits' `message_id`s (empty for offset sources).
    pub ids: Vec<String>,
}

/// Why a stream's commit log could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// Worth retrying soon: the store is unreachable, in safe mode, slow…
    #[error("{0}")]
    Transient(String),
    /// No retry will help until a person acts (a manifest from a newer Landfall, a file that
    /// conflicts with a published one, permission denied): the stream stays stopped, named
    /// loudly, while the others go on; it is retried at the slowest pace.
    #[error("{0}")]
    Permanent(String),
    /// Shutdown was requested meanwhile.
    #[error("shutting down")]
    Stopping,
}

/// For sources whose whole session depends on one stream (a queue): a transient failure ends
/// the session (reconnect with backoff), a permanent one stops the pipeline (the daemon
/// restarts it with backoff and says why).
impl From<RecoveryError> for SourceError {
    fn from(e: RecoveryError) -> SourceError {
        match e {
            RecoveryError::Transient(m) => SourceError::SessionLost(m),
            RecoveryError::Permanent(m) => SourceError::Fatal(m),
            RecoveryError::Stopping => SourceError::SessionLost("shutting down".into()),
        }
    }
}

/// Reads (and completes, after a crash) a stream's commit log.
pub trait Recover: Send + Sync {
    /// One attempt, bounded in time (a store outage ends it with
    /// [`RecoveryError::Transient`]), for sources that schedule their own retries.
    fn attempt(&self, stream: &StreamId) -> Result<Recovered, RecoveryError>;

    /// Blocks, retrying transient errors with backoff; ends with a permanent error or at
    /// shutdown.
    fn recover(&self, stream: &StreamId) -> Result<Recovered, RecoveryError>;

    /// Records in the stream's commit log that its committed position is gone from the source
    /// and landing goes on at `jump.to` (`on_position_lost: earliest | latest`); one attempt,
    /// bounded like [`attempt`](Self::attempt). Answers what recovery would now answer.
    fn jump(&self, stream: &StreamId, jump: &PositionJump) -> Result<Recovered, RecoveryError>;
}

/// A position jump a source asks its commit log to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionJump {
    /// Where landing goes on.
    pub to: i64,
    /// The source's first and next offsets when the loss was found.
    pub earliest: i64,
    pub latest: i64,
    /// The setting that chose `to`.
    pub policy: &'static str,
}

/// A [`Recover`] for sources that only probe (`validate --connect`): nothing is committed.
pub struct NothingCommitted;

impl Recover for NothingCommitted {
    fn attempt(&self, _: &StreamId) -> Result<Recovered, RecoveryError> {
        Ok(Recovered::default())
    }

    fn recover(&self, _: &StreamId) -> Result<Recovered, RecoveryError> {
        Ok(Recovered::default())
    }

    fn jump(&self, _: &StreamId, jump: &PositionJump) -> Result<Recovered, RecoveryError> {
        Ok(Recovered { next: Some(jump.to), ids: Vec::new() })
    }
}

/// The seam between a broker client and the pipeline driver. Calls come from the driver's
/// consumer thread (blocking; sources that are async inside use the runtime handle).
pub trait Source {
    /// The broker's name for log lines ("Kafka", "RabbitMQ").
    fn kind(&self) -> &'static str;

    /// Who numbers the messages.
    fn positions(&self) -> Positions;

    /// The most messages an open range may hold before it must be committed (a queue's
    /// unacknowledged window), on top of the roll policy; `None`: the roll policy alone.
    fn max_open_range(&self) -> Option<u64> {
        None
    }

    /// Opens (or reopens after [`SourceError::SessionLost`]) the session; assignments arrive as
    /// [`SourceEvent::Assigned`] from the next polls. The driver calls it only when no commit
    /// of an earlier session is in flight, so recovery sees every published `message_id`.
    fn connect(&mut self) -> Result<(), SourceError>;

    /// Waits up to `timeout` for messages and hands each (and each event) to `on`, in order;
    /// returns after a batch.
    fn poll(&mut self, timeout: Duration, on: &mut dyn FnMut(Polled<'_>) -> Verdict) -> Result<(), SourceError>;

    /// The table holds every position of `stream` before `next`. `token`: the last delivery of
    /// the published range, for sources that acknowledge (`None`: that range came from an
    /// older session, whose acknowledgements are void).
    fn published(&mut self, stream: &StreamId, next: i64, token: Option<u64>) -> Result<(), SourceError>;

    /// After a batch of [`published`](Self::published) calls; `last` at shutdown.
    fn flush(&mut self, _last: bool) {}

    /// A commit of `stream` failed: resume it from its commit log, not before `delay` has
    /// passed. Offset sources either seek and return where ([`Rewound::Now`]; the driver
    /// pauses the stream for `delay`), or take the stream back and assign it again once
    /// recovered ([`Rewound::Later`], as a [`SourceEvent::Assigned`]); others return
    /// [`SourceError::SessionLost`] (the broker redelivers).
    fn rewind(&mut self, stream: &StreamId, delay: Duration) -> Result<Rewound, SourceError>;

    /// True while streams are assigned but not yet handed to the driver (being recovered), so
    /// `--until-caught-up` does not end before them. Streams that wait for a person (reported
    /// as [`SourceEvent::Failed`]) do not count.
    fn settling(&self) -> bool {
        false
    }

    /// Stops or restarts fetching `stream` (backoff after repeated rewinds).
    fn set_paused(&mut self, _stream: &StreamId, _paused: bool) {}

    /// `--until-caught-up`: whether `stream` holds nothing at or after `next` (the next
    /// position the driver would land). Asked after [`SourceEvent::ReachedEnd`] or when the
    /// stream has been quiet for a moment.
    fn caught_up(&mut self, stream: &StreamId, next: Option<i64>) -> bool;

    /// `validate --connect`: reach the broker and check what the pipeline reads exists.
    fn probe(&mut self) -> Result<(), SourceError>;

    /// Broker reachability and backlog for `/ready` and `landfall_consumer_lag_events`.
    fn health(&mut self) -> SourceHealth {
        SourceHealth::default()
    }

    /// Ends the session (a queue's unacknowledged deliveries go back to the broker).
    fn close(&mut self) {}
}

/// The handle every source gets for recovery.
pub type Recovery = Arc<dyn Recover>;
