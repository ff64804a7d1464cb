//! A scripted in-memory [`Source`] for driving the pipeline in-process: either position model,
//! with the broker behaviour the driver relies on (queues redeliver what was not acknowledged
//! when a session ends, flagged `redelivered`; offset sources seek) and a record of what the
//! driver asked of it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::source::{
    Assignment, Delivery, Polled, Positions, Recovery, Rewound, Source, SourceError, SourceEvent, StreamId, Verdict,
};

/// What the fake saw, shared with the test.
#[derive(Debug, Default)]
pub struct FakeLog {
    /// Every `published(stream, next, token)`.
    pub published: Vec<(StreamId, i64, Option<u64>)>,
    /// Sessions opened.
    pub connects: u32,
    /// Messages delivered (redeliveries included).
    pub delivered: u64,
    /// Queue: duplicates acknowledged alone.
    pub duplicates_acked: u64,
    pub rewinds: u32,
    /// Streams currently paused by the driver.
    pub paused: HashSet<StreamId>,
    /// Queue: (acknowledged, committed) whenever more messages were acknowledged than the
    /// commit log holds (must stay empty: an acknowledgement only after publish).
    pub early_acks: Vec<(u64, i64)>,
}

/// What the fake does besides delivering.
#[derive(Debug, Default, Clone, Copy)]
pub struct Script {
    /// Queue: the first acknowledgement is lost with the session (a crash between publish
    /// and ack, as far as the broker can tell).
    pub lose_first_ack: bool,
    /// Deliveries per poll (default 100).
    pub per_poll: usize,
    /// Offsets: deliver without end (the offset source stays busy).
    pub endless: bool,
    /// Offsets: after every 7th message, deliver the 3 before it again (stale copies, as a
    /// fetch from before a seek delivered after it).
    pub stale_copies: bool,
}

struct FakeStream {
    id: StreamId,
    /// Payload and `message_id` of each message (an offset source's offset is the index).
    messages: Vec<(Vec<u8>, Option<String>)>,
    /// Next index to deliver.
    cursor: usize,
    /// Queue: acknowledged messages, ever delivered messages, and this session's deliveries
    /// (token - 1 → index).
    acked: Vec<bool>,
    seen: Vec<bool>,
    session: Vec<usize>,
    ended: bool,
    /// `Script::stale_copies`: the offset of the last jump back (one per 7th offset).
    stale_from: usize,
}

pub struct FakeSource {
    positions: Positions,
    streams: Vec<FakeStream>,
    recovery: Recovery,
    script: Script,
    events: Vec<SourceEvent>,
    lost_an_ack: bool,
    pub log: Arc<Mutex<FakeLog>>,
}

impl FakeSource {
    /// Streams named `name` with partitions `0..messages.len()`, each with its messages.
    pub fn new(
        positions: Positions,
        name: &str,
        messages: Vec<Vec<(Vec<u8>, Option<String>)>>,
        recovery: Recovery,
        script: Script,
    ) -> FakeSource {
        let streams = messages
            .into_iter()
            .enumerate()
            .map(|(p, messages)| FakeStream {
                id: StreamId::new(name, p as i32),
                acked: vec![false; messages.len()],
                seen: vec![false; messages.len()],
                messages,
                cursor: 0,
                session: Vec::new(),
                ended: false,
                stale_from: 0,
            })
            .collect();
        FakeSource { positions, streams, recovery, script, events: Vec::new(), lost_an_ack: false, log: Arc::default() }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, FakeLog> {
        self.log.lock().expect("fake log")
    }
}

impl Source for FakeSource {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn positions(&self) -> Positions {
        self.positions
    }

    fn max_open_range(&self) -> Option<u64> {
        (self.positions == Positions::LandingSequence).then_some(40)
    }

    fn connect(&mut self) -> Result<(), SourceError> {
        self.log().connects += 1;
        for i in 0..self.streams.len() {
            let id = self.streams[i].id.clone();
            let recovered = self.recovery.recover(&id)?;
            let s = &mut self.streams[i];
            s.session.clear();
            s.ended = false;
            let (resume, end) = match self.positions {
                Positions::SourceOffsets => {
                    s.cursor = recovered.next.unwrap_or(0) as usize;
                    (recovered.next, if self.script.endless { i64::MAX } else { s.messages.len() as i64 })
                }
                Positions::LandingSequence => {
                    s.cursor = 0; // the broker starts over with what is unacknowledged
                    (Some(recovered.next.unwrap_or(0)), i64::MAX)
                }
            };
            self.events.push(SourceEvent::Assigned(Assignment {
                stream: id,
                resume,
                origin: None,
                end,
                recent_ids: recovered.ids,
            }));
        }
        Ok(())
    }

    fn poll(&mut self, timeout: Duration, on: &mut dyn FnMut(Polled<'_>) -> Verdict) -> Result<(), SourceError> {
        for e in std::mem::take(&mut self.events) {
            on(Polled::Event(e));
        }
        let per_poll = if self.script.per_poll == 0 { 100 } else { self.script.per_poll };
        let paused = self.log().paused.clone();
        let mut delivered = 0;
        let mut ended = Vec::new();
        for s in self.streams.iter_mut().filter(|s| !paused.contains(&s.id)) {
            let mut n = 0;
            while n < per_poll && (s.cursor < s.messages.len() || self.script.endless) {
                let offset = s.cursor;
                s.cursor += 1;
                if self.script.stale_copies && offset % 7 == 6 && s.stale_from < offset {
                    s.stale_from = offset;
                    s.cursor = offset - 3;
                }
                // An endless source replays its messages at ever higher offsets.
                let i = offset % s.messages.len();
                if self.positions == Positions::LandingSequence && s.acked[i] {
                    continue;
                }
                let (payload, id) = &s.messages[i];
                let token = if self.positions == Positions::LandingSequence {
                    s.session.push(i);
                    s.session.len() as u64
                } else {
                    0
                };
                let d = Delivery {
                    name: &s.id.name,
                    partition: s.id.partition,
                    offset: offset as i64,
                    payload: Some(payload),
                    timestamp_ms: None,
                    message_id: id.as_deref(),
                    redelivered: s.seen[i],
                    token,
                };
                s.seen[i] = true;
                if on(Polled::Delivery(d)) == Verdict::Duplicate {
                    s.acked[i] = true;
                    self.log.lock().expect("fake log").duplicates_acked += 1;
                }
                n += 1;
                delivered += 1;
            }
            if s.cursor >= s.messages.len()
                && !s.ended
                && self.positions == Positions::SourceOffsets
                && !self.script.endless
            {
                s.ended = true;
                ended.push(s.id.partition);
            }
        }
        self.log().delivered += delivered;
        for partition in ended {
            on(Polled::Event(SourceEvent::ReachedEnd { partition }));
        }
        if delivered == 0 {
            std::thread::sleep(timeout.min(Duration::from_millis(5)));
        }
        Ok(())
    }

    fn published(&mut self, stream: &StreamId, next: i64, token: Option<u64>) -> Result<(), SourceError> {
        self.log().published.push((stream.clone(), next, token));
        let Some(tag) = token else { return Ok(()) };
        if self.script.lose_first_ack && !self.lost_an_ack {
            self.lost_an_ack = true;
            return Err(SourceError::SessionLost("the connection dropped before the acknowledgement".into()));
        }
        let s = self.streams.iter_mut().find(|s| s.id == *stream).expect("a known stream");
        for &i in &s.session[..tag as usize] {
            s.acked[i] = true;
        }
        // Every acknowledged message has landed (once) or was a duplicate of one that had, so
        // the acknowledged count never exceeds what the commit log holds.
        let acked = s.acked.iter().filter(|a| **a).count() as u64;
        let committed = self.recovery.recover(stream).ok().and_then(|r| r.next).unwrap_or(0);
        if acked > committed as u64 {
            self.log().early_acks.push((acked, committed));
        }
        Ok(())
    }

    fn rewind(&mut self, stream: &StreamId, _delay: Duration) -> Result<Rewound, SourceError> {
        self.log().rewinds += 1;
        if self.positions == Positions::LandingSequence {
            return Err(SourceError::SessionLost("rewind: reconnect".into()));
        }
        let recovered = self.recovery.recover(stream)?;
        let s = self.streams.iter_mut().find(|s| s.id == *stream).expect("a known stream");
        s.cursor = recovered.next.unwrap_or(0) as usize;
        s.ended = false;
        Ok(Rewound::Now(Assignment {
            stream: stream.clone(),
            resume: recovered.next,
            origin: None,
            end: s.messages.len() as i64,
            recent_ids: Vec::new(),
        }))
    }

    fn set_paused(&mut self, stream: &StreamId, paused: bool) {
        let mut log = self.log();
        if paused {
            log.paused.insert(stream.clone());
        } else {
            log.paused.remove(stream);
        }
    }

    fn caught_up(&mut self, stream: &StreamId, next: Option<i64>) -> bool {
        let s = self.streams.iter().find(|s| s.id == *stream).expect("a known stream");
        match self.positions {
            Positions::SourceOffsets => next.is_some_and(|n| n >= s.messages.len() as i64),
            Positions::LandingSequence => s.cursor >= s.messages.len(),
        }
    }

    fn probe(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}
