//! The RabbitMQ sources, one per position model.
//!
//! **Queues** (classic, quorum; [`QueueSource`]) have no offsets: the driver numbers the
//! messages it lands (a landing sequence continuing the commit log of `<queue>/0`). A delivery
//! is acknowledged (`multiple=true`, up to the last delivery tag of a range) only after the
//! commit holding it is published. Every session starts by reading the newest commits'
//! `message_id`s back (the driver has waited for the commits in flight), and a redelivered
//! message whose id is among them is acknowledged on its own and dropped, so a crash between
//! publishing and acknowledging lands nothing twice. Messages without a `message_id` cannot be
//! recognised: at-least-once.
//!
//! **Streams** ([`StreamSource`]) are read by offset (`x-stream-offset` from the commit log) and
//! land exactly once like Kafka; acknowledgements only return credit to the broker.

mod drained;
mod inbox;
mod session;

use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::runtime::Handle;

pub use session::{describe, probe, stream_offset, AmqpError, AmqpSession, StreamStart, QUEUE_CONSUMERS};

use super::{
    Assignment, Backlog, Delivery, Polled, PositionJump, Positions, Recovery, Rewound, Source, SourceError,
    SourceEvent, SourceHealth, StreamId, Verdict,
};
use crate::config::{OnPositionLost, RabbitMqSourceConfig, StartPosition};

/// Deliveries handled per poll before the driver looks at feedback and timers again.
const BATCH: usize = 512;

impl From<AmqpError> for SourceError {
    fn from(e: AmqpError) -> SourceError {
        if e.is_transient() {
            SourceError::SessionLost(e.to_string())
        } else {
            SourceError::Fatal(e.to_string())
        }
    }
}

/// What the queue and the stream source share: config, runtime handle, the live session.
struct Link {
    pipeline: String,
    cfg: RabbitMqSourceConfig,
    stream: StreamId,
    recovery: Recovery,
    handle: Handle,
    /// Bytes of deliveries received and not yet decoded by the driver past which the
    /// consumers pause: the pipeline's share of `roll.max_buffered_bytes` for them.
    inbox_bytes: usize,
    session: Option<AmqpSession>,
    /// The assignment of a new session, handed out by the next poll.
    assigned: Option<Assignment>,
}

impl Link {
    fn new(pipeline: &str, cfg: &RabbitMqSourceConfig, recovery: Recovery, handle: Handle, inbox_bytes: usize) -> Link {
        Link {
            pipeline: pipeline.to_string(),
            cfg: cfg.clone(),
            stream: StreamId::new(cfg.queue.clone(), 0),
            recovery,
            handle,
            inbox_bytes,
            session: None,
            assigned: None,
        }
    }

    /// The commit log's answer, then a new session.
    fn open(
        &mut self,
        start: impl FnOnce(Option<i64>) -> Option<StreamStart>,
    ) -> Result<super::Recovered, SourceError> {
        self.close();
        let recovered = self.recovery.recover(&self.stream)?;
        let open = AmqpSession::open(&self.pipeline, &self.cfg, start(recovered.next), self.inbox_bytes);
        let session = self.handle.block_on(open)?;
        tracing::info!(
            pipeline = %self.pipeline, queue = %self.cfg.queue, uri = %describe(&self.cfg),
            ready = session.ready_at_start, resume = ?recovered.next, dedup_ids = recovered.ids.len(), "consuming from RabbitMQ"
        );
        self.session = Some(session);
        Ok(recovered)
    }

    fn session(&self) -> Result<&AmqpSession, SourceError> {
        self.session.as_ref().ok_or_else(|| SourceError::SessionLost("not connected".into()))
    }

    /// Up to [`BATCH`] deliveries: waits up to `timeout` for the first, takes what is ready.
    /// Their bytes count against the session's inbox until [`Self::done`].
    fn next_batch(&mut self, timeout: Duration) -> Result<Vec<lapin::message::Delivery>, SourceError> {
        let Some(session) = self.session.as_mut() else { return Err(SourceError::SessionLost("not connected".into())) };
        let batch = self.handle.block_on(async {
            let mut batch = Vec::new();
            match tokio::time::timeout(timeout, session.next()).await {
                Err(_) => return Ok(batch),
                Ok(None) => return Err("the session's consumers stopped".to_string()),
                Ok(Some(d)) => batch.push(d?),
            }
            while batch.len() < BATCH {
                match session.next().now_or_never() {
                    Some(Some(Ok(d))) => batch.push(d),
                    Some(Some(Err(e))) => return Err(e),
                    Some(None) | None => break,
                }
            }
            Ok(batch)
        });
        batch.map_err(SourceError::SessionLost)
    }

    /// The driver has decoded `batch`: its bytes leave the inbox's count.
    fn done(&self, batch: &[lapin::message::Delivery]) {
        if let Some(session) = &self.session {
            session.done(batch.iter().map(|d| d.data.len()).sum());
        }
    }

    /// Ends the session; what was not acknowledged goes back to the broker.
    fn close(&mut self) {
        if let Some(session) = self.session.take() {
            self.handle.block_on(session.close());
        }
    }

    fn take_assigned(&mut self, on: &mut dyn FnMut(Polled<'_>) -> Verdict) {
        if let Some(a) = self.assigned.take() {
            on(Polled::Event(SourceEvent::Assigned(a)));
        }
    }

    fn lost(&mut self) -> SourceError {
        self.close();
        SourceError::SessionLost("a commit failed; reconnecting so that the broker delivers its messages again".into())
    }

    fn probe(&self) -> Result<(), SourceError> {
        self.handle
            .block_on(probe(&self.pipeline, &self.cfg))
            .map_err(|e| SourceError::Fatal(format!("source.rabbitmq: {e}")))
    }
}

fn timestamp_ms(d: &lapin::message::Delivery) -> Option<i64> {
    d.properties.timestamp().map(|t| (t as i64).saturating_mul(1000))
}

/// A quorum or classic queue: acknowledged after publish, redeliveries dropped by `message_id`.
pub struct QueueSource {
    link: Link,
    /// Deliveries handed to the driver in this session (a drained queue delivers none).
    delivered: u64,
    drained: drained::Drained,
    /// The newest delivery tag handed out and the newest acknowledged through, in this
    /// session: their difference is what we hold unacknowledged (for the lag).
    last_tag: u64,
    acked_through: u64,
}

impl QueueSource {
    /// `inbox_bytes`: how many bytes of deliveries not yet decoded pause the consumers.
    pub fn build(
        pipeline: &str,
        cfg: &RabbitMqSourceConfig,
        recovery: Recovery,
        handle: Handle,
        inbox_bytes: usize,
    ) -> QueueSource {
        QueueSource {
            link: Link::new(pipeline, cfg, recovery, handle, inbox_bytes),
            delivered: 0,
            drained: Default::default(),
            last_tag: 0,
            acked_through: 0,
        }
    }
}

impl Source for QueueSource {
    fn kind(&self) -> &'static str {
        "RabbitMQ"
    }

    fn positions(&self) -> Positions {
        Positions::LandingSequence
    }

    /// A range is committed at a third of the unacknowledged window, so two commits can be in
    /// flight while the last third keeps arriving.
    fn max_open_range(&self) -> Option<u64> {
        Some(self.link.cfg.commit_every())
    }

    fn connect(&mut self) -> Result<(), SourceError> {
        let recovered = self.link.open(|_| None)?;
        (self.delivered, self.drained, self.last_tag, self.acked_through) = (0, Default::default(), 0, 0);
        self.link.assigned = Some(Assignment {
            stream: self.link.stream.clone(),
            // Queues number their messages from where the log ends.
            resume: Some(recovered.next.unwrap_or(0)),
            origin: None,
            end: i64::MAX,
            recent_ids: recovered.ids,
        });
        Ok(())
    }

    fn poll(&mut self, timeout: Duration, on: &mut dyn FnMut(Polled<'_>) -> Verdict) -> Result<(), SourceError> {
        self.link.take_assigned(on);
        let batch = self.link.next_batch(timeout)?;
        let session = self.link.session()?;
        self.delivered += batch.len() as u64;
        self.last_tag = batch.last().map_or(self.last_tag, |d| d.delivery_tag);
        let mut duplicates = Vec::new();
        for d in &batch {
            let delivery = Delivery {
                name: &self.link.cfg.queue,
                partition: 0,
                offset: 0,
                payload: Some(&d.data),
                timestamp_ms: timestamp_ms(d),
                message_id: d.properties.message_id().as_ref().map(|m| m.as_str()),
                redelivered: d.redelivered,
                token: d.delivery_tag,
            };
            if on(Polled::Delivery(delivery)) == Verdict::Duplicate {
                duplicates.push(d.delivery_tag);
            }
        }
        self.link.done(&batch);
        // Published before its acknowledgement was lost: acknowledge each alone.
        for tag in duplicates {
            self.link.handle.block_on(session.ack_one(tag))?;
        }
        Ok(())
    }

    fn published(&mut self, _stream: &StreamId, _next: i64, token: Option<u64>) -> Result<(), SourceError> {
        let Some(tag) = token else { return Ok(()) };
        crate::crash::point("before_ack", "after a publish, before its acknowledgement");
        let session = self.link.session()?;
        self.link.handle.block_on(session.ack_through(tag))?;
        self.acked_through = tag;
        Ok(())
    }

    fn rewind(&mut self, _stream: &StreamId, _delay: Duration) -> Result<Rewound, SourceError> {
        Err(self.link.lost())
    }

    /// Drained: two trustworthy "0 ready" answers, [`drained::CONFIRM`] apart, with no
    /// delivery between them (asked after the driver saw no delivery for a while).
    fn caught_up(&mut self, _stream: &StreamId, _next: Option<i64>) -> bool {
        let Ok(session) = self.link.session() else { return false };
        let reading = match self.link.handle.block_on(session.depth()) {
            Ok(depth) => Some(depth),
            Err(e) => {
                tracing::debug!(pipeline = %self.link.pipeline, queue = %self.link.cfg.queue, error = %e, "queue depth unknown; not caught up yet");
                None
            }
        };
        let ours = session.consumers();
        if drained::Drained::untrusted(reading, ours) {
            tracing::debug!(pipeline = %self.link.pipeline, queue = %self.link.cfg.queue, ?reading, "the broker counted fewer consumers than ours (a busy quorum queue); ignoring its ready count");
        }
        let done = self.drained.observe(reading, ours, self.delivered, Instant::now());
        if done {
            tracing::info!(pipeline = %self.link.pipeline, queue = %self.link.cfg.queue, delivered = self.delivered, "queue drained: 0 ready twice, nothing delivered between");
        }
        done
    }

    fn probe(&mut self) -> Result<(), SourceError> {
        self.link.probe()
    }

    /// The lag of a queue: messages ready in it plus those we hold unacknowledged (asked on
    /// the consuming channel, at most 2 s; no answer leaves the lag as it was).
    fn health(&mut self) -> SourceHealth {
        let Ok(session) = self.link.session() else { return SourceHealth::default() };
        let depth = self.link.handle.block_on(tokio::time::timeout(Duration::from_secs(2), session.depth()));
        let Ok(Ok(depth)) = depth else { return SourceHealth::default() };
        let unacked = self.last_tag.saturating_sub(self.acked_through);
        let backlog = Backlog::Messages(u64::from(depth.ready) + unacked);
        SourceHealth { problem: None, backlog: vec![(self.link.stream.clone(), backlog)] }
    }

    fn close(&mut self) {
        self.link.close();
    }
}

/// A RabbitMQ stream, read by offset: exactly once like Kafka.
pub struct StreamSource {
    link: Link,
    until_caught_up: bool,
    /// Deliveries since the last credit acknowledgement, and the newest tag.
    unacked: u64,
    last_tag: u64,
    /// `--until-caught-up`: the last offset when the session started (`None`: empty).
    stream_end: Option<i64>,
    /// The session started at the stream's end (`start: latest`, nothing landed yet).
    started_at_end: bool,
    /// A position jump made by `connect`, reported by the next poll.
    jumped: Option<SourceEvent>,
}

impl StreamSource {
    pub fn build(
        pipeline: &str,
        cfg: &RabbitMqSourceConfig,
        recovery: Recovery,
        handle: Handle,
        until_caught_up: bool,
        inbox_bytes: usize,
    ) -> StreamSource {
        StreamSource {
            link: Link::new(pipeline, cfg, recovery, handle, inbox_bytes),
            until_caught_up,
            unacked: 0,
            last_tag: 0,
            stream_end: None,
            started_at_end: false,
            jumped: None,
        }
    }

    /// The commit log resumes at `next`, past the stream's end `stream_next` (the offset the
    /// next message gets): the stream was deleted and recreated, and every offset below `next`
    /// would be dropped as already landed. Stops (`on_position_lost: fail`) or records a jump
    /// and answers where to go on.
    fn position_lost(&mut self, next: i64, stream_next: i64) -> Result<i64, SourceError> {
        let queue = &self.link.cfg.queue;
        let policy = self.link.cfg.on_position_lost;
        let to = match policy {
            OnPositionLost::Fail => {
                return Err(SourceError::Fatal(format!(
                    "the commit log of stream `{queue}` resumes at offset {next}, but the stream ends at offset \
                     {stream_next}: it was deleted and recreated; offsets below {next} would be skipped as already \
                     landed. Check the stream; to land its current data set `on_position_lost: earliest` (or \
                     `latest` to land only what arrives from now on) in source.rabbitmq and restart, or point the \
                     pipeline at a new table path"
                )))
            }
            // Offset 0: the stream starts at its first retained message (AMQP does not say which).
            OnPositionLost::Earliest => 0,
            OnPositionLost::Latest => stream_next,
        };
        let jump = PositionJump { to, earliest: 0, latest: stream_next, policy: policy.as_str() };
        let stream = self.link.stream.clone();
        let recovered = self.link.recovery.jump(&stream, &jump)?;
        let to = recovered.next.unwrap_or(to);
        let message = format!(
            "{stream}: the commit log resumed at offset {next}, but the stream ends at offset {stream_next} (it was \
             deleted and recreated); on_position_lost: {} moved landing to offset {to}{}",
            policy.as_str(),
            if to > 0 { format!("; offsets below {to} are given up") } else { String::new() }
        );
        tracing::error!(pipeline = %self.link.pipeline, %stream, committed_next = next, stream_next, to, policy = policy.as_str(), "{message}");
        self.jumped = Some(SourceEvent::PositionJumped { stream, message });
        Ok(to)
    }
}

impl Source for StreamSource {
    fn kind(&self) -> &'static str {
        "RabbitMQ"
    }

    fn positions(&self) -> Positions {
        Positions::SourceOffsets
    }

    fn connect(&mut self) -> Result<(), SourceError> {
        let latest = self.link.cfg.start == StartPosition::Latest;
        let mut start = StreamStart::First;
        let starting = |start: &mut StreamStart, next: Option<i64>| {
            *start = match next {
                Some(n) => StreamStart::Offset(n),
                None if latest => StreamStart::Next,
                None => StreamStart::First,
            };
            Some(*start)
        };
        let mut recovered = self.link.open(|next| starting(&mut start, next))?;
        // AMQP reports no stream length: read the end from the stream's last chunk, to check
        // the committed position against it and for --until-caught-up.
        let committed = recovered.next.filter(|n| *n > 0);
        let mut stream_end = None;
        if self.until_caught_up || committed.is_some() {
            stream_end = self.link.handle.block_on(self.link.session()?.stream_end())?;
        }
        let stream_next = stream_end.map_or(0, |e| e + 1);
        if let Some(next) = committed.filter(|n| *n > stream_next) {
            self.position_lost(next, stream_next)?;
            recovered = self.link.open(|next| starting(&mut start, next))?;
        }
        self.started_at_end = start == StreamStart::Next;
        (self.unacked, self.last_tag) = (0, 0);
        let end = if self.until_caught_up {
            self.stream_end = stream_end;
            stream_next
        } else {
            i64::MAX
        };
        self.link.assigned = Some(Assignment {
            stream: self.link.stream.clone(),
            resume: recovered.next,
            origin: None,
            end,
            recent_ids: Vec::new(),
        });
        Ok(())
    }

    fn poll(&mut self, timeout: Duration, on: &mut dyn FnMut(Polled<'_>) -> Verdict) -> Result<(), SourceError> {
        if let Some(jumped) = self.jumped.take() {
            on(Polled::Event(jumped));
        }
        self.link.take_assigned(on);
        let batch = self.link.next_batch(timeout)?;
        for d in &batch {
            let Some(offset) = stream_offset(&d.properties) else {
                return Err(SourceError::Fatal(format!(
                    "queue `{}` delivered a message without an x-stream-offset header: it is not a stream; \
                     set source.rabbitmq.queue_type to the queue's type (quorum or classic)",
                    self.link.cfg.queue
                )));
            };
            self.unacked += 1;
            self.last_tag = d.delivery_tag;
            let delivery = Delivery {
                name: &self.link.cfg.queue,
                partition: 0,
                offset,
                payload: Some(&d.data),
                timestamp_ms: timestamp_ms(d),
                message_id: None,
                redelivered: false,
                token: d.delivery_tag,
            };
            on(Polled::Delivery(delivery));
        }
        self.link.done(&batch);
        // Acknowledgements are credit only: returned in steps of a third of the prefetch.
        if self.unacked >= self.link.cfg.commit_every() && self.last_tag > 0 {
            self.unacked = 0;
            let session = self.link.session()?;
            self.link.handle.block_on(session.ack_through(self.last_tag))?;
        }
        Ok(())
    }

    fn published(&mut self, _stream: &StreamId, _next: i64, _token: Option<u64>) -> Result<(), SourceError> {
        Ok(()) // the commit log is the position; nothing to tell the broker
    }

    fn rewind(&mut self, _stream: &StreamId, _delay: Duration) -> Result<Rewound, SourceError> {
        Err(self.link.lost())
    }

    /// Done at the end the stream had when the session started, busy or not.
    fn caught_up(&mut self, _stream: &StreamId, next: Option<i64>) -> bool {
        let Some(end) = self.stream_end else { return true };
        let position = next.map(|n| n - 1);
        self.started_at_end && position.is_none() || position.is_some_and(|p| p >= end)
    }

    fn probe(&mut self) -> Result<(), SourceError> {
        self.link.probe()
    }

    fn close(&mut self) {
        self.link.close();
    }
}
