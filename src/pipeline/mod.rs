//! One pipeline end to end: a consumer thread (poll → decode → partition → buffer → cut) and a
//! writer task (Parquet → staged files → commit log → publish), joined by a bounded channel so a
//! slow store holds back consumption instead of filling memory.

mod amqp;
mod consume;
mod dedup;
pub mod partitions;
mod route;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use consume::RunSummary;

use crate::config::{PipelineConfig, SinkConfig, SourceConfig};
use crate::sink::FileStore;

/// Why a pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("pipeline {pipeline}: {message}")]
    Setup { pipeline: String, message: String },
    #[error("pipeline {pipeline}: {message}")]
    Fatal { pipeline: String, message: String },
}

/// How `run` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Until shutdown is requested (the daemon).
    Forever,
    /// Until every assigned partition reaches the end offset it had when assigned (backfill).
    UntilCaughtUp,
}

/// Set once by the signal handler; loops check it, retry loops watch it.
#[derive(Clone)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(watch::channel(false).0))
    }
}

impl Shutdown {
    pub fn request(&self) {
        self.0.send_replace(true);
    }
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }
    /// For retry loops that give up when shutdown is requested.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// Options that come from the command line and daemon settings rather than the pipeline file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub mode: RunMode,
    /// How long a clean stop may take to publish what is buffered.
    pub shutdown_deadline: Duration,
    /// Show a progress line on stderr (when it is a terminal).
    pub progress: bool,
}

/// Opens the table's store from the sink config.
pub fn open_store(cfg: &PipelineConfig) -> Result<(Arc<dyn FileStore>, String), String> {
    match &cfg.sink {
        SinkConfig::Hdfs(h) => {
            let store = crate::sink::hdfs(&h.url, h.user.as_deref()).map_err(|e| e.to_string())?;
            Ok((Arc::new(store), h.path.clone()))
        }
        SinkConfig::Local(l) => {
            let root = std::path::absolute(&l.path).map_err(|e| format!("sink.local.path {}: {e}", l.path))?;
            let store = crate::sink::LocalStore::new(std::path::PathBuf::from("/"));
            Ok((Arc::new(store), root.to_string_lossy().into_owned()))
        }
    }
}

/// Runs one pipeline until shutdown (or until caught up), then publishes what is buffered.
pub async fn run(cfg: PipelineConfig, opts: RunOptions, shutdown: Shutdown) -> Result<RunSummary, PipelineError> {
    let name = cfg.name.clone();
    let setup = |message: String| PipelineError::Setup { pipeline: name.clone(), message };
    let (store, table_root) = open_store(&cfg).map_err(setup)?;
    // Staged files of crashed runs that no commit references are deleted once old enough
    // (the writer repeats this every ten minutes).
    match crate::commit::clean_orphans(store.as_ref(), &table_root, crate::commit::default_grace()).await {
        Ok(report) => tracing::debug!(pipeline = %cfg.name, ?report, "orphan cleanup done"),
        Err(e) => tracing::warn!(pipeline = %cfg.name, error = %e, "could not clean orphaned staged files; will retry next start"),
    }
    let handle = tokio::runtime::Handle::current();
    let pipeline = cfg.name.clone();
    let consumer = match &cfg.source {
        SourceConfig::Kafka(_) => consume::run,
        SourceConfig::RabbitMq(_) => amqp::run,
    };
    let joined = tokio::task::spawn_blocking(move || consumer(cfg, opts, shutdown, store, table_root, handle))
        .await
        .map_err(|e| PipelineError::Fatal { pipeline: pipeline.clone(), message: format!("consumer thread panicked: {e}") })?;
    joined.map_err(|message| PipelineError::Fatal { pipeline, message })
}
