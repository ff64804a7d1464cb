//! The Kafka source's settings (`source: { kafka: {...} }`) and their offline checks.

use std::collections::HashSet;

use serde::Deserialize;

use super::{OnPositionLost, StartPosition};
use crate::config::options::ClientOptions;
use crate::config::units::HumanDuration;
use crate::config::validate::{at, Findings};
use crate::config::yaml::Seg;

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
    /// What to do when a partition's committed position is past the end of its log (the topic
    /// was deleted and recreated, or an unclean leader election truncated it): `fail` (stop
    /// that partition, name the committed position, what the log holds and the remedy, and
    /// let the others go on), `earliest` (land the log from its first offset) or `latest`
    /// (land only what arrives from now on). Either jump is recorded in the commit log, logged
    /// at `error` and counted in `landfall_position_jumps_total`; landed files are never
    /// touched.
    #[serde(default)]
    pub on_position_lost: OnPositionLost,
    /// How long the broker waits for a heartbeat before it reassigns this consumer's
    /// partitions (librdkafka `session.timeout.ms`, default 45 s). With the next-generation
    /// group protocol (`options: { group.protocol: consumer }`) the broker decides it
    /// (`group.consumer.session.timeout.ms`), so a value set here is ignored with a warning.
    #[serde(default)]
    pub session_timeout: Option<HumanDuration>,
    /// Extra librdkafka settings (`security.protocol`, `sasl.*`, `ssl.*`, `fetch.*` …).
    /// Keys Landfall manages itself are refused (see `MANAGED_KAFKA_OPTIONS`); secret values
    /// are hidden when printed. `partition.assignment.strategy` defaults to
    /// `cooperative-sticky` (a rebalance moves only the partitions that change owner; the
    /// others keep landing); `range` or `roundrobin` bring back stop-the-world rebalances.
    /// Switching a running group between eager and cooperative strategies needs all its
    /// instances stopped first: members with no strategy in common cannot join one group.
    #[serde(default)]
    pub options: ClientOptions,
}

/// Differs from librdkafka's `auto.offset.reset=latest` on purpose: a new landing pipeline that
/// silently skips everything already in the topic loses data nobody notices.
fn default_start() -> StartPosition {
    StartPosition::Earliest
}

/// Mirrors librdkafka's `session.timeout.ms` default of 45000 ms (since librdkafka 1.9 / KIP-735).
pub const DEFAULT_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45);

/// Landfall's default `partition.assignment.strategy` for the classic group protocol.
pub const DEFAULT_ASSIGNMENT_STRATEGY: &str = "cooperative-sticky";

/// librdkafka settings of the classic group protocol that it refuses together with
/// `group.protocol=consumer` (KIP-848: the broker assigns partitions and times sessions).
const CLASSIC_ONLY_OPTIONS: &[(&str, &str)] = &[
    ("partition.assignment.strategy", "the broker assigns partitions; `group.remote.assignor` picks its assignor"),
    ("heartbeat.interval.ms", "the broker sets it (`group.consumer.heartbeat.interval.ms`)"),
    ("group.protocol.type", "only the classic protocol has it"),
];

impl KafkaSourceConfig {
    /// True with the next-generation consumer group protocol (KIP-848), chosen with
    /// `options: { group.protocol: consumer }`.
    pub fn next_gen_protocol(&self) -> bool {
        self.options.get("group.protocol").is_some_and(|v| v.trim().eq_ignore_ascii_case("consumer"))
    }

    /// The session timeout the classic protocol asks the broker for.
    pub fn session_timeout(&self) -> std::time::Duration {
        self.session_timeout.map_or(DEFAULT_SESSION_TIMEOUT, |t| t.get())
    }
}

/// librdkafka settings Landfall sets itself, each with the reason a user may not override it.
/// Exactly-once landing depends on every one of them.
pub const MANAGED_KAFKA_OPTIONS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set by `brokers`"),
    ("metadata.broker.list", "set by `brokers`"),
    ("group.id", "set by `group`"),
    ("session.timeout.ms", "set by `session_timeout`"),
    ("auto.offset.reset", "set by `start`"),
    ("enable.auto.commit", "Landfall commits offsets only after a file is published"),
    ("enable.auto.offset.store", "Landfall stores offsets only after a file is published"),
    ("isolation.level", "Landfall reads `read_committed` (librdkafka's default) so aborted transactions never land"),
];

/// Offline problems of a Kafka source, at key paths below `source.kafka`.
pub(crate) fn check(kafka: &KafkaSourceConfig, out: &mut Findings) {
    let path = |rest: &[&str]| at(&[&["source", "kafka"], rest].concat());
    let item = |list: &str, i: usize| {
        let mut p = path(&[list]);
        p.push(Seg::Index(i));
        p
    };
    if kafka.brokers.is_empty() {
        out.error(path(&["brokers"]), "brokers must list at least one `host:port`".into());
    }
    for (i, broker) in kafka.brokers.iter().enumerate() {
        if broker.trim().is_empty() || broker.contains([',', ' ']) {
            out.error(
                item("brokers", i),
                format!("broker `{broker}` must be one `host:port`; list several brokers as separate items"),
            );
        }
    }
    if kafka.topics.is_empty() {
        out.error(path(&["topics"]), "topics must list at least one topic".into());
    }
    let mut seen = HashSet::new();
    for (i, topic) in kafka.topics.iter().enumerate() {
        let valid = topic.starts_with('^')
            || (!topic.is_empty()
                && topic.len() <= 249
                && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')));
        if !valid {
            out.error(
                item("topics", i),
                format!("topic `{topic}` is not a valid Kafka topic name (1-249 of a-z A-Z 0-9 . _ -; a regex starts with `^`)"),
            );
        } else if !seen.insert(topic) {
            out.error(item("topics", i), format!("topic `{topic}` is listed twice"));
        }
    }
    if kafka.group.trim().is_empty() {
        out.error(path(&["group"]), "group must not be empty".into());
    }
    if let Some(timeout) = kafka.session_timeout {
        let ms = timeout.get().as_millis();
        if !(1..=3_600_000).contains(&ms) {
            out.error(
                path(&["session_timeout"]),
                format!("session_timeout must be between 1ms and 1h (librdkafka's range), got {timeout}"),
            );
        } else if kafka.next_gen_protocol() {
            out.warn(
                path(&["session_timeout"]),
                format!(
                    "session_timeout {timeout} is ignored with `group.protocol: consumer`: the broker's \
                     `group.consumer.session.timeout.ms` decides when a silent instance loses its partitions"
                ),
            );
        }
    }
    for option in kafka.options.keys() {
        if let Some((_, why)) = MANAGED_KAFKA_OPTIONS.iter().find(|(k, _)| *k == option) {
            out.error(path(&["options", option]), format!("`{option}` is managed by Landfall ({why}); remove it"));
        } else if kafka.next_gen_protocol() {
            if let Some((_, why)) = CLASSIC_ONLY_OPTIONS.iter().find(|(k, _)| *k == option) {
                out.error(
                    path(&["options", option]),
                    format!("`{option}` does not apply with `group.protocol: consumer` ({why}); librdkafka refuses it, remove it"),
                );
            }
        }
    }
}
