//! What can go wrong while committing or recovering one (topic, partition).

use crate::commit::manifest::ManifestError;
use crate::retry::Retryable;
use crate::sink::StoreError;

/// Why a commit or a recovery did not complete.
///
/// Only [`CommitError::Store`] with a transient cause is retried (inside the protocol, with
/// backoff). [`CommitError::Fenced`] is the normal outcome for a writer that lost ownership:
/// drop the partition's buffered state, re-run `recover` if still assigned, and seek. Every
/// other variant means the table or the caller is in a state a human must look at: stop the
/// pipeline and report it unhealthy.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another writer owns this position in the commit log: either the slot was taken
    /// (someone committed the same sequence number first) or a newer commit exists.
    #[error(
        "{topic}/{partition}: commit #{seq} (offsets {start}..={end}) fenced: {reason}; \
         this writer is stale (rebalance or a stalled process) and must re-run recovery"
    )]
    Fenced { topic: String, partition: i32, seq: u64, start: i64, end: i64, reason: String },

    /// A committed manifest lists a file that exists neither staged nor published.
    #[error(
        "{topic}/{partition}: commit #{seq} (offsets {start}..={end}) lists {staged}, but neither it \
         nor its published name {final_path} exists; the rows are lost from the table. Check for a \
         manual delete or an orphan-cleanup grace shorter than the writers' stalls; to skip the \
         range, re-ingest offsets {start}..={end} and remove the manifest {manifest}"
    )]
    Lost {
        topic: String,
        partition: i32,
        seq: u64,
        start: i64,
        end: i64,
        staged: String,
        final_path: String,
        manifest: String,
    },

    /// The published name is occupied by something this commit did not put there.
    #[error(
        "publishing {staged} as {final_path}: {detail}; something else wrote into the table \
         (a second daemon with another commit log location, or a manual copy); inspect both files"
    )]
    Conflict { staged: String, final_path: String, detail: String },

    /// A staged file to commit is older than half the orphan grace period, so orphan cleanup
    /// may already be deleting it.
    #[error(
        "refusing to commit {path}: it was last modified {age_s} s ago, over the limit of {limit_s} s \
         (half the orphan grace period); the writer stalled or the clocks of this host and the \
         store differ; the batch will be re-read from the source"
    )]
    StaleStaged { path: String, age_s: u64, limit_s: u64 },

    /// A staged file to commit does not exist.
    #[error("staged file {path} does not exist: it was never closed, or orphan cleanup removed it")]
    MissingStaged { path: String },

    /// A staged file of the commit could not be closed (so the commit point was not made).
    #[error("a staged file did not close: {reason}; the range is written again from the source")]
    NotClosed { reason: String },

    /// A staged file to commit does not hold the bytes the writer wrote.
    #[error(
        "staged file {path} holds {found} bytes, the writer wrote {written}: the store lost part \
         of it; the range is written again from the source"
    )]
    StagedSize { path: String, found: u64, written: u64 },

    /// A file the protocol itself just wrote or renamed is gone.
    #[error("{what} {path} vanished during the commit (a writer stalled past the orphan grace period?)")]
    Vanished { what: &'static str, path: String },

    /// A manifest that cannot be used as it is.
    #[error("manifest {path}: {source}")]
    BadManifest {
        path: String,
        #[source]
        source: ManifestError,
    },

    /// The caller asked to commit a range that does not continue the log.
    #[error(
        "{topic}/{partition}: commit must start at offset {expected} (the end of the last commit + 1), \
         got {got}; the consumer position and the commit log disagree (missed a seek after recovery?)"
    )]
    OutOfOrder { topic: String, partition: i32, expected: i64, got: i64 },

    /// Arguments that can never be committed (negative or reversed offsets, bad names).
    #[error("invalid commit request: {0}")]
    Invalid(String),

    /// `commit` before `recover`, or after a commit that failed half-way.
    #[error("{topic}/{partition}: the commit log position is unknown; call recover() first (after start or after any commit error)")]
    NotRecovered { topic: String, partition: i32 },

    /// Shutdown was requested while a store call was being retried.
    #[error("{op}: stopped by shutdown while retrying; last error: {last}")]
    Stopped { op: String, last: Box<CommitError> },

    /// Retrying was abandoned (only with a configured give-up time).
    #[error("{op}: gave up after {attempts} attempts; last error: {last}")]
    GaveUp { op: String, attempts: u32, last: Box<CommitError> },

    /// A store call failed (fatal, or transient and not retried at this level).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CommitError {
    /// True for the outcome "another writer owns this partition now".
    pub fn is_fenced(&self) -> bool {
        matches!(self, CommitError::Fenced { .. })
    }
}

impl Retryable for CommitError {
    fn is_transient(&self) -> bool {
        matches!(self, CommitError::Store(e) if e.is_transient())
    }
}

impl From<crate::retry::RetryError<CommitError>> for CommitError {
    fn from(e: crate::retry::RetryError<CommitError>) -> Self {
        use crate::retry::RetryError;
        match e {
            RetryError::Failed(e) => e,
            RetryError::Stopped { op, last, .. } => CommitError::Stopped { op, last: Box::new(last) },
            RetryError::GaveUp { op, attempts, last, .. } => CommitError::GaveUp { op, attempts, last: Box::new(last) },
        }
    }
}
