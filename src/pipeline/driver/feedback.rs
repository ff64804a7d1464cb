//! The driver's side of the writer's answers: a published commit is acknowledged to the source,
//! a failed one rewinds its stream (with backoff) or ends a queue's session, a fatal one stops
//! the pipeline.

use std::time::Instant;

use super::{rewind_backoff, Driver, Stop, TICK};
use crate::observe::ProblemKey;
use crate::pipeline::stream::{Flow, Stream};
use crate::pipeline::writer::{Feedback, WriterMsg};
use crate::retry::{cause_key, first_line};
use crate::source::{Rewound, SourceError};

impl Driver {
    /// Handles the writer's answers that arrived.
    pub(super) fn drain_feedback(&mut self) -> Result<(), Stop> {
        let mut any = false;
        while let Ok(fb) = self.feedback.try_recv() {
            any = true;
            self.on_feedback(fb, false)?;
        }
        if any {
            self.source.flush(false);
        }
        Ok(())
    }

    /// Waits for the commits in flight, handling their answers, until `give_up` says so.
    pub(super) fn wait_inflight(&mut self, give_up: impl Fn(&Driver) -> bool) -> Result<(), Stop> {
        let mut result = Ok(());
        while self.inflight > 0 && !give_up(self) {
            self.watch.beat();
            let shutdown = self.shutdown.clone();
            let answer = self.handle.block_on(async {
                tokio::select! {
                    fb = self.feedback.recv() => Some(fb),
                    _ = tokio::time::sleep(TICK) => None,
                    _ = shutdown.wait(), if !shutdown.requested() => None,
                }
            });
            match answer {
                None => {}
                Some(None) => return Err(Stop::Fatal("the writer task stopped".into())),
                Some(Some(fb)) => {
                    if let Err(stop) = self.on_feedback(fb, true) {
                        if matches!(stop, Stop::Fatal(_)) {
                            return Err(stop);
                        }
                        result = Err(stop);
                    }
                    self.source.flush(false);
                }
            }
        }
        result
    }

    /// One answer of the writer. `finishing`: no more consuming, so a failed commit only drops
    /// its stream (its messages are consumed again at the next start).
    pub(super) fn on_feedback(&mut self, fb: Feedback, finishing: bool) -> Result<(), Stop> {
        match fb {
            Feedback::Committed { stream, epoch, next, files, rows, rejected, bytes, file_sizes, trigger } => {
                self.inflight = self.inflight.saturating_sub(1);
                self.summary.files += files as u64;
                self.summary.parquet_bytes += bytes;
                self.summary.events += rows;
                let rejected_rows: u64 = rejected.iter().map(|(_, n)| n).sum();
                self.summary.rejected += rejected_rows;
                self.watch.committed(rows, &rejected, files as u64, bytes);
                self.watch.metrics.cut_published(trigger.label(), &file_sizes);
                if let Some(advice) = self.sizes.published(trigger, &file_sizes, Instant::now()) {
                    advice.log(self.pipeline());
                }
                let Some(i) = self.index(&stream.name, stream.partition) else { return Ok(()) };
                let s = &mut self.streams[i];
                if let Flow::Rewound { failures, .. } = s.flow {
                    tracing::info!(pipeline = %self.summary.pipeline, %stream, failures, "publishing again after rewinds");
                    s.flow = Flow::Consuming;
                    if !self.streams.iter().any(|s| matches!(s.flow, Flow::Rewound { .. })) {
                        // Every stream publishes again: the next failure is news.
                        self.rewind_cause = None;
                    }
                }
                let s = &mut self.streams[i];
                let token = if s.buf.epoch == epoch { s.lane.take_published(next) } else { None };
                self.source.published(&stream, next, token)?;
            }
            Feedback::RollRequested { stream, epoch } => {
                if let Some(i) = self.index(&stream.name, stream.partition) {
                    if self.streams[i].buf.epoch == epoch {
                        self.streams[i].buf.roll_requested = true;
                    }
                }
            }
            Feedback::Rewind { stream, epoch, reason, answers_commit, superseded } => {
                if answers_commit {
                    self.inflight = self.inflight.saturating_sub(1);
                }
                let Some(i) = self.index(&stream.name, stream.partition) else { return Ok(()) };
                if self.streams[i].buf.epoch != epoch {
                    return Ok(()); // already rewound past that epoch
                }
                self.rewinds += 1;
                self.watch.metrics.rewinds.inc();
                if !superseded {
                    self.watch.problem(ProblemKey::Commit, Some(format!("commit of {stream} failed: {reason}")));
                }
                self.tx
                    .send(WriterMsg::Drop { stream: stream.clone() })
                    .map_err(|_| "the writer task stopped".to_string())?;
                if finishing || self.shutdown.requested() {
                    tracing::warn!(pipeline = %self.pipeline(), %stream, %reason, "a commit failed while stopping; its messages are consumed again at the next start");
                    self.streams.swap_remove(i);
                    return Ok(());
                }
                self.rewind(i, reason)?;
            }
            Feedback::Fatal { message } => return Err(Stop::Fatal(message)),
        }
        Ok(())
    }

    /// Resumes stream `i` from its commit log after a failed commit, paused with backoff.
    pub(super) fn rewind(&mut self, i: usize, reason: String) -> Result<(), Stop> {
        let id = self.streams[i].id.clone();
        let failures = match &self.streams[i].flow {
            Flow::Rewound { failures, .. } => failures + 1,
            Flow::Consuming => 1,
        };
        let delay = rewind_backoff().delay(failures);
        // The cause is named once per pipeline (a warn with its first line), not once per
        // partition and retry: the reason names a fresh staged file each time and may carry a
        // NameNode's stack trace, so causes are compared by `cause_key`. Each partition still
        // says once that it rewinds; the retries go to `debug` with the whole reason.
        let key = cause_key(&reason);
        let same_stream = matches!(&self.streams[i].flow, Flow::Rewound { reason: r, .. } if cause_key(r) == key);
        let retry_in_s = delay.as_secs_f32();
        if same_stream {
            tracing::debug!(pipeline = %self.pipeline(), stream = %id, %reason, failures, retry_in_s, "rewinding the stream again");
        } else if self.rewind_cause.as_deref() == Some(key.as_str()) {
            tracing::info!(pipeline = %self.pipeline(), stream = %id, failures, retry_in_s, "rewinding the stream to its last published position (same cause as reported above)");
            tracing::debug!(pipeline = %self.pipeline(), stream = %id, %reason, "rewind reason");
        } else {
            tracing::warn!(pipeline = %self.pipeline(), stream = %id, reason = first_line(&reason), failures, retry_in_s, "rewinding the stream to its last published position; retried with backoff (1 s doubling to 60 s) until the cause is gone");
            tracing::debug!(pipeline = %self.pipeline(), stream = %id, %reason, "rewind reason");
            self.rewind_cause = Some(key);
        }
        let assignment = match self.source.rewind(&id, delay) {
            Ok(Rewound::Now(a)) => a,
            Ok(Rewound::Later) => {
                // Back as an assignment once recovered; the failure count waits for it.
                self.streams.swap_remove(i);
                self.rewound.insert(id, (failures, reason));
                return Ok(());
            }
            Err(SourceError::SessionLost(_)) => return Err(Stop::Lost(format!("publishing failed: {reason}"))),
            Err(SourceError::Fatal(message)) => return Err(Stop::Fatal(message)),
        };
        let epoch = self.epoch();
        let mut stream = Stream::new(assignment, epoch, self.positions, Instant::now());
        stream.flow = Flow::Rewound { failures, paused_until: Some(Instant::now() + delay), reason };
        self.streams[i] = stream;
        self.source.set_paused(&id, true);
        self.paused.insert(id);
        Ok(())
    }
}
