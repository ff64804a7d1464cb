//! `--until-caught-up` on a queue: when a queue is really drained.
//!
//! A queue has no end offset to compare with; only the broker's count of ready messages. That
//! count misleads in three ways, each seen on the lab's quorum queues:
//! - A busy quorum queue answers a passive declare with "0 ready, 0 consumers" when its Raft
//!   query times out (250 ms). Our own consumers are attached, so an answer that counts fewer
//!   consumers than ours is not an answer: it is ignored.
//! - Messages the broker already delivered are no longer "ready" but may still be on the wire or
//!   in the client's buffer. The count is asked on the consuming channel, so its reply arrives
//!   after every delivery sent before it; and a zero counts only when a second zero, at least
//!   [`CONFIRM`] later, follows with no delivery between the two.
//! - While the driver holds a full window unacknowledged (its commits are slow), the broker
//!   sends nothing and the stream is quiet for seconds: a quiet stream is a reason to ask, never
//!   an answer.

use std::time::{Duration, Instant};

/// How long a zero must hold, with no delivery, before the queue counts as drained.
pub const CONFIRM: Duration = Duration::from_millis(500);

/// What a passive declare on the consuming channel said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub ready: u32,
    pub consumers: u32,
}

/// The verdict so far: the first trustworthy zero, if the queue has stayed at zero since.
#[derive(Debug, Default)]
pub struct Drained {
    /// Deliveries handed out and when, at the first zero of the current run of zeros.
    first_zero: Option<(u64, Instant)>,
}

impl Drained {
    /// Takes one reading (`None`: the broker did not answer) after `delivered` deliveries
    /// handed out by `our_consumers` consumers; true once the queue is drained.
    pub fn observe(&mut self, reading: Option<Depth>, our_consumers: u32, delivered: u64, now: Instant) -> bool {
        let zero = reading.is_some_and(|d| d.ready == 0 && d.consumers >= our_consumers);
        if !zero {
            self.first_zero = None;
            return false;
        }
        match self.first_zero {
            Some((seen, since)) if seen == delivered => now.duration_since(since) >= CONFIRM,
            _ => {
                self.first_zero = Some((delivered, now));
                false
            }
        }
    }

    /// A reading that does not count (fewer consumers than ours): worth a debug line.
    pub fn untrusted(reading: Option<Depth>, our_consumers: u32) -> bool {
        reading.is_some_and(|d| d.consumers < our_consumers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: Option<Depth> = Some(Depth { ready: 0, consumers: 2 });

    #[test]
    fn one_zero_is_not_enough_a_second_after_confirm_is() {
        let t = Instant::now();
        let mut d = Drained::default();
        assert!(!d.observe(EMPTY, 2, 10, t));
        assert!(!d.observe(EMPTY, 2, 10, t + CONFIRM / 2), "too soon after the first zero");
        assert!(d.observe(EMPTY, 2, 10, t + CONFIRM));
    }

    #[test]
    fn a_delivery_between_two_zeros_starts_over() {
        let t = Instant::now();
        let mut d = Drained::default();
        assert!(!d.observe(EMPTY, 2, 10, t));
        assert!(!d.observe(EMPTY, 2, 11, t + CONFIRM), "a delivery arrived after the first zero");
        assert!(!d.observe(EMPTY, 2, 11, t + CONFIRM + CONFIRM / 2));
        assert!(d.observe(EMPTY, 2, 11, t + CONFIRM * 2));
    }

    #[test]
    fn a_busy_quorum_queue_answering_zero_consumers_is_not_believed() {
        let t = Instant::now();
        let mut d = Drained::default();
        let timed_out = Some(Depth { ready: 0, consumers: 0 });
        for i in 0..10u32 {
            assert!(!d.observe(timed_out, 2, 10, t + CONFIRM * i));
        }
        assert!(Drained::untrusted(timed_out, 2));
        assert!(!Drained::untrusted(EMPTY, 2));
    }

    #[test]
    fn messages_ready_or_no_answer_reset_the_run_of_zeros() {
        let t = Instant::now();
        let mut d = Drained::default();
        assert!(!d.observe(EMPTY, 2, 10, t));
        assert!(!d.observe(Some(Depth { ready: 3, consumers: 2 }), 2, 10, t + CONFIRM));
        assert!(!d.observe(EMPTY, 2, 10, t + CONFIRM * 2));
        assert!(!d.observe(None, 2, 10, t + CONFIRM * 3));
        assert!(!d.observe(EMPTY, 2, 10, t + CONFIRM * 4));
        assert!(d.observe(EMPTY, 2, 10, t + CONFIRM * 5));
    }

    #[test]
    fn other_instances_consumers_count_too() {
        let t = Instant::now();
        let mut d = Drained::default();
        let shared = Some(Depth { ready: 0, consumers: 4 });
        assert!(!d.observe(shared, 2, 0, t));
        assert!(d.observe(shared, 2, 0, t + CONFIRM));
    }
}
