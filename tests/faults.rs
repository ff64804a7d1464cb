//! Service faults while Landfall ingests: a NameNode restart, a Kafka broker killed, a DataNode
//! killed. The daemon retries (never exits), and the table ends exact: nothing lost or doubled.
//! Its own test binary, and the tests take turns: each one disturbs a service all tests use.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// One fault at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn lab(args: &[&str]) {
    let status = Command::new(repo_root().join("bootstrap.sh")).args(args).status().expect("./bootstrap.sh");
    assert!(status.success(), "./bootstrap.sh {args:?}");
}

/// Runs the daemon while `fault` disturbs a service mid-ingest, then checks the table.
async fn survive(name: &str, fault: impl FnOnce()) {
    require_kafka();
    require_hdfs();
    let topic = unique(name);
    create_topic(&topic, 4).await;
    let table_path = format!("/landing-test/{topic}");
    let (_dir, pipeline) =
        PipelineYaml::kafka(&topic.replace('-', "_"), &topic).roll_max_age("1s").sink_hdfs(&table_path).file();
    let n = 150_000u64;
    let mut counts: BTreeMap<i32, i64> = BTreeMap::new();
    let msgs: Vec<(i32, Vec<u8>)> = (0..n)
        .map(|i| {
            let p = (i % 4) as i32;
            *counts.entry(p).or_insert(0) += 1;
            (p, event(i, n).into_bytes())
        })
        .collect();
    let logdir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(logdir.path().join("landfall.log")).unwrap();
    let mut daemon = landfall().arg("run").arg(&pipeline).stdout(Stdio::null()).stderr(log).spawn().unwrap();
    produce(&topic, msgs[..(n / 2) as usize].to_vec()).await;
    std::thread::sleep(Duration::from_secs(3));
    fault();
    produce(&topic, msgs[(n / 2) as usize..].to_vec()).await;
    std::thread::sleep(Duration::from_secs(8));
    let logtext = || std::fs::read_to_string(logdir.path().join("landfall.log")).unwrap_or_default();
    assert!(daemon.try_wait().unwrap().is_none(), "landfall keeps running through the fault\n{}", logtext());
    unsafe { kill(daemon.id() as i32, 15) };
    let status = daemon.wait().unwrap();
    assert!(status.success(), "exit 0 after SIGTERM: {status}\n{}", logtext());
    let out = landfall().args(["run", "--until-caught-up"]).arg(&pipeline).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = spark_verify(&format!("{HDFS_URL}{table_path}"), &[]);
    assert_eq!(v["count"], n, "exact after the fault\n{}", logtext());
    assert_eq!(v["distinct_ids"], n);
    assert_tiles(&published_ranges(&table_path).await, &counts);
}

#[tokio::test(flavor = "multi_thread")]
async fn namenode_restart_mid_run_is_survived_exactly() {
    let _turn = SERIAL.lock().await;
    survive("nnrestart", || lab(&["restart", "namenode"])).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_broker_killed_for_ten_seconds_is_survived_exactly() {
    let _turn = SERIAL.lock().await;
    survive("brokerdown", || {
        lab(&["kill", "kafka"]);
        std::thread::sleep(Duration::from_secs(10));
        lab(&["start", "kafka"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn datanode_killed_for_ten_seconds_is_survived_exactly() {
    let _turn = SERIAL.lock().await;
    survive("dndown", || {
        lab(&["kill", "datanode"]);
        std::thread::sleep(Duration::from_secs(10));
        lab(&["start", "datanode"]);
    })
    .await;
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
