//! `sink.hive.compaction` end to end, on the lab's Kafka, HDFS, metastore and Spark: the small
//! files of completed hours become one file each in a new generation that the metastore points
//! at, while a Spark session querying the table by name never sees a wrong count; and a daemon
//! killed at each compaction step (`LF_TEST_CRASH_POINT`), cleaning included (a grace of
//! seconds), leaves a table the next run finishes, every event once, each hour in one file
//! and its small files deleted.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use landfall::metastore::MetastoreClient;

const PARTITIONS: i32 = 2;
const N: u64 = 4_000;
const HOURS: [u32; 4] = [14, 15, 16, 17];

struct Table {
    /// Events produced.
    events: u64,
    db: String,
    topic: String,
    path: String,
    pipeline: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// N events of 14:00–17:29 in a 2-partition topic, and a pipeline that lands them in small
/// files (50 rows per commit), completes hours once the partitions are `idle` (40 s is long
/// enough for the Spark loop to start before any compaction), and compacts hours holding 10
/// files or more, deleting the compacted files `grace` after the switch (default: an hour).
async fn table(name: &str, idle: &str, grace: Option<&str>) -> Table {
    table_of(name, idle, grace, 0..N, N).await
}

/// Like [`table`], with the events `which` of [`event`]`(i, spread)` (`spread` events would
/// cover 14:00–17:29).
async fn table_of(name: &str, idle: &str, grace: Option<&str>, which: impl Iterator<Item = u64>, spread: u64) -> Table {
    let topic = unique(name);
    create_topic(&topic, PARTITIONS).await;
    let msgs: Vec<(i32, Vec<u8>)> =
        which.map(|i| ((i % PARTITIONS as u64) as i32, event(i, spread).into_bytes())).collect();
    let events = msgs.len() as u64;
    produce(&topic, msgs).await;
    let db = unique("lf_compact").replace('-', "_");
    let path = format!("/landing-test/{topic}");
    let yaml = PipelineYaml::kafka(&topic.replace('-', "_"), &topic)
        .session_timeout("6s") // a daemon aborted at a crash point is out of the group in seconds
        .roll_max_rows(50)
        .roll_max_age("2s")
        .sink_hdfs(&path)
        .sink_hive(HIVE_METASTORE, &db, "clicks")
        .completion("10m", idle);
    let yaml = match grace {
        Some(grace) => yaml.compaction_with_grace(10, grace),
        None => yaml.compaction(10),
    };
    let (_dir, pipeline) = yaml.file();
    Table { db, topic, path, pipeline, events, _dir }
}

impl Table {
    fn pipeline_name(&self) -> String {
        self.topic.replace('-', "_")
    }

    /// Each hour's metastore location.
    async fn locations(&self) -> BTreeMap<u32, String> {
        let hms = MetastoreClient::new(HIVE_METASTORE, Duration::from_secs(60)).unwrap();
        let mut out = BTreeMap::new();
        for h in HOURS {
            let values = vec!["2026-11-25".to_string(), h.to_string()];
            if let Some(p) = hms.get_partition(&self.db, "clicks", &values).await.unwrap() {
                out.insert(h, p.location);
            }
        }
        out
    }

    /// Waits until every hour's metastore location is a compacted generation.
    async fn wait_compacted(&self, limit: Duration) -> BTreeMap<u32, String> {
        let deadline = Instant::now() + limit;
        loop {
            let locations = self.locations().await;
            if locations.len() == HOURS.len() && locations.values().all(|l| l.contains("/_landfall/generations/")) {
                return locations;
            }
            assert!(Instant::now() < deadline, "not every hour was compacted within {limit:?}: {locations:?}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Data files (not `_`/`.`-prefixed) in a directory given as a location or a path.
    async fn data_files(&self, dir: &str) -> usize {
        let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
        let path = dir.strip_prefix(HDFS_URL).unwrap_or(dir);
        client
            .list_status(path, false)
            .await
            .unwrap()
            .iter()
            .filter(|f| !f.isdir)
            .filter(|f| {
                let name = f.path.rsplit('/').next().unwrap_or_default();
                !name.starts_with('_') && !name.starts_with('.')
            })
            .count()
    }

    /// Spark's view by name: every event once.
    fn assert_exact(&self) -> BTreeMap<String, u64> {
        let out = run_spark("metastore_table.py", &[&format!("{}.clicks", self.db)]);
        let line = out.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no RESULT:\n{out}"));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["count"], self.events, "every event through the metastore: {v}");
        assert_eq!(v["distinct_ids"], self.events, "each once: {v}");
        serde_json::from_value(v["partitions"].clone()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn small_files_of_complete_hours_become_one_file_each_while_spark_reads_by_name() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let _hms = require_hive_metastore();
    let t = table("compact", "40s", None).await;
    let log = std::env::temp_dir().join(format!("{}.log", t.topic));
    let mut daemon = spawn_daemon(&t.pipeline, &log);
    let addr = http_addr(&log);
    wait_for_metric(addr, "landfall_events_landed_total", &t.pipeline_name(), N as f64, &log);
    let mut small = BTreeMap::new();
    for h in HOURS {
        small.insert(h, t.data_files(&format!("{}/dt=2026-11-25/hour={h}", t.path)).await);
    }
    assert!(small.values().all(|&n| n >= 10), "small files per hour before compaction: {small:?}");

    // A session querying by name from now until well past the compaction.
    let name = format!("{}.clicks", t.db);
    let looping = std::thread::spawn(move || run_spark("query_loop.py", &[&name, "100"]));
    let locations = t.wait_compacted(Duration::from_secs(150)).await;
    for (h, location) in &locations {
        let files = t.data_files(location).await;
        assert_eq!(files, 1, "hour {h}: {} small files became one at {location}", small[h]);
    }
    let loop_out = looping.join().expect("the Spark loop");

    let (_, text) = http_get(addr, "/metrics");
    let compacted = metric(&text, "landfall_partitions_compacted_total", &t.pipeline_name(), &[]);
    assert_eq!(compacted, Some(HOURS.len() as f64), "one switch per hour:\n{text}");
    let files = |side: &str| metric(&text, "landfall_compaction_files_total", &t.pipeline_name(), &[side]);
    let small_files: usize = small.values().sum();
    assert_eq!(files("side=\"input\""), Some(small_files as f64), "every small file replaced:\n{text}");
    assert_eq!(files("side=\"output\""), Some(HOURS.len() as f64), "one file per hour written:\n{text}");
    let (_, api) = http_get(addr, "/api/status");
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let compaction = &api["pipelines"][0]["compaction"];
    assert_eq!(
        (compaction["partitions"].as_u64(), compaction["files_in"].as_u64(), compaction["failing"].is_null()),
        (Some(HOURS.len() as u64), Some(small_files as u64), true),
        "/api/status: {compaction}"
    );
    // The status page shows the same in its compaction box.
    if let Some(browser) = chromium() {
        let work = tempfile::tempdir().unwrap();
        let dom = chromium_run(browser, work.path(), &format!("http://{addr}/"), &["--dump-dom"]);
        let shown = element(&dom, "dl", "class=\"completion compaction\"")
            .unwrap_or_else(|| panic!("no dl.compaction (the compaction box) in the status page:\n{dom}"));
        let thousands = |n: usize| {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, d) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(d);
            }
            out
        };
        for fact in [
            format!("data-field=\"partitions\" data-count=\"{0}\">{0}<", HOURS.len()),
            format!("data-field=\"files\">{} → {}<", thousands(small_files), HOURS.len()),
            "data-field=\"failing\" data-count=\"0\"><span class=\"none\">nothing</span>".to_string(),
        ] {
            assert!(shown.contains(&fact), "the compaction box does not show `{fact}`:\n{shown}");
        }
    }
    signal(&daemon, SIGTERM);
    assert!(daemon.wait().unwrap().success());

    let expected = t.assert_exact();
    let mut seen_files = Vec::new();
    for line in loop_out.lines().filter_map(|l| l.strip_prefix("LOOP ")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for h in HOURS {
            let want = expected[&format!("dt=2026-11-25/hour={h}")];
            assert_eq!(v["counts"][h.to_string()], want, "a query during compaction read hour {h} wrong: {line}");
        }
        seen_files.push(v["files"].as_u64().unwrap());
    }
    // Hours 14–16 complete (and may be compacted) as soon as the last events land; hour 17
    // only once the partitions have been idle for 40 s, so at least its switch happens while
    // the loop queries.
    assert!(
        seen_files.first().is_some_and(|&first| first > HOURS.len() as u64)
            && seen_files.last() == Some(&(HOURS.len() as u64)),
        "the loop saw small files, then one file per hour: {seen_files:?}"
    );
}

/// Killed at each step in turn, the compaction is finished by the next run and every event
/// reads once by name.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_killed_at_each_compaction_step_leaves_a_table_the_next_run_finishes() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let _hms = require_hive_metastore();
    let t = table("compact-crash", "10s", Some("5s")).await;
    let log = std::env::temp_dir().join(format!("{}.log", t.topic));
    let mut small = 0;
    for point in ["compact_planned", "compact_built", "compact_switched", "compact_cleaning"] {
        let mut daemon = DaemonChild(
            landfall()
                .arg("run")
                .arg(&t.pipeline)
                .env("LF_TEST_CRASH_POINT", point)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
                .spawn()
                .expect("start landfall"),
        );
        let deadline = Instant::now() + Duration::from_secs(150);
        let status = loop {
            if let Some(status) = daemon.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never reached {point}:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(!status.success(), "aborted at {point}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains(&format!("LF_TEST_CRASH_POINT={point}")), "aborted at {point}:\n{text}");
        if point == "compact_planned" {
            // The first hour is complete (so all its files are published) and nothing deleted.
            small = t.data_files(&format!("{}/dt=2026-11-25/hour={}", t.path, HOURS[0])).await;
            assert!(small >= 20, "50 rows per file: hour {} holds {small} files", HOURS[0]);
        }
    }
    let mut daemon = spawn_daemon(&t.pipeline, &log);
    let locations = t.wait_compacted(Duration::from_secs(150)).await;
    for (h, location) in &locations {
        assert_eq!(
            t.data_files(location).await,
            1,
            "hour {h} at {location} ({small} small files in hour {})",
            HOURS[0]
        );
    }
    // Cleaning, a grace after each switch: the hours' own directories keep no data file.
    let deadline = Instant::now() + Duration::from_secs(120);
    for h in HOURS {
        let dir = format!("{}/dt=2026-11-25/hour={h}", t.path);
        while t.data_files(&dir).await > 0 {
            assert!(Instant::now() < deadline, "hour {h}'s compacted files were not deleted after the grace");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    signal(&daemon, SIGTERM);
    assert!(daemon.wait().unwrap().success());
    t.assert_exact();
}

/// Two hundred small files of one completed hour become at most two: 10,000 events of hour 14
/// in 50-row files, and ten at 17:14 that move the watermark (10 minutes of lateness) past the
/// hour's end.
#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_small_files_of_an_hour_become_at_most_two() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let _hms = require_hive_metastore();
    // event(i, 40_000) is in hour 14 for i < 11,428 and at 17:14 for i near 37,000.
    let which = (0..10_000).chain(37_000..37_010);
    let t = table_of("compact-200", "10m", None, which, 40_000).await;
    let log = std::env::temp_dir().join(format!("{}.log", t.topic));
    let started = Instant::now();
    let mut daemon = spawn_daemon(&t.pipeline, &log);
    let addr = http_addr(&log);
    wait_for_metric(addr, "landfall_events_landed_total", &t.pipeline_name(), t.events as f64, &log);
    let landed_in = started.elapsed();
    let hour = format!("{}/dt=2026-11-25/hour=14", t.path);
    let small = t.data_files(&hour).await;
    assert!(small >= 200, "10,000 events in 50-row files: hour 14 holds {small} files");

    let deadline = Instant::now() + Duration::from_secs(120);
    let location = loop {
        match t.locations().await.remove(&14) {
            Some(l) if l.contains("/_landfall/generations/") => break l,
            other => assert!(Instant::now() < deadline, "hour 14 was not compacted within 120 s: {other:?}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let files = t.data_files(&location).await;
    assert!((1..=2).contains(&files), "hour 14's {small} small files became {files} at {location}");
    eprintln!("hour 14: {small} files landed in {landed_in:?}, compacted into {files} at {location}");
    signal(&daemon, SIGTERM);
    assert!(daemon.wait().unwrap().success());

    let by_hour = t.assert_exact();
    assert_eq!(by_hour.get("dt=2026-11-25/hour=14"), Some(&10_000), "hour 14 by name: {by_hour:?}");
}
