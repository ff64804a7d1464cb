//! Watching the daemon run, on the real lab: the counters of `/metrics` match what landed,
//! `/ready` names a pipeline whose NameNode is gone within seconds and recovers with it, and
//! one broken pipeline does not stop the others in the same daemon.
//! The test that kills the NameNode, and the one that puts HDFS in safe mode, have the lab
//! alone (`lab_alone`); the others share it.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

/// Polls `what` every 250 ms until it returns `Some`, failing after `limit` with `context()`.
fn wait_for<T>(limit: Duration, mut what: impl FnMut() -> Option<T>, context: impl Fn() -> String) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(v) = what() {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {}", context());
        std::thread::sleep(Duration::from_millis(250));
    }
}

struct Daemon {
    child: DaemonChild,
    log: std::path::PathBuf,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(pipelines: &std::path::Path) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("landfall.log");
        let child = spawn_daemon(pipelines, &log);
        let addr = http_addr(&log);
        Daemon { child, log, addr, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        http_get(self.addr, "/metrics").1
    }

    /// SIGTERM and wait; exit 0 expected.
    fn stop(mut self) -> String {
        signal(&self.child, SIGTERM);
        let status = self.child.wait().unwrap();
        let log = self.log();
        assert!(status.success(), "exit 0 after SIGTERM: {status}\n{log}");
        log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The acceptance test of the operability issue: 20,000 good and 100 poison events; the
/// metrics say exactly that, lag reaches 0; `/ready` turns 503 naming the pipeline within 30 s
/// of the NameNode's death and 200 within 60 s of its start; the table is exact.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_exactly_and_ready_follows_the_namenode() {
    let _lab = lab_alone(); // kills the NameNode
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let topic = unique("observe");
    create_topic(&topic, 4).await;
    let name = topic.replace('-', "_");
    let table = format!("/landing-test/{topic}");
    let (_p, pipeline) = PipelineYaml::kafka(&name, &topic).roll_max_age("1s").sink_hdfs(&table).file();
    let (good, poison) = (20_000u64, 100u64);
    let mut msgs: Vec<(i32, Vec<u8>)> = (0..good).map(|i| ((i % 4) as i32, event(i, good).into_bytes())).collect();
    for i in 0..poison {
        msgs.insert((i * 199) as usize, ((i % 4) as i32, format!("{{\"id\": \"poison-{i}\", ").into_bytes()));
    }
    let daemon = Daemon::start(&pipeline);
    produce(&topic, msgs).await;

    let value = |text: &str, metric_name: &str, labels: &[&str]| metric(text, metric_name, &name, labels);
    let (text, took) = wait_for(
        Duration::from_secs(120),
        || {
            let text = daemon.metrics();
            let landed = value(&text, "landfall_events_landed_total", &[])?;
            let lag = value(&text, "landfall_consumer_lag_events", &[])?;
            (landed == good as f64 && lag == 0.0).then_some(text)
        },
        || format!("landed and lag 0\n{}\n{}", daemon.metrics(), daemon.log()),
    );
    eprintln!("landed {good} with lag 0 after {took:?}");
    assert_eq!(value(&text, "landfall_events_rejected_total", &[]), Some(poison as f64), "{text}");
    assert_eq!(value(&text, "landfall_events_rejected_total", &["reason=\"invalid_json\""]), Some(poison as f64));
    assert_eq!(value(&text, "landfall_events_received_total", &[]), Some((good + poison) as f64));
    assert_eq!(value(&text, "landfall_events_duplicate_total", &[]), Some(0.0));
    assert_eq!(value(&text, "landfall_pipeline_up", &[]), Some(1.0));
    assert!(value(&text, "landfall_files_published_total", &[]).unwrap() >= 5.0, "data and quarantine files");
    assert!(value(&text, "landfall_bytes_landed_total", &[]).unwrap() > 100_000.0);
    assert!(value(&text, "landfall_commit_duration_seconds_count", &[]).unwrap() >= 1.0);
    assert!(text.contains("process_resident_memory_bytes"), "process metrics");
    for p in 0..4 {
        let part = format!("partition=\"{p}\"");
        assert_eq!(value(&text, "landfall_consumer_lag_events", &[&part]), Some(0.0), "lag of partition {p}");
    }
    assert_eq!(http_get(daemon.addr, "/ready").0, 200, "{}", daemon.log());
    assert_eq!(http_get(daemon.addr, "/health").0, 200);

    lab(&["kill", "namenode"]);
    let killed = Instant::now();
    let (body, took) = wait_for(
        Duration::from_secs(30),
        || {
            let (code, body) = http_get(daemon.addr, "/ready");
            (code == 503).then_some(body)
        },
        || format!("/ready 503 after the NameNode was killed\n{}", daemon.log()),
    );
    eprintln!("/ready 503 {took:?} after the kill: {body}");
    assert!(body.contains(&name) && body.contains("store:"), "names the pipeline and the store: {body}");
    assert_eq!(value(&daemon.metrics(), "landfall_pipeline_up", &[]), Some(0.0));
    // The NameNode comes back (the lab waits until it is healthy), the daemon follows.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(killed.elapsed()));
    lab(&["start", "namenode"]);
    let (_, took) = wait_for(
        Duration::from_secs(60),
        || (http_get(daemon.addr, "/ready").0 == 200).then_some(()),
        || format!("/ready 200 after the NameNode started\n{}", http_get(daemon.addr, "/ready").1),
    );
    eprintln!("/ready 200 {took:?} after the NameNode was up again");
    let text = daemon.metrics();
    assert!(value(&text, "landfall_errors_total", &["kind=\"store\""]).unwrap() >= 1.0, "{text}");
    let status: serde_json::Value = serde_json::from_str(&http_get(daemon.addr, "/api/status").1).unwrap();
    let errors = status["pipelines"][0]["recent_errors"].as_array().unwrap().clone();
    assert!(errors.iter().any(|e| e["kind"] == "store"), "the outage is listed: {errors:?}");

    daemon.stop();
    let v = spark_verify(&format!("{HDFS_URL}{table}"), &[]);
    assert_eq!(v["count"], good, "the table is exact");
    assert_eq!(v["distinct_ids"], good);
}

/// Three pipelines in one daemon: Kafka, a RabbitMQ queue, and one whose queue does not exist.
/// The broken one is reported (`/ready` names it, its errors count, it is retried) while the
/// other two land exactly.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_pipeline_is_reported_while_the_others_land() {
    let _kafka = require_kafka();
    let _rabbitmq = require_rabbitmq();
    let _hdfs = require_hdfs();
    let topic = unique("iso-k");
    create_topic(&topic, 2).await;
    let queue = unique("iso-q");
    declare_queue(&queue, "quorum").await;
    let missing = unique("iso-missing");
    let dir = tempfile::tempdir().unwrap();
    let (kname, qname, bname) = (topic.replace('-', "_"), queue.replace('-', "_"), missing.replace('-', "_"));
    let write = |file: &str, yaml: String| std::fs::write(dir.path().join(file), yaml).unwrap();
    write(
        "kafka.yaml",
        PipelineYaml::kafka(&kname, &topic).roll_max_age("1s").sink_hdfs(&format!("/landing-test/{topic}")).build(),
    );
    write(
        "queue.yaml",
        PipelineYaml::rabbitmq(&qname, &queue, "quorum")
            .roll_max_age("1s")
            .sink_hdfs(&format!("/landing-test/{queue}"))
            .build(),
    );
    write(
        "broken.yaml",
        PipelineYaml::rabbitmq(&bname, &missing, "quorum")
            .roll_max_age("1s")
            .sink_hdfs(&format!("/landing-test/{missing}"))
            .build(),
    );
    let n = 3_000u64;
    let daemon = Daemon::start(dir.path());
    produce(&topic, (0..n).map(|i| ((i % 2) as i32, event(i, n).into_bytes()))).await;
    publish_confirmed(&queue, (0..n).map(|i| (Some(format!("m-{i}")), event(i, n).into_bytes()))).await;

    let (text, _) = wait_for(
        Duration::from_secs(120),
        || {
            let text = daemon.metrics();
            let k = metric(&text, "landfall_events_landed_total", &kname, &[])?;
            let q = metric(&text, "landfall_events_landed_total", &qname, &[])?;
            (k == n as f64 && q == n as f64).then_some(text)
        },
        || format!("both healthy pipelines land {n}\n{}\n{}", daemon.metrics(), daemon.log()),
    );
    assert_eq!(metric(&text, "landfall_pipeline_up", &bname, &[]), Some(0.0), "{text}");
    assert_eq!(metric(&text, "landfall_pipeline_up", &kname, &[]), Some(1.0), "{text}");
    assert!(metric(&text, "landfall_errors_total", &bname, &[]).unwrap() >= 1.0, "{text}");
    let (code, body) = http_get(daemon.addr, "/ready");
    assert_eq!(code, 503);
    assert!(body.contains(&bname) && body.contains(&missing), "names the broken pipeline and its queue: {body}");
    assert!(!body.contains(&kname) && !body.contains(&qname), "only the broken one: {body}");
    let log = daemon.stop();
    assert!(log.matches(&missing).count() < 20, "named a few times, not in a tight loop:\n{log}");

    let k = spark_verify(&format!("{HDFS_URL}/landing-test/{topic}"), &[]);
    let q = spark_verify(&format!("{HDFS_URL}/landing-test/{queue}"), &[]);
    assert_eq!((k["count"].as_u64(), k["distinct_ids"].as_u64()), (Some(n), Some(n)));
    assert_eq!((q["count"].as_u64(), q["distinct_ids"].as_u64()), (Some(n), Some(n)));
}

/// `log_format: json` writes one JSON object per line, each event with its pipeline as a field,
/// and a log that is not a terminal has no colour codes. Needs no lab: the pipeline's broker is
/// a closed port, which the daemon reports and retries.
#[test]
fn json_logs_are_one_object_per_line_without_colour_codes() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let yaml = PipelineYaml::rabbitmq("nobroker", "q", "quorum")
        .rabbitmq_uri(&format!("amqp://guest:guest@{closed}/%2f"))
        .sink_local(&table)
        .build();
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(&pipeline, yaml).unwrap();
    let log = dir.path().join("landfall.log");
    let mut child = landfall()
        .args(["run"])
        .arg(&pipeline)
        .env("LANDFALL_LOG_FORMAT", "json")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = http_addr(&log);
    let (_, waited) = wait_for(
        Duration::from_secs(30),
        || std::fs::read_to_string(&log).ok().filter(|t| t.contains("reconnecting")),
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    let (code, body) = http_get(addr, "/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("nobroker") && body.contains(&closed.to_string()), "names the broker: {body}");
    signal(&child, SIGTERM);
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "no ANSI escapes in a file:\n{text}");
    let mut with_pipeline = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        if v["fields"]["pipeline"] == "nobroker" {
            with_pipeline += 1;
        }
    }
    assert!(with_pipeline >= 1, "the reconnect line names its pipeline (after {waited:?}):\n{text}");
}

/// Issue 10 item 11, errors that need a person: an HDFS space quota is exhausted while data
/// arrives. The daemon neither dies nor spins: `/ready` names the pipeline and the quota within
/// a minute, the cause is logged a few times (capped backoff), and once the quota is lifted
/// everything lands, exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_hdfs_quota_is_reported_and_lands_exactly_once_lifted() {
    needs_a_person(Fault {
        // Not "quota": the log lines naming the cause are counted, and every line names the topic.
        prefix: "space",
        user: None,
        inject: Box::new(|table| Box::new(Quota::exhaust(table))),
        cause: "quota",
        check: Box::new(|table| vec!["hdfs dfs -count -q".to_string(), table.to_string()]),
    })
    .await;
}

/// Issue 10 item 11: the table's `_landfall/` directory is not writable for the HDFS user the
/// pipeline acts as (`sink.hdfs.user`; the tests' own user is the lab's HDFS superuser, whom
/// the NameNode never checks). The NameNode's `AccessControlException` is named by `/ready`
/// with the user, the path and the permission to check; the pipeline is not restarted but its
/// partitions retry with the capped rewind backoff; once the permission is back everything
/// lands, exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_permission_denied_by_hdfs_is_reported_and_lands_exactly_once_granted() {
    let user = "landfall-item11";
    needs_a_person(Fault {
        prefix: "perm",
        user: Some(user),
        inject: Box::new(|table| Box::new(ReadOnly::make(&format!("{table}/_landfall")))),
        cause: "Permission denied",
        check: Box::new(move |table| vec![format!("user={user}"), format!("{table}/_landfall"), "WRITE".to_string()]),
    })
    .await;
}

/// Issue 10 item 11: the NameNode enters safe mode and stays there (an operator's
/// `dfsadmin -safemode enter`, or a NameNode short of blocks). Reads still work, every write is
/// refused. `/ready` names safe mode and the command that ends it, the partitions retry with
/// the capped backoff, and once safe mode is left everything lands, exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_safe_mode_that_does_not_end_is_reported_and_lands_exactly_once_left() {
    let _lab = lab_alone(); // safe mode refuses every write, every table's
    needs_a_person(Fault {
        prefix: "safemode",
        user: None,
        inject: Box::new(|_| Box::new(SafeMode::enter())),
        cause: "safe mode",
        check: Box::new(|_| vec!["-safemode".to_string()]),
    })
    .await;
}

/// Causes a fault on the table at the given path; dropping what it returns ends the fault.
type Inject = Box<dyn FnOnce(&str) -> Box<dyn std::any::Any>>;

/// For the table at the given path, what `/ready` must say to check.
type Check = Box<dyn Fn(&str) -> Vec<String>>;

/// A fault of the store that only a person can end, for [`needs_a_person`].
struct Fault {
    /// Names the topic and the table (so it must not contain `cause`).
    prefix: &'static str,
    /// `sink.hdfs.user`; with one, the table is created for that user before the daemon starts.
    user: Option<&'static str>,
    /// Causes the fault on the table; dropping what it returns ends it (also when the test fails).
    inject: Inject,
    /// How `/ready` and the log name the cause (case-insensitive).
    cause: &'static str,
    /// What `/ready` must also say for the table: what to check.
    check: Check,
}

/// The shape of issue 10 item 11 ("errors that need a person"), on the lab: half the events
/// land; the fault starts and the other half arrives. Within 45 s `/ready` turns 503 naming the
/// pipeline, the cause and what to check. For 20 s the daemon stays up, the pipeline is not
/// restarted, its partitions retry a bounded number of times (capped backoff), and the log names
/// the cause a few times, not once per retry. Once the fault ends, everything lands within 90 s,
/// `/ready` turns 200, and Spark counts each event once.
async fn needs_a_person(fault: Fault) {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let topic = unique(fault.prefix);
    create_topic(&topic, 2).await;
    let name = topic.replace('-', "_");
    let table = format!("/landing-test/{topic}");
    let mut yaml = PipelineYaml::kafka(&name, &topic).roll_max_age("1s").sink_hdfs(&table);
    if let Some(user) = fault.user {
        yaml = yaml.sink_hdfs_user(user);
        lab(&["hdfs", "dfs", "-mkdir", "-p", &table]);
        lab(&["hdfs", "dfs", "-chown", user, &table]);
    }
    let (_p, pipeline) = yaml.file();
    let n = 2_000u64;
    let half = (n / 2) as usize;
    let msgs: Vec<(i32, Vec<u8>)> = (0..n).map(|i| ((i % 2) as i32, event(i, n).into_bytes())).collect();
    let mut daemon = Daemon::start(&pipeline);
    produce(&topic, msgs[..half].to_vec()).await;
    let value = |daemon: &Daemon, metric_name: &str| metric(&daemon.metrics(), metric_name, &name, &[]);
    let landed =
        |daemon: &Daemon, want: u64| (value(daemon, "landfall_events_landed_total") == Some(want as f64)).then_some(());
    wait_for(Duration::from_secs(60), || landed(&daemon, half as u64), || daemon.log());

    let rewinds_before_fault = value(&daemon, "landfall_commit_rewinds_total").unwrap_or(0.0);
    let guard = (fault.inject)(&table);
    let log_before = daemon.log().len();
    let cause = fault.cause.to_ascii_lowercase();
    let naming = |daemon: &Daemon| {
        daemon.log()[log_before..].lines().filter(|l| l.to_ascii_lowercase().contains(&cause)).count()
    };
    produce(&topic, msgs[half..].to_vec()).await;
    // A refusal is reported at the first write (about a second); safe mode is reported once the
    // create of a staged file stops retrying in place (10 s plus the last backoff).
    let (body, took) = wait_for(
        Duration::from_secs(45),
        || {
            let (code, body) = http_get(daemon.addr, "/ready");
            (code == 503 && body.to_ascii_lowercase().contains(&cause)).then_some(body)
        },
        || format!("/ready names {:?}\n{}\n{}", fault.cause, http_get(daemon.addr, "/ready").1, daemon.log()),
    );
    eprintln!("/ready 503 {took:?} after the fault: {body}");
    assert!(body.contains(&name), "names the pipeline: {body}");
    for what in (fault.check)(&table) {
        assert!(body.contains(&what), "says what to check ({what}): {body}");
    }
    // Counted from the fault on: a safe mode rewinds only after its create retried in place for
    // 10 s, so its second rewind may come more than 20 s after /ready said so (seen in CI: 0).
    let rewinds = |daemon: &Daemon| value(daemon, "landfall_commit_rewinds_total").unwrap_or(0.0);
    std::thread::sleep(Duration::from_secs(20));
    let during = rewinds(&daemon) - rewinds_before_fault;
    let lines = naming(&daemon);
    eprintln!("in {took:?} + 20 s: {during} rewinds; {lines} log lines name {:?} since the fault began", fault.cause);
    assert!(daemon.child.try_wait().unwrap().is_none(), "the daemon stays up\n{}", daemon.log());
    assert_eq!(value(&daemon, "landfall_pipeline_restarts_total"), Some(0.0), "not restarted\n{}", daemon.log());
    assert!(lines <= 3, "{lines} log lines name the cause: once per cause, not per retry\n{}", daemon.log());
    // Two partitions, each retrying after 1 s doubling to 60 s: at most six attempts each in the
    // at most 45 s + 20 s since the fault.
    assert!((1.0..=14.0).contains(&during), "{during} rewinds in 20 s: retried, not a tight loop?\n{}", daemon.log());
    assert!(value(&daemon, "landfall_events_landed_total") < Some(n as f64), "nothing landed meanwhile");

    drop(guard);
    let (_, took) = wait_for(Duration::from_secs(90), || landed(&daemon, n), || format!("all land\n{}", daemon.log()));
    eprintln!("all {n} landed {took:?} after the fault ended");
    wait_for(
        Duration::from_secs(30),
        || (http_get(daemon.addr, "/ready").0 == 200).then_some(()),
        || http_get(daemon.addr, "/ready").1,
    );
    daemon.stop();
    let v = spark_verify(&format!("{HDFS_URL}{table}"), &[]);
    assert_eq!(v["count"], n, "exact");
    assert_eq!(v["distinct_ids"], n);
}
