//! `sink.hive` end to end: events from Kafka land in a table the lab's Hive Metastore knows,
//! and Spark reads it by name (`spark.table("db.clicks")`) with no repair command; a metastore
//! that is down delays registration, never landing; a pipeline that appends a nullable column
//! evolves the table, and Spark reads null in the rows landed before it; an incompatible table
//! stops its pipeline only.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use landfall::metastore::{Column, MetastoreClient, TableSpec};

const PARTITIONS: i32 = 2;

/// A Hive name no other run uses (`[a-z0-9_]`).
fn unique_db(prefix: &str) -> String {
    unique(prefix).replace('-', "_")
}

fn client() -> MetastoreClient {
    MetastoreClient::new(HIVE_METASTORE, Duration::from_secs(60)).unwrap()
}

/// One test's start: its turn on the lab (alone for a test that kills the metastore), the
/// lab services checked, a fresh topic `hive-<name>-…` with `n` generated events, and a pipeline on it into
/// `/landing-test/<topic>`, registered as `<db>.clicks` in a fresh database `lf_<name>_…`.
struct Case {
    /// Held for the whole test: bind it (`let Case { _one, .. }`), as `_` or `..` would drop it.
    _one: LabTurn,
    n: u64,
    db: String,
    topic: String,
    table_path: String,
    yaml: PipelineYaml,
}

async fn case(name: &str, n: u64, alone: bool) -> Case {
    let one = if alone { lab_alone() } else { require_kafka() };
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let _hms = require_hive_metastore();
    let db = unique_db(&format!("lf_{name}"));
    let topic = unique(&format!("hive-{name}"));
    create_topic(&topic, PARTITIONS).await;
    let msgs: Vec<(i32, Vec<u8>)> =
        (0..n).map(|i| ((i % PARTITIONS as u64) as i32, event(i, n).into_bytes())).collect();
    produce(&topic, msgs).await;
    let table_path = format!("/landing-test/{topic}");
    let yaml = PipelineYaml::kafka(&topic.replace('-', "_"), &topic)
        .roll_max_age("2s")
        .sink_hdfs(&table_path)
        .sink_hive(HIVE_METASTORE, &db, "clicks");
    Case { _one: one, n, db, topic, table_path, yaml }
}

/// Each event's hour directory with its count, computed independently of Landfall.
fn expected_partitions(n: u64) -> BTreeMap<String, u64> {
    let mut expected = BTreeMap::new();
    for i in 0..n {
        *expected.entry(event_partition(i, n)).or_default() += 1;
    }
    expected
}

/// `dt=2026-11-25/hour=14` → `["2026-11-25", "14"]`.
fn values(dir: &str) -> Vec<String> {
    dir.split('/').map(|s| s.split_once('=').unwrap().1.to_string()).collect()
}

/// Spark's view of `db.table` through the metastore (tests/spark/metastore_table.py).
fn spark_table(name: &str, ids: &[&str]) -> serde_json::Value {
    let mut args = vec![name];
    args.extend_from_slice(ids);
    let out = run_spark("metastore_table.py", &args);
    let line = out.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no RESULT:\n{out}"));
    serde_json::from_str(line).unwrap()
}

fn counts(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.as_object().unwrap().iter().map(|(k, c)| (k.clone(), c.as_u64().unwrap())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn spark_reads_the_landed_events_by_table_name_with_partitions_and_types() {
    let Case { _one, n, db, table_path, yaml, .. } = case("reg", 6_000, false).await;
    let (_dir, pipeline) = yaml.file();
    let summary = run_until_caught_up(&pipeline);
    assert!(summary.contains(&format!("{n} events (0 rejected)")), "summary: {summary}");

    // The metastore has the external Parquet table and every partition, at its directory.
    let table = client().get_table(&db, "clicks").await.unwrap().expect("the table was created");
    assert_eq!(table.table_type, "EXTERNAL_TABLE");
    assert_eq!(table.location, format!("{HDFS_URL}{table_path}"));
    assert_eq!(table.serde_lib, landfall::metastore::hms::PARQUET_SERDE);
    let want_columns: Vec<Column> = [
        ("id", "string"),
        ("user_id", "bigint"),
        ("amount", "decimal(12,2)"),
        ("ts", "timestamp"),
        ("tags", "array<string>"),
        ("geo", "struct<lat:double,lon:double>"),
    ]
    .iter()
    .map(|(c, t)| Column::new(*c, *t))
    .collect();
    assert_eq!(table.columns, want_columns);
    assert_eq!(table.partition_keys, vec![Column::new("dt", "string"), Column::new("hour", "string")]);
    let expected = expected_partitions(n);
    assert!(expected.len() >= 4, "events span at least 4 hours: {expected:?}");
    for dir in expected.keys() {
        let p = client().get_partition(&db, "clicks", &values(dir)).await.unwrap();
        let p = p.unwrap_or_else(|| panic!("partition {dir} is registered"));
        assert_eq!(p.location, format!("{HDFS_URL}{table_path}/{dir}"));
    }

    // Spark, by name, with no repair command: exact rows, partitions and types.
    let name = format!("{db}.clicks");
    let v = spark_table(&name, &["evt-000000000", "evt-000004321"]);
    assert_eq!(v["count"], n);
    assert_eq!(v["distinct_ids"], n);
    let types = &v["types"];
    for (column, t) in [
        ("id", "string"),
        ("user_id", "bigint"),
        ("amount", "decimal(12,2)"),
        ("ts", "timestamp"),
        ("tags", "array<string>"),
        ("geo", "struct<lat:double,lon:double>"),
        ("dt", "string"),
        ("hour", "string"),
    ] {
        assert_eq!(types[column], t, "column {column}: {types}");
    }
    let listed: BTreeSet<String> =
        v["listed_partitions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    assert_eq!(listed, expected.keys().cloned().collect::<BTreeSet<_>>());
    assert_eq!(counts(&v["partitions"]), expected);
    let e0 = &v["sample"]["evt-000000000"];
    assert_eq!(e0["ts"], "2026-11-25 14:00:00.000000");
    assert_eq!(e0["amount"], "0.00");
    assert_eq!((e0["dt"].as_str(), e0["hour"].as_str()), (Some("2026-11-25"), Some("14")));
    assert_eq!(e0["geo"], serde_json::json!({"lat": 0.25, "lon": -0.5}));
    let e1 = &v["sample"]["evt-000004321"];
    // 4321 * 12_600 s / 6_000 = 9074.1 s after 14:00:00
    assert_eq!(e1["ts"], "2026-11-25 16:31:14.100000");
    assert_eq!(e1["amount"], "4321.21");
    assert_eq!(e1["tags"], serde_json::json!(["t1", "x"]));
    assert_eq!((e1["dt"].as_str(), e1["hour"].as_str()), (Some("2026-11-25"), Some("16")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metastore_that_is_down_delays_registration_never_landing() {
    let Case { _one, n, db, topic, yaml, .. } = case("down", 3_000, true).await;
    let (_dir, pipeline) = yaml.file();
    let pipeline_name = topic.replace('-', "_");
    let log = std::env::temp_dir().join(format!("{topic}.log"));

    let killed = Killed::kill("hive-metastore");
    let mut daemon = spawn_daemon(&pipeline, &log);
    let addr = http_addr(&log);
    // Everything lands while the metastore is away.
    wait_for_metric(addr, "landfall_events_landed_total", &pipeline_name, n as f64, &log);
    let (code, body) = http_get(addr, "/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("metastore"), "/ready names the metastore: {body}");
    let (_, text) = http_get(addr, "/metrics");
    assert!(metric(&text, "landfall_errors_total", &pipeline_name, &["kind=\"metastore\""]).unwrap() >= 1.0, "{text}");
    assert_eq!(metric(&text, "landfall_hive_partitions_added_total", &pipeline_name, &[]), Some(0.0), "{text}");

    // The metastore returns (started and healthy when the guard drops): the table and every
    // partition appear, without a restart of the daemon.
    drop(killed);
    let expected = expected_partitions(n);
    let deadline = Instant::now() + Duration::from_secs(180);
    'wait: loop {
        assert!(
            Instant::now() < deadline,
            "partitions not registered after the metastore returned; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(2));
        for dir in expected.keys() {
            if !matches!(client().get_partition(&db, "clicks", &values(dir)).await, Ok(Some(_))) {
                continue 'wait;
            }
        }
        break;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(addr, "/ready").0 != 200 {
        assert!(Instant::now() < deadline, "/ready stays 503: {}", http_get(addr, "/ready").1);
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, text) = http_get(addr, "/metrics");
    assert_eq!(
        metric(&text, "landfall_hive_partitions_added_total", &pipeline_name, &[]),
        Some(expected.len() as f64),
        "{text}"
    );
    signal(&daemon, SIGTERM);
    assert!(daemon.wait().unwrap().success());

    // One warn for the outage, one info for the recovery.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("Hive Metastore registration failing").count(), 1, "{text}");
    assert_eq!(text.matches("Hive Metastore registration works again").count(), 1, "{text}");

    let v = spark_table(&format!("{db}.clicks"), &[]);
    assert_eq!(v["count"], n);
    assert_eq!(v["distinct_ids"], n);
    assert_eq!(counts(&v["partitions"]), expected);
}

/// Registrations still pending when the daemon is killed (the metastore was down the whole
/// run) are made by the next start, although nothing new lands in those partitions.
#[tokio::test(flavor = "multi_thread")]
async fn registrations_pending_at_a_kill_are_made_by_the_next_start() {
    let Case { _one, n, db, topic, yaml, .. } = case("pend", 2_000, true).await;
    let (_dir, pipeline) = yaml.file();
    let pipeline_name = topic.replace('-', "_");
    let log = std::env::temp_dir().join(format!("{topic}.log"));
    let killed = Killed::kill("hive-metastore");
    let mut daemon = spawn_daemon(&pipeline, &log);
    let addr = http_addr(&log);
    wait_for_metric(addr, "landfall_events_landed_total", &pipeline_name, n as f64, &log);
    signal(&daemon, 9); // SIGKILL: the pending registrations die with the process
    let _ = daemon.wait();
    drop(killed);
    assert!(client().get_table(&db, "clicks").await.unwrap().is_none(), "nothing was registered");

    run_until_caught_up(&pipeline); // lands nothing new: every event was published before the kill
    for dir in expected_partitions(n).keys() {
        let p = client().get_partition(&db, "clicks", &values(dir)).await.unwrap();
        assert!(p.is_some(), "partition {dir} registered by the restart");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incompatible_table_stops_its_pipeline_naming_each_difference_and_others_land() {
    let Case { _one, n, db, table_path, yaml, .. } = case("bad", 500, false).await;
    // Someone made the table by hand, with another decimal and a typed partition key.
    let c = client();
    c.ensure_database(&db, None).await.unwrap();
    let spec = TableSpec {
        database: db.clone(),
        name: "clicks".into(),
        location: format!("{HDFS_URL}{table_path}"),
        columns: vec![
            Column::new("id", "string"),
            Column::new("user_id", "bigint"),
            Column::new("amount", "decimal(10,2)"),
            Column::new("ts", "timestamp"),
            Column::new("tags", "array<string>"),
            Column::new("geo", "struct<lat:double,lon:double>"),
        ],
        partition_keys: vec![Column::new("dt", "string"), Column::new("hour", "int")],
        parameters: BTreeMap::new(),
        required: BTreeSet::new(),
    };
    c.ensure_table(&spec).await.unwrap();

    // Beside it, a pipeline without sink.hive on its own topic: it lands all the same.
    let other_topic = unique("hive-other");
    create_topic(&other_topic, 1).await;
    produce(&other_topic, (0..n).map(|i| (0, event(i, n).into_bytes()))).await;
    let other = PipelineYaml::kafka(&other_topic.replace('-', "_"), &other_topic)
        .roll_max_age("2s")
        .sink_hdfs(&format!("/landing-test/{other_topic}"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-bad.yaml"), yaml.build()).unwrap();
    std::fs::write(dir.path().join("b-other.yaml"), other.build()).unwrap();
    let out = landfall().arg("run").arg("--until-caught-up").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a pipeline failed, so the run fails:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{}: {n} events (0 rejected)", other_topic.replace('-', "_"))),
        "the other pipeline landed:\n{stdout}\n{stderr}"
    );
    for difference in
        ["amount decimal(10,2)", "amount decimal(12,2)", "hour int", "hour string", "does not match the pipeline"]
    {
        assert!(stderr.contains(difference), "the error names `{difference}`:\n{stderr}");
    }
    let v = spark_verify(&format!("{HDFS_URL}/landing-test/{other_topic}"), &[]);
    assert_eq!(v["count"], n);
}

/// The default schema of [`PipelineYaml`] (the columns of [`event`]), then `extra`.
fn schema_with(extra: &[(&'static str, &'static str, bool)]) -> Vec<(&'static str, &'static str, bool)> {
    let mut schema = vec![
        ("id", "string", true),
        ("user_id", "int64", false),
        ("amount", "decimal(12,2)", false),
        ("ts", "timestamp", true),
        ("tags", "list<string>", false),
        ("geo", "struct<lat: float64, lon: float64>", false),
    ];
    schema.extend_from_slice(extra);
    schema
}

/// A schema Hive's own Parquet SerDe reads, for the test that reads through it too: Spark's
/// built-in Hive 2.3 SerDe fails on Landfall's `struct` columns (`geo`), whichever columns are
/// selected, and the other columns of [`event`] are not needed here.
const NARROW: [(&str, &str, bool); 3] =
    [("id", "string", true), ("user_id", "int64", false), ("ts", "timestamp", true)];

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_that_appends_a_nullable_column_evolves_the_table_and_older_rows_read_null() {
    let Case { _one, n, db, topic, yaml, .. } = case("evolve", 1_000, false).await;
    let yaml = yaml.schema(&NARROW);
    let (_dir, pipeline) = yaml.file();
    let summary = run_until_caught_up(&pipeline);
    assert!(summary.contains(&format!("{n} events (0 rejected)")), "summary: {summary}");
    assert_eq!(client().get_table(&db, "clicks").await.unwrap().unwrap().columns.len(), NARROW.len());

    // New events carry `country`, over the same hours: they land in partitions registered
    // before the table had the column.
    let m = 600;
    let countries = ["de", "fr", "nl"];
    let fresh = |j: u64| {
        let country = countries[j as usize % countries.len()];
        event(j, m).replacen(r#"{"id":"evt-"#, &format!(r#"{{"country":"{country}","id":"new-"#), 1)
    };
    assert!(fresh(0).starts_with(r#"{"country":"de","id":"new-000000000""#), "{}", fresh(0));
    let expected = expected_partitions(n);
    assert!(expected_partitions(m).keys().all(|p| expected.contains_key(p)), "the same hours");
    produce(&topic, (0..m).map(|j| ((j % PARTITIONS as u64) as i32, fresh(j).into_bytes()))).await;

    let evolved = yaml.schema(&[NARROW.as_slice(), &[("country", "string", false)]].concat());
    let (_dir2, pipeline) = evolved.file();
    let out = landfall()
        .arg("run")
        .arg("--until-caught-up")
        .arg(&pipeline)
        .env("LANDFALL_LOG_LEVEL", "info")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the evolved pipeline runs:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{m} events (0 rejected)")), "summary: {stdout}");
    let evolved_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("Hive Metastore table evolved")).collect();
    assert_eq!(evolved_lines.len(), 1, "one line says so:\n{stderr}");
    assert!(evolved_lines[0].contains("added=country string"), "{}", evolved_lines[0]);
    assert!(evolved_lines[0].contains(&format!("table={db}.clicks")), "{}", evolved_lines[0]);

    // The table and every partition (CASCADE) have the column, appended.
    let table = client().get_table(&db, "clicks").await.unwrap().unwrap();
    assert_eq!(table.columns.len(), NARROW.len() + 1);
    assert_eq!(table.columns.last(), Some(&Column::new("country", "string")));
    for dir in expected.keys() {
        let p = client().get_partition(&db, "clicks", &values(dir)).await.unwrap().unwrap();
        assert_eq!(p.columns, table.columns, "partition {dir}");
    }

    // Spark by name, with its own Parquet reader (the default) and through Hive's SerDe: null
    // before, the value after, in old and new partitions alike.
    let out = run_spark("evolved_table.py", &[&format!("{db}.clicks"), "country"]);
    let line = out.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no RESULT:\n{out}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["types"]["country"], "string", "{v}");
    for reader in ["native", "hive_serde"] {
        let r = &v[reader];
        assert_eq!(r["count"], n + m, "{reader}: {r}");
        assert_eq!(r["groups"], serde_json::json!({"evt null": n, "new value": m}), "{reader}: {r}");
        assert_eq!(r["values"], serde_json::json!(countries), "{reader}: {r}");
    }
    assert_eq!(v["native"]["parquet_scan"], true, "{v}");
    assert_eq!(v["hive_serde"]["hive_scan"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_that_does_not_evolve_stops_the_pipeline_naming_each_difference() {
    let Case { _one, n, db, yaml, .. } = case("noevolve", 300, false).await;
    let (_dir, pipeline) = yaml.file();
    let summary = run_until_caught_up(&pipeline);
    assert!(summary.contains(&format!("{n} events (0 rejected)")), "summary: {summary}");
    let before = client().get_table(&db, "clicks").await.unwrap().unwrap().columns;

    // `tags` dropped, `country` new and required, `user_id` another type.
    let mut schema = schema_with(&[("country", "string", true)]);
    schema.retain(|(name, _, _)| *name != "tags");
    schema[1].1 = "int32";
    let changed = yaml.schema(&schema);
    let (_dir2, pipeline) = changed.file();
    let out = landfall().arg("run").arg("--until-caught-up").arg(&pipeline).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the pipeline does not start:\n{stderr}");
    for difference in [
        "does not match the pipeline",
        "column user_id: the table has user_id bigint, the pipeline declares user_id int",
        "column tags array<string> is in the table",
        "column country string is new and required",
        "only by appending nullable columns",
    ] {
        assert!(stderr.contains(difference), "the error names `{difference}`:\n{stderr}");
    }
    assert_eq!(client().get_table(&db, "clicks").await.unwrap().unwrap().columns, before, "the table is unchanged");
}
