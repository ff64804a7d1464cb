//! Shared harness for the integration tests: addresses of the lab services, loud failures when
//! one is missing, unique names per test, and Spark through the lab's pyspark.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub const KAFKA: &str = "127.0.0.1:9092";
pub const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const HDFS_URL: &str = "hdfs://127.0.0.1:9000";

/// Fails the test (never skips) when a lab service is not listening, naming it and the fix.
pub fn require(service: &str, addr: &str) {
    let sock: SocketAddr = addr.parse().expect("lab address");
    if TcpStream::connect_timeout(&sock, Duration::from_secs(3)).is_err() {
        panic!(
            "{service} is not reachable at {addr}: start the lab with `./bootstrap.sh` \
             and check `./bootstrap.sh status`"
        );
    }
}

pub fn require_kafka() {
    require("Kafka", KAFKA);
}
pub fn require_rabbitmq() {
    require("RabbitMQ", "127.0.0.1:5672");
}
pub fn require_hdfs() {
    require("HDFS NameNode", "127.0.0.1:9000");
    require("HDFS DataNode", "127.0.0.1:9866");
}

/// A name no other test run uses: `prefix-<pid>-<random>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lab directory (`.lab/` unless LANDFALL_LAB says otherwise).
pub fn lab_dir() -> PathBuf {
    std::env::var_os("LANDFALL_LAB").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".lab"))
}

/// Runs a Python script with the lab's pyspark (Spark in local mode, lab HDFS as default FS)
/// and returns its stdout. Panics with Spark's stderr when the script fails.
pub fn run_spark(script: &str, args: &[&str]) -> String {
    let python = lab_dir().join("bin/lab-python");
    assert!(
        python.exists(),
        "Spark is not installed at {}: run `./bootstrap.sh` first",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo_root().join("tests/spark").join(script))
        .args(args)
        .output()
        .expect("start the lab's python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "Spark script {script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

// ---- Kafka ------------------------------------------------------------------------------------

/// Creates a topic with `partitions` partitions (fails the test if Kafka refuses).
pub async fn create_topic(topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    require_kafka();
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", KAFKA).create().unwrap();
    let res = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("Kafka admin request");
    assert!(res[0].is_ok(), "create topic {topic}: {:?}", res[0]);
}

/// Produces every `(partition, payload)` and waits until Kafka acknowledged all of them.
pub async fn produce(topic: &str, messages: impl IntoIterator<Item = (i32, Vec<u8>)>) -> usize {
    use futures::StreamExt;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", KAFKA)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut n = 0;
    for (partition, payload) in messages {
        loop {
            // send_result enqueues synchronously, so the payload need not outlive the call.
            let record = FutureRecord::<(), _>::to(topic).partition(partition).payload(&payload);
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((e, _)) => {
                    assert!(
                        matches!(e, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)),
                        "produce to {topic}: {e}"
                    );
                    if let Some(r) = pending.next().await {
                        r.expect("delivery report").expect("Kafka acknowledges the message");
                    }
                }
            }
        }
        n += 1;
    }
    while let Some(r) = pending.next().await {
        r.expect("delivery report").expect("Kafka acknowledges the message");
    }
    n
}

/// Start of the event-time range of generated events: 2026-11-25T14:00:00Z, in micros.
pub const BASE_TS_MICROS: i64 = 1_795_615_200_000_000;

/// Event `i` of `n`: unique id, ts spread over 3.5 hours from BASE_TS (so ≥ 4 hour partitions),
/// an exact decimal, a list and a struct. Deterministic, so tests can compute expected values.
pub fn event(i: u64, n: u64) -> String {
    let ts_micros = BASE_TS_MICROS + (i as i128 * 12_600_000_000 / n.max(1) as i128) as i64;
    let secs = ts_micros.div_euclid(1_000_000);
    let ts = chrono::DateTime::from_timestamp(secs, (ts_micros.rem_euclid(1_000_000) * 1000) as u32).unwrap();
    // Alternate between RFC 3339 with an offset and epoch milliseconds.
    let ts_json = if i % 2 == 0 {
        format!("\"{}\"", ts.with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap()).to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
    } else {
        (ts_micros / 1000).to_string()
    };
    format!(
        r#"{{"id":"evt-{i:09}","user_id":{},"amount":"{}.{:02}","ts":{ts_json},"tags":["t{}","x"],"geo":{{"lat":{}.25,"lon":-{}.5}},"extra":"ignored"}}"#,
        i * 7,
        i % 100_000,
        i % 100,
        i % 5,
        i % 90,
        i % 180
    )
}

/// The hour partition path (`dt=…/hour=…`) of event `i` of `n`.
pub fn event_partition(i: u64, n: u64) -> String {
    let ts_micros = BASE_TS_MICROS + (i as i128 * 12_600_000_000 / n.max(1) as i128) as i64;
    let ts = chrono::DateTime::from_timestamp(ts_micros.div_euclid(1_000_000), 0).unwrap();
    ts.format("dt=%Y-%m-%d/hour=%H").to_string()
}

// ---- Landfall ---------------------------------------------------------------------------------

/// The pipeline file the tests run: the README's clicks pipeline on a unique topic and table.
pub fn pipeline_yaml(name: &str, topic: &str, sink: &str, roll_max_age: &str) -> String {
    format!(
        r#"name: {name}
source:
  kafka:
    brokers: ["{KAFKA}"]
    topics: ["{topic}"]
    group: {name}
    start: earliest
    options: {{}}
decode:
  json:
    schema:
      - {{ name: id,      type: string, required: true }}
      - {{ name: user_id, type: int64 }}
      - {{ name: amount,  type: "decimal(12,2)" }}
      - {{ name: ts,      type: timestamp, required: true }}
      - {{ name: tags,    type: "list<string>" }}
      - {{ name: geo,     type: "struct<lat: float64, lon: float64>" }}
partition:
  path: "dt={{ts:%Y-%m-%d}}/hour={{ts:%H}}"
  timezone: UTC
roll:
  max_rows: 1000000
  max_bytes: 128MiB
  max_age: {roll_max_age}
parquet:
  compression: zstd
sink:
{sink}
"#
    )
}

/// `sink:` body for a table on the lab HDFS.
pub fn hdfs_sink(path: &str) -> String {
    format!("  hdfs:\n    url: {HDFS_URL}\n    path: {path}\n")
}

/// A command running the built `landfall` binary with the repo's daemon settings.
pub fn landfall() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_landfall"));
    cmd.current_dir(repo_root()).arg("--config").arg(repo_root().join("config/landfall.yaml"));
    cmd
}

/// `landfall run --until-caught-up PIPELINE`; fails the test unless it exits 0. Returns stdout
/// (the summary line).
pub fn run_until_caught_up(pipeline: &std::path::Path) -> String {
    let out = landfall().arg("run").arg("--until-caught-up").arg(pipeline).output().expect("start landfall");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "landfall run --until-caught-up failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The daemon (`landfall run PIPELINE`) in the background, logging to `log` (appended).
pub fn spawn_daemon(pipeline: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    landfall()
        .arg("run")
        .arg(pipeline)
        .env("LANDFALL_LOG_LEVEL", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start landfall")
}

pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;
pub const SIGTERM: i32 = 15;

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Sends `sig` to a child process (fails the test if it cannot).
pub fn signal(child: &std::process::Child, sig: i32) {
    let rc = unsafe { libc_kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "signal {sig} to pid {}", child.id());
}

/// Writes `yaml` to a fresh temp dir and returns (dir guard, file path).
pub fn pipeline_file(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

/// Spark's view of a table (see tests/spark/verify_table.py).
pub fn spark_verify(table_url: &str, ids: &[&str]) -> serde_json::Value {
    let mut args = vec![table_url];
    args.extend_from_slice(ids);
    let out = run_spark("verify_table.py", &args);
    let line = out.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no RESULT in Spark output:\n{out}"));
    serde_json::from_str(line).unwrap()
}

/// Paths of every published data file under `dir` (recursive, skipping `_`/`.` names), via
/// hdfs-native, and the offset ranges encoded in their names, per partition.
pub async fn published_ranges(dir: &str) -> std::collections::BTreeMap<i32, Vec<(i64, i64)>> {
    let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
    let mut ranges: std::collections::BTreeMap<i32, std::collections::BTreeSet<(i64, i64)>> = Default::default();
    let mut stack = vec![dir.to_string()];
    while let Some(d) = stack.pop() {
        for st in client.list_status(&d, false).await.unwrap() {
            let name = st.path.rsplit('/').next().unwrap().to_string();
            if st.isdir {
                if !name.starts_with('_') && !name.starts_with('.') || name == "_rejected" {
                    stack.push(st.path.clone());
                }
                continue;
            }
            // part-<topic>-<partition>-<start>-<end>-<n>.<codec>.parquet
            let stem = name.trim_start_matches("part-");
            let fields: Vec<&str> = stem.rsplitn(4, '-').collect();
            let (n_codec, end, start, rest) = (fields[0], fields[1], fields[2], fields[3]);
            let _ = n_codec;
            let partition: i32 = rest.rsplit('-').next().unwrap().parse().unwrap();
            ranges.entry(partition).or_default().insert((start.parse().unwrap(), end.parse().unwrap()));
        }
    }
    ranges.into_iter().map(|(p, s)| (p, s.into_iter().collect())).collect()
}

/// Asserts the ranges of each partition tile 0..count exactly: no gap, no overlap.
pub fn assert_tiles(ranges: &std::collections::BTreeMap<i32, Vec<(i64, i64)>>, counts: &std::collections::BTreeMap<i32, i64>) {
    for (p, count) in counts {
        let r = ranges.get(p).unwrap_or_else(|| panic!("no files for partition {p}"));
        let mut next = 0;
        for (start, end) in r {
            assert_eq!(*start, next, "partition {p}: range {start}..={end} does not start at {next} (gap or overlap); ranges {r:?}");
            next = end + 1;
        }
        assert_eq!(next, *count, "partition {p}: ranges end at {next}, expected {count}; ranges {r:?}");
    }
}

// ---- RabbitMQ ---------------------------------------------------------------------------------

/// A connection and channel to the lab broker (fails the test if it is down).
pub async fn amqp_channel() -> (lapin::Connection, lapin::Channel) {
    require_rabbitmq();
    let conn = lapin::Connection::connect(AMQP_URI, lapin::ConnectionProperties::default()).await.expect("connect to RabbitMQ");
    let ch = conn.create_channel().await.expect("open a channel");
    (conn, ch)
}

/// Declares a durable queue of `kind` (`quorum`, `classic` or `stream`).
pub async fn declare_queue(queue: &str, kind: &str) {
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let (conn, ch) = amqp_channel().await;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from(kind)));
    let options = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(queue.into(), options, args).await.expect("declare the queue");
    let _ = conn.close(200, "done".into()).await;
}

/// Messages ready in `queue` (passive declare).
pub async fn queue_ready(queue: &str) -> u32 {
    let (conn, ch) = amqp_channel().await;
    let options = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let q = ch.queue_declare(queue.into(), options, lapin::types::FieldTable::default()).await.expect("queue exists");
    let _ = conn.close(200, "done".into()).await;
    q.message_count()
}

/// Publishes persistent messages (with `message_id` when given) to `queue` through the
/// default exchange and waits until the broker confirmed every one.
pub async fn publish_confirmed(queue: &str, messages: impl IntoIterator<Item = (Option<String>, Vec<u8>)>) -> usize {
    use futures::StreamExt;
    let (conn, ch) = amqp_channel().await;
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default()).await.expect("confirm.select");
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut n = 0;
    let check = |c: Result<lapin::Confirmation, lapin::Error>| {
        assert!(matches!(c.expect("publisher confirm"), lapin::Confirmation::Ack(None)), "the broker confirms every message");
    };
    for (id, payload) in messages {
        let mut props = lapin::BasicProperties::default().with_delivery_mode(2);
        if let Some(id) = id {
            props = props.with_message_id(id.into());
        }
        let confirm = ch
            .basic_publish("".into(), queue.into(), lapin::options::BasicPublishOptions::default(), &payload, props)
            .await
            .expect("publish");
        pending.push(confirm);
        n += 1;
        while pending.len() >= 2000 {
            check(pending.next().await.unwrap());
        }
    }
    while let Some(c) = pending.next().await {
        check(c);
    }
    let _ = conn.close(200, "done".into()).await;
    n
}

/// The clicks pipeline (same schema and partitioning as [`pipeline_yaml`]) on a RabbitMQ queue.
pub fn rabbitmq_pipeline_yaml(name: &str, queue: &str, queue_type: &str, sink: &str, roll_max_age: &str) -> String {
    pipeline_yaml(name, "unused", sink, roll_max_age).replace(
        &format!("  kafka:\n    brokers: [\"{KAFKA}\"]\n    topics: [\"unused\"]\n    group: {name}\n    start: earliest\n    options: {{}}\n"),
        &format!("  rabbitmq:\n    uri: {AMQP_URI}\n    queue: {queue}\n    queue_type: {queue_type}\n    prefetch: 20000\n"),
    )
}
