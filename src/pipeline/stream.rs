//! The driver's state of one assigned stream, typed so that every stream is in exactly one
//! state: its buffers, how its positions are numbered ([`Lane`]) and whether it is fetching
//! or backing off after failed commits ([`Flow`]).

use std::collections::VecDeque;
use std::time::Instant;

use super::dedup::DedupWindow;
use super::partitions::PartitionBuffer;
use crate::source::{Assignment, Positions, StreamId};

/// How positions of a stream are numbered.
pub enum Lane {
    /// The broker's offsets.
    Offsets,
    /// The driver's landing sequence (queues).
    Sequence {
        /// The next number to give.
        next: i64,
        /// The `message_id`s of the newest commits, read when the stream was assigned.
        window: DedupWindow,
        /// Token of the last delivery numbered.
        last_token: u64,
        /// Ranges sent for commit, oldest first: (last number, token of its last delivery).
        cuts: VecDeque<(i64, u64)>,
    },
}

impl Lane {
    /// The token that acknowledges everything published before `next` (ranges of one stream
    /// are published in order), and forgets those ranges.
    pub fn take_published(&mut self, next: i64) -> Option<u64> {
        let Lane::Sequence { cuts, .. } = self else { return None };
        let mut token = None;
        while let Some(&(end, tag)) = cuts.front() {
            if end >= next {
                break;
            }
            cuts.pop_front();
            token = Some(tag);
        }
        token
    }
}

/// Whether a stream is fetching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Consuming,
    /// Commits failed `failures` times in a row: paused until `paused_until` (`None`: fetching
    /// again, waiting for a commit to succeed); `reason` is the last failure, logged once.
    Rewound {
        failures: u32,
        paused_until: Option<Instant>,
        reason: String,
    },
}

/// One assigned stream.
pub struct Stream {
    pub id: StreamId,
    pub buf: PartitionBuffer,
    pub lane: Lane,
    pub flow: Flow,
    /// When the last delivery arrived (or the stream was assigned): a quiet queue is asked
    /// whether it is empty.
    pub last_delivery: Instant,
}

impl Stream {
    pub fn new(a: Assignment, epoch: u64, positions: Positions, now: Instant) -> Stream {
        let lane = match positions {
            Positions::SourceOffsets => Lane::Offsets,
            Positions::LandingSequence => Lane::Sequence {
                next: a.resume.unwrap_or(0),
                window: DedupWindow::from_ids(&a.recent_ids),
                last_token: 0,
                cuts: VecDeque::new(),
            },
        };
        Stream {
            id: a.stream,
            buf: PartitionBuffer::new(epoch, a.resume, a.origin, a.end),
            lane,
            flow: Flow::Consuming,
            last_delivery: now,
        }
    }

    /// The next position the stream would land.
    pub fn next_position(&self) -> Option<i64> {
        self.buf.last.map(|l| l + 1).or(self.buf.next_expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_acknowledges_up_to_the_last_range_it_covers() {
        let a = Assignment {
            stream: StreamId::new("q", 0),
            resume: Some(0),
            origin: None,
            end: i64::MAX,
            recent_ids: vec![],
        };
        let mut s = Stream::new(a, 1, Positions::LandingSequence, Instant::now());
        let Lane::Sequence { cuts, .. } = &mut s.lane else { panic!("a queue numbers its messages") };
        cuts.extend([(9, 10), (19, 25), (29, 31)]);
        assert_eq!(s.lane.take_published(5), None, "nothing published yet");
        assert_eq!(s.lane.take_published(20), Some(25), "two ranges published at once");
        assert_eq!(s.lane.take_published(30), Some(31));
        assert_eq!(s.lane.take_published(30), None);
        assert_eq!(Lane::Offsets.take_published(100), None, "offset sources acknowledge nothing");
    }
}
