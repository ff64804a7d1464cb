//! A stop (SIGTERM) while the NameNode hangs or HDFS is in safe mode, and a rebalance while
//! partitions wait in rewind backoff: the daemon honours the shutdown deadline, leaves no
//! partition paused, and the table ends exact. Service faults under load (a NameNode, DataNode
//! or broker killed or hung, and the rest) are the seeded fault matrix's (tests/fault_matrix/).
//! Each test disturbs a service every test uses, so it has the lab alone (`lab_alone`).

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// (partition, payload) of each event, and how many events each partition gets.
type Spread = (Vec<(i32, Vec<u8>)>, BTreeMap<i32, i64>);

/// Events `0..n` spread round-robin over `partitions`.
fn round_robin_events(n: u64, partitions: i32) -> Spread {
    let mut counts: BTreeMap<i32, i64> = BTreeMap::new();
    let msgs = (0..n)
        .map(|i| {
            let p = (i % partitions as u64) as i32;
            *counts.entry(p).or_insert(0) += 1;
            (p, event(i, n).into_bytes())
        })
        .collect();
    (msgs, counts)
}

/// The daemon on a fresh 2-partition topic with `n` events, `deadline` as shutdown_deadline,
/// after it has landed the first half; returns (daemon, pipeline, table, log, dir guard).
struct Stopping {
    daemon: std::process::Child,
    pipeline: std::path::PathBuf,
    table: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _logdir: tempfile::TempDir,
    _lab: LabTurn,
}

impl Stopping {
    async fn start(name: &str, n: u64, deadline: &str) -> Stopping {
        let lab = require_kafka();
        let _hdfs = require_hdfs();
        let topic = unique(name);
        create_topic(&topic, 2).await;
        let table = format!("/landing-test/{topic}");
        let (_dir, pipeline) =
            PipelineYaml::kafka(&topic.replace('-', "_"), &topic).roll_max_age("60s").sink_hdfs(&table).file();
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("landfall.log");
        let daemon = landfall()
            .arg("run")
            .arg(&pipeline)
            .env("LANDFALL_SHUTDOWN_DEADLINE", deadline)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        produce(&topic, (0..n).map(|i| ((i % 2) as i32, event(i, n).into_bytes()))).await;
        // Buffered, not published: roll.max_age is 60 s.
        tokio::time::sleep(Duration::from_secs(4)).await;
        Stopping { daemon, pipeline, table, log, _dir, _logdir: logdir, _lab: lab }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then how long the daemon took to exit (killed after `limit`).
    fn terminate(&mut self, limit: Duration) -> (Duration, std::process::ExitStatus) {
        let asked = std::time::Instant::now();
        signal(&self.daemon, SIGTERM);
        loop {
            if let Some(status) = self.daemon.try_wait().unwrap() {
                return (asked.elapsed(), status);
            }
            if asked.elapsed() > limit {
                let _ = self.daemon.kill();
                let _ = self.daemon.wait();
                panic!("no exit {limit:?} after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// SIGTERM while the NameNode hangs (issue 10, item 12): the daemon must exit within
/// `shutdown_deadline` (systemd kills it otherwise, mid-anything), and nothing is lost: what it
/// could not publish lands on the next run, exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_the_namenode_hangs_exits_within_the_deadline() {
    let _lab = lab_alone();
    let n = 20_000;
    let mut s = Stopping::start("termhung", n, "6s").await;
    let frozen = Frozen::freeze("namenode");
    let (took, status) = s.terminate(Duration::from_secs(60));
    drop(frozen);
    eprintln!("exited {status} after {took:?}");
    assert!(took <= Duration::from_millis(6_500), "SIGTERM honoured in {took:?}, deadline 6 s; log:\n{}", s.log());
    assert!(s.log().contains("shutdown deadline passed"), "the cut-off is named:\n{}", s.log());
    let out = landfall().args(["run", "--until-caught-up"]).arg(&s.pipeline).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = spark_verify(&format!("{HDFS_URL}{}", s.table), &[]);
    assert_eq!(v["count"], n);
    assert_eq!(v["distinct_ids"], n);
}

/// SIGTERM while HDFS refuses writes (safe mode), which ends before the deadline (issue 10,
/// item 12): the commits of the stop keep retrying and publish everything before the daemon
/// exits, instead of giving up at the first failed attempt.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_hdfs_safe_mode_still_publishes_before_the_deadline() {
    let _lab = lab_alone();
    let n = 20_000;
    let mut s = Stopping::start("termsafe", n, "60s").await;
    let safe_mode = SafeMode::enter();
    let leave = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(6));
        drop(safe_mode);
    });
    let (took, status) = s.terminate(Duration::from_secs(90));
    leave.join().unwrap();
    eprintln!("exited {status} after {took:?}; log:\n{}", s.log());
    assert!(status.success(), "a clean exit: {status}; log:\n{}", s.log());
    assert!(s.log().contains("safe mode"), "the daemon met the safe mode:\n{}", s.log());
    let v = spark_verify(&format!("{HDFS_URL}{}", s.table), &[]);
    assert_eq!(v["count"], n, "everything buffered was published during the stop; log:\n{}", s.log());
    assert_eq!(v["distinct_ids"], n);
}

/// How many lines of the file at `path` satisfy `is_match`, polled until there are `at_least`
/// or `limit` passes (returns the last count).
fn wait_for_matching(
    path: &std::path::Path,
    is_match: impl Fn(&str) -> bool,
    at_least: usize,
    limit: Duration,
) -> usize {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let count = std::fs::read_to_string(path).unwrap_or_default().lines().filter(|l| is_match(l)).count();
        if count >= at_least || std::time::Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many lines of the file at `path` contain `text`, as [`wait_for_matching`].
fn wait_for_lines(path: &std::path::Path, text: &str, at_least: usize, limit: Duration) -> usize {
    wait_for_matching(path, |l| l.contains(text), at_least, limit)
}

/// A partition handed to the reader at its resume offset: `partition ready` today; builds before
/// c6ce75a (run with `LANDFALL_TEST_BIN`, see `landfall()`) logged it as `partition assigned`,
/// a wording that today means "assigned, recovering its commit log" (not ready yet).
fn is_partition_ready(line: &str) -> bool {
    line.contains("partition ready")
        || line.contains("partition assigned") && !line.contains("partition assigned; recovering its commit log")
}

/// A failed commit rewound a partition: `rewinding the stream …` today, `rewinding the
/// partition …` before c6ce75a.
fn is_rewind(line: &str) -> bool {
    line.contains("rewinding the stream") || line.contains("rewinding the partition")
}

/// A rebalance while partitions wait out their rewind backoff (issue 10, item 2). The DataNode
/// is down, so every commit fails and each partition pauses 1 s, 2 s, 4 s … before it is read
/// again; a second instance joins the group and leaves it in that window, so every partition is
/// revoked and assigned again mid-backoff. librdkafka keeps an application's pause across
/// re-assignment: a partition that came back paused was never fetched again (heartbeats going
/// on, nothing logged). Must: once the DataNode is back, the first instance lands every event of
/// every partition while it runs (no restart to mask a stall), exactly.
///
/// Eager (`range`): every partition is revoked and assigned again. Cooperative (the default):
/// only the partitions the second member took move, twice; the others must keep their backoff.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_during_rewind_backoff_leaves_no_partition_paused() {
    rebalance_during_rewind_backoff(Some("range")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cooperative_rebalance_during_rewind_backoff_leaves_no_partition_paused() {
    rebalance_during_rewind_backoff(None).await;
}

/// `strategy`: librdkafka's `partition.assignment.strategy`, `None` for Landfall's default.
async fn rebalance_during_rewind_backoff(strategy: Option<&str>) {
    let _lab = lab_alone();
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let topic = unique("backoff-rebalance");
    create_topic(&topic, 4).await;
    let table = format!("/landing-test/{topic}");
    let mut yaml = PipelineYaml::kafka(&topic.replace('-', "_"), &topic).roll_max_age("1s").sink_hdfs(&table);
    if let Some(strategy) = strategy {
        yaml = yaml.kafka_options(&[("partition.assignment.strategy", strategy)]);
    }
    let (_dir, pipeline) = yaml.file();
    let n = 40_000u64;
    let (msgs, counts) = round_robin_events(n, 4);
    let quarter = (n / 4) as usize;
    let logdir = tempfile::tempdir().unwrap();
    let (a_log, b_log) = (logdir.path().join("a.log"), logdir.path().join("b.log"));
    let mut a = spawn_daemon(&pipeline, &a_log);
    let log_of = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(wait_for_matching(&a_log, is_partition_ready, 4, Duration::from_secs(60)), 4, "{}", log_of(&a_log));
    // The DataNode goes before anything is published, so a rewind resumes from an empty commit
    // log (a NameNode listing) and each partition goes round its backoff while the DataNode is
    // down. After a publish, builds before c6ce75a read the newest manifest inside the rewind,
    // from the DataNode, retrying until it is back: their whole consume loop blocked at the
    // first rewind (one partition rewound, no backoff for a rebalance to meet).
    let datanode = Killed::kill("datanode");
    produce(&topic, msgs[..2 * quarter].to_vec()).await;
    let rewinds = wait_for_matching(&a_log, is_rewind, 2, Duration::from_secs(60));
    assert!(rewinds >= 2, "commits must fail and rewind while the DataNode is down:\n{}", log_of(&a_log));

    // A second member joins and leaves while the partitions are in backoff.
    let assigned_before = log_of(&a_log).matches("partition assigned").count();
    let mut b = landfall()
        .arg("run")
        .arg(&pipeline)
        .env("LANDFALL_LOG_LEVEL", "info")
        .env("LANDFALL_SHUTDOWN_DEADLINE", "5s")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&b_log).unwrap())
        .spawn()
        .unwrap();
    assert!(wait_for_lines(&b_log, "partition assigned", 1, Duration::from_secs(60)) >= 1, "{}", log_of(&b_log));
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(&b, SIGTERM);
    let b_status = b.wait().unwrap();
    assert!(b_status.success(), "the second member stops cleanly: {b_status}\n{}", log_of(&b_log));
    // Eager: all 4 come back; cooperative: the ones the second member held.
    let moved = if strategy.is_some() { 4 } else { log_of(&b_log).matches("partition assigned").count() };
    let back = wait_for_lines(&a_log, "partition assigned", assigned_before + moved, Duration::from_secs(60));
    assert!(back >= assigned_before + moved, "the first member takes the {moved} partitions back:\n{}", log_of(&a_log));

    drop(datanode);
    produce(&topic, msgs[2 * quarter..].to_vec()).await;
    // Landed by the running member: a partition left paused would never get there.
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        let ranges = published_ranges(&table).await;
        let landed: BTreeMap<i32, i64> =
            ranges.iter().map(|(p, r)| (*p, r.last().map_or(0, |(_, end)| end + 1))).collect();
        if landed == counts {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = a.kill();
            panic!("partitions stalled: landed up to {landed:?} of {counts:?}; log:\n{}", log_of(&a_log));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(a.try_wait().unwrap().is_none(), "the first member kept running:\n{}", log_of(&a_log));
    signal(&a, SIGTERM);
    assert!(a.wait().unwrap().success(), "{}", log_of(&a_log));
    let v = spark_verify(&format!("{HDFS_URL}{table}"), &[]);
    assert_eq!(v["count"], n, "{v}");
    assert_eq!(v["distinct_ids"], n, "{v}");
    assert_tiles(&published_ranges(&table).await, &counts);
}
