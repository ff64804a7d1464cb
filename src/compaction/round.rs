//! One compaction round over some partitions of a table: steps 1 to 5 of
//! `docs/design/compaction.md`, each partition resumed where its records say it stopped.
//! A round runs on the completer only, after its completion pass; every step is
//! create-if-absent or idempotent, so a crash anywhere is finished by a later round.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::build::{build, BuildSettings};
use super::plan::{self, Current, Plan};
use super::records::{self, build_dir, builds_parent, record};
use super::todo;
use crate::completion::records::create_empty;
use crate::sink::FileStore;

/// The metastore as compaction uses it: [`crate::metastore::MetastoreClient`] in the daemon,
/// a map in the unit tests.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// The partition with these values: its location and whether completion marked it
    /// (`landfall.complete`); `None` when the metastore has no such partition.
    async fn partition(&self, values: &[String]) -> Result<Option<CatalogPartition>, String>;
    /// Points the partition at `location` and sets `parameters`, keeping everything else.
    async fn switch(&self, values: &[String], location: &str, parameters: &[(String, String)]) -> Result<(), String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPartition {
    /// As the metastore holds it: a URI (`hdfs://host:9000/landing/clicks/dt=…`).
    pub location: String,
    pub complete: bool,
}

/// Partition parameters a switch sets.
pub const HIVE_GENERATION: &str = "landfall.generation";
pub const HIVE_COMPACTED_FILES: &str = "landfall.compacted_files";

/// `sink.hive.compaction`, resolved.
#[derive(Debug, Clone)]
pub struct CompactionSettings {
    pub min_files: usize,
    pub target_bytes: u64,
    pub grace: Duration,
    /// The completion marker, created in each generation before the switch.
    pub marker: String,
}

/// Compaction of one pipeline's table.
pub struct Compactor {
    pub pipeline: String,
    pub store: Arc<dyn FileStore>,
    /// The table's root in the store (`/landing/clicks`).
    pub root: String,
    /// The same root as the metastore names locations (`hdfs://host:9000/landing/clicks`).
    pub location: String,
    /// Partition keys in path order.
    pub keys: Vec<String>,
    pub catalog: Arc<dyn Catalog>,
    pub settings: CompactionSettings,
    /// The pipeline's Arrow schema and Parquet writer settings, for every output file.
    pub schema: arrow::datatypes::SchemaRef,
    pub props: parquet::file::properties::WriterProperties,
    /// This process's run id: names its build directories and temporary records.
    pub run: String,
    /// Partitions whose last visit failed, and when they are tried again.
    pub deferred: Deferred,
}

/// Partitions that failed, retried with backoff (1 minute, doubling to an hour, by store time)
/// rather than every round: a partition that cannot be compacted (an unreadable file, say)
/// would otherwise be read again in full every completion pass, for as long as it stays broken.
#[derive(Debug, Default)]
pub struct Deferred(Mutex<HashMap<String, (u32, u64)>>);

impl Deferred {
    const BACKOFF: crate::retry::Backoff =
        crate::retry::Backoff { initial: Duration::from_secs(60), max: Duration::from_secs(3600), give_up_after: None };

    fn due(&self, partition: &str, now_ms: u64) -> bool {
        self.0.lock().expect("deferred").get(partition).is_none_or(|&(_, not_before)| now_ms >= not_before)
    }

    /// Records a failure; returns the delay until the next try.
    fn failed(&self, partition: &str, now_ms: u64) -> Duration {
        let mut map = self.0.lock().expect("deferred");
        let (failures, not_before) = map.entry(partition.to_string()).or_default();
        *failures += 1;
        let delay = Self::BACKOFF.delay(*failures);
        *not_before = now_ms + delay.as_millis() as u64;
        delay
    }

    /// The partitions waiting out a backoff, for the status.
    pub fn partitions(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.lock().expect("deferred").keys().cloned().collect();
        names.sort();
        names
    }

    fn succeeded(&self, partition: &str) {
        self.0.lock().expect("deferred").remove(partition);
    }
}

/// What a round did to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: too few files, or nothing new since its generation.
    Idle,
    /// Marked complete in the store, not yet in the metastore (its completion step lags, or the
    /// registrar has not added it yet): looked at again next round.
    Pending,
    /// Generation `n` is built and the metastore points at it: it replaced `inputs` data files
    /// of `input_bytes` with `outputs` files of `output_bytes`.
    Switched { generation: u32, inputs: usize, outputs: usize, input_bytes: u64, output_bytes: u64 },
    /// Generation `n`'s inputs are deleted.
    Cleaned { generation: u32 },
    /// Generation `n` waits for its grace before its inputs are deleted.
    Waiting { generation: u32 },
}

impl Compactor {
    /// The metastore's location for a store path under the root.
    fn location_of(&self, path: &str) -> String {
        let relative = path.strip_prefix(self.root.trim_end_matches('/')).unwrap_or(path);
        format!("{}{relative}", self.location.trim_end_matches('/'))
    }

    /// Whether a metastore location names the store path `path`.
    fn names(&self, location: &str, path: &str) -> bool {
        location.trim_end_matches('/') == self.location_of(path).trim_end_matches('/')
    }

    /// One round: every partition with a todo file ([`super::todo`]), each taken before it is
    /// looked at and listed again while it still has a step waiting (its grace, or a
    /// failure). Returns each visited partition's outcome. A partition that fails keeps its
    /// taken file and the round goes on with the others (one unreadable file must not stop
    /// every other partition's compaction); it is left out of the rounds until its backoff
    /// ([`Deferred`]) has passed. The first failure is returned at the end, after the outcomes
    /// of the rest are counted.
    pub async fn round(&self, now_ms: u64) -> (Vec<(String, Outcome)>, Option<String>) {
        let store = self.store.as_ref();
        let mut outcomes = Vec::new();
        let mut failed = None;
        let listed = match todo::list(store, &self.root).await {
            Ok(listed) => listed,
            Err(e) => return (outcomes, Some(e.to_string())),
        };
        for (partition, taken) in listed {
            if !self.deferred.due(&partition, now_ms) {
                continue;
            }
            match self.visit(&partition, taken, now_ms).await {
                Ok(outcome) => {
                    self.deferred.succeeded(&partition);
                    outcomes.push((partition, outcome));
                }
                Err(e) => {
                    let delay = self.deferred.failed(&partition, now_ms);
                    failed.get_or_insert(format!(
                        "compaction of {partition}: {e} (this partition is tried again in {} s)",
                        delay.as_secs()
                    ));
                }
            }
        }
        (outcomes, failed)
    }

    /// One partition of a round: take its todo file, do its next step, list it again if it
    /// has one waiting, then let go of the taken files.
    async fn visit(&self, partition: &str, mut taken: Vec<String>, now_ms: u64) -> Result<Outcome, String> {
        let store = self.store.as_ref();
        taken.push(todo::take(store, &self.root, partition, &self.run).await.map_err(|e| e.to_string())?);
        let outcome = self.partition(partition, now_ms).await?;
        if outcome != Outcome::Idle {
            todo::add(store, &self.root, partition).await.map_err(|e| e.to_string())?;
        }
        todo::done(store, &taken).await.map_err(|e| e.to_string())?;
        Ok(outcome)
    }

    /// One partition (its directory relative to the root, `dt=2026-11-25/hour=17`): finishes
    /// what its records left open, cleans what has waited its grace, then plans, builds and
    /// switches the next generation if it needs one. `now_ms` is store time.
    pub async fn partition(&self, partition: &str, now_ms: u64) -> Result<Outcome, String> {
        let Some(values) = crate::partition::hive_values(partition, &self.keys) else {
            return Ok(Outcome::Idle);
        };
        let store = self.store.as_ref();
        let recs = records::read(store, &self.root, partition).await.map_err(|e| e.to_string())?;
        if let Some((n, steps)) = recs.newest() {
            if !steps.built {
                let plan = records::plan(store, &self.root, partition, n).await?;
                return self.build_and_switch(partition, &values, &plan).await;
            }
            if steps.switched_ms.is_none() {
                let plan = records::plan(store, &self.root, partition, n).await?;
                return self.switch(partition, &values, &plan).await;
            }
        }
        let mut waiting = None;
        for (&n, steps) in &recs.generations {
            let Some(switched_ms) = steps.switched_ms.filter(|_| !steps.cleaned) else { continue };
            if now_ms.saturating_sub(switched_ms) < self.settings.grace.as_millis() as u64 {
                waiting = Some(n);
                continue;
            }
            let newest_switched = recs.switched().expect("this one is switched");
            return self.clean(partition, &values, n, newest_switched).await;
        }

        // Only completion puts a partition on the todo list, so one the metastore does not
        // call complete yet is waiting for completion's metastore step.
        let complete = self.catalog.partition(&values).await?.is_some_and(|p| p.complete);
        if !complete {
            return Ok(waiting.map_or(Outcome::Pending, |generation| Outcome::Waiting { generation }));
        }
        let template = store.list(&format!("{}/{partition}", self.root)).await.map_err(|e| e.to_string())?;
        let next = match recs.switched() {
            None => plan::next(&template, None, self.settings.min_files),
            Some(n) => {
                let current = records::plan(store, &self.root, partition, n).await?;
                let dir = records::built(store, &self.root, partition, n).await.map_err(|e| e.to_string())?;
                let files = store.list(&dir).await.map_err(|e| e.to_string())?;
                plan::next(
                    &template,
                    Some(Current { plan: &current, dir: &dir, files: &files }),
                    self.settings.min_files,
                )
            }
        };
        let Some(next) = next else {
            return Ok(waiting.map_or(Outcome::Idle, |generation| Outcome::Waiting { generation }));
        };
        let plan = records::decide(store, &self.root, partition, &next, &self.run).await?;
        crate::crash::point("compact_planned", "with a compaction planned, before its build");
        self.build_and_switch(partition, &values, &plan).await
    }

    /// Step 3, then step 4: builds the plan in a directory of this run's own and records it,
    /// unless another build was recorded first.
    async fn build_and_switch(&self, partition: &str, values: &[String], plan: &Plan) -> Result<Outcome, String> {
        let store = self.store.as_ref();
        let dir = build_dir(&self.root, partition, plan.generation, &self.run);
        store.delete(&dir).await.map_err(|e| e.to_string())?;
        let settings = BuildSettings {
            schema: self.schema.clone(),
            props: self.props.clone(),
            target_bytes: self.settings.target_bytes,
            prefix: format!("part-{}-c{}", self.pipeline, plan.generation),
        };
        let built = build(store, plan, &dir, &settings).await.map_err(|e| e.to_string())?;
        create_empty(store, &format!("{dir}/{}", self.settings.marker)).await.map_err(|e| e.to_string())?;
        let held = records::record_built(store, &self.root, partition, plan.generation, &dir, &self.run)
            .await
            .map_err(|e| e.to_string())?;
        if held != dir {
            store.delete(&dir).await.map_err(|e| e.to_string())?;
        }
        crate::crash::point("compact_built", "with a generation built and recorded, before the switch");
        tracing::debug!(pipeline = %self.pipeline, partition, generation = plan.generation, files = built.files.len(), rows = built.rows, "compaction: generation built");
        self.switch(partition, values, plan).await
    }

    /// Step 4: points the metastore at the recorded build, then records the switch.
    async fn switch(&self, partition: &str, values: &[String], plan: &Plan) -> Result<Outcome, String> {
        let store = self.store.as_ref();
        let dir = records::built(store, &self.root, partition, plan.generation).await.map_err(|e| e.to_string())?;
        let part = self.catalog.partition(values).await?;
        if !part.as_ref().is_some_and(|p| self.names(&p.location, &dir)) {
            let parameters = [
                (HIVE_GENERATION.to_string(), plan.generation.to_string()),
                (HIVE_COMPACTED_FILES.to_string(), plan.inputs.len().to_string()),
            ];
            self.catalog.switch(values, &self.location_of(&dir), &parameters).await?;
        }
        crate::crash::point("compact_switched", "with the metastore switched, before recording it");
        create_empty(store, &record(&self.root, partition, plan.generation, "switched"))
            .await
            .map_err(|e| e.to_string())?;
        let listing = store.list(&dir).await.map_err(|e| e.to_string())?;
        let outputs = plan::data_files(&listing);
        let outcome = Outcome::Switched {
            generation: plan.generation,
            inputs: plan.inputs.len(),
            outputs: outputs.len(),
            input_bytes: plan.input_bytes(),
            output_bytes: outputs.iter().map(|f| f.len).sum(),
        };
        tracing::info!(
            pipeline = %self.pipeline, partition, generation = plan.generation, inputs = plan.inputs.len(),
            bytes = plan.input_bytes(), "compaction: partition switched to a new generation"
        );
        Ok(outcome)
    }

    /// Step 5 for generation `n`: once the metastore points at none of what it deletes, the
    /// template files it compacted, the previous generation, and its builds nobody recorded.
    async fn clean(&self, partition: &str, values: &[String], n: u32, newest_switched: u32) -> Result<Outcome, String> {
        let store = self.store.as_ref();
        let plan = records::plan(store, &self.root, partition, n).await?;
        let template = format!("{}/{partition}", self.root);
        let part = self.catalog.partition(values).await?;
        let location = part.map(|p| p.location).unwrap_or_default();
        let reverted = self.names(&location, &template)
            || plan.previous.as_deref().is_some_and(|previous| self.names(&location, previous));
        if reverted {
            // Another writer put back a location read before the switch: switch again, and
            // delete nothing until a grace has passed since.
            let newest = records::plan(store, &self.root, partition, newest_switched).await?;
            store
                .delete(&record(&self.root, partition, newest_switched, "switched"))
                .await
                .map_err(|e| e.to_string())?;
            tracing::warn!(pipeline = %self.pipeline, partition, location, "compaction: the metastore points at an older generation again; switching back");
            return self.switch(partition, values, &newest).await;
        }
        crate::crash::point("compact_cleaning", "with a generation's grace over, before deleting its inputs");
        for path in plan.template_inputs() {
            store.delete(path).await.map_err(|e| e.to_string())?;
        }
        if let Some(previous) = &plan.previous {
            store.delete(previous).await.map_err(|e| e.to_string())?;
        }
        let recorded = records::built(store, &self.root, partition, n).await.map_err(|e| e.to_string())?;
        let prefix = format!("g{n:06}-");
        for entry in store.list(&builds_parent(&self.root, partition)).await.map_err(|e| e.to_string())? {
            let name = entry.path.rsplit('/').next().unwrap_or_default();
            if name.starts_with(&prefix) && entry.path != recorded {
                store.delete(&entry.path).await.map_err(|e| e.to_string())?;
            }
        }
        create_empty(store, &record(&self.root, partition, n, "cleaned")).await.map_err(|e| e.to_string())?;
        tracing::info!(pipeline = %self.pipeline, partition, generation = n, "compaction: the compacted files are deleted");
        Ok(Outcome::Cleaned { generation: n })
    }
}
