//! Where a pipeline reads from and where it lands files. One enum per side, chosen by key
//! (`source: { kafka: {...} }`); this is the one place that lists the connectors.

use std::fmt;

use serde::Deserialize;

use super::options::ClientOptions;
use super::secret::redact_uri;
use super::units::HumanDuration;

/// The stream a pipeline consumes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    Kafka(KafkaSourceConfig),
    #[serde(rename = "rabbitmq")]
    RabbitMq(super::rabbitmq::RabbitMqSourceConfig),
}

/// A Kafka consumer group reading one or more topics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers as `host:port`; a few are enough, the client discovers the rest.
    pub brokers: Vec<String>,
    /// Topics to consume; a name starting with `^` is a regular expression (librdkafka).
    pub topics: Vec<String>,
    /// Consumer group id. Landfall stores the offsets it has landed in its own manifests and
    /// uses the group only for partition assignment, so two pipelines must not share one.
    pub group: String,
    /// Where to begin on a partition nothing has been landed from yet: `earliest` or `latest`.
    /// Once files have landed, Landfall always resumes right after the last landed offset.
    #[serde(default = "default_start")]
    pub start: StartPosition,
    /// How long the broker waits for a heartbeat before it reassigns this consumer's
    /// partitions (librdkafka `session.timeout.ms`).
    #[serde(default = "default_session_timeout")]
    pub session_timeout: HumanDuration,
    /// Extra librdkafka settings (`security.protocol`, `sasl.*`, `ssl.*`, `fetch.*` …).
    /// Keys Landfall manages itself are refused (see `MANAGED_KAFKA_OPTIONS`); secret values
    /// are hidden when printed.
    #[serde(default)]
    pub options: ClientOptions,
}

/// Differs from librdkafka's `auto.offset.reset=latest` on purpose: a new landing pipeline that
/// silently skips everything already in the topic loses data nobody notices.
fn default_start() -> StartPosition {
    StartPosition::Earliest
}

/// Mirrors librdkafka's `session.timeout.ms` default of 45000 ms (since librdkafka 1.9 / KIP-735).
fn default_session_timeout() -> HumanDuration {
    HumanDuration::from_secs(45)
}

/// Where a partition with no landed data starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    Earliest,
    Latest,
}

/// librdkafka settings Landfall sets itself, each with the reason a user may not override it.
/// Exactly-once landing depends on every one of them.
pub const MANAGED_KAFKA_OPTIONS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set by `brokers`"),
    ("metadata.broker.list", "set by `brokers`"),
    ("group.id", "set by `group`"),
    ("session.timeout.ms", "set by `session_timeout`"),
    ("auto.offset.reset", "set by `start`"),
    (
        "enable.auto.commit",
        "Landfall commits offsets only after a file is published",
    ),
    (
        "enable.auto.offset.store",
        "Landfall stores offsets only after a file is published",
    ),
    (
        "isolation.level",
        "Landfall reads `read_committed` (librdkafka's default) so aborted transactions never land",
    ),
];

/// Where finished Parquet files are published.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    Hdfs(HdfsSinkConfig),
    Local(LocalSinkConfig),
}

/// An HDFS directory written with the native client (no JVM).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HdfsSinkConfig {
    /// NameNode or nameservice URL, e.g. `hdfs://127.0.0.1:9000` or `hdfs://ns1` with HA
    /// settings in `options`; userinfo in it is hidden when printed.
    pub url: String,
    /// Absolute table root inside HDFS; partitions and files go below it.
    pub path: String,
    /// User to act as (simple auth); defaults to the client's own rules (`HADOOP_USER_NAME`,
    /// then the OS user).
    #[serde(default)]
    pub user: Option<String>,
    /// Extra Hadoop client settings, e.g. `dfs.ha.namenodes.ns1` for HA nameservices.
    #[serde(default)]
    pub options: ClientOptions,
}

impl fmt::Debug for HdfsSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HdfsSinkConfig")
            .field("url", &redact_uri(&self.url))
            .field("path", &self.path)
            .field("user", &self.user)
            .field("options", &self.options)
            .finish()
    }
}

/// A directory on the local filesystem (tests, or an NFS/fuse mount).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSinkConfig {
    /// Table root; relative paths are relative to the daemon's working directory.
    pub path: String,
}
