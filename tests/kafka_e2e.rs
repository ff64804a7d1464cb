//! Kafka → HDFS end to end, on the real lab services, checked through Spark: exact counts,
//! types and values; exactly once across kill -9, SIGTERM, zombies and NameNode restarts.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

const PARTITIONS: i32 = 4;

/// Produces `n` generated events round-robin over the topic's partitions; returns per-partition counts.
async fn produce_events(topic: &str, n: u64) -> BTreeMap<i32, i64> {
    let mut counts = BTreeMap::new();
    let msgs: Vec<(i32, Vec<u8>)> = (0..n)
        .map(|i| {
            let p = (i % PARTITIONS as u64) as i32;
            *counts.entry(p).or_insert(0) += 1;
            (p, event(i, n).into_bytes())
        })
        .collect();
    produce(topic, msgs).await;
    counts
}

/// The log without terminal colour codes (tracing colours its fields).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|d| d.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

struct Setup {
    topic: String,
    table_path: String,
    table_url: String,
    _dir: tempfile::TempDir,
    pipeline: std::path::PathBuf,
    _lab: LabTurn,
}

/// A fresh topic and table, and the clicks pipeline on them as `customise` adjusts it.
async fn setup(name: &str, customise: impl FnOnce(PipelineYaml) -> PipelineYaml) -> Setup {
    let lab = require_kafka();
    let _hdfs = require_hdfs();
    let topic = unique(name);
    create_topic(&topic, PARTITIONS).await;
    let table_path = format!("/landing-test/{topic}");
    let yaml = customise(PipelineYaml::kafka(&topic.replace('-', "_"), &topic).sink_hdfs(&table_path));
    let (dir, pipeline) = yaml.file();
    Setup { table_url: format!("{HDFS_URL}{table_path}"), topic, table_path, _dir: dir, pipeline, _lab: lab }
}

#[tokio::test(flavor = "multi_thread")]
async fn lands_200k_events_exactly_with_spark_types_and_values() {
    let n = 200_000;
    let s = setup("e2e", |p| p.roll_max_age("60s")).await;
    let counts = produce_events(&s.topic, n).await;
    let summary = run_until_caught_up(&s.pipeline);
    assert!(summary.contains(&format!("{n} events (0 rejected)")), "summary: {summary}");

    let ids = ["evt-000000000", "evt-000000001", "evt-000123457"];
    let v = spark_verify(&s.table_url, &ids);
    assert_eq!(v["count"], n);
    assert_eq!(v["distinct_ids"], n);
    assert_eq!(v["rejected_count"], 0);
    let types = &v["types"];
    assert_eq!(types["id"], "string");
    assert_eq!(types["user_id"], "bigint");
    assert_eq!(types["amount"], "decimal(12,2)");
    assert_eq!(types["ts"], "timestamp");
    assert_eq!(types["tags"], "array<string>");
    assert_eq!(types["geo"], "struct<lat:double,lon:double>");
    assert_eq!(types["dt"], "string");
    assert_eq!(types["hour"], "string");

    // Partition values: each event's hour directory, counted independently.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..n {
        *expected.entry(event_partition(i, n)).or_default() += 1;
    }
    assert!(expected.len() >= 4, "events span at least 4 hours");
    let got: BTreeMap<String, u64> =
        v["partitions"].as_object().unwrap().iter().map(|(k, c)| (k.clone(), c.as_u64().unwrap())).collect();
    assert_eq!(got, expected);

    // Exact values of a few rows (an RFC 3339 +01:00 one and an epoch-millis one).
    let e0 = &v["sample"]["evt-000000000"];
    assert_eq!(e0["ts"], "2026-11-25 14:00:00.000000");
    assert_eq!(e0["amount"], "0.00");
    assert_eq!(e0["user_id"], 0);
    assert_eq!(e0["tags"], serde_json::json!(["t0", "x"]));
    assert_eq!(e0["geo"], serde_json::json!({"lat": 0.25, "lon": -0.5}));
    let e1 = &v["sample"]["evt-000123457"];
    // 123457 * 12_600 s / 200_000 = 7777.791 s after 14:00:00
    assert_eq!(e1["ts"], "2026-11-25 16:09:37.791000");
    assert_eq!(e1["amount"], "23457.57");
    assert_eq!(e1["user_id"], 864_199);
    assert_eq!(e1["tags"], serde_json::json!(["t2", "x"]));
    assert_eq!(e1["geo"], serde_json::json!({"lat": 67.25, "lon": -157.5}));

    assert_tiles(&published_ranges(&s.table_path).await, &counts);
}

/// A partition with nothing in it is at its end from the start: `--until-caught-up` on a topic
/// whose other partitions are empty ends once partition 0 is landed. It used to wait for ever:
/// an empty partition read from the earliest offset has no position and no commit, and "no
/// position" never counted as the end.
#[tokio::test(flavor = "multi_thread")]
async fn until_caught_up_ends_when_some_partitions_are_empty() {
    let n = 1_000;
    let s = setup("empty-parts", |p| p.roll_max_age("60s")).await;
    produce(&s.topic, (0..n).map(|i| (0, event(i, n).into_bytes()))).await;
    let summary = run_until_caught_up_within(&s.pipeline, Duration::from_secs(45));
    assert!(summary.contains(&format!("{n} events (0 rejected)")), "summary: {summary}");
    let counts = BTreeMap::from([(0, n as i64)]);
    assert_tiles(&published_ranges(&s.table_path).await, &counts);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let n = 300_000;
    // A killed member leaves the group only when its session times out: keep that short so
    // each restarted instance gets partitions quickly and is killed mid-ingest.
    let s = setup("kill9", |p| p.roll_max_age("2s").session_timeout("6s")).await;
    // Events keep arriving while instances are killed, so every kill lands mid-ingest.
    let mut counts = BTreeMap::new();
    for i in 0..n {
        *counts.entry((i % PARTITIONS as u64) as i32).or_insert(0i64) += 1;
    }
    let topic = s.topic.clone();
    let producer = tokio::spawn(async move {
        for chunk in 0..60u64 {
            let msgs: Vec<(i32, Vec<u8>)> = (chunk * n / 60..(chunk + 1) * n / 60)
                .map(|i| ((i % PARTITIONS as u64) as i32, event(i, n).into_bytes()))
                .collect();
            produce(&topic, msgs).await;
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
    });
    // Kept after the test (under the system temp dir), for the post-mortem of a failure.
    let log = std::env::temp_dir().join(format!("{}.log", s.topic));
    let mut rng_state = 0x2545F4914F6CDD1Du64;
    let mut killed_while_producing = 0;
    for round in 0..6 {
        let mut child = spawn_daemon(&s.pipeline, &log);
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let wait = Duration::from_millis(7000 + rng_state % 6000);
        tokio::time::sleep(wait).await;
        child.kill().expect("kill -9"); // SIGKILL
        child.wait().unwrap();
        if !producer.is_finished() {
            killed_while_producing += 1;
        }
        eprintln!("round {round}: killed after {wait:?}");
    }
    producer.await.unwrap();
    assert!(killed_while_producing >= 5, "only {killed_while_producing} kills landed while events were arriving");
    let before = spark_verify(&s.table_url, &[])["count"].as_u64().unwrap();
    eprintln!("published before the final run: {before} of {n}");
    assert!(before > 0, "the killed instances published something");
    let summary = run_until_caught_up(&s.pipeline);
    eprintln!("final run: {summary}");
    eprintln!("daemon log: {}", log.display());
    // The ranges first: a gap or an overlap names the files at fault.
    assert_tiles(&published_ranges(&s.table_path).await, &counts);
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n, "exact count after 6 kill -9 (log: {})", log.display());
    assert_eq!(v["distinct_ids"], n);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_batch_publishes_and_exits_zero_within_the_deadline() {
    let n = 50_000;
    // max_age 10m and files far below max_rows/max_bytes: nothing rolls while the daemon runs,
    // so everything it consumed is still buffered when the signal arrives.
    let s = setup("sigterm", |p| p.roll_max_age("10m")).await;
    let counts = produce_events(&s.topic, n).await;
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("landfall.log");
    let mut child = spawn_daemon(&s.pipeline, &log);
    // 50,000 events take well under a second to consume once the group has assigned the
    // partitions (a few seconds at most on the lab).
    std::thread::sleep(Duration::from_secs(6));
    let before = published_ranges(&s.table_path).await;
    assert!(before.is_empty(), "nothing may be published before SIGTERM (max_age 10m), found {before:?}");
    let t0 = Instant::now();
    signal(&child, SIGTERM);
    let status = child.wait().unwrap();
    let took = t0.elapsed();
    let logtext = strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default());
    assert!(status.success(), "exit status {status}; log:\n{logtext}");
    assert!(took < Duration::from_secs(30), "stopped in {took:?}, deadline 30 s");

    // Right after the exit, before any other run touches the table: what is there is what the
    // SIGTERM'ed process published on its way out, and it is every event it had consumed.
    let ranges = published_ranges(&s.table_path).await;
    assert!(!ranges.is_empty(), "SIGTERM published nothing; log:\n{logtext}");
    assert_tiles(&ranges, &counts);
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n, "the SIGTERM publish holds every consumed event; log:\n{logtext}");
    assert_eq!(v["distinct_ids"], n);
    let published: u64 = logtext
        .lines()
        .filter(|l| l.contains("pipeline finished"))
        .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("events=")))
        .and_then(|e| e.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no `pipeline finished ... events=N` summary in the log:\n{logtext}"));
    assert_eq!(published, n, "the process reports what it published");

    // And nothing was left for the next run.
    let summary = run_until_caught_up(&s.pipeline);
    assert!(summary.contains("0 events (0 rejected)"), "a later run found more to land: {summary}");
    assert_tiles(&published_ranges(&s.table_path).await, &counts);
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_mix_is_quarantined_with_reasons_and_good_rows_are_exact() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let topic = unique("poison");
    create_topic(&topic, PARTITIONS).await;
    let table_path = format!("/landing-test/{topic}");
    let (_dir, pipeline) = PipelineYaml::kafka(&topic.replace('-', "_"), &topic)
        .schema(&[
            ("id", "string", true),
            ("user_id", "int64", false),
            ("country", "string", true),
            ("ts", "timestamp", true),
        ])
        .partition("country={country}/dt={ts:%Y-%m-%d}")
        .sink_hdfs(&table_path)
        .file();

    let good =
        |i: u64| format!(r#"{{"id":"g-{i}","user_id":{i},"country":"NL","ts":"2026-11-25T10:00:00Z"}}"#).into_bytes();
    // (expected reason, payload) — each class ≥ 1 % of the stream.
    type MakeBad = Box<dyn Fn(u64) -> Vec<u8>>;
    let bad: Vec<(&str, MakeBad)> = vec![
        ("invalid_json", Box::new(|i| format!(r#"{{"id":"b-{i}","user_id":"#).into_bytes())),
        (
            "invalid_utf8",
            Box::new(|i| {
                let mut v = format!(r#"{{"id":"b-{i}","country":""#).into_bytes();
                v.extend_from_slice(b"\xff\xfe\"}");
                v
            }),
        ),
        (
            "wrong_type",
            Box::new(|i| {
                format!(r#"{{"id":"b-{i}","user_id":"many","country":"NL","ts":"2026-11-25T10:00:00Z"}}"#).into_bytes()
            }),
        ),
        ("null_required", Box::new(|_| br#"{"id":null,"country":"NL","ts":"2026-11-25T10:00:00Z"}"#.to_vec())),
        ("missing_required", Box::new(|i| format!(r#"{{"id":"b-{i}","country":"NL"}}"#).into_bytes())),
        ("bad_timestamp", Box::new(|i| format!(r#"{{"id":"b-{i}","country":"NL","ts":"yesterday"}}"#).into_bytes())),
        (
            "unsafe_partition_value",
            Box::new(|i| format!(r#"{{"id":"b-{i}","country":"..","ts":"2026-11-25T10:00:00Z"}}"#).into_bytes()),
        ),
    ];
    let n_good = 20_000u64;
    let per_class = 250u64; // 250 / ~21,750 ≈ 1.15 % each
    let mut msgs = Vec::new();
    let mut i = 0u64;
    for g in 0..n_good {
        msgs.push(((g % 4) as i32, good(g)));
        if g % (n_good / per_class) == 0 {
            for (_, make) in &bad {
                msgs.push(((i % 4) as i32, make(i)));
                i += 1;
            }
        }
    }
    let total_bad = i;
    assert_eq!(total_bad, per_class * bad.len() as u64);
    produce(&topic, msgs).await;
    let summary = run_until_caught_up(&pipeline);
    assert!(summary.contains(&format!("{n_good} events ({total_bad} rejected)")), "summary: {summary}");

    let v = spark_verify(&format!("{HDFS_URL}{table_path}"), &[]);
    assert_eq!(v["count"], n_good, "good rows exact: {v}");
    assert_eq!(v["distinct_ids"], n_good);
    assert_eq!(v["rejected_count"], total_bad, "every bad record quarantined: {v}");
    assert_eq!(v["rejected_offsets"], total_bad, "each with its own source position");
    for (reason, _) in &bad {
        assert_eq!(v["rejected_reasons"][reason], per_class, "reason {reason}: {v}");
    }
    // Nothing escaped the table root or created a bogus partition directory.
    let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
    let mut top: Vec<String> = client
        .list_status(&table_path, false)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.path.rsplit('/').next().unwrap().to_string())
        .collect();
    top.sort();
    assert_eq!(top, ["_landfall", "_rejected", "country=NL"]);
    let parent = client.list_status("/landing-test", false).await.unwrap();
    assert!(parent.iter().all(|s| s.path.contains("/landing-test/")), "nothing written beside the table");
}

#[tokio::test(flavor = "multi_thread")]
async fn zombie_stopped_past_session_timeout_cannot_double_publish() {
    // A short session timeout so the group evicts the stopped instance quickly.
    let s = setup("zombie", |p| p.roll_max_age("2s").session_timeout("6s")).await;
    let n = 200_000u64;
    let logdir = tempfile::tempdir().unwrap();
    let mut a = spawn_daemon(&s.pipeline, &logdir.path().join("a.log"));
    let mut b = spawn_daemon(&s.pipeline, &logdir.path().join("b.log"));
    std::thread::sleep(Duration::from_secs(4)); // both joined; partitions split between them
    let mut counts = BTreeMap::new();
    let first: Vec<(i32, Vec<u8>)> = (0..n / 2)
        .map(|i| {
            let p = (i % PARTITIONS as u64) as i32;
            *counts.entry(p).or_insert(0i64) += 1;
            (p, event(i, n).into_bytes())
        })
        .collect();
    produce(&s.topic, first).await;
    std::thread::sleep(Duration::from_millis(1500)); // A is mid-range with staged data
    signal(&a, SIGSTOP);
    std::thread::sleep(Duration::from_secs(15)); // > session timeout: B takes A's partitions
    let second: Vec<(i32, Vec<u8>)> = (n / 2..n)
        .map(|i| {
            let p = (i % PARTITIONS as u64) as i32;
            *counts.entry(p).or_insert(0i64) += 1;
            (p, event(i, n).into_bytes())
        })
        .collect();
    produce(&s.topic, second).await;
    signal(&a, SIGCONT); // the zombie wakes up and tries to publish what it had staged
    std::thread::sleep(Duration::from_secs(10));
    signal(&a, SIGTERM);
    signal(&b, SIGTERM);
    let (sa, sb) = (a.wait().unwrap(), b.wait().unwrap());
    let logs = || {
        ["a.log", "b.log"]
            .iter()
            .map(|f| std::fs::read_to_string(logdir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    assert!(sa.success() && sb.success(), "both exit 0 on SIGTERM: {sa} {sb}\n{}", logs());
    let a_log = std::fs::read_to_string(logdir.path().join("a.log")).unwrap_or_default();
    eprintln!(
        "zombie A after SIGCONT: {} rewinds (fenced or voided ranges), {} revocations",
        a_log.matches("rewinding the partition").count(),
        a_log.matches("partition revoked").count()
    );
    let _ = run_until_caught_up(&s.pipeline);
    let v = spark_verify(&s.table_url, &[]);
    assert_eq!(v["count"], n, "exact count with a zombie\n{}", logs());
    assert_eq!(v["distinct_ids"], n);
    assert_tiles(&published_ranges(&s.table_path).await, &counts);
}
