//! Semantic checks on a parsed pipeline: rules the types cannot express (non-empty lists,
//! names, the partition template against the schema, codec levels …). Pure: no I/O, so
//! `landfall validate` runs anywhere; live probes (`--connect`) live elsewhere.

use std::collections::HashSet;
use std::str::FromStr;

use super::connectors::{SinkConfig, SourceConfig, MANAGED_KAFKA_OPTIONS};
use super::pipeline::PipelineConfig;
use super::yaml::Seg;
use crate::partition::PartitionTemplate;
use crate::schema::{FieldSpec, FieldType};

/// A semantic problem at a key path; the loader turns the path into `line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: Vec<Seg>,
    pub message: String,
}

/// Which top-level sections parsed cleanly; checks that read a section with parse errors are
/// skipped, since they would only repeat those errors in other words.
pub trait SectionFilter {
    fn clean(&self, section: &str) -> bool;
}

impl<F: Fn(&str) -> bool> SectionFilter for F {
    fn clean(&self, section: &str) -> bool {
        self(section)
    }
}

/// The partition-template parser, injectable so tests can exercise the plumbing.
pub type TemplateParser = fn(&str, &[FieldSpec]) -> Result<(), Vec<String>>;

/// The real template parser from `crate::partition`.
pub fn partition_template(text: &str, schema: &[FieldSpec]) -> Result<(), Vec<String>> {
    PartitionTemplate::parse(text, schema).map(|_| ())
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

fn at(path: &[&str]) -> Vec<Seg> {
    path.iter().map(|k| key(k)).collect()
}

/// Runs every check whose sections are clean.
pub fn check(
    config: &PipelineConfig,
    clean: &dyn SectionFilter,
    template: TemplateParser,
) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut issue = |path: Vec<Seg>, message: String| issues.push(Issue { path, message });

    if clean.clean("name") && !valid_name(&config.name) {
        issue(
            at(&["name"]),
            format!(
                "pipeline name `{}` must be non-empty and use only a-z, 0-9, `_` and `-` (it goes into paths and metric labels)",
                config.name
            ),
        );
    }
    if clean.clean("source") {
        match &config.source {
            SourceConfig::Kafka(kafka) => check_kafka(kafka, &mut issue),
            SourceConfig::RabbitMq(rabbit) => {
                // The roll section's values if it parsed, else its defaults.
                let default = PipelineConfig::default_roll();
                let roll = if clean.clean("roll") { &config.roll } else { &default };
                let checks = super::rabbitmq::check(rabbit, roll.max_age.get(), roll.max_rows, roll.max_rows == default.max_rows);
                for (field, message) in checks {
                    issue(at(&["source", "rabbitmq", field]), message);
                }
            }
        }
    }
    if clean.clean("decode") {
        check_schema(config.schema(), &mut issue);
    }
    if clean.clean("partition") {
        let partition = &config.partition;
        if clean.clean("decode") {
            if let Err(problems) = template(&partition.path, config.schema()) {
                for problem in problems {
                    issue(at(&["partition", "path"]), problem);
                }
            }
        }
        if chrono_tz::Tz::from_str(&partition.timezone).is_err() {
            issue(
                at(&["partition", "timezone"]),
                format!(
                    "unknown time zone `{}`: use an IANA name such as `UTC` or `Europe/Berlin`",
                    partition.timezone
                ),
            );
        }
    }
    if clean.clean("roll") {
        let roll = &config.roll;
        if roll.max_rows == 0 {
            issue(
                at(&["roll", "max_rows"]),
                "max_rows must be at least 1".into(),
            );
        }
        if roll.max_bytes.bytes() == 0 {
            issue(
                at(&["roll", "max_bytes"]),
                "max_bytes must be greater than 0, e.g. `128MiB`".into(),
            );
        }
        if roll.max_age.get().is_zero() {
            issue(
                at(&["roll", "max_age"]),
                "max_age must be greater than 0, e.g. `60s`".into(),
            );
        }
        // A staged file stays open up to max_age; orphan cleanup treats staged files older
        // than the grace period as abandoned, so max_age must stay well inside it.
        let limit = crate::commit::default_grace() / 4;
        if roll.max_age.get() > limit {
            issue(
                at(&["roll", "max_age"]),
                format!(
                    "max_age must be at most {}s (a quarter of the {}s staging grace period), got {}",
                    limit.as_secs(),
                    crate::commit::default_grace().as_secs(),
                    roll.max_age
                ),
            );
        }
        if roll.max_buffered_bytes.bytes() < (1 << 20) {
            issue(
                at(&["roll", "max_buffered_bytes"]),
                "max_buffered_bytes must be at least 1MiB, e.g. `128MiB`".into(),
            );
        }
        if roll.max_open_files == 0 {
            issue(
                at(&["roll", "max_open_files"]),
                "max_open_files must be at least 1".into(),
            );
        }
    }
    if clean.clean("parquet") {
        if let Err(message) = config.parquet.codec() {
            issue(at(&["parquet", "compression_level"]), message);
        }
        if config.parquet.row_group_rows == 0 {
            issue(
                at(&["parquet", "row_group_rows"]),
                "row_group_rows must be at least 1".into(),
            );
        }
    }
    if clean.clean("sink") {
        check_sink(&config.sink, &mut issue);
    }
    issues
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

fn check_kafka(kafka: &super::connectors::KafkaSourceConfig, issue: &mut impl FnMut(Vec<Seg>, String)) {
    let base = |rest: &[&str]| {
        let mut path = at(&["source", "kafka"]);
        path.extend(rest.iter().map(|k| key(k)));
        path
    };
    if kafka.brokers.is_empty() {
        issue(
            base(&["brokers"]),
            "brokers must list at least one `host:port`".into(),
        );
    }
    for (i, broker) in kafka.brokers.iter().enumerate() {
        if broker.trim().is_empty() || broker.contains([',', ' ']) {
            let mut path = base(&["brokers"]);
            path.push(Seg::Index(i));
            issue(path, format!("broker `{broker}` must be one `host:port`; list several brokers as separate items"));
        }
    }
    if kafka.topics.is_empty() {
        issue(
            base(&["topics"]),
            "topics must list at least one topic".into(),
        );
    }
    let mut seen = HashSet::new();
    for (i, topic) in kafka.topics.iter().enumerate() {
        let mut path = base(&["topics"]);
        path.push(Seg::Index(i));
        let valid = topic.starts_with('^')
            || (!topic.is_empty()
                && topic.len() <= 249
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')));
        if !valid {
            issue(
                path,
                format!("topic `{topic}` is not a valid Kafka topic name (1-249 of a-z A-Z 0-9 . _ -; a regex starts with `^`)"),
            );
        } else if !seen.insert(topic) {
            issue(path, format!("topic `{topic}` is listed twice"));
        }
    }
    if kafka.group.trim().is_empty() {
        issue(base(&["group"]), "group must not be empty".into());
    }
    let timeout = kafka.session_timeout.get();
    if timeout.as_millis() < 1 || timeout.as_millis() > 3_600_000 {
        issue(
            base(&["session_timeout"]),
            format!(
                "session_timeout must be between 1ms and 1h (librdkafka's range), got {}",
                kafka.session_timeout
            ),
        );
    }
    for option in kafka.options.keys() {
        if let Some((_, why)) = MANAGED_KAFKA_OPTIONS.iter().find(|(k, _)| *k == option) {
            issue(
                base(&["options", option]),
                format!("`{option}` is managed by Landfall ({why}); remove it"),
            );
        }
    }
}

fn check_schema(schema: &[FieldSpec], issue: &mut impl FnMut(Vec<Seg>, String)) {
    let base = |i: usize, rest: &str| {
        vec![
            key("decode"),
            key("json"),
            key("schema"),
            Seg::Index(i),
            key(rest),
        ]
    };
    if schema.is_empty() {
        issue(
            at(&["decode", "json", "schema"]),
            "schema must declare at least one field".into(),
        );
    }
    let mut seen = HashSet::new();
    for (i, field) in schema.iter().enumerate() {
        if field.name.is_empty() {
            issue(base(i, "name"), "field name must not be empty".into());
        } else if field.name == "_ingest" {
            issue(base(i, "name"), "`_ingest` is reserved for the arrival time in partition templates; rename the field".into());
        } else if !seen.insert(field.name.as_str()) {
            issue(
                base(i, "name"),
                format!("field `{}` is declared twice", field.name),
            );
        }
        if let Some(name) = duplicate_struct_member(&field.field_type) {
            issue(
                base(i, "type"),
                format!(
                    "struct member `{name}` is declared twice in `{}`",
                    field.field_type
                ),
            );
        }
    }
}

fn duplicate_struct_member(field_type: &FieldType) -> Option<&str> {
    match field_type {
        FieldType::List(item) => duplicate_struct_member(item),
        FieldType::Struct(members) => {
            let mut seen = HashSet::new();
            members.iter().find_map(|(name, t)| {
                if seen.insert(name.as_str()) {
                    duplicate_struct_member(t)
                } else {
                    Some(name.as_str())
                }
            })
        }
        _ => None,
    }
}

fn check_sink(sink: &SinkConfig, issue: &mut impl FnMut(Vec<Seg>, String)) {
    match sink {
        SinkConfig::Hdfs(hdfs) => {
            let host = ["hdfs://", "viewfs://"]
                .iter()
                .find_map(|scheme| hdfs.url.strip_prefix(scheme))
                .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
            match host {
                None => issue(
                    at(&["sink", "hdfs", "url"]),
                    format!(
                        "url `{}` must start with `hdfs://` or `viewfs://`",
                        super::secret::redact_uri(&hdfs.url)
                    ),
                ),
                Some("") => issue(
                    at(&["sink", "hdfs", "url"]),
                    "url needs a NameNode `host:port` or nameservice, e.g. `hdfs://127.0.0.1:9000`"
                        .into(),
                ),
                Some(_) => {}
            }
            if !hdfs.path.starts_with('/') {
                issue(
                    at(&["sink", "hdfs", "path"]),
                    format!("path `{}` must be absolute (start with `/`)", hdfs.path),
                );
            }
            if hdfs.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
                issue(
                    at(&["sink", "hdfs", "user"]),
                    "user must not be empty; remove the key to use the default".into(),
                );
            }
        }
        SinkConfig::Local(local) => {
            if local.path.trim().is_empty() {
                issue(
                    at(&["sink", "local", "path"]),
                    "path must not be empty".into(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_path_and_label_rule() {
        assert!(valid_name("clicks_v2-eu"));
        assert!(!valid_name("Clicks"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn duplicate_struct_members_are_found_in_nested_types() {
        let t = FieldType::parse("list<struct<a: int64, b: struct<x: int32, x: int64>>>").unwrap();
        assert_eq!(duplicate_struct_member(&t), Some("x"));
        let t = FieldType::parse("struct<a: int64, b: int64>").unwrap();
        assert_eq!(duplicate_struct_member(&t), None);
    }
}
