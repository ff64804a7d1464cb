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
use crate::retry::first_line;
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
        let mut failing: Option<String> = None;
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
            status.failing = result.as_ref().err().map(|e| first_line(e).to_string());
            status.deferred = self.compactor.deferred.partitions();
            self.watch.set_compaction(status.clone());
            let pipeline = &self.compactor.pipeline;
            match result {
                Ok(()) => {
                    if failing.take().is_some() {
                        tracing::info!(pipeline = %pipeline, "compaction works again");
                    }
                }
                Err(e) => {
                    let cause = first_line(&e).to_string();
                    if failing.as_deref() != Some(cause.as_str()) {
                        tracing::warn!(
                            pipeline = %pipeline, error = %cause,
                            "compaction round failed; landing goes on, the partition keeps its files and is tried again with backoff (1 min doubling to 1 h); the other partitions go on"
                        );
                        failing = Some(cause);
                    }
                }
            }
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
