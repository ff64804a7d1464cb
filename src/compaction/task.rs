//! The compaction task of one pipeline: a round ([`Compactor::round`]) as often as the
//! completion pass runs, on the completer only (the instance holding the first source
//! partition, as for completion), in a task of its own so a long build never delays a
//! completion pass. A failure is logged once per cause and the partition that failed is retried
//! with backoff ([`super::round::Deferred`]); landing never waits for compaction.

use std::sync::Arc;
use std::time::Duration;

use super::round::{Compactor, Outcome};
use crate::completion::Completion;
use crate::observe::status::CompactionStatus;
use crate::observe::PipelineWatch;
use crate::retry::{cause_key, first_line};
use crate::shutdown::Shutdown;

pub struct CompactionTask {
    pub compactor: Compactor,
    pub completion: Arc<Completion>,
    pub watch: Arc<PipelineWatch>,
    /// Between rounds: the completion pass's interval.
    pub every: Duration,
}

impl CompactionTask {
    pub async fn run(self, shutdown: Shutdown) {
        let mut status = CompactionStatus::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = shutdown.wait() => return,
            }
            if !self.completion.is_completer() {
                continue;
            }
            // Stopped mid-round, a build is left unrecorded: the next round builds again in a
            // fresh directory and the cleanup deletes the stray one.
            let result = tokio::select! {
                r = self.round(&mut status) => r,
                _ = shutdown.wait() => return,
            };
            status.deferred = self.compactor.deferred.partitions();
            let (failing, say) = after_round(status.failing.take(), result, !status.deferred.is_empty());
            let pipeline = &self.compactor.pipeline;
            match (say, &failing) {
                (Say::WorksAgain, _) => tracing::info!(pipeline = %pipeline, "compaction works again"),
                (Say::Failing, Some(cause)) => tracing::warn!(
                    pipeline = %pipeline, error = %cause,
                    "compaction round failed; landing goes on, the partition keeps its files and is tried again with backoff (1 min doubling to 1 h); the other partitions go on"
                ),
                _ => {}
            }
            status.failing = failing;
            self.watch.set_compaction(status.clone());
        }
    }

    /// One round; counts its switches in the metrics and in `status`.
    async fn round(&self, status: &mut CompactionStatus) -> Result<(), String> {
        let c = &self.compactor;
        let now_ms = crate::commit::store_now_ms(c.store.as_ref(), &c.root).await.map_err(|e| e.to_string())?;
        let (outcomes, failed) = c.round(now_ms).await;
        let m = &self.watch.metrics;
        for (_, outcome) in outcomes {
            if let Outcome::Switched { inputs, outputs, input_bytes, output_bytes, .. } = outcome {
                m.partitions_compacted.inc();
                m.compaction_files_in.inc_by(inputs as u64);
                m.compaction_files_out.inc_by(outputs as u64);
                m.compaction_bytes_in.inc_by(input_bytes);
                m.compaction_bytes_out.inc_by(output_bytes);
                status.partitions += 1;
                status.files_in += inputs as u64;
                status.files_out += outputs as u64;
                status.bytes_in += input_bytes;
                status.bytes_out += output_bytes;
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// What to log after a round.
#[derive(Debug, PartialEq, Eq)]
enum Say {
    Nothing,
    Failing,
    WorksAgain,
}

/// The failure to show after a round (`previous`: the one shown before it), and what to log.
/// A round that skipped the partitions in backoff (`deferred`) has not seen them work, so
/// their failure stays shown and nothing is said; a failure is logged once per cause
/// ([`cause_key`]: the retry delay in its text does not make a new one).
fn after_round(previous: Option<String>, result: Result<(), String>, deferred: bool) -> (Option<String>, Say) {
    match result {
        Err(e) => {
            let shown = first_line(&e).to_string();
            let same = previous.as_deref().is_some_and(|p| cause_key(p) == cause_key(&shown));
            (Some(shown), if same { Say::Nothing } else { Say::Failing })
        }
        Ok(()) if deferred => (previous, Say::Nothing),
        Ok(()) => {
            let say = if previous.is_some() { Say::WorksAgain } else { Say::Nothing };
            (None, say)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_said_once_and_stays_shown_while_its_partition_waits_out_the_backoff() {
        let failed = |delay: u32| {
            Err(format!("compaction of dt=x/hour=16: part-000.parquet is not Parquet (this partition is tried again in {delay} s)"))
        };
        let (shown, say) = after_round(None, failed(47), true);
        assert_eq!(say, Say::Failing);
        let (shown, say) = after_round(shown, Ok(()), true);
        assert_eq!(say, Say::Nothing, "a round that skipped the partition has not seen it work");
        assert!(shown.as_deref().is_some_and(|s| s.contains("in 47 s")), "{shown:?}");
        let (shown, say) = after_round(shown, failed(95), true);
        assert_eq!(say, Say::Nothing, "the same cause, another delay");
        let (shown, say) = after_round(shown, Err("compaction of dt=x/hour=16: metastore unreachable".into()), true);
        assert_eq!(say, Say::Failing, "another cause");
        assert_eq!(after_round(shown, Ok(()), false), (None, Say::WorksAgain));
        assert_eq!(after_round(None, Ok(()), false), (None, Say::Nothing));
    }
}
