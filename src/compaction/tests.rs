//! Compaction rounds on MemStore with a metastore of one map: every step, its re-drive after a
//! crash, late files after a switch, two builds of one plan, and a location put back by
//! another writer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::plan::data_files;
use super::records::{self, record};
use super::round::{Catalog, CatalogPartition, CompactionSettings, Compactor, Outcome, HIVE_GENERATION};
use crate::parquet::{writer_properties, StagedParquetFile};
use crate::sink::memory::MemStore;
use crate::sink::FileStore;

const ROOT: &str = "/t";
const LOCATION: &str = "hdfs://nn:9000/t";
const P: &str = "dt=2026-11-25/hour=17";
const GRACE: Duration = Duration::from_secs(3600);

/// A partition's location and parameters.
type Stored = (String, HashMap<String, String>);

#[derive(Default)]
struct Metastore {
    partitions: Mutex<HashMap<Vec<String>, Stored>>,
    switches: Mutex<u32>,
}

impl Metastore {
    fn add(&self, values: &[&str], location: &str, complete: bool) {
        let mut parameters = HashMap::new();
        if complete {
            parameters.insert("landfall.complete".to_string(), "true".to_string());
        }
        let values = values.iter().map(|v| v.to_string()).collect();
        self.partitions.lock().unwrap().insert(values, (location.to_string(), parameters));
    }

    fn location(&self) -> String {
        self.partitions.lock().unwrap()[&values()].0.clone()
    }

    fn set_location(&self, location: &str) {
        self.partitions.lock().unwrap().get_mut(&values()).unwrap().0 = location.to_string();
    }
}

#[async_trait]
impl Catalog for Metastore {
    async fn partition(&self, values: &[String]) -> Result<Option<CatalogPartition>, String> {
        Ok(self.partitions.lock().unwrap().get(values).map(|(location, parameters)| CatalogPartition {
            location: location.clone(),
            complete: parameters.contains_key("landfall.complete"),
        }))
    }

    async fn switch(&self, values: &[String], location: &str, parameters: &[(String, String)]) -> Result<(), String> {
        *self.switches.lock().unwrap() += 1;
        let mut partitions = self.partitions.lock().unwrap();
        let (at, params) = partitions.get_mut(values).ok_or("no such partition")?;
        *at = location.to_string();
        params.extend(parameters.iter().cloned());
        Ok(())
    }
}

fn values() -> Vec<String> {
    vec!["2026-11-25".to_string(), "17".to_string()]
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false), Field::new("n", DataType::Int64, true)]))
}

fn props() -> parquet::file::properties::WriterProperties {
    writer_properties(parquet::basic::Compression::UNCOMPRESSED, 1000, Vec::new()).unwrap()
}

struct Lab {
    store: Arc<MemStore>,
    metastore: Arc<Metastore>,
}

impl Lab {
    /// A complete partition `P` holding `files` files of 10 rows each.
    async fn new(files: i64) -> Lab {
        let lab = Lab { store: Arc::new(MemStore::new()), metastore: Arc::new(Metastore::default()) };
        for k in 0..files {
            lab.small_file(&format!("part-{k:03}.parquet"), k * 10).await;
        }
        crate::completion::records::create_empty(lab.store.as_ref(), &format!("{ROOT}/{P}/_SUCCESS")).await.unwrap();
        lab.metastore.add(&["2026-11-25", "17"], &format!("{LOCATION}/{P}"), true);
        lab
    }

    async fn small_file(&self, name: &str, first: i64) {
        let path = format!("{ROOT}/{P}/{name}");
        let ids: Vec<String> = (first..first + 10).map(|i| format!("evt-{i:06}")).collect();
        let columns: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(ids)), Arc::new(Int64Array::from_iter_values(first..first + 10))];
        let batch = RecordBatch::try_new(schema(), columns).unwrap();
        let mut file =
            StagedParquetFile::new(&path, self.store.create(&path).await.unwrap(), schema(), props()).unwrap();
        file.write(&batch).await.unwrap();
        file.finish(Vec::new()).await.unwrap();
    }

    fn compactor(&self, run: &str) -> Compactor {
        Compactor {
            pipeline: "clicks".into(),
            store: self.store.clone(),
            root: ROOT.into(),
            location: LOCATION.into(),
            keys: vec!["dt".into(), "hour".into()],
            catalog: self.metastore.clone(),
            settings: CompactionSettings {
                min_files: 10,
                target_bytes: 128 << 20,
                grace: GRACE,
                marker: "_SUCCESS".into(),
            },
            schema: schema(),
            props: props(),
            run: run.into(),
            deferred: Default::default(),
        }
    }

    /// The rows a metastore reader reads: the files at the partition's location, sorted.
    async fn rows_read_by_name(&self) -> Vec<i64> {
        let location = self.metastore.location();
        let dir = location.strip_prefix("hdfs://nn:9000").unwrap();
        let mut rows = Vec::new();
        for file in data_files(&self.store.list(dir).await.unwrap()) {
            let bytes = self.store.read(&file.path).await.unwrap();
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap() {
                let batch = batch.unwrap();
                let n = batch.column_by_name("n").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
                rows.extend(n.values().iter().copied());
            }
        }
        rows.sort();
        rows
    }

    async fn template_files(&self) -> usize {
        data_files(&self.store.list(&format!("{ROOT}/{P}")).await.unwrap()).len()
    }

    /// Store time of generation `n`'s `.switched`.
    async fn switched_ms(&self, n: u32) -> u64 {
        records::read(self.store.as_ref(), ROOT, P).await.unwrap().generations[&n].switched_ms.unwrap()
    }
}

fn ids(range: std::ops::Range<i64>) -> Vec<i64> {
    range.collect()
}

#[tokio::test]
async fn a_complete_partition_is_switched_to_one_file_and_its_small_files_go_after_the_grace() {
    let lab = Lab::new(12).await;
    let c = lab.compactor("run-a");
    assert_eq!(lab.rows_read_by_name().await, ids(0..120));

    let outcome = c.partition(P, 0).await.unwrap();
    assert!(
        matches!(outcome, Outcome::Switched { generation: 1, inputs: 12, outputs: 1, input_bytes, output_bytes }
            if input_bytes > output_bytes && output_bytes > 0),
        "12 files into 1, fewer bytes (one footer, one dictionary): {outcome:?}"
    );
    let location = lab.metastore.location();
    assert!(location.starts_with(&format!("{LOCATION}/_landfall/generations/{P}/g000001-run-a")), "{location}");
    assert_eq!(lab.rows_read_by_name().await, ids(0..120), "the new generation holds every row once");
    let dir = location.strip_prefix("hdfs://nn:9000").unwrap().to_string();
    assert!(lab.store.stat(&format!("{dir}/_SUCCESS")).await.unwrap().is_some(), "the marker is in the generation");
    assert_eq!(lab.metastore.partitions.lock().unwrap()[&values()].1[HIVE_GENERATION], "1");

    let switched = lab.switched_ms(1).await;
    let almost = switched + GRACE.as_millis() as u64 - 1;
    assert_eq!(c.partition(P, almost).await.unwrap(), Outcome::Waiting { generation: 1 });
    assert_eq!(lab.template_files().await, 12, "readers that listed before the switch still find them");
    let after = switched + GRACE.as_millis() as u64;
    assert_eq!(c.partition(P, after).await.unwrap(), Outcome::Cleaned { generation: 1 });
    assert_eq!(lab.template_files().await, 0);
    assert!(
        lab.store.stat(&format!("{ROOT}/{P}/_SUCCESS")).await.unwrap().is_some(),
        "the marker stays for path sensors"
    );
    assert_eq!(lab.rows_read_by_name().await, ids(0..120));
    assert_eq!(c.partition(P, after).await.unwrap(), Outcome::Idle, "nothing more to do");
}

#[tokio::test]
async fn partitions_with_few_files_are_left_alone_and_incomplete_ones_wait() {
    let lab = Lab::new(9).await;
    assert_eq!(lab.compactor("r").partition(P, 0).await.unwrap(), Outcome::Idle, "9 files, min_files 10");
    lab.small_file("part-late.parquet", 90).await;
    lab.metastore.add(&["2026-11-25", "17"], &format!("{LOCATION}/{P}"), false);
    assert_eq!(
        lab.compactor("r").partition(P, 0).await.unwrap(),
        Outcome::Pending,
        "not complete in the metastore yet: its completion step lags"
    );
    super::todo::add(lab.store.as_ref(), ROOT, P).await.unwrap();
    assert_eq!(lab.compactor("r").round(0).await.0, [(P.to_string(), Outcome::Pending)]);
    let listed = super::todo::list(lab.store.as_ref(), ROOT).await.unwrap();
    assert_eq!(listed.keys().collect::<Vec<_>>(), [P], "kept on the list");
    assert_eq!(lab.compactor("r").partition("not/a=partition", 0).await.unwrap(), Outcome::Idle);
    assert_eq!(*lab.metastore.switches.lock().unwrap(), 0);
}

#[tokio::test]
async fn late_files_after_a_switch_make_the_next_generation_which_deletes_the_previous_one() {
    let lab = Lab::new(10).await;
    let c = lab.compactor("r");
    assert!(matches!(c.partition(P, 0).await.unwrap(), Outcome::Switched { generation: 1, .. }));
    let g1 = lab.metastore.location().strip_prefix("hdfs://nn:9000").unwrap().to_string();
    lab.small_file("part-late.parquet", 100).await;
    assert_eq!(lab.rows_read_by_name().await, ids(0..100), "late rows are not under the location yet");

    let outcome = c.partition(P, 0).await.unwrap();
    assert!(
        matches!(outcome, Outcome::Switched { generation: 2, inputs: 2, outputs: 1, .. }),
        "the late file and generation 1's: {outcome:?}"
    );
    assert_eq!(lab.rows_read_by_name().await, ids(0..110));

    let after = lab.switched_ms(2).await + GRACE.as_millis() as u64;
    assert_eq!(c.partition(P, after).await.unwrap(), Outcome::Cleaned { generation: 1 });
    assert_eq!(lab.template_files().await, 1, "generation 1 deleted its own inputs, not the late file");
    assert!(lab.store.stat(&g1).await.unwrap().is_some(), "generation 1 is generation 2's to delete");
    assert_eq!(c.partition(P, after).await.unwrap(), Outcome::Cleaned { generation: 2 });
    assert_eq!(lab.template_files().await, 0);
    assert!(lab.store.stat(&g1).await.unwrap().is_none());
    assert_eq!(lab.rows_read_by_name().await, ids(0..110));
}

#[tokio::test]
async fn a_round_finishes_what_a_crash_left_at_each_record() {
    // Planned, not built: the next round builds and switches.
    let lab = Lab::new(10).await;
    let listing = lab.store.list(&format!("{ROOT}/{P}")).await.unwrap();
    let plan = super::plan::next(&listing, None, 10).unwrap();
    records::decide(lab.store.as_ref(), ROOT, P, &plan, "dead").await.unwrap();
    assert!(matches!(lab.compactor("r").partition(P, 0).await.unwrap(), Outcome::Switched { generation: 1, .. }));
    assert_eq!(lab.rows_read_by_name().await, ids(0..100));

    // Switched in the metastore, the record missing: only the record is written.
    lab.store.delete(&record(ROOT, P, 1, "switched")).await.unwrap();
    let switches = *lab.metastore.switches.lock().unwrap();
    assert!(matches!(lab.compactor("r2").partition(P, 0).await.unwrap(), Outcome::Switched { generation: 1, .. }));
    assert_eq!(*lab.metastore.switches.lock().unwrap(), switches, "no second alter_partition");

    // Built and recorded, the metastore not switched yet: switched.
    let lab = Lab::new(10).await;
    let c = lab.compactor("r");
    c.partition(P, 0).await.unwrap();
    let built = lab.metastore.location();
    lab.metastore.set_location(&format!("{LOCATION}/{P}"));
    lab.store.delete(&record(ROOT, P, 1, "switched")).await.unwrap();
    assert!(matches!(c.partition(P, 0).await.unwrap(), Outcome::Switched { generation: 1, .. }));
    assert_eq!(lab.metastore.location(), built);
}

#[tokio::test]
async fn of_two_builds_of_one_plan_the_first_recorded_is_used_and_the_other_deleted_at_cleanup() {
    let lab = Lab::new(10).await;
    let listing = lab.store.list(&format!("{ROOT}/{P}")).await.unwrap();
    let plan = super::plan::next(&listing, None, 10).unwrap();
    records::decide(lab.store.as_ref(), ROOT, P, &plan, "a").await.unwrap();
    // A zombie's build directory, never recorded (it froze before `.built`).
    let zombie = records::build_dir(ROOT, P, 1, "zombie");
    lab.store.mkdirs(&zombie).await.unwrap();
    crate::completion::records::create_empty(lab.store.as_ref(), &format!("{zombie}/part-x.parquet")).await.unwrap();

    let c = lab.compactor("live");
    assert!(matches!(c.partition(P, 0).await.unwrap(), Outcome::Switched { generation: 1, .. }));
    assert!(lab.metastore.location().ends_with("g000001-live"));
    let after = lab.switched_ms(1).await + GRACE.as_millis() as u64;
    assert_eq!(c.partition(P, after).await.unwrap(), Outcome::Cleaned { generation: 1 });
    assert!(lab.store.stat(&zombie).await.unwrap().is_none(), "the unrecorded build is deleted");
    assert_eq!(lab.rows_read_by_name().await, ids(0..100));
}

#[tokio::test]
async fn a_location_put_back_by_another_writer_is_switched_again_and_nothing_is_deleted() {
    let lab = Lab::new(10).await;
    let c = lab.compactor("r");
    c.partition(P, 0).await.unwrap();
    let built = lab.metastore.location();
    // A late-row marking read the partition before the switch and wrote it back after.
    lab.metastore.set_location(&format!("{LOCATION}/{P}"));
    let after = lab.switched_ms(1).await + GRACE.as_millis() as u64;
    assert!(matches!(c.partition(P, after).await.unwrap(), Outcome::Switched { generation: 1, .. }));
    assert_eq!(lab.metastore.location(), built);
    assert_eq!(lab.template_files().await, 10, "nothing deleted: a reader may have planned on the old location");
    let restarted = lab.switched_ms(1).await;
    assert_eq!(c.partition(P, restarted).await.unwrap(), Outcome::Waiting { generation: 1 }, "a new grace");
}

#[tokio::test]
async fn a_round_visits_the_partitions_on_its_list_and_keeps_those_with_a_step_waiting() {
    let lab = Lab::new(10).await;
    let c = lab.compactor("r");
    assert_eq!(c.round(0).await.0, [], "nothing on the list, nothing done");
    super::todo::add(lab.store.as_ref(), ROOT, P).await.unwrap();
    let visited = c.round(0).await.0;
    assert!(matches!(visited[..], [(ref p, Outcome::Switched { generation: 1, .. })] if p == P), "{visited:?}");
    assert_eq!(c.round(0).await.0, [(P.to_string(), Outcome::Waiting { generation: 1 })], "kept for its grace");
    let after = lab.switched_ms(1).await + GRACE.as_millis() as u64;
    assert_eq!(c.round(after).await.0, [(P.to_string(), Outcome::Cleaned { generation: 1 })]);
    assert_eq!(c.round(after).await.0, [(P.to_string(), Outcome::Idle)]);
    assert_eq!(c.round(after).await.0, [], "an idle partition leaves the list");
    lab.small_file("part-late.parquet", 100).await;
    super::todo::add(lab.store.as_ref(), ROOT, P).await.unwrap();
    assert!(matches!(c.round(after).await.0[..], [(_, Outcome::Switched { generation: 2, .. })]));
    assert_eq!(lab.rows_read_by_name().await, ids(0..110));
}

/// The lab test saw this fail: a round that took a partition's todo file and crashed after
/// planning left the plan with nothing listing the partition, and it was never compacted.
#[tokio::test]
async fn a_partition_taken_by_a_round_that_crashed_is_finished_by_the_next_round() {
    let lab = Lab::new(10).await;
    let store = lab.store.as_ref();
    super::todo::add(store, ROOT, P).await.unwrap();
    super::todo::take(store, ROOT, P, "dead").await.unwrap();
    let plan = super::plan::next(&store.list(&format!("{ROOT}/{P}")).await.unwrap(), None, 10).unwrap();
    records::decide(store, ROOT, P, &plan, "dead").await.unwrap();

    let visited = lab.compactor("r").round(0).await.0;
    assert!(matches!(visited[..], [(ref p, Outcome::Switched { generation: 1, .. })] if p == P), "{visited:?}");
    assert_eq!(lab.rows_read_by_name().await, ids(0..100));
}

/// One partition whose files cannot be read fails on every round, and the others are still
/// compacted.
#[tokio::test]
async fn a_partition_that_fails_does_not_stop_the_others() {
    let lab = Lab::new(10).await;
    let broken = "dt=2026-11-25/hour=16";
    for k in 0..10 {
        let path = format!("{ROOT}/{broken}/part-{k:03}.parquet");
        let mut w = lab.store.create(&path).await.unwrap();
        w.write(bytes::Bytes::from_static(b"not parquet")).await.unwrap();
        w.close().await.unwrap();
    }
    lab.metastore.add(&["2026-11-25", "16"], &format!("{LOCATION}/{broken}"), true);
    for p in [broken, P] {
        super::todo::add(lab.store.as_ref(), ROOT, p).await.unwrap();
    }
    let c = lab.compactor("r");
    let (visited, failed) = c.round(0).await;
    assert!(
        failed.is_some_and(|e| e.contains(broken) && e.contains("part-000.parquet") && e.contains("tried again in")),
        "the failure names the partition, the file and the next try"
    );
    assert!(matches!(visited[..], [(ref p, Outcome::Switched { generation: 1, .. })] if p == P), "{visited:?}");
    let listed = super::todo::list(lab.store.as_ref(), ROOT).await.unwrap();
    assert!(listed.contains_key(broken), "the failed partition stays listed: {listed:?}");

    // Backoff: not read again on the next rounds, tried again after a minute (30–60 s with
    // jitter), then after 1–2 minutes more.
    let (visited, failed) = c.round(20_000).await;
    assert_eq!((visited.len(), failed), (1, None), "only the compacted partition is visited: {visited:?}");
    assert!(c.round(61_000).await.1.is_some(), "tried again after its first backoff");
    assert!(c.round(100_000).await.1.is_none(), "the second backoff is at least a minute");
    assert!(c.round(182_000).await.1.is_some(), "and at most two");
}
