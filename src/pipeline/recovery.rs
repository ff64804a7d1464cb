//! Where a stream resumes: its commit log, read (and its newest commit re-published, should a
//! crash have interrupted it) when the stream is assigned or rewound.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::commit::{CommitConfig, CommitError, CommitLog, RunContext};
use crate::retry::{with_backoff, Backoff, Retryable};
use crate::shutdown::Shutdown;
use crate::sink::FileStore;
use crate::source::{Recover, Recovered, StreamId};

/// Reads commit logs in the table's store for the sources.
pub struct StoreRecovery {
    pub store: Arc<dyn FileStore>,
    pub table_root: String,
    pub run_id: String,
    pub config: CommitConfig,
    pub handle: Handle,
    pub shutdown: Shutdown,
}

/// Every recovery error is retried: an assigned stream whose log cannot be read must not be
/// consumed, and a daemon should outlast a store outage. (Errors no retry can fix, such as a
/// manifest whose files retention removed, are retried too; see the liveness issue.)
struct Always(CommitError);

impl std::fmt::Display for Always {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Retryable for Always {
    fn is_transient(&self) -> bool {
        true
    }
}

/// From 200 ms, doubling to 30 s: quick after a blip, gentle during an outage.
fn backoff() -> Backoff {
    Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(30), give_up_after: None }
}

impl Recover for StoreRecovery {
    fn recover(&self, stream: &StreamId) -> Option<Recovered> {
        let run =
            RunContext { run_id: self.run_id.clone(), config: self.config.clone(), stop: self.shutdown.subscribe() };
        let op = format!("read the commit log of {stream}");
        let backoff = backoff();
        let read = with_backoff(&op, &backoff, &run.stop, || async {
            let mut log =
                CommitLog::new(self.store.clone(), &self.table_root, &stream.name, stream.partition, run.clone())
                    .map_err(Always)?;
            let next = log.recover().await.map_err(Always)?;
            Ok::<_, Always>((next, log.take_recovered_ids()))
        });
        // Only shutdown ends the retries.
        let (next, ids) = self.handle.block_on(read).ok()?;
        Some(Recovered { next, ids })
    }
}
