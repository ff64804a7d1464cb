//! One pipeline end to end: the [`driver`] on a blocking thread (poll → decode → partition →
//! buffer → cut, for whichever [`Source`]) and the [`writer`] task (Parquet → staged files →
//! commit log → publish), joined by a bounded channel so a slow store holds back consumption
//! instead of filling memory.

mod dedup;
pub mod driver;
mod handoff;
pub mod partitions;
mod plan;
mod recovery;
mod route;
mod sizes;
mod stream;
mod summary;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

pub use crate::shutdown::Shutdown;
pub use plan::Plan;
pub use summary::RunSummary;

use crate::compaction::catalog::HiveCatalog;
use crate::compaction::round::{CompactionSettings, Compactor};
use crate::compaction::task::CompactionTask;
use crate::completion::task::{CompletionTask, HiveTarget};
use crate::completion::Completion;
use crate::config::{PipelineConfig, SourceConfig, StoreConfig};
use crate::metastore::registrar::{self, Registrar};
use crate::observe::status::PipelineState;
use crate::observe::{PipelineWatch, ProblemKey};
use crate::sink::FileStore;
use crate::source::kafka::KafkaSource;
use crate::source::kafka_ends::KafkaEnds;
use crate::source::rabbitmq::{QueueSource, StreamSource};
use crate::source::{Recovery, Source, SourceError};

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
    /// Until every assigned stream reaches the end it had when assigned (backfill).
    UntilCaughtUp,
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

/// Opens the table's store from the sink config; returns it with the table's root path.
pub fn open_store(cfg: &PipelineConfig) -> Result<(Arc<dyn FileStore>, String), String> {
    match &cfg.sink.store {
        StoreConfig::Hdfs(h) => {
            let store = crate::sink::hdfs_with_options(&h.url, h.user.as_deref(), h.options.iter())
                .map_err(|e| e.to_string())?;
            Ok((Arc::new(store), h.path.clone()))
        }
        StoreConfig::Local(l) => {
            let root = std::path::absolute(&l.path).map_err(|e| format!("sink.local.path {}: {e}", l.path))?;
            let store = crate::sink::LocalStore::new(std::path::PathBuf::from("/"));
            Ok((Arc::new(store), root.to_string_lossy().into_owned()))
        }
    }
}

/// The connector registry: the one place that turns a source config into a [`Source`].
pub fn build_source(
    cfg: &PipelineConfig,
    recovery: Recovery,
    handle: tokio::runtime::Handle,
    mode: RunMode,
) -> Result<Box<dyn Source>, SourceError> {
    Ok(match &cfg.source {
        SourceConfig::Kafka(k) => Box::new(KafkaSource::build(&cfg.name, k, recovery)?),
        SourceConfig::RabbitMq(r) if r.is_stream() => {
            let until_caught_up = mode == RunMode::UntilCaughtUp;
            Box::new(StreamSource::build(&cfg.name, r, recovery, handle, until_caught_up, cfg.roll.received_bytes()))
        }
        SourceConfig::RabbitMq(r) => {
            Box::new(QueueSource::build(&cfg.name, r, recovery, handle, cfg.roll.received_bytes()))
        }
    })
}

/// `validate --connect`: the source reaches its broker and finds what it reads.
pub async fn probe_source(cfg: &PipelineConfig) -> Result<(), String> {
    let cfg = cfg.clone();
    let handle = tokio::runtime::Handle::current();
    let probed = tokio::task::spawn_blocking(move || {
        let mut source = build_source(&cfg, Arc::new(crate::source::NothingCommitted), handle, RunMode::Forever)?;
        source.probe()
    })
    .await;
    match probed {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the probe panicked: {e}")),
    }
}

/// Runs one pipeline until shutdown (or until caught up), then publishes what is buffered.
/// Health and metrics go to `watch`.
pub async fn run(
    plan: Arc<Plan>,
    opts: RunOptions,
    shutdown: Shutdown,
    watch: Arc<PipelineWatch>,
) -> Result<RunSummary, PipelineError> {
    let cfg = &plan.cfg;
    let setup = |message: String| PipelineError::Setup { pipeline: cfg.name.clone(), message };
    let (store, table_root) = open_store(cfg).map_err(setup)?;
    // Staged files of crashed runs that no commit references are deleted once old enough
    // (the writer repeats this every ten minutes).
    match crate::commit::clean_orphans(store.as_ref(), &table_root, plan.commit.grace).await {
        Ok(report) => tracing::debug!(pipeline = %cfg.name, ?report, "orphan cleanup done"),
        Err(e) => {
            tracing::warn!(pipeline = %cfg.name, error = %e, "could not clean orphaned staged files; will retry next start")
        }
    }
    let hive = start_registration(&plan, watch.clone(), (store.clone(), table_root.clone())).await.map_err(setup)?;
    let completion = match start_completion(&plan, &store, &table_root, &watch, &shutdown) {
        Ok(c) => c,
        Err(e) => {
            if let Some((registrar, _)) = &hive {
                registrar.close(); // its task ends; the restarted pipeline starts its own
            }
            return Err(setup(e));
        }
    };
    let (source_plan, mode) = (plan.clone(), opts.mode);
    let make = move |recovery, handle| build_source(&source_plan.cfg, recovery, handle, mode);
    let downstream = writer::Downstream {
        registrar: hive.as_ref().map(|(r, _)| r.clone()),
        completion: completion.as_ref().map(|c| c.completion.clone()),
    };
    let name = cfg.name.clone();
    let result = drive(plan, opts, shutdown, store, table_root, watch, downstream, make).await;
    if let Some(CompletionStarted { mut task, finish, compacting, .. }) = completion {
        // A build stopped here is left unrecorded; the next run builds again (and a restarted
        // pipeline has a compaction task of its own).
        if let Some(compacting) = compacting {
            compacting.abort();
        }
        // A pipeline that stops with an error is restarted with a task of its own; one that
        // ends cleanly gets a last pass over its final commits (none after a shutdown request).
        if result.is_ok() {
            finish.send_replace(true);
            if tokio::time::timeout(Duration::from_secs(15), &mut task).await.is_err() {
                tracing::warn!(pipeline = %name, "the last completion pass took over 15 s; the next run finishes it");
            }
        }
        task.abort();
    }
    if let Some((registrar, task)) = hive {
        // One last pass over what the final commits published, bounded like the writer's.
        registrar.close();
        if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
            tracing::warn!(pipeline = %name, "Hive partitions still being registered at stop; they are added when a commit lands in them again");
        }
    }
    result
}

/// `sink.hive`: ensures the table (a table that differs from the pipeline stops it here, with
/// every difference named) and starts the task that registers partitions in the background.
async fn start_registration(
    plan: &Plan,
    watch: Arc<PipelineWatch>,
    table_dir: (Arc<dyn FileStore>, String),
) -> Result<Option<(Arc<Registrar>, tokio::task::JoinHandle<()>)>, String> {
    let cfg = &plan.cfg;
    let (Some(hive), StoreConfig::Hdfs(hdfs)) = (&cfg.sink.hive, &cfg.sink.store) else { return Ok(None) };
    let keys = crate::partition::hive_keys(plan.template.as_str())
        .map_err(|p| format!("sink.hive: partition.path: {}", p.join("; ")))?;
    let location = crate::metastore::table::table_location(hdfs);
    let spec = crate::metastore::table::table_spec(hive, &cfg.name, &plan.schema, &keys, &location);
    let (registration, table) = registrar::start(hive, &cfg.name, spec, keys, watch, table_dir).await?;
    let registrar = Arc::new(Registrar::default());
    let task = tokio::spawn(registration.run(registrar.clone(), table));
    Ok(Some((registrar, task)))
}

/// A running completion task: the state committers report to, the task, the switch that asks
/// it for a last pass, and with `sink.hive.compaction` the compaction task.
struct CompletionStarted {
    completion: Arc<Completion>,
    task: tokio::task::JoinHandle<()>,
    finish: tokio::sync::watch::Sender<bool>,
    compacting: Option<tokio::task::JoinHandle<()>>,
}

/// `partition.completion`: the shared completion state, and its task (spawned; it ends at
/// shutdown, or after a last pass once the pipeline ends). Kafka sources get a client of their
/// own that reads partition ends.
fn start_completion(
    plan: &Plan,
    store: &Arc<dyn FileStore>,
    table_root: &str,
    watch: &Arc<PipelineWatch>,
    shutdown: &Shutdown,
) -> Result<Option<CompletionStarted>, String> {
    let cfg = &plan.cfg;
    let (Some(settings), Some(clock)) = (&cfg.partition.completion, &plan.clock) else { return Ok(None) };
    let completion = Arc::new(Completion::new(clock.clone(), watch.metrics.clone()));
    let root = table_root.trim_end_matches('/').to_string();
    let (ends, starts_at_latest, expected_logs) = match &cfg.source {
        SourceConfig::Kafka(k) => (
            Some(Arc::new(KafkaEnds::build(&cfg.name, k)?)),
            k.start == crate::config::StartPosition::Latest,
            Vec::new(),
        ),
        SourceConfig::RabbitMq(r) => (None, false, vec![crate::commit::commit_dir(&root, &r.queue, 0)]),
    };
    let hive = match (&cfg.sink.hive, &cfg.sink.store) {
        (Some(h), StoreConfig::Hdfs(hdfs)) => {
            let keys = crate::partition::hive_keys(plan.template.as_str())
                .map_err(|p| format!("sink.hive: partition.path: {}", p.join("; ")))?;
            Some(HiveTarget { config: h.clone(), keys, location: crate::metastore::table::table_location(hdfs) })
        }
        _ => None,
    };
    let compaction = match &hive {
        Some(target) => target
            .config
            .compaction
            .as_ref()
            .map(|c| compactor(plan, store, &root, target, c, &settings.marker))
            .transpose()?,
        None => None,
    };
    let task = CompletionTask {
        pipeline: cfg.name.clone(),
        store: store.clone(),
        root,
        completion: completion.clone(),
        settings: settings.clone(),
        ends,
        starts_at_latest,
        expected_logs,
        hive,
        compaction: compaction.is_some(),
        watch: watch.clone(),
        state: Default::default(),
    };
    let every = crate::completion::task::pass_every(settings.idle_timeout.get());
    let (finish, finishing) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(task.run(shutdown.clone(), finishing));
    let compacting = compaction.map(|compactor| {
        let task = CompactionTask { compactor, completion: completion.clone(), watch: watch.clone(), every };
        tokio::spawn(task.run(shutdown.clone()))
    });
    Ok(Some(CompletionStarted { completion, task: handle, finish, compacting }))
}

/// `sink.hive.compaction`: the compactor of the pipeline's metastore table.
fn compactor(
    plan: &Plan,
    store: &Arc<dyn FileStore>,
    root: &str,
    target: &HiveTarget,
    config: &crate::config::CompactionConfig,
    marker: &str,
) -> Result<Compactor, String> {
    let client =
        crate::metastore::MetastoreClient::new(&target.config.metastore, crate::metastore::registrar::CALL_TIMEOUT)
            .map_err(|e| format!("sink.hive.compaction: {e}"))?;
    let catalog = HiveCatalog { client, database: target.config.database.clone(), table: target.config.table.clone() };
    let schema = Arc::new(crate::schema::arrow_schema(&plan.schema));
    Ok(Compactor {
        pipeline: plan.cfg.name.clone(),
        store: store.clone(),
        root: root.to_string(),
        location: target.location.clone(),
        keys: target.keys.clone(),
        catalog: Arc::new(catalog),
        settings: CompactionSettings {
            min_files: config.min_files,
            target_bytes: config.target_file_size.bytes(),
            grace: config.grace.get(),
            marker: marker.to_string(),
        },
        schema,
        props: plan.parquet.clone(),
        run: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        deferred: Default::default(),
    })
}

/// How often the store is asked whether it answers, and how long it may take.
const STORE_CHECK_EVERY: Duration = Duration::from_secs(5);
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the store for the table root every few seconds, so `/ready` says within seconds that
/// the NameNode is gone (or back) even when nothing is being committed.
async fn watch_store(store: Arc<dyn FileStore>, table_root: String, watch: Arc<PipelineWatch>) {
    loop {
        let answer = tokio::time::timeout(STORE_CHECK_TIMEOUT, store.stat(&table_root)).await;
        let problem = match answer {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("store: {} cannot read {table_root}: {e}", store.describe())),
            Err(_) => Some(format!(
                "store: {} did not answer within {} s; is the NameNode up? check sink.hdfs.url",
                store.describe(),
                STORE_CHECK_TIMEOUT.as_secs()
            )),
        };
        watch.problem(ProblemKey::Store, problem);
        tokio::time::sleep(STORE_CHECK_EVERY).await;
    }
}

/// The pipeline around a source that `make` builds (on the driver's thread) from the recovery
/// handle: writer, recovery and driver. Tests drive it with an in-memory store and a fake.
/// `downstream` (`sink.hive`, `partition.completion`) is told the directories each commit
/// published into.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drive<F>(
    plan: Arc<Plan>,
    opts: RunOptions,
    shutdown: Shutdown,
    store: Arc<dyn FileStore>,
    table_root: String,
    watch: Arc<PipelineWatch>,
    downstream: writer::Downstream,
    make: F,
) -> Result<RunSummary, PipelineError>
where
    F: FnOnce(Recovery, tokio::runtime::Handle) -> Result<Box<dyn Source>, SourceError> + Send + 'static,
{
    let name = plan.cfg.name.clone();
    let handle = tokio::runtime::Handle::current();
    let run_id = crate::commit::new_run_id();
    let completer_seat = downstream.completion.clone().map(|completion| driver::CompleterSeat {
        first: crate::completion::Completion::first_stream(&plan.cfg.source),
        completion,
    });
    let (tx, feedback, writer_task) =
        writer::spawn(&plan, store.clone(), &table_root, &run_id, &shutdown, &handle, watch.clone(), downstream);
    let store_watch = handle.spawn(watch_store(store.clone(), table_root.clone(), watch.clone()));
    let recovery: Recovery = Arc::new(recovery::StoreRecovery {
        store,
        table_root,
        run_id,
        config: plan.commit.clone(),
        handle: handle.clone(),
        shutdown: shutdown.clone(),
    });
    let parts = driver::DriverParts {
        completer_seat,
        pipeline: name.clone(),
        router: route::Router::new(&plan),
        policy: plan.policy,
        limits: plan.limits,
        opts,
        shutdown,
        handle: handle.clone(),
        tx,
        feedback,
        watch: watch.clone(),
    };
    let driven = tokio::task::spawn_blocking(move || {
        let source = make(recovery, handle).map_err(|e| e.to_string())?;
        watch.set_state(PipelineState::Running);
        driver::Driver::new(source, parts).run()
    })
    .await;
    store_watch.abort();
    // The driver is gone, so is the writer's channel: the writer finishes its commits.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer_task).await;
    let fatal = |message: String| PipelineError::Fatal { pipeline: name.clone(), message };
    driven.map_err(|e| fatal(format!("consumer thread panicked: {e}")))?.map_err(fatal)
}
