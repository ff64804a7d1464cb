//! Shared harness for the integration tests: addresses of the lab services, loud failures when
//! one is missing, unique names per test, and Spark through the lab's pyspark.
#![allow(dead_code)] // each test binary uses a different part of the harness

mod browser;
mod lab;
mod turn;
#[allow(unused_imports)] // only the status page's tests drive a browser
pub use browser::*;
#[allow(unused_imports)] // not every test binary injects faults
pub use lab::*;
pub use turn::*;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

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

/// Kafka, with a shared turn on the lab (`turn.rs`): hold it for the whole test.
pub fn require_kafka() -> LabTurn {
    let turn = lab_shared();
    require("Kafka", KAFKA);
    turn
}
/// RabbitMQ, with a shared turn on the lab: hold it for the whole test.
pub fn require_rabbitmq() -> LabTurn {
    let turn = lab_shared();
    require("RabbitMQ", "127.0.0.1:5672");
    turn
}
/// HDFS, with a shared turn on the lab: hold it for the whole test.
pub fn require_hdfs() -> LabTurn {
    let turn = lab_shared();
    require("HDFS NameNode", "127.0.0.1:9000");
    require("HDFS DataNode", "127.0.0.1:9866");
    turn
}
pub const HIVE_METASTORE: &str = "thrift://127.0.0.1:9083";
/// The Hive Metastore, with a shared turn on the lab: hold it for the whole test.
pub fn require_hive_metastore() -> LabTurn {
    let turn = lab_shared();
    require("Hive Metastore", "127.0.0.1:9083");
    turn
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
    assert!(python.exists(), "Spark is not installed at {}: run `./bootstrap.sh` first", python.display());
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
    require("Kafka", KAFKA);
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", KAFKA).create().unwrap();
    let res = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("Kafka admin request");
    assert!(res[0].is_ok(), "create topic {topic}: {:?}", res[0]);
}

/// Produces every `(partition, payload)` and waits until Kafka acknowledged all of them.
///
/// A message whose delivery times out may or may not be in the log (the idempotent producer
/// cannot say), so it is not sent again blindly, which would double it in the input: the
/// partitions are read back and only the copies missing from them are sent, by a fresh
/// producer. Seen in the fault matrix (broker-hung, seed 6277): a producer started while the
/// broker was frozen never delivered after the thaw and timed out 300 s later.
pub async fn produce(topic: &str, messages: impl IntoIterator<Item = (i32, Vec<u8>)>) -> usize {
    let messages: Vec<(i32, Vec<u8>)> = messages.into_iter().collect();
    let n = messages.len();
    let mut todo: Vec<usize> = (0..n).collect();
    for attempt in 1..=3 {
        let timed_out = produce_once(topic, &messages, &todo).await;
        if timed_out.is_empty() {
            return n;
        }
        eprintln!("{} messages to {topic} timed out (attempt {attempt}); reading the log back", timed_out.len());
        let failed: std::collections::HashSet<usize> = timed_out.iter().copied().collect();
        let delivered: Vec<usize> = todo.iter().copied().filter(|i| !failed.contains(i)).collect();
        todo = missing_from_log(topic, &messages, &delivered, &timed_out);
        if todo.is_empty() {
            return n;
        }
    }
    panic!("{} messages to {topic} still not delivered after 3 attempts", todo.len());
}

/// Sends `messages[i]` for each `i` in `which`; returns those whose delivery timed out.
async fn produce_once(topic: &str, messages: &[(i32, Vec<u8>)], which: &[usize]) -> Vec<usize> {
    use futures::StreamExt;
    use rdkafka::error::KafkaError;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::types::RDKafkaErrorCode;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", KAFKA)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut timed_out = Vec::new();
    let settle = |(i, r): (
        usize,
        Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
    ),
                  timed_out: &mut Vec<usize>| match r.expect("delivery report") {
        Ok(_) => {}
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut), _)) => timed_out.push(i),
        Err((e, _)) => panic!("produce to {topic}: Kafka refused a message: {e}"),
    };
    for &i in which {
        let (partition, payload) = &messages[i];
        loop {
            // send_result enqueues synchronously, so the payload need not outlive the call.
            let record = FutureRecord::<(), _>::to(topic).partition(*partition).payload(payload);
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(async move { (i, delivery.await) });
                    break;
                }
                Err((e, _)) => {
                    assert!(
                        matches!(e, KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)),
                        "produce to {topic}: {e}"
                    );
                    if let Some(r) = pending.next().await {
                        settle(r, &mut timed_out);
                    }
                }
            }
        }
    }
    while let Some(r) = pending.next().await {
        settle(r, &mut timed_out);
    }
    timed_out
}

/// Of `timed_out`, the messages not in the topic's log: each partition that had a timed-out
/// message is read back to its end, and copies are counted beyond the `delivered` ones of this
/// attempt (exact when a partition's payloads are distinct, as in every test here).
fn missing_from_log(topic: &str, messages: &[(i32, Vec<u8>)], delivered: &[usize], timed_out: &[usize]) -> Vec<usize> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    use std::collections::HashMap;
    let partitions: std::collections::BTreeSet<i32> = timed_out.iter().map(|&i| messages[i].0).collect();
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", KAFKA)
        .set("group.id", format!("landfall-test-readback-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let ours: std::collections::HashSet<(i32, Vec<u8>)> =
        messages.iter().filter(|(p, _)| partitions.contains(p)).cloned().collect();
    let mut in_log: HashMap<(i32, Vec<u8>), i64> = HashMap::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30)).expect("read the watermarks");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Offset(low)).unwrap();
        consumer.assign(&tpl).unwrap();
        let mut next = low;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while next < high {
            assert!(std::time::Instant::now() < deadline, "reading {topic}[{p}] back: stuck at {next} of {high}");
            if let Some(m) = consumer.poll(Duration::from_millis(500)) {
                let m = m.expect("read a message back");
                next = m.offset() + 1;
                let key = (p, m.payload().unwrap_or_default().to_vec());
                if ours.contains(&key) {
                    *in_log.entry(key).or_default() += 1;
                }
            }
        }
    }
    for &i in delivered {
        if let Some(c) = in_log.get_mut(&messages[i]) {
            *c -= 1;
        }
    }
    let mut missing = Vec::new();
    for &i in timed_out {
        match in_log.get_mut(&messages[i]) {
            Some(c) if *c > 0 => *c -= 1,
            _ => missing.push(i),
        }
    }
    missing
}

/// Deletes `topic` and creates it again with `partitions` partitions (deletion is
/// asynchronous: creation is retried until the broker accepts it).
pub async fn recreate_topic(topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", KAFKA).create().unwrap();
    let deleted = admin.delete_topics(&[topic], &AdminOptions::new()).await.expect("Kafka admin request");
    assert!(deleted[0].is_ok(), "delete topic {topic}: {:?}", deleted[0]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let res = admin.create_topics(&[new], &AdminOptions::new()).await.expect("Kafka admin request");
        if res[0].is_ok() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "recreate topic {topic}: {:?}", res[0]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// libfaketime, from Debian's `faketime` package (installed by ./bootstrap.sh).
pub fn libfaketime() -> String {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(std::path::Path::new(lib).exists(), "{lib} is missing: run ./bootstrap.sh up (it installs faketime)");
    lib.to_string()
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
        format!(
            "\"{}\"",
            ts.with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        )
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

/// A typed builder for the pipeline YAML the tests run, so a test states what it changes
/// (`.session_timeout("6s")`, `.roll_max_open_files(4)`) instead of string-replacing YAML.
/// Defaults are the README's clicks pipeline: the schema of [`event`], hourly partitions in
/// UTC, `max_rows: 1000000`, `max_bytes: 128MiB`, `max_age: 60s`, zstd. Every string is written
/// as a JSON string, which YAML reads as a double-quoted scalar, so values need no escaping.
///
/// ```ignore
/// let yaml = PipelineYaml::kafka("clicks_t", &topic).roll_max_age("2s").sink_hdfs(&path).build();
/// ```
#[derive(Debug, Clone)]
pub struct PipelineYaml {
    name: String,
    source: SourceYaml,
    schema: Vec<(String, String, bool)>,
    partition: String,
    timezone: String,
    roll: Vec<(&'static str, String)>,
    compression: String,
    sink: Option<SinkYaml>,
    /// `sink.hive`: (metastore URI, database, table).
    hive: Option<(String, String, String)>,
    /// `sink.hive.compaction.min_files` and `grace`, when compaction is on.
    compaction: Option<(usize, Option<String>)>,
    /// `partition.completion`: (allowed_lateness, idle_timeout).
    completion: Option<(String, String)>,
    /// More `key: value` lines of the source section, after the ones above (values in YAML).
    source_extra: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
enum SourceYaml {
    Kafka { topic: String, group: String, session_timeout: Option<String> },
    Rabbitmq { uri: String, queue: String, queue_type: String, prefetch: u32, tls: Option<RabbitTls> },
}

#[derive(Debug, Clone)]
struct RabbitTls {
    ca_file: String,
    cert_file: String,
    key_file: String,
}

#[derive(Debug, Clone)]
enum SinkYaml {
    Hdfs { url: String, path: String, user: Option<String> },
    Local { path: String },
}

/// A YAML scalar for `s` (a JSON string is a YAML double-quoted scalar).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

impl PipelineYaml {
    fn new(name: &str, source: SourceYaml) -> PipelineYaml {
        let field = |n: &str, t: &str, required: bool| (n.to_string(), t.to_string(), required);
        PipelineYaml {
            name: name.to_string(),
            source,
            schema: vec![
                field("id", "string", true),
                field("user_id", "int64", false),
                field("amount", "decimal(12,2)", false),
                field("ts", "timestamp", true),
                field("tags", "list<string>", false),
                field("geo", "struct<lat: float64, lon: float64>", false),
            ],
            partition: "dt={ts:%Y-%m-%d}/hour={ts:%H}".to_string(),
            timezone: "UTC".to_string(),
            roll: vec![("max_rows", "1000000".into()), ("max_bytes", "128MiB".into()), ("max_age", "60s".into())],
            compression: "zstd".to_string(),
            sink: None,
            hive: None,
            compaction: None,
            completion: None,
            source_extra: Vec::new(),
        }
    }

    /// A Kafka pipeline on `topic` of the lab broker, consumer group `name`, from the earliest offset.
    pub fn kafka(name: &str, topic: &str) -> PipelineYaml {
        PipelineYaml::new(
            name,
            SourceYaml::Kafka { topic: topic.to_string(), group: name.to_string(), session_timeout: None },
        )
    }

    /// A RabbitMQ pipeline on `queue` (`quorum`, `classic` or `stream`) of the lab broker, prefetch 20000.
    pub fn rabbitmq(name: &str, queue: &str, queue_type: &str) -> PipelineYaml {
        PipelineYaml::new(
            name,
            SourceYaml::Rabbitmq {
                uri: AMQP_URI.to_string(),
                queue: queue.to_string(),
                queue_type: queue_type.to_string(),
                prefetch: 20_000,
                tls: None,
            },
        )
    }

    /// Kafka: `session_timeout` (how soon the group evicts a stopped member).
    pub fn session_timeout(mut self, timeout: &str) -> Self {
        match &mut self.source {
            SourceYaml::Kafka { session_timeout, .. } => *session_timeout = Some(timeout.to_string()),
            SourceYaml::Rabbitmq { .. } => panic!("session_timeout is a Kafka setting"),
        }
        self
    }

    /// `on_position_lost` (`fail`, `earliest` or `latest`) of the Kafka or RabbitMQ source.
    pub fn on_position_lost(mut self, policy: &str) -> Self {
        self.source_extra.push(("on_position_lost".into(), q(policy)));
        self
    }

    /// Kafka: librdkafka `options` (e.g. `partition.assignment.strategy`).
    pub fn kafka_options(mut self, options: &[(&str, &str)]) -> Self {
        assert!(matches!(self.source, SourceYaml::Kafka { .. }), "options here are Kafka's");
        let map: Vec<String> = options.iter().map(|(k, v)| format!("{}: {}", q(k), q(v))).collect();
        self.source_extra.push(("options".into(), format!("{{ {} }}", map.join(", "))));
        self
    }

    /// RabbitMQ: declare the queue (`queue_type`) with `x-single-active-consumer`.
    pub fn declare_single_active(mut self) -> Self {
        assert!(matches!(self.source, SourceYaml::Rabbitmq { .. }), "declare is RabbitMQ's");
        self.source_extra.push(("declare".into(), "{ single_active_consumer: true }".into()));
        self
    }

    /// RabbitMQ: `prefetch` (a queue commit holds at most half of it).
    pub fn prefetch(mut self, n: u32) -> Self {
        match &mut self.source {
            SourceYaml::Rabbitmq { prefetch, .. } => *prefetch = n,
            SourceYaml::Kafka { .. } => panic!("prefetch is a RabbitMQ setting"),
        }
        self
    }

    /// RabbitMQ at another `uri` (e.g. through a [`DelayLine`]).
    pub fn rabbitmq_uri(mut self, uri: &str) -> Self {
        match &mut self.source {
            SourceYaml::Rabbitmq { uri: u, .. } => *u = uri.to_string(),
            SourceYaml::Kafka { .. } => panic!("uri is a RabbitMQ setting"),
        }
        self
    }

    /// RabbitMQ over TLS at `uri` with the given CA, logging in by client certificate
    /// (`auth: external`).
    pub fn rabbitmq_tls_external(mut self, uri: &str, ca_file: &str, cert_file: &str, key_file: &str) -> Self {
        match &mut self.source {
            SourceYaml::Rabbitmq { uri: u, tls, .. } => {
                *u = uri.to_string();
                *tls =
                    Some(RabbitTls { ca_file: ca_file.into(), cert_file: cert_file.into(), key_file: key_file.into() });
            }
            SourceYaml::Kafka { .. } => panic!("TLS with EXTERNAL auth is a RabbitMQ setting here"),
        }
        self
    }

    /// Replaces the schema: `(name, type, required)` per column.
    pub fn schema(mut self, fields: &[(&str, &str, bool)]) -> Self {
        self.schema = fields.iter().map(|(n, t, r)| (n.to_string(), t.to_string(), *r)).collect();
        self
    }

    /// `partition.path`, the Hive directory template.
    pub fn partition(mut self, path: &str) -> Self {
        self.partition = path.to_string();
        self
    }

    fn roll(mut self, key: &'static str, value: String) -> Self {
        match self.roll.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.roll.push((key, value)),
        }
        self
    }

    pub fn roll_max_rows(self, n: u64) -> Self {
        self.roll("max_rows", n.to_string())
    }
    pub fn roll_max_bytes(self, size: &str) -> Self {
        self.roll("max_bytes", size.to_string())
    }
    pub fn roll_max_age(self, age: &str) -> Self {
        self.roll("max_age", age.to_string())
    }
    pub fn roll_max_open_files(self, n: usize) -> Self {
        self.roll("max_open_files", n.to_string())
    }
    pub fn roll_max_buffered_bytes(self, size: &str) -> Self {
        self.roll("max_buffered_bytes", size.to_string())
    }

    /// `parquet.compression` (`zstd`, `snappy`, `gzip`, `lz4`, `none`).
    pub fn compression(mut self, codec: &str) -> Self {
        self.compression = codec.to_string();
        self
    }

    /// The table on the lab HDFS at `path`.
    pub fn sink_hdfs(mut self, path: &str) -> Self {
        self.sink = Some(SinkYaml::Hdfs { url: HDFS_URL.to_string(), path: path.to_string(), user: None });
        self
    }

    /// `sink.hdfs.user`: act as this HDFS user (simple auth). The lab NameNode runs as the OS
    /// user of the tests, the HDFS superuser, for whom permissions are never checked; another
    /// name makes the NameNode check them.
    pub fn sink_hdfs_user(mut self, name: &str) -> Self {
        match &mut self.sink {
            Some(SinkYaml::Hdfs { user, .. }) => *user = Some(name.to_string()),
            _ => panic!("sink_hdfs_user needs .sink_hdfs(path) first"),
        }
        self
    }

    /// `partition.completion` with this `allowed_lateness` and `idle_timeout`.
    pub fn completion(mut self, allowed_lateness: &str, idle_timeout: &str) -> Self {
        self.completion = Some((allowed_lateness.to_string(), idle_timeout.to_string()));
        self
    }

    /// `sink.hive`: register the table `database.table` in the metastore at `metastore`.
    pub fn sink_hive(mut self, metastore: &str, database: &str, table: &str) -> Self {
        self.hive = Some((metastore.to_string(), database.to_string(), table.to_string()));
        self
    }

    /// `sink.hive.compaction` with `min_files` (the other settings at their defaults).
    pub fn compaction(mut self, min_files: usize) -> Self {
        self.compaction = Some((min_files, None));
        self
    }

    /// `sink.hive.compaction` with `min_files` and `grace`.
    pub fn compaction_with_grace(mut self, min_files: usize, grace: &str) -> Self {
        self.compaction = Some((min_files, Some(grace.to_string())));
        self
    }

    /// The table in a local directory (`sink.local`).
    pub fn sink_local(mut self, path: &std::path::Path) -> Self {
        self.sink = Some(SinkYaml::Local { path: path.display().to_string() });
        self
    }

    /// The pipeline file's text.
    pub fn build(&self) -> String {
        use std::fmt::Write;
        let mut y = String::new();
        writeln!(y, "name: {}", q(&self.name)).unwrap();
        y.push_str("source:\n");
        match &self.source {
            SourceYaml::Kafka { topic, group, session_timeout } => {
                writeln!(
                    y,
                    "  kafka:\n    brokers: [{}]\n    topics: [{}]\n    group: {}\n    start: earliest",
                    q(KAFKA),
                    q(topic),
                    q(group)
                )
                .unwrap();
                if let Some(t) = session_timeout {
                    writeln!(y, "    session_timeout: {}", q(t)).unwrap();
                }
            }
            SourceYaml::Rabbitmq { uri, queue, queue_type, prefetch, tls } => {
                writeln!(
                    y,
                    "  rabbitmq:\n    uri: {}\n    queue: {}\n    queue_type: {}\n    prefetch: {prefetch}",
                    q(uri),
                    q(queue),
                    q(queue_type)
                )
                .unwrap();
                if let Some(t) = tls {
                    writeln!(
                        y,
                        "    auth: external\n    tls: {{ ca_file: {}, cert_file: {}, key_file: {} }}",
                        q(&t.ca_file),
                        q(&t.cert_file),
                        q(&t.key_file)
                    )
                    .unwrap();
                }
            }
        }
        for (key, value) in &self.source_extra {
            writeln!(y, "    {key}: {value}").unwrap();
        }
        y.push_str("decode:\n  json:\n    schema:\n");
        for (name, t, required) in &self.schema {
            writeln!(y, "      - {{ name: {}, type: {}, required: {required} }}", q(name), q(t)).unwrap();
        }
        writeln!(y, "partition:\n  path: {}\n  timezone: {}", q(&self.partition), q(&self.timezone)).unwrap();
        if let Some((lateness, idle)) = &self.completion {
            writeln!(y, "  completion:\n    allowed_lateness: {}\n    idle_timeout: {}", q(lateness), q(idle)).unwrap();
        }
        y.push_str("roll:\n");
        for (key, value) in &self.roll {
            writeln!(y, "  {key}: {value}").unwrap();
        }
        writeln!(y, "parquet:\n  compression: {}", q(&self.compression)).unwrap();
        match self.sink.as_ref().expect("PipelineYaml needs a sink: call .sink_hdfs(path)") {
            SinkYaml::Hdfs { url, path, user } => {
                writeln!(y, "sink:\n  hdfs:\n    url: {}\n    path: {}", q(url), q(path)).unwrap();
                if let Some(user) = user {
                    writeln!(y, "    user: {}", q(user)).unwrap();
                }
            }
            SinkYaml::Local { path } => writeln!(y, "sink:\n  local:\n    path: {}", q(path)).unwrap(),
        }
        if let Some((metastore, database, table)) = &self.hive {
            writeln!(
                y,
                "  hive:\n    metastore: {}\n    database: {}\n    table: {}",
                q(metastore),
                q(database),
                q(table)
            )
            .unwrap();
            if let Some((min_files, grace)) = &self.compaction {
                let grace = grace.as_ref().map(|g| format!(", grace: {g}")).unwrap_or_default();
                writeln!(y, "    compaction: {{ min_files: {min_files}{grace} }}").unwrap();
            }
        }
        y
    }

    /// Writes the pipeline to a fresh temp dir: (dir guard, file path).
    pub fn file(&self) -> (tempfile::TempDir, PathBuf) {
        pipeline_file(&self.build())
    }
}

/// A command running the built `landfall` binary with the repo's daemon settings.
///
/// `LANDFALL_TEST_BIN=/path/to/landfall` runs that binary instead of this build's: a test of a
/// fix must be seen failing against a build without the fix (issue 10's acceptance), e.g.
/// `git worktree add /tmp/old <commit>^ && (cd /tmp/old && cargo build --release --bin
/// landfall)`, then `LANDFALL_TEST_BIN=/tmp/old/target/release/landfall cargo test --test …`.
/// That build must read today's `config/landfall.yaml` and `LANDFALL_*` settings (c6ce75a^
/// does).
pub fn landfall() -> std::process::Command {
    let bin = std::env::var_os("LANDFALL_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_landfall")));
    let mut cmd = std::process::Command::new(bin);
    cmd.current_dir(repo_root()).arg("--config").arg(repo_root().join("config/landfall.yaml"));
    // The harness's variables (`lab_dir`, the override above, the store tests' NameNode): the
    // daemon would read them as settings, and older builds refuse them as unknown ones.
    for var in ["LANDFALL_LAB", "LANDFALL_TEST_BIN", "LANDFALL_TEST_HDFS_URL"] {
        cmd.env_remove(var);
    }
    // Tests run daemons side by side: each gets a free port for its HTTP server (see
    // `http_addr` to find it).
    cmd.env("LANDFALL_HTTP_LISTEN", "127.0.0.1:0");
    cmd
}

/// The address a daemon's HTTP server listens on, read from its log (the `status server
/// listening addr=…` line, or its JSON form `"addr":"…"`); waits up to 60 s for it.
pub fn http_addr(log: &std::path::Path) -> std::net::SocketAddr {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text.lines().filter(|l| l.contains("status server listening")).find_map(|l| {
            let rest = l.split("addr=").nth(1).or_else(|| l.split("\"addr\":\"").nth(1))?;
            rest.split(|c: char| c.is_whitespace() || c == '"').next()?.parse().ok()
        }) {
            return addr;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `status server listening` line in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET http://addr/path`: (status code, body); fails the test if the server does not answer.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent.get(&format!("http://{addr}{path}")).call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (resp.status().as_u16(), resp.body_mut().read_to_string().expect("body"))
}

/// The sum of every series of metric `name` whose labels include `pipeline="<pipeline>"` and
/// each of `labels` (`key="value"`), in a `/metrics` text; `None` when there is none.
pub fn metric(text: &str, name: &str, pipeline: &str, labels: &[&str]) -> Option<f64> {
    let want = format!("pipeline=\"{pipeline}\"");
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (set, value) = rest.split_once("} ")?;
            let pairs: Vec<&str> = set.split(',').collect();
            (pairs.contains(&want.as_str()) && labels.iter().all(|w| pairs.contains(w)))
                .then_some(value.trim().parse().ok()?)
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
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

/// `landfall run --until-caught-up PIPELINE`, killed if it has not ended within `limit`: its
/// output, and whether it ended by itself.
pub fn until_caught_up_within(pipeline: &std::path::Path, limit: Duration) -> (std::process::Output, bool) {
    let mut child = landfall()
        .arg("run")
        .arg("--until-caught-up")
        .arg(pipeline)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start landfall");
    let deadline = Instant::now() + limit;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let ended = !matches!(child.try_wait(), Ok(None));
    if !ended {
        let _ = child.kill();
    }
    (child.wait_with_output().expect("collect landfall's output"), ended)
}

/// Like [`run_until_caught_up`], but fails the test if the run has not ended within `limit`
/// (the run is killed): for tests whose point is that the run ends.
pub fn run_until_caught_up_within(pipeline: &std::path::Path, limit: Duration) -> String {
    let (out, ended) = until_caught_up_within(pipeline, limit);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        ended,
        "landfall run --until-caught-up had not ended after {limit:?} (killed):\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        out.status.success(),
        "landfall run --until-caught-up failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout.into_owned()
}

/// The daemon (`landfall run PIPELINE`) in the background, logging to `log` (appended).
pub fn spawn_daemon(pipeline: &std::path::Path, log: &std::path::Path) -> DaemonChild {
    assert_turn("a daemon");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    DaemonChild(
        landfall()
            .arg("run")
            .arg(pipeline)
            .env("LANDFALL_LOG_LEVEL", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start landfall"),
    )
}

/// A daemon a test started, killed (SIGKILL) when dropped: a test that fails mid-way must not
/// leave its daemon landing, and holding the lab's ports and CPU, for the tests after it. Use
/// it as the `Child` it derefs to.
pub struct DaemonChild(pub std::process::Child);

impl std::ops::Deref for DaemonChild {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for DaemonChild {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for DaemonChild {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
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

/// Waits (150 s at most) until the daemon at `addr` reports `want` for the pipeline's metric
/// `name` (no other labels); fails with the metrics and the daemon's `log` otherwise.
pub fn wait_for_metric(addr: std::net::SocketAddr, name: &str, pipeline: &str, want: f64, log: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    loop {
        let (_, text) = http_get(addr, "/metrics");
        if metric(&text, name, pipeline, &[]) == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never reached {want}:\n{text}\nlog:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
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
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT in Spark output:\n{out}"));
    serde_json::from_str(line).unwrap()
}

/// `list_status(d)`; a table root that does not exist yet (nothing landed) lists as empty.
async fn list_or_empty(client: &hdfs_native::Client, d: &str, root: &str) -> Vec<hdfs_native::client::FileStatus> {
    match client.list_status(d, false).await {
        Ok(entries) => entries,
        Err(hdfs_native::HdfsError::FileNotFound(_)) if d == root => Vec::new(),
        Err(e) => panic!("list {d} on HDFS: {e}"),
    }
}

/// Paths of every published data file under `dir` (recursive, skipping `_`/`.` names), via
/// hdfs-native, and the offset ranges encoded in their names, per partition.
pub async fn published_ranges(dir: &str) -> std::collections::BTreeMap<i32, Vec<(i64, i64)>> {
    let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
    let mut ranges: std::collections::BTreeMap<i32, std::collections::BTreeSet<(i64, i64)>> = Default::default();
    let mut stack = vec![dir.to_string()];
    while let Some(d) = stack.pop() {
        for st in list_or_empty(&client, &d, dir).await {
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

/// Every published data file under the table at `dir` (recursive, skipping `_`/`.` names,
/// so neither the commit log nor the quarantine), as full paths.
pub async fn published_files(dir: &str) -> Vec<String> {
    let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
    let mut files = Vec::new();
    let mut stack = vec![dir.to_string()];
    while let Some(d) = stack.pop() {
        for st in list_or_empty(&client, &d, dir).await {
            let name = st.path.rsplit('/').next().unwrap();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            if st.isdir {
                stack.push(st.path.clone());
            } else {
                files.push(st.path.clone());
            }
        }
    }
    files.sort();
    files
}

/// The (first, last) source position range in a published file's name
/// (`part-<topic>-<partition>-<first>-<last>-<n>.<codec>.parquet`).
pub fn file_range(path: &str) -> (i64, i64) {
    let name = path.rsplit('/').next().unwrap();
    let fields: Vec<&str> = name.rsplitn(4, '-').collect();
    (fields[2].parse().unwrap(), fields[1].parse().unwrap())
}

/// The manifests of one source partition's commit log still present (old ones are pruned).
pub async fn commit_manifests(table: &str, topic: &str, partition: i32) -> Vec<serde_json::Value> {
    let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
    let dir = format!("{table}/_landfall/commits/{topic}/{partition}");
    let mut out = Vec::new();
    for st in client.list_status(&dir, false).await.unwrap_or_default() {
        if st.isdir || !st.path.ends_with(".json") {
            continue;
        }
        let r = client.read(&st.path).await.unwrap();
        let bytes = r.read_range(0, r.file_length()).await.unwrap();
        out.push(serde_json::from_slice(&bytes).unwrap());
    }
    out
}

/// Rows of each row group of a Parquet file on the lab HDFS, read from its footer.
pub async fn row_group_rows(path: &str) -> Vec<i64> {
    use parquet::file::reader::FileReader;
    let client = hdfs_native::ClientBuilder::new().with_url(HDFS_URL).build().unwrap();
    let r = client.read(path).await.unwrap();
    let bytes = r.read_range(0, r.file_length()).await.unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(bytes).unwrap();
    reader.metadata().row_groups().iter().map(|rg| rg.num_rows()).collect()
}

/// Asserts the ranges of each partition tile 0..count exactly: no gap, no overlap.
pub fn assert_tiles(
    ranges: &std::collections::BTreeMap<i32, Vec<(i64, i64)>>,
    counts: &std::collections::BTreeMap<i32, i64>,
) {
    for (p, count) in counts {
        let r = ranges.get(p).unwrap_or_else(|| panic!("no files for partition {p}"));
        let mut next = 0;
        for (start, end) in r {
            assert_eq!(
                *start, next,
                "partition {p}: range {start}..={end} does not start at {next} (gap or overlap); ranges {r:?}"
            );
            next = end + 1;
        }
        assert_eq!(next, *count, "partition {p}: ranges end at {next}, expected {count}; ranges {r:?}");
    }
}

// ---- RabbitMQ ---------------------------------------------------------------------------------

/// A connection and channel to the lab broker (fails the test if it is down).
pub async fn amqp_channel() -> (lapin::Connection, lapin::Channel) {
    require("RabbitMQ", "127.0.0.1:5672");
    let conn = lapin::Connection::connect(AMQP_URI, lapin::ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let ch = conn.create_channel().await.expect("open a channel");
    (conn, ch)
}

/// Declares a durable queue of `kind` (`quorum`, `classic` or `stream`).
pub async fn declare_queue(queue: &str, kind: &str) {
    declare_queue_with(queue, kind, false).await
}

/// [`declare_queue`], with `x-single-active-consumer` when `single_active` (one consumer
/// receives at a time; the broker activates the next when it goes away).
pub async fn declare_queue_with(queue: &str, kind: &str, single_active: bool) {
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let (conn, ch) = amqp_channel().await;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from(kind)));
    if single_active {
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    }
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
///
/// A message the broker refuses (`basic.nack`) is published again after a pause, as a real
/// at-least-once producer does: a quorum queue refuses publishes for a moment after the broker
/// restarts, while its Raft member recovers (CI, fault matrix rabbitmq-restart seed 5416). One
/// still refused after a minute fails the test.
pub async fn publish_confirmed(queue: &str, messages: impl IntoIterator<Item = (Option<String>, Vec<u8>)>) -> usize {
    let mut todo: Vec<(Option<String>, Vec<u8>)> = messages.into_iter().collect();
    let n = todo.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        todo = publish_once(queue, todo).await;
        if todo.is_empty() {
            return n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broker still refuses {} of {n} messages to {queue} after 60 s",
            todo.len()
        );
        eprintln!("the broker refused {} messages to {queue}; publishing them again", todo.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One pass of [`publish_confirmed`]: returns the messages the broker refused.
async fn publish_once(queue: &str, messages: Vec<(Option<String>, Vec<u8>)>) -> Vec<(Option<String>, Vec<u8>)> {
    use futures::StreamExt;
    let (conn, ch) = amqp_channel().await;
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default()).await.expect("confirm.select");
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut refused = Vec::new();
    let check = |(k, c): (usize, Result<lapin::Confirmation, lapin::Error>), refused: &mut Vec<usize>| match c
        .expect("publisher confirm")
    {
        lapin::Confirmation::Ack(None) => {}
        lapin::Confirmation::Nack(_) => refused.push(k),
        other => panic!("publishing to {queue}: unexpected confirmation {other:?}"),
    };
    for (k, (id, payload)) in messages.iter().enumerate() {
        let mut props = lapin::BasicProperties::default().with_delivery_mode(2);
        if let Some(id) = id {
            props = props.with_message_id(id.clone().into());
        }
        let confirm = ch
            .basic_publish("".into(), queue.into(), lapin::options::BasicPublishOptions::default(), payload, props)
            .await
            .expect("publish");
        pending.push(async move { (k, confirm.await) });
        while pending.len() >= 2000 {
            check(pending.next().await.unwrap(), &mut refused);
        }
    }
    while let Some(c) = pending.next().await {
        check(c, &mut refused);
    }
    let _ = conn.close(200, "done".into()).await;
    refused.sort_unstable();
    let mut messages: Vec<Option<_>> = messages.into_iter().map(Some).collect();
    refused.into_iter().filter_map(|k| messages[k].take()).collect()
}

/// The clicks pipeline (same schema and partitioning as [`pipeline_yaml`]) on a RabbitMQ queue.
pub fn rabbitmq_pipeline_yaml(name: &str, queue: &str, queue_type: &str, sink: &str, roll_max_age: &str) -> String {
    pipeline_yaml(name, "unused", sink, roll_max_age).replace(
        &format!("  kafka:\n    brokers: [\"{KAFKA}\"]\n    topics: [\"unused\"]\n    group: {name}\n    start: earliest\n    options: {{}}\n"),
        &format!("  rabbitmq:\n    uri: {AMQP_URI}\n    queue: {queue}\n    queue_type: {queue_type}\n    prefetch: 20000\n"),
    )
}

// ---- A slow network ---------------------------------------------------------------------------

/// A TCP proxy in front of a lab service that holds every byte from the service for `delay`
/// before passing it on (order kept; bytes to the service pass at once): a slow broker, or one
/// far away, whose replies and deliveries spend that long on the wire.
pub struct DelayLine {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DelayLine {
    pub async fn start(upstream: &str, delay: Duration) -> DelayLine {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                tokio::spawn(Self::carry(client, server, delay));
            }
        });
        DelayLine { addr, task }
    }

    async fn carry(client: tokio::net::TcpStream, server: tokio::net::TcpStream, delay: Duration) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut server_rx, mut server_tx) = server.into_split();
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
            let _ = server_tx.shutdown().await;
        });
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
                if tx.send((tokio::time::Instant::now() + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if client_tx.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = client_tx.shutdown().await;
        reader.abort();
        up.abort();
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.task.abort();
    }
}
