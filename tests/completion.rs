//! `partition.completion` end to end: events of 14:00–17:29 land from a 2-partition topic into
//! a metastore table; the hours the watermark passed get an empty `_SUCCESS` and
//! `landfall.complete=true`, the last hour neither; late events land in their completed hours,
//! are counted late, leave an existing marker untouched and mark a directory only they created;
//! a crash at each step of a decision (before it, after it, after its markers, midway through
//! the metastore parameters) is finished by the next run; a transactional
//! topic, whose ends sit past commit markers and aborted records, still goes idle; Spark reads
//! every event by table name.

mod common;

use std::time::{Duration, Instant};

use common::*;
use landfall::metastore::MetastoreClient;

const PARTITIONS: i32 = 2;
const N: u64 = 6_000;
/// 2026-11-25T17:00:00Z: with events up to 17:29:57 and 10 minutes of lateness, every hour
/// before 17:00 is complete and 17:00–18:00 is not.
const UNTIL_17: f64 = 1_795_626_000.0;

async fn hdfs() -> hdfs_native::Client {
    hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap()
}

/// (length, modification time) of `path`, `None` if absent.
async fn stat(client: &hdfs_native::Client, path: &str) -> Option<(usize, u64)> {
    match client.get_file_info(path).await {
        Ok(st) => Some((st.length, st.modification_time)),
        Err(hdfs_native::HdfsError::FileNotFound(_)) => None,
        Err(e) => panic!("stat {path}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn completed_hours_get_a_marker_and_a_parameter_and_late_events_still_land() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let _hms = require_hive_metastore();
    let db = unique("lf_done").replace('-', "_");
    let topic = unique("done");
    create_topic(&topic, PARTITIONS).await;
    let msgs: Vec<(i32, Vec<u8>)> =
        (0..N).map(|i| ((i % PARTITIONS as u64) as i32, event(i, N).into_bytes())).collect();
    produce(&topic, msgs).await;
    let table = format!("/landing-test/{topic}");
    let pipeline_name = topic.replace('-', "_");
    // An hour of idle timeout: the events are of a past day, so idleness alone (the store's
    // clock is in the future of every event) would complete all four hours.
    let yaml = PipelineYaml::kafka(&pipeline_name, &topic)
        .roll_max_age("2s")
        .sink_hdfs(&table)
        .sink_hive(HIVE_METASTORE, &db, "clicks")
        .completion("10m", "1h");
    let (_dir, pipeline) = yaml.file();
    let log = std::env::temp_dir().join(format!("{topic}.log"));
    let mut daemon = spawn_daemon(&pipeline, &log);
    let addr = http_addr(&log);
    wait_for_metric(addr, "landfall_completed_until_timestamp_seconds", &pipeline_name, UNTIL_17, &log);

    let client = hdfs().await;
    let hour = |h: u32| format!("{table}/dt=2026-11-25/hour={h}");
    for h in [14, 15, 16] {
        assert_eq!(
            stat(&client, &format!("{}/_SUCCESS", hour(h))).await.map(|s| s.0),
            Some(0),
            "hour {h} marked, empty"
        );
    }
    assert_eq!(stat(&client, &format!("{}/_SUCCESS", hour(17))).await, None, "17:00–18:00 is not complete");
    let hms = MetastoreClient::new(HIVE_METASTORE, Duration::from_secs(60)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for h in [14, 15, 16, 17] {
        let values = vec!["2026-11-25".to_string(), h.to_string()];
        loop {
            let p = hms.get_partition(&db, "clicks", &values).await.unwrap();
            let complete = p.as_ref().and_then(|p| p.parameters.get("landfall.complete").cloned());
            if h == 17 {
                assert_eq!(complete, None, "hour 17 is not complete in the metastore");
                break;
            }
            if complete.as_deref() == Some("true") {
                break;
            }
            assert!(Instant::now() < deadline, "hour {h} not marked complete in the metastore: {p:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    // Late events: 14:30, long after its hour completed, and 13:30, whose directory only a
    // late event creates. Both land and are counted; the next pass marks hour 13 (with its
    // metastore parameter) and leaves hour 14's marker as it was.
    let marker_14 = stat(&client, &format!("{}/_SUCCESS", hour(14))).await;
    let late = [
        br#"{"id":"late-1","ts":"2026-11-25T14:30:00Z"}"#.to_vec(),
        br#"{"id":"late-2","ts":"2026-11-25T13:30:00Z"}"#.to_vec(),
    ];
    produce(&topic, late.into_iter().map(|m| (0, m))).await;
    wait_for_metric(addr, "landfall_events_landed_total", &pipeline_name, (N + 2) as f64, &log);
    wait_for_metric(addr, "landfall_late_events_total", &pipeline_name, 2.0, &log);
    let deadline = Instant::now() + Duration::from_secs(90);
    while stat(&client, &format!("{}/_SUCCESS", hour(13))).await.is_none() {
        assert!(Instant::now() < deadline, "the directory only late rows created gets its marker at the next pass");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(stat(&client, &format!("{}/_SUCCESS", hour(14))).await, marker_14, "the marker is never rewritten");
    let values_13 = vec!["2026-11-25".to_string(), "13".to_string()];
    loop {
        let p = hms.get_partition(&db, "clicks", &values_13).await.unwrap();
        if p.as_ref().and_then(|p| p.parameters.get("landfall.complete")).map(String::as_str) == Some("true") {
            break;
        }
        assert!(Instant::now() < deadline, "hour 13 not marked complete in the metastore: {p:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, text) = http_get(addr, "/metrics");
    assert_eq!(metric(&text, "landfall_partitions_completed_total", &pipeline_name, &[]), Some(4.0), "{text}");
    signal(&daemon, SIGTERM);
    assert!(daemon.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("partitions complete"), "one info line per decision:\n{text}");

    let out = run_spark("metastore_table.py", &[&format!("{db}.clicks"), "late-1", "late-2"]);
    let line = out.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no RESULT:\n{out}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["count"], N + 2, "every event, the late ones too");
    assert_eq!(v["distinct_ids"], N + 2);
    assert_eq!(v["sample"]["late-1"]["hour"], "14");
    assert_eq!(v["sample"]["late-2"]["hour"], "13");
}

/// A backfill (`--until-caught-up`) of 14:00–17:29 killed at completion crash point `point`
/// (`LF_TEST_CRASH_POINT`), with a metastore table when `hive`. Returns the table's path, the
/// pipeline (and the guard of its file) and the database, for the next run.
struct Crashed {
    table: String,
    pipeline: std::path::PathBuf,
    _dir: tempfile::TempDir,
    db: String,
}

async fn crashed_at(point: &str, hive: bool) -> Crashed {
    let topic = unique("done-crash");
    create_topic(&topic, PARTITIONS).await;
    let msgs: Vec<(i32, Vec<u8>)> =
        (0..N).map(|i| ((i % PARTITIONS as u64) as i32, event(i, N).into_bytes())).collect();
    produce(&topic, msgs).await;
    let table = format!("/landing-test/{topic}");
    let db = unique("lf_crash").replace('-', "_");
    let mut yaml = PipelineYaml::kafka(&topic.replace('-', "_"), &topic).sink_hdfs(&table);
    if hive {
        yaml = yaml.sink_hive(HIVE_METASTORE, &db, "clicks");
    }
    let (_dir, pipeline) = yaml.completion("10m", "1h").file();
    let crashing = landfall()
        .arg("run")
        .arg("--until-caught-up")
        .arg(&pipeline)
        .env("LF_TEST_CRASH_POINT", point)
        .output()
        .expect("start landfall");
    let stderr = String::from_utf8_lossy(&crashing.stderr);
    assert!(!crashing.status.success(), "the run aborts at {point}: {stderr}");
    assert!(stderr.contains(&format!("LF_TEST_CRASH_POINT={point}")), "aborted at {point}: {stderr}");
    Crashed { table, pipeline, _dir, db }
}

impl Crashed {
    /// The completion record of the 17:00 frontier for `step` (`decided`, `marked`, `hive`).
    fn record(&self, step: &str) -> String {
        format!("{}/_landfall/completion/{:020}.{step}", self.table, 1_795_626_000_000_000i64)
    }

    fn marker(&self, h: u32) -> String {
        format!("{}/dt=2026-11-25/hour={h}/_SUCCESS", self.table)
    }

    /// Which records of the 17:00 frontier exist, and which hours have their marker.
    async fn state(&self, client: &hdfs_native::Client) -> (Vec<&'static str>, Vec<u32>) {
        let mut records = Vec::new();
        for step in ["decided", "marked", "hive"] {
            if stat(client, &self.record(step)).await.is_some() {
                records.push(step);
            }
        }
        let mut marked = Vec::new();
        for h in [14, 15, 16, 17] {
            if let Some((len, _)) = stat(client, &self.marker(h)).await {
                assert_eq!(len, 0, "hour {h}: a marker is empty");
                marked.push(h);
            }
        }
        (records, marked)
    }

    /// Hours whose metastore partition carries `landfall.complete`.
    async fn complete_in_metastore(&self) -> Vec<u32> {
        let hms = MetastoreClient::new(HIVE_METASTORE, Duration::from_secs(60)).unwrap();
        let mut complete = Vec::new();
        for h in [14, 15, 16, 17] {
            let values = vec!["2026-11-25".to_string(), h.to_string()];
            let p = hms.get_partition(&self.db, "clicks", &values).await.unwrap();
            if p.is_some_and(|p| p.parameters.get("landfall.complete").map(String::as_str) == Some("true")) {
                complete.push(h);
            }
        }
        complete
    }
}

/// Killed right after recording a decision, before any marker: the next run's first pass
/// writes the markers (the decision stands and is never taken again).
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_the_decision_and_its_markers_is_finished_by_the_next_run() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let crashed = crashed_at("after_decision", false).await;
    let client = hdfs().await;
    assert_eq!(crashed.state(&client).await, (vec!["decided"], vec![]), "the decision was recorded first");
    run_until_caught_up(&crashed.pipeline);
    assert_eq!(crashed.state(&client).await, (vec!["decided", "marked"], vec![14, 15, 16]));
}

/// Killed with the watermark computed, before the decision: nothing was promised, and the next
/// run decides and marks.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_before_the_decision_leaves_nothing_and_the_next_run_decides() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let crashed = crashed_at("before_decision", false).await;
    let client = hdfs().await;
    assert_eq!(crashed.state(&client).await, (vec![], vec![]));
    run_until_caught_up(&crashed.pipeline);
    assert_eq!(crashed.state(&client).await, (vec!["decided", "marked"], vec![14, 15, 16]));
}

/// Killed with every marker written, before recording it: the next run finds them present
/// (never rewritten) and records the step.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_markers_before_their_record_is_recorded_by_the_next_run() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let crashed = crashed_at("after_markers", false).await;
    let client = hdfs().await;
    assert_eq!(crashed.state(&client).await, (vec!["decided"], vec![14, 15, 16]));
    let before = stat(&client, &crashed.marker(14)).await;
    run_until_caught_up(&crashed.pipeline);
    assert_eq!(crashed.state(&client).await, (vec!["decided", "marked"], vec![14, 15, 16]));
    assert_eq!(stat(&client, &crashed.marker(14)).await, before, "the marker is never rewritten");
}

/// With a metastore table, killed after the first partition's `landfall.complete`: the markers
/// and their record stand, and the next run sets the parameter on the other partitions and
/// records the metastore step.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_midway_through_the_metastore_parameters_is_finished_by_the_next_run() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let _hms = require_hive_metastore();
    let crashed = crashed_at("mid_metastore", true).await;
    let client = hdfs().await;
    assert_eq!(crashed.state(&client).await, (vec!["decided", "marked"], vec![14, 15, 16]));
    assert_eq!(crashed.complete_in_metastore().await.len(), 1, "one partition altered before the crash");
    run_until_caught_up(&crashed.pipeline);
    assert_eq!(crashed.state(&client).await, (vec!["decided", "marked", "hive"], vec![14, 15, 16]));
    assert_eq!(crashed.complete_in_metastore().await, [14, 15, 16]);
}

/// Sends `committed` in one transaction per partition, then `aborted` in a transaction that is
/// aborted: each partition ends with a control record, partition 1 with aborted records too.
fn produce_in_transactions(topic: &str, committed: &[(i32, Vec<u8>)], aborted: &[(i32, Vec<u8>)]) {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", KAFKA)
        .set("transactional.id", unique("txn"))
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).expect("init_transactions: is the transaction state log up?");
    let send = |(p, payload): &(i32, Vec<u8>)| {
        producer.send(BaseRecord::<(), _>::to(topic).partition(*p).payload(payload)).map_err(|(e, _)| e).unwrap();
    };
    for p in 0..PARTITIONS {
        producer.begin_transaction().unwrap();
        committed.iter().filter(|m| m.0 == p).for_each(send);
        producer.commit_transaction(timeout).unwrap();
    }
    producer.begin_transaction().unwrap();
    aborted.iter().for_each(send);
    producer.flush(timeout).unwrap();
    producer.abort_transaction(timeout).unwrap();
}

/// A transactional producer ends every transaction with a marker, so a partition's end is past
/// its last record, and an aborted transaction leaves records Landfall never reads: the
/// partitions still go idle once everything readable is landed, and the last hour completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_transactional_topic_goes_idle_past_its_markers_and_aborted_records() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    const EVENTS: u64 = 600;
    let topic = unique("done-txn");
    create_topic(&topic, PARTITIONS).await;
    let committed: Vec<(i32, Vec<u8>)> =
        (0..EVENTS).map(|i| ((i % PARTITIONS as u64) as i32, event(i, EVENTS).into_bytes())).collect();
    let aborted = [(1, br#"{"id":"aborted-1","ts":"2026-11-25T17:40:00Z"}"#.to_vec())];
    produce_in_transactions(&topic, &committed, &aborted);
    let table = format!("/landing-test/{topic}");
    let pipeline_name = topic.replace('-', "_");
    let yaml = PipelineYaml::kafka(&pipeline_name, &topic).roll_max_age("1s").sink_hdfs(&table).completion("10m", "4s");
    let (_dir, pipeline) = yaml.file();
    let log = std::env::temp_dir().join(format!("{topic}.log"));
    let mut daemon = spawn_daemon(&pipeline, &log);
    let addr = http_addr(&log);
    wait_for_metric(addr, "landfall_events_landed_total", &pipeline_name, EVENTS as f64, &log);
    wait_for_metric(addr, "landfall_completion_idle_partitions", &pipeline_name, PARTITIONS as f64, &log);
    let client = hdfs().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let marker_17 = format!("{table}/dt=2026-11-25/hour=17/_SUCCESS");
    while stat(&client, &marker_17).await.is_none() {
        assert!(Instant::now() < deadline, "idle partitions complete the last hour");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, text) = http_get(addr, "/metrics");
    assert_eq!(
        metric(&text, "landfall_events_landed_total", &pipeline_name, &[]),
        Some(EVENTS as f64),
        "aborted records never land"
    );
    signal(&daemon, SIGTERM);
    assert!(daemon.wait().unwrap().success());
}
