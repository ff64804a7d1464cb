//! The file store seam: the few filesystem verbs the commit protocol needs, implemented
//! for HDFS (`sink::hdfs`) and the local filesystem (`sink::local`).
//! Paths are absolute, `/`-separated, inside the store (e.g. `/landing/clicks/_landfall/x`).

use async_trait::async_trait;
use bytes::Bytes;

/// What went wrong in a store call, and whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The target of a create-if-absent or no-overwrite rename already exists.
    #[error("{path} already exists")]
    AlreadyExists { path: String },
    /// The path (or the source of a rename) does not exist.
    #[error("{path} does not exist")]
    NotFound { path: String },
    /// Worth retrying with backoff: connection refused, timeout, NameNode in safe mode…
    /// `hint` tells the operator what to check.
    #[error("{op} {path}: {message} ({hint})")]
    Transient { op: &'static str, path: String, message: String, hint: String },
    /// Refused for a reason that lasts until a person acts, without restarting anything: a
    /// permission denied to the HDFS user, an exhausted quota. Not worth retrying at once
    /// (nothing changes in a second), but worth retrying with a long, capped backoff while the
    /// pipeline reports itself not ready: the fix is picked up without a restart, and nothing
    /// consumed is lost meanwhile (the range is consumed again from the commit log).
    /// `hint` names what to check: which path, which user, which permission or quota.
    #[error("{op} {path}: {message} ({hint})")]
    Refused { op: &'static str, path: String, message: String, hint: String },
    /// Retrying will not help: path is a directory, bad URL, failed authentication…
    #[error("{op} {path}: {message} ({hint})")]
    Fatal { op: &'static str, path: String, message: String, hint: String },
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }

    /// Refused until a person acts ([`StoreError::Refused`]): retry with a long backoff and
    /// report it, rather than at once or never.
    pub fn needs_person(&self) -> bool {
        matches!(self, StoreError::Refused { .. })
    }
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// Full path.
    pub path: String,
    pub is_dir: bool,
    pub len: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub modified_ms: u64,
}

/// A file being written; data is durable only after `close` returns.
#[async_trait]
pub trait StoreWriter: Send {
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError>;
    async fn close(self: Box<Self>) -> Result<(), StoreError>;
}

/// The filesystem verbs Landfall uses. Every implementation passes the same conformance tests.
#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Creates a new file (parents created as needed); `AlreadyExists` if it is there.
    async fn create(&self, path: &str) -> Result<Box<dyn StoreWriter>, StoreError>;
    /// Renames without overwriting (parents of `dst` created as needed): `AlreadyExists` if
    /// `dst` exists, `NotFound` if `src` does not. Atomic: this is the publish and fence step.
    async fn rename(&self, src: &str, dst: &str) -> Result<(), StoreError>;
    /// Status of a path, `None` if absent.
    async fn stat(&self, path: &str) -> Result<Option<FileStatus>, StoreError>;
    /// Entries directly under `dir`; empty if `dir` is absent.
    async fn list(&self, dir: &str) -> Result<Vec<FileStatus>, StoreError>;
    /// Whole content of a small file.
    async fn read(&self, path: &str) -> Result<Bytes, StoreError>;
    /// `len` bytes of a file from `offset`; fewer (none past the end) where the file ends
    /// first. For reading part of a large file (a Parquet footer, one row group).
    async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, StoreError>;
    /// Deletes a file or (recursively) a directory; Ok if absent.
    async fn delete(&self, path: &str) -> Result<(), StoreError>;
    /// Creates a directory and its parents; Ok if present.
    async fn mkdirs(&self, path: &str) -> Result<(), StoreError>;
    /// Sets the Unix permission bits of a file or directory (not subject to the umask).
    async fn set_permission(&self, path: &str, mode: u32) -> Result<(), StoreError>;
    /// Human-readable location for logs, e.g. `hdfs://127.0.0.1:9000`.
    fn describe(&self) -> String;
}
