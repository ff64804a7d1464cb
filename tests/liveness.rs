//! Faults a daemon meets over months of running, on the real lab services: hostile data, crashes
//! between two steps of a publish, and positions the source no longer has. Each test names the
//! scenario, and what must happen is what it asserts: nothing lost silently, no partition stalled
//! without a word, no pipeline crash-looping. The seeded fault matrix reuses these scenarios.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;

/// Partition values a producer may send. Accepted ones must come back from Spark exactly as
/// sent; refused ones must be quarantined with `unsafe_partition_value`, and the pipeline must
/// go on (before the shared path rule, a C1 control passed routing and failed every commit).
#[tokio::test(flavor = "multi_thread")]
async fn hostile_partition_values_are_read_back_exactly_or_quarantined() {
    require_kafka();
    require_hdfs();
    let accepted: Vec<String> = [
        "plain",
        "a/b",
        "k=v",
        "50%",
        "%2F",
        "a b",
        "  padded  ",
        "_leading_underscore",
        "x..y",
        "trailing.",
        "日本語",
        "Zürich",
        "quote'\"*?#[]^{}\\:",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["é".repeat(100)]) // 200 bytes: under HDFS' 255-byte component limit with `country=`
    .collect();
    let refused: Vec<String> = ["", ".", "..", ".hidden", "nul\u{0}", "line\nfeed", "tab\there", "del\u{7f}"]
        .iter()
        .map(|s| s.to_string())
        .chain(["next\u{85}line".to_string(), "csi\u{9b}".to_string(), "x".repeat(300), "é".repeat(130)])
        .collect();

    let topic = unique("hostile");
    create_topic(&topic, 1).await;
    let table_path = format!("/landing-test/{topic}");
    let (_dir, pipeline) = PipelineYaml::kafka(&topic.replace('-', "_"), &topic)
        .schema(&[("id", "string", true), ("ts", "timestamp", true), ("country", "string", false)])
        .partition("country={country}")
        .roll_max_age("2s")
        .sink_hdfs(&table_path)
        .file();
    let mut messages = Vec::new();
    for (i, value) in accepted.iter().chain(&refused).enumerate() {
        let json = serde_json::json!({ "id": format!("evt-{i}"), "ts": "2026-11-25T17:00:00Z", "country": value });
        messages.push((0, json.to_string().into_bytes()));
    }
    produce(&topic, messages).await;

    let summary = run_until_caught_up(&pipeline);
    let expected = format!("{} events ({} rejected)", accepted.len(), refused.len());
    assert!(summary.contains(&expected), "summary: {summary}");

    let v = spark_verify(&format!("{HDFS_URL}{table_path}"), &[]);
    assert_eq!(v["count"], accepted.len() as u64, "{v}");
    let read_back: BTreeSet<String> = v["partitions"]
        .as_object()
        .expect("partitions")
        .keys()
        .map(|k| k.strip_prefix("country=").expect("country=…").to_string())
        .collect();
    let sent: BTreeSet<String> = accepted.iter().cloned().collect();
    assert_eq!(read_back, sent, "Spark must read every accepted value back exactly");
    let reasons: BTreeMap<String, u64> = serde_json::from_value(v["rejected_reasons"].clone()).unwrap();
    assert_eq!(reasons, BTreeMap::from([("unsafe_partition_value".to_string(), refused.len() as u64)]));
}

/// `landfall run --until-caught-up PIPELINE` with extra environment; kills it and fails the
/// test if it has not ended within `limit` (a retry that can never succeed shows as a hang).
fn run_within(pipeline: &std::path::Path, env: &[(&str, &str)], limit: Duration) -> std::process::Output {
    let logdir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logdir.path().join("stdout"), logdir.path().join("stderr"));
    let mut child = landfall()
        .arg("run")
        .arg("--until-caught-up")
        .arg(pipeline)
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start landfall");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "landfall did not finish within {limit:?}; its log:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
    }
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A kill between the two steps of a local-store publish (hard link made, staged name not yet
/// removed) leaves both names on one inode; the next run must count that as published and land
/// the rest exactly (it used to call it a conflict and retry it forever).
#[tokio::test(flavor = "multi_thread")]
async fn a_local_publish_interrupted_between_link_and_unlink_completes_on_restart() {
    use std::os::unix::fs::MetadataExt;
    require_kafka();
    let n = 20_000u64;
    let topic = unique("linkcrash");
    create_topic(&topic, 1).await;
    produce(&topic, (0..n).map(|i| (0, event(i, n).into_bytes()))).await;
    let table = tempfile::tempdir().unwrap();
    let (_dir, pipeline) =
        PipelineYaml::kafka(&topic.replace('-', "_"), &topic).roll_max_age("2s").sink_local(table.path()).file();

    let crashed = run_within(&pipeline, &[("LF_TEST_CRASH_POINT", "local_publish_linked")], Duration::from_secs(120));
    assert!(!crashed.status.success(), "the crash point must stop the first run");
    let mut inodes: BTreeMap<u64, usize> = BTreeMap::new();
    for file in files_under(table.path()) {
        *inodes.entry(std::fs::metadata(&file).unwrap().ino()).or_default() += 1;
    }
    assert!(inodes.values().any(|&names| names == 2), "the crash must leave one file under two names");

    let out = run_within(&pipeline, &[], Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "restart failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v = spark_verify(&format!("file://{}", table.path().display()), &[]);
    assert_eq!(v["count"], n, "{v}");
    assert_eq!(v["distinct_ids"], n, "{v}");
    for file in files_under(table.path()) {
        assert_eq!(std::fs::metadata(&file).unwrap().nlink(), 1, "{} still has two names", file.display());
    }
}
