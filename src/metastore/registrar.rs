//! Registration at run time (`sink.hive`): the table on start, then each Hive partition the
//! first time a commit publishes into it, always off the commit path.
//!
//! - **On start** ([`start`]): one attempt to ensure the database and table, bounded by
//!   [`START_TIMEOUT`]; a table that lacks only nullable columns the pipeline appends gains
//!   them (logged once, with the columns). A table that differs otherwise, a refused name or a
//!   wrong URI is the user's to fix: the pipeline does not start (the daemon retries it with
//!   its restart backoff, and the other pipelines go on). A metastore that is down or hung is not:
//!   landing starts, and the table is ensured in the background.
//! - **After each commit** the committer hands the published directories to [`Registrar::published`]:
//!   a set insert under a mutex, never a metastore call. The registration task adds each new
//!   directory with an idempotent `add_partitions_req(ifNotExists)`. The queue is a set of
//!   directories, so it is bounded by the number of distinct partitions, however long the
//!   metastore is away, and a commit never waits for room in it.
//! - **Faults**: any failure is retried with capped backoff ([`BACKOFF`], 1 s doubling to 60 s;
//!   a table found incompatible in the background is asked again every 5 minutes, as an
//!   operator may alter it). An outage logs one `warn` when it starts (and when its cause
//!   changes) and one `info` when registration works again, opens the `metastore` problem on
//!   `/ready` and counts `landfall_errors_total{kind="metastore"}` once.
//!
//! - **At start**, once the table is there, the task lists the table's partition directories
//!   once and queues those the metastore does not list (`get_partition_names`): a
//!   registration still pending when the last run ended (killed, or stopped while the
//!   metastore was away) is made now, whether or not a commit lands in that partition again.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::hms::{Table, TableSpec};
use super::{Added, MetastoreClient, MetastoreError};
use crate::config::HiveConfig;
use crate::observe::{PipelineWatch, ProblemKey};
use crate::retry::{cause_key, first_line, Backoff};
use crate::sink::FileStore;

/// Bound on each metastore call. A metastore call reads its backing database and, for a
/// partition, stats HDFS: seconds when healthy.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the start-up attempt may hold back the pipeline's start.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Retries of a failing metastore: 1 s doubling to 60 s (jittered), for as long as it fails.
pub const BACKOFF: Backoff =
    Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(60), give_up_after: None };

/// How many times the start-up comparison of directories and partitions is tried.
const RECONCILE_TRIES: u32 = 5;

/// How often a table found incompatible in the background is checked again.
const INCOMPATIBLE_RECHECK: Duration = Duration::from_secs(300);

/// The directories waiting for registration, shared by the committers (who add) and the
/// registration task (who removes).
pub struct Registrar {
    queue: Mutex<Queue>,
    wake: Notify,
    closed: watch::Sender<bool>,
}

#[derive(Default)]
struct Queue {
    /// Every directory handed over in this run: a directory is queued once.
    seen: HashSet<String>,
    /// Handed over, not registered yet.
    pending: BTreeSet<String>,
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar { queue: Mutex::default(), wake: Notify::new(), closed: watch::channel(false).0 }
    }
}

impl Registrar {
    /// Files were published into `dirs` (relative to the table root; quarantine directories
    /// are skipped). Queues the directories not seen before and wakes the registration task.
    /// Cheap and never waits on the metastore: called on the commit path.
    pub fn published<'a>(&self, dirs: impl IntoIterator<Item = &'a str>) {
        let mut queue = self.queue.lock().expect("registrar lock");
        let mut added = false;
        for dir in dirs {
            if crate::quarantine::is_rejected_dir(dir) || queue.seen.contains(dir) {
                continue;
            }
            queue.seen.insert(dir.to_string());
            queue.pending.insert(dir.to_string());
            added = true;
        }
        drop(queue);
        if added {
            self.wake.notify_one();
        }
    }

    /// Directories waiting for registration.
    pub fn pending(&self) -> Vec<String> {
        self.queue.lock().expect("registrar lock").pending.iter().cloned().collect()
    }

    fn done(&self, dir: &str) {
        self.queue.lock().expect("registrar lock").pending.remove(dir);
    }

    /// Asks the registration task to register what is pending once more and stop.
    pub fn close(&self) {
        self.closed.send_replace(true);
        self.wake.notify_one();
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Sleeps `delay`, or less if [`Registrar::close`] is called; true if closed.
    async fn pause(&self, delay: Duration) -> bool {
        let mut closed = self.closed.subscribe();
        if *closed.borrow() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = closed.wait_for(|c| *c) => true,
        }
    }
}

/// One pipeline's registration: the client, the table it wants, and where it reports.
pub struct Registration {
    pub client: MetastoreClient,
    pub spec: TableSpec,
    /// Partition keys, in path order.
    pub keys: Vec<String>,
    pub pipeline: String,
    pub watch: Arc<PipelineWatch>,
    /// The table's store and root: its partition directories are compared with the
    /// metastore's partitions once at start. `None` in tests that have no table.
    pub table_dir: Option<(Arc<dyn FileStore>, String)>,
    /// The cause of the start-up attempt's failure, already logged and reported.
    start_failure: Option<String>,
}

/// Builds the registration and makes the start-up attempt ([`START_TIMEOUT`]). `Ok` with the
/// table when it is ready, `Ok` without it when the metastore could not be reached (the task
/// retries), `Err` with the message when a person must act (the pipeline does not start).
pub async fn start(
    hive: &HiveConfig,
    pipeline: &str,
    spec: TableSpec,
    keys: Vec<String>,
    watch: Arc<PipelineWatch>,
    table_dir: (Arc<dyn FileStore>, String),
) -> Result<(Registration, Option<Table>), String> {
    let client = MetastoreClient::new(&hive.metastore, CALL_TIMEOUT).map_err(|e| e.to_string())?;
    let mut registration = Registration {
        client,
        spec,
        keys,
        pipeline: pipeline.to_string(),
        watch,
        table_dir: Some(table_dir),
        start_failure: None,
    };
    let attempt = tokio::time::timeout(START_TIMEOUT, registration.ensure()).await;
    match attempt {
        Ok(Ok(table)) => Ok((registration, Some(table))),
        Ok(Err(e)) if !e.is_transient() => Err(e.to_string()),
        Ok(Err(e)) => {
            registration.outage_started(&e.to_string());
            registration.start_failure = Some(cause_key(&e.to_string()));
            Ok((registration, None))
        }
        Err(_) => {
            let text = format!(
                "Hive Metastore at {}: no answer within {} s at start; the metastore is hung or overloaded",
                registration.client.addr(),
                START_TIMEOUT.as_secs()
            );
            registration.outage_started(&text);
            registration.start_failure = Some(cause_key(&text));
            Ok((registration, None))
        }
    }
}

impl Registration {
    /// The database, then the table (created or checked).
    async fn ensure(&self) -> Result<Table, MetastoreError> {
        self.client.ensure_database(&self.spec.database, None).await?;
        let ensured = self.client.ensure_table(&self.spec).await?;
        let table = format!("{}.{}", self.spec.database, self.spec.name);
        match &ensured {
            super::Ensured::Evolved { added, .. } => {
                let added: Vec<String> = added.iter().map(|c| format!("{} {}", c.name, c.hive_type)).collect();
                tracing::info!(
                    pipeline = %self.pipeline,
                    table = %table,
                    location = %self.spec.location,
                    added = %added.join(", "),
                    "Hive Metastore table evolved: nullable columns appended (to its partitions too)"
                );
            }
            ensured => {
                let verb = if matches!(ensured, super::Ensured::Created(_)) { "created" } else { "found" };
                tracing::info!(pipeline = %self.pipeline, table = %table, location = %self.spec.location, "Hive Metastore table {verb}");
            }
        }
        Ok(ensured.table().clone())
    }

    /// The first failure of an outage, or one with another cause: one `warn`, the `/ready`
    /// problem (counted once per cause by the watch).
    fn outage_started(&self, text: &str) {
        self.watch.problem(ProblemKey::Metastore, Some(format!("metastore: {text}")));
        tracing::warn!(
            pipeline = %self.pipeline,
            error = first_line(text),
            "Hive Metastore registration failing; landing goes on, partitions are registered when it answers again"
        );
        tracing::debug!(pipeline = %self.pipeline, error = %text, "Hive Metastore registration failing (whole error)");
    }

    /// Runs until `registrar` is closed: ensures the table if `table` is `None`, then adds the
    /// partitions handed over. Spawn it; on close it makes one last pass over what is pending.
    pub async fn run(self, registrar: Arc<Registrar>, table: Option<Table>) {
        // A failed start-up attempt is the outage's first failure, logged already.
        let mut outage = Outage { failures: u32::from(table.is_none()), cause: self.start_failure.clone() };
        let table = match table {
            Some(t) => t,
            None => match self.ensure_until_ready(&registrar, &mut outage).await {
                Some(t) => t,
                None => return,
            },
        };
        let location = self.spec.location.trim_end_matches('/').to_string();
        let mut unreconciled = self.table_dir.is_some();
        let mut reconcile_failures = 0u32;
        loop {
            let closing = registrar.is_closed();
            let mut failed = false;
            if unreconciled {
                // Never holds back what this run publishes: its failure only delays itself.
                match self.queue_unregistered(&table, &registrar).await {
                    Ok(()) => unreconciled = false,
                    Err(e) => {
                        reconcile_failures += 1;
                        let cause = e.map_or_else(|| "the table's store did not answer".to_string(), |e| e.to_string());
                        if reconcile_failures >= RECONCILE_TRIES {
                            tracing::warn!(
                                pipeline = %self.pipeline, error = first_line(&cause), tries = reconcile_failures,
                                "could not compare the table's partition directories with the metastore; partitions pending when the last run ended may need MSCK REPAIR TABLE"
                            );
                            unreconciled = false;
                        } else {
                            tracing::debug!(pipeline = %self.pipeline, error = %cause, "comparing partition directories with the metastore failed; trying again");
                        }
                    }
                }
            }
            for dir in registrar.pending() {
                let Some(values) = crate::partition::hive_values(&dir, &self.keys) else {
                    // Validation makes every table directory `key=…/…` with these keys.
                    tracing::warn!(pipeline = %self.pipeline, dir = %dir, keys = ?self.keys, "published directory is not a partition of the table; not registered");
                    registrar.done(&dir);
                    continue;
                };
                match self.client.add_partition(&table, &values, &format!("{location}/{dir}")).await {
                    Ok(added) => {
                        if added == Added::New {
                            self.watch.metrics.hive_partitions_added.inc();
                            tracing::debug!(pipeline = %self.pipeline, partition = %dir, "Hive partition added");
                        }
                        registrar.done(&dir);
                        self.recovered(&mut outage);
                    }
                    Err(e) => {
                        self.failed(&mut outage, &e.to_string());
                        failed = true;
                        break;
                    }
                }
            }
            if closing {
                if failed || !registrar.pending().is_empty() {
                    tracing::warn!(
                        pipeline = %self.pipeline,
                        pending = registrar.pending().len(),
                        "stopping with Hive partitions not registered; they are added when a commit lands in them again (or by MSCK REPAIR TABLE)"
                    );
                }
                return;
            }
            if failed {
                if registrar.pause(BACKOFF.delay(outage.failures)).await {
                    continue; // one last pass, then stop
                }
            } else {
                tokio::select! {
                    _ = registrar.wake.notified() => {}
                    _ = async { let mut c = registrar.closed.subscribe(); let _ = c.wait_for(|c| *c).await; } => {}
                    _ = tokio::time::sleep(BACKOFF.delay(reconcile_failures)), if unreconciled => {}
                }
            }
        }
    }

    /// Queues the table's partition directories the metastore does not list. `Err(Some)`: the
    /// metastore failed; `Err(None)`: the store did not answer (its own watch reports that).
    async fn queue_unregistered(&self, table: &Table, registrar: &Registrar) -> Result<(), Option<MetastoreError>> {
        let Some((store, root)) = &self.table_dir else { return Ok(()) };
        let dirs = match crate::sink::partition_dirs(store.as_ref(), root.trim_end_matches('/'), self.keys.len()).await
        {
            Ok(dirs) => dirs,
            Err(e) => {
                tracing::debug!(pipeline = %self.pipeline, error = %e, "cannot list the table's partition directories; trying again later");
                return Err(None);
            }
        };
        let known: HashSet<String> =
            self.client.get_partition_names(&table.database, &table.name).await.map_err(Some)?.into_iter().collect();
        let missing: Vec<&str> = dirs
            .iter()
            .map(String::as_str)
            .filter(|d| !known.contains(*d) && crate::partition::hive_values(d, &self.keys).is_some())
            .collect();
        if !missing.is_empty() {
            tracing::info!(
                pipeline = %self.pipeline, count = missing.len(), first = missing[0],
                "Hive partitions found unregistered at start (pending when the last run ended); registering them"
            );
            registrar.published(missing);
        }
        Ok(())
    }

    /// Ensures the table, retrying; `None` if closed first.
    async fn ensure_until_ready(&self, registrar: &Registrar, outage: &mut Outage) -> Option<Table> {
        loop {
            let delay = match self.ensure().await {
                Ok(table) => {
                    self.recovered(outage);
                    return Some(table);
                }
                Err(e) if e.is_transient() => {
                    self.failed(outage, &e.to_string());
                    BACKOFF.delay(outage.failures)
                }
                Err(e) => {
                    // Found incompatible (or refused) after a start that could not ask: landing
                    // goes on, `/ready` names the differences, and the table is asked again
                    // (an operator may alter it; the next start refuses the pipeline).
                    self.failed(outage, &e.to_string());
                    INCOMPATIBLE_RECHECK
                }
            };
            if registrar.pause(delay).await {
                return None;
            }
        }
    }

    fn failed(&self, outage: &mut Outage, text: &str) {
        outage.failures += 1;
        let key = cause_key(text);
        if outage.cause.as_deref() != Some(key.as_str()) {
            if outage.cause.is_none() {
                self.outage_started(text);
            } else {
                self.watch.problem(ProblemKey::Metastore, Some(format!("metastore: {text}")));
                tracing::warn!(pipeline = %self.pipeline, error = first_line(text), "Hive Metastore registration still failing, for another reason");
            }
            outage.cause = Some(key);
        }
    }

    fn recovered(&self, outage: &mut Outage) {
        if outage.cause.take().is_some() {
            self.watch.problem(ProblemKey::Metastore, None);
            tracing::info!(
                pipeline = %self.pipeline,
                failures = outage.failures,
                "Hive Metastore registration works again"
            );
        }
        outage.failures = 0;
    }
}

/// The state of a metastore outage: failures in a row and the cause last logged.
#[derive(Default)]
struct Outage {
    failures: u32,
    cause: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_queued_once_and_quarantine_never() {
        let r = Registrar::default();
        r.published(["dt=2026-12-07/hour=17", "_rejected/dt=2026-12-07", "dt=2026-12-07/hour=18"]);
        r.published(["dt=2026-12-07/hour=17"]);
        assert_eq!(r.pending(), ["dt=2026-12-07/hour=17", "dt=2026-12-07/hour=18"]);
        r.done("dt=2026-12-07/hour=17");
        r.published(["dt=2026-12-07/hour=17"]);
        assert_eq!(r.pending(), ["dt=2026-12-07/hour=18"], "registered once per run");
    }

    #[tokio::test]
    async fn an_unreachable_metastore_keeps_partitions_pending_and_makes_the_pipeline_unready() {
        use crate::observe::status::PipelineState;
        let observer = crate::observe::Observer::new();
        let watch = observer.pipeline("clicks", "Kafka", "hdfs://nn/t", Duration::from_secs(120));
        watch.set_state(PipelineState::Running);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // closed again
        let client = MetastoreClient::new(&format!("thrift://127.0.0.1:{port}"), Duration::from_secs(1)).unwrap();
        let spec = TableSpec {
            database: "landing".into(),
            name: "clicks".into(),
            location: "hdfs://nn/t".into(),
            columns: vec![super::super::Column::new("id", "string")],
            partition_keys: vec![super::super::Column::new("dt", "string")],
            parameters: Default::default(),
            required: Default::default(),
        };
        let table = Table::from_thrift(spec.create_struct(0));
        let keys = vec!["dt".to_string()];
        let registration = Registration {
            client,
            spec,
            keys,
            pipeline: "clicks".into(),
            watch: watch.clone(),
            table_dir: None,
            start_failure: None,
        };
        let registrar = Arc::new(Registrar::default());
        registrar.published(["dt=2026-12-07"]);
        let task = tokio::spawn(registration.run(registrar.clone(), Some(table)));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while observer.status().pipelines[0].problems.is_empty() {
            assert!(std::time::Instant::now() < deadline, "no metastore problem opened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = observer.status();
        assert!(!status.ready);
        assert!(
            status.pipelines[0].problems[0].starts_with("metastore: cannot reach"),
            "{:?}",
            status.pipelines[0].problems
        );
        assert!(observer.alive(Duration::from_secs(60)).is_ok());
        registrar.published(["dt=2026-12-08"]); // a commit goes on meanwhile, and does not wait
        registrar.close();
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("stops when closed").unwrap();
        assert_eq!(registrar.pending(), ["dt=2026-12-07", "dt=2026-12-08"], "nothing is dropped");
        assert_eq!(watch.metrics.hive_partitions_added.get(), 0);
    }

    #[tokio::test]
    async fn close_ends_a_pause_at_once() {
        let r = Arc::new(Registrar::default());
        let waiting = {
            let r = r.clone();
            tokio::spawn(async move { r.pause(Duration::from_secs(600)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        r.close();
        let closed = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woke").unwrap();
        assert!(closed);
        assert!(r.pause(Duration::from_secs(600)).await, "closed stays closed");
    }
}
