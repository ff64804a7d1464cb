//! Where a stream resumes: its commit log, read (and its newest commit re-published, should a
//! crash have interrupted it) when the stream is assigned or rewound.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::commit::{CommitConfig, CommitError, CommitLog, RunContext};
use crate::retry::{with_backoff, Backoff, Retryable};
use crate::shutdown::Shutdown;
use crate::sink::FileStore;
use crate::source::{PositionJump, Recover, Recovered, RecoveryError, StreamId};

/// Reads commit logs in the table's store for the sources.
pub struct StoreRecovery {
    pub store: Arc<dyn FileStore>,
    pub table_root: String,
    pub run_id: String,
    pub config: CommitConfig,
    pub handle: Handle,
    pub shutdown: Shutdown,
}

/// How long one [`Recover::attempt`] keeps retrying store calls before it reports the outage:
/// long enough to ride out a blip, short enough that the consumer loop goes on polling (a
/// Kafka member that stops polling for `max.poll.interval.ms` leaves its group).
const ATTEMPT_LIMIT: Duration = Duration::from_secs(10);

/// Between attempts of [`Recover::recover`]: from 200 ms, doubling to 30 s, quick after a
/// blip and gentle during an outage.
fn backoff() -> Backoff {
    Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(30), give_up_after: None }
}

/// A recovery failure as the retry loop sees it.
struct Failure(RecoveryError);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Retryable for Failure {
    fn is_transient(&self) -> bool {
        matches!(self.0, RecoveryError::Transient(_))
    }
}

/// Store outages (retried inside the attempt until [`ATTEMPT_LIMIT`]) are transient, and so
/// is a refusal that a person ends (a permission on the commit log, a quota): retried with
/// backoff, the fix is picked up. A state of the table that no retry changes is permanent.
fn classify(e: CommitError) -> RecoveryError {
    match e {
        CommitError::Stopped { .. } => RecoveryError::Stopping,
        CommitError::GaveUp { .. } => RecoveryError::Transient(e.to_string()),
        CommitError::Store(ref s) if s.needs_person() => RecoveryError::Transient(e.to_string()),
        e if e.is_transient() => RecoveryError::Transient(e.to_string()),
        e => RecoveryError::Permanent(e.to_string()),
    }
}

impl StoreRecovery {
    /// The stream's commit log, recovered; store calls retried for at most [`ATTEMPT_LIMIT`].
    async fn recovered(&self, stream: &StreamId) -> Result<(CommitLog, Option<i64>), RecoveryError> {
        let mut config = self.config.clone();
        config.backoff.give_up_after = Some(ATTEMPT_LIMIT);
        let run = RunContext { run_id: self.run_id.clone(), config, stop: self.shutdown.subscribe() };
        let mut log = CommitLog::new(self.store.clone(), &self.table_root, &stream.name, stream.partition, run)
            .map_err(classify)?;
        let next = log.recover().await.map_err(classify)?;
        Ok((log, next))
    }

    async fn read(&self, stream: &StreamId) -> Result<Recovered, RecoveryError> {
        let (mut log, next) = self.recovered(stream).await?;
        Ok(Recovered { next, ids: log.take_recovered_ids() })
    }

    /// Jumps only while the log's position is still past the source's end: another member
    /// that found the same loss first may have jumped and landed since.
    async fn write_jump(&self, stream: &StreamId, jump: &PositionJump) -> Result<Recovered, RecoveryError> {
        let (mut log, next) = self.recovered(stream).await?;
        if next.is_none_or(|n| n <= jump.latest) {
            return Ok(Recovered { next, ids: log.take_recovered_ids() });
        }
        log.jump(jump.to, jump.earliest, jump.latest, jump.policy).await.map_err(classify)?;
        Ok(Recovered { next: Some(jump.to), ids: Vec::new() })
    }
}

impl Recover for StoreRecovery {
    fn attempt(&self, stream: &StreamId) -> Result<Recovered, RecoveryError> {
        if self.shutdown.requested() {
            return Err(RecoveryError::Stopping);
        }
        self.handle.block_on(self.read(stream))
    }

    fn recover(&self, stream: &StreamId) -> Result<Recovered, RecoveryError> {
        let op = format!("read the commit log of {stream}");
        let stop = self.shutdown.subscribe();
        let backoff = backoff();
        let read = with_backoff(&op, &backoff, &stop, || async { self.read(stream).await.map_err(Failure) });
        self.handle.block_on(read).map_err(|e| match e {
            crate::retry::RetryError::Failed(Failure(e)) => e,
            _ => RecoveryError::Stopping,
        })
    }

    fn jump(&self, stream: &StreamId, jump: &PositionJump) -> Result<Recovered, RecoveryError> {
        if self.shutdown.requested() {
            return Err(RecoveryError::Stopping);
        }
        self.handle.block_on(self.write_jump(stream, jump))
    }
}
