//! Semantic checks on a parsed pipeline: rules the types cannot express (non-empty lists,
//! names, the partition template against the schema, codec levels …). Pure: no I/O, so
//! `landfall validate` runs anywhere; live probes (`--connect`) live elsewhere.
//!
//! Two kinds of finding: an **error** for a configuration that cannot work (the pipeline is
//! refused), a **warning** for one that works but not the way it reads (files smaller than
//! `roll.max_rows`, a thin margin before a timeout): it is printed by `validate`, logged by
//! `run`, and the pipeline runs.

use std::collections::HashSet;
use std::str::FromStr;

use super::pipeline::PipelineConfig;
use super::yaml::{path_string, Seg};
use crate::partition::clock::Clock;
use crate::partition::PartitionTemplate;
use crate::schema::{FieldSpec, FieldType};

/// A semantic finding at a key path; the loader turns the path into `line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: Vec<Seg>,
    pub message: String,
}

/// What the checks found: errors (cannot work) and warnings (works, but surprises).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

impl Findings {
    /// A setting that cannot work; say what to change.
    pub fn error(&mut self, path: Vec<Seg>, message: String) {
        self.errors.push(Issue { path, message });
    }

    /// A setting that works but not as it reads; say what will happen and how to silence it.
    pub fn warn(&mut self, path: Vec<Seg>, message: String) {
        self.warnings.push(Issue { path, message });
    }

    /// The key paths of the errors and of the warnings, e.g. `source.rabbitmq.prefetch`.
    pub fn keys(&self) -> (Vec<String>, Vec<String>) {
        let keys = |issues: &[Issue]| issues.iter().map(|i| path_string(&i.path, false)).collect();
        (keys(&self.errors), keys(&self.warnings))
    }
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

/// A key path from its keys: `at(&["roll", "max_rows"])`.
pub fn at(path: &[&str]) -> Vec<Seg> {
    path.iter().map(|k| key(k)).collect()
}

/// Runs every check whose sections are clean.
pub fn check(config: &PipelineConfig, clean: &dyn SectionFilter, template: TemplateParser) -> Findings {
    let mut out = Findings::default();
    let mut issue = |path: Vec<Seg>, message: String| out.error(path, message);

    if clean.clean("name") && !valid_name(&config.name) {
        issue(
            at(&["name"]),
            format!(
                "pipeline name `{}` must be non-empty and use only a-z, 0-9, `_` and `-` (it goes into paths and metric labels)",
                config.name
            ),
        );
    }
    let mut source_findings = Findings::default();
    let mut completion_findings = Findings::default();
    if clean.clean("source") {
        // The roll section's values if it parsed, else its defaults.
        let default = PipelineConfig::default_roll();
        let roll = if clean.clean("roll") { &config.roll } else { &default };
        super::source::check(&config.source, roll, roll.max_rows == default.max_rows, &mut source_findings);
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
        check_completion(config, clean, &mut completion_findings);
    }
    let mut grace_warning = None;
    if config.staging.grace.get() < std::time::Duration::from_secs(60) {
        issue(
            at(&["staging", "grace"]),
            format!(
                "grace must be at least 1m (got {}): a commit refuses staged files older than half of it, so a shorter \
                 one fails every slow commit; the default is 1h",
                config.staging.grace
            ),
        );
    }
    if clean.clean("roll") {
        let roll = &config.roll;
        if roll.max_rows == 0 {
            issue(at(&["roll", "max_rows"]), "max_rows must be at least 1".into());
        }
        if roll.max_bytes.bytes() == 0 {
            issue(at(&["roll", "max_bytes"]), "max_bytes must be greater than 0, e.g. `128MiB`".into());
        }
        if roll.max_age.get().is_zero() {
            issue(at(&["roll", "max_age"]), "max_age must be greater than 0, e.g. `60s`".into());
        }
        // A staged file stays open up to max_age, and the committer refuses staged files older
        // than half the orphan grace period (orphan cleanup may delete them): past that no
        // file could be committed. Past a quarter, a slow commit may hit the limit.
        let grace = config.staging.grace.get();
        if roll.max_age.get() >= grace / 2 {
            issue(
                at(&["roll", "max_age"]),
                format!(
                    "max_age must be below {}s (half the {}s staging grace period, staging.grace: older staged files are refused at commit), \
                     got {}; keep it at most {}s or raise staging.grace",
                    (grace / 2).as_secs(),
                    grace.as_secs(),
                    roll.max_age,
                    (grace / 4).as_secs()
                ),
            );
        } else if roll.max_age.get() > grace / 4 {
            grace_warning = Some(format!(
                "max_age {} leaves little margin: the committer refuses staged files older than {}s (half the {}s staging \
                 grace period), so a commit delayed by more than {}s fails and its rows are consumed again; keep max_age at most {}s",
                roll.max_age,
                (grace / 2).as_secs(),
                grace.as_secs(),
                (grace / 2).saturating_sub(roll.max_age.get()).as_secs(),
                (grace / 4).as_secs()
            ));
        }
        if roll.max_buffered_bytes.bytes() < (1 << 20) {
            issue(
                at(&["roll", "max_buffered_bytes"]),
                "max_buffered_bytes must be at least 1MiB, e.g. `128MiB`".into(),
            );
        }
        if roll.max_open_files == 0 {
            issue(at(&["roll", "max_open_files"]), "max_open_files must be at least 1".into());
        }
    }
    if clean.clean("parquet") {
        if let Err(message) = config.parquet.codec() {
            issue(at(&["parquet", "compression_level"]), message);
        }
        if config.parquet.row_group_rows == 0 {
            issue(at(&["parquet", "row_group_rows"]), "row_group_rows must be at least 1".into());
        }
    }
    if clean.clean("sink") {
        super::sink::check(&config.sink, &mut out);
        let compaction = config.sink.hive.as_ref().is_some_and(|h| h.compaction.is_some());
        if compaction && clean.clean("partition") && config.partition.completion.is_none() {
            out.error(
                at(&["sink", "hive", "compaction"]),
                "compaction rewrites only complete partitions and needs `partition.completion` (e.g. \
                 `completion: {}` for the defaults)"
                    .into(),
            );
        }
        if config.sink.hive.is_some() && clean.clean("partition") && clean.clean("decode") {
            check_hive_partitions(&config.partition.path, config.schema(), &mut out);
        }
    }
    if let Some(message) = grace_warning {
        out.warn(at(&["roll", "max_age"]), message);
    }
    for findings in [source_findings, completion_findings] {
        out.errors.extend(findings.errors);
        out.warnings.extend(findings.warnings);
    }
    out
}

/// `partition.completion` (design: `docs/design/partition-completion.md`, section 6). The
/// template needs one clock whose directories each name one interval; the marker must stay
/// invisible to Spark and Hive; a busy source partition must never look idle between two
/// commits.
fn check_completion(config: &PipelineConfig, clean: &dyn SectionFilter, out: &mut Findings) {
    let partition = &config.partition;
    let Some(completion) = &partition.completion else { return };
    let key = |name: &str| at(&["partition", "completion", name]);
    if let crate::config::SourceConfig::Kafka(k) = &config.source {
        if let Some(pattern) = k.topics.iter().find(|t| t.starts_with('^')) {
            out.error(
                at(&["partition", "completion"]),
                format!(
                    "completion needs every topic listed by name, not the pattern `{pattern}`: a bucket is complete \
                     only once every partition that could hold its rows has published past it, so completion must \
                     know them all"
                ),
            );
        }
    }
    if matches!(config.source, crate::config::SourceConfig::RabbitMq(_)) {
        out.warn(
            at(&["partition", "completion"]),
            "with a RabbitMQ source a queue counts as idle after idle_timeout without a commit, whether or not \
             messages wait in it (AMQP reports no end position to compare with): if its consumer is down for longer \
             than idle_timeout, its buckets complete early and their rows land late (counted in \
             landfall_late_events_total)"
                .into(),
        );
    }
    // A template or time zone that does not parse is reported by the checks above.
    let tz = chrono_tz::Tz::from_str(&partition.timezone).ok();
    let template = clean.clean("decode").then(|| PartitionTemplate::parse(&partition.path, config.schema()).ok());
    if let (Some(tz), Some(Some(template))) = (tz, template) {
        match Clock::resolve(&template, tz) {
            Ok(clock) if clock.is_date() && !completion.allowed_lateness.get().is_zero() => out.warn(
                key("allowed_lateness"),
                format!(
                    "the clock `{}` is a date, so every row counts as the start of its day: with allowed_lateness \
                     {} day d completes only once every source partition has published rows dated d+2; set \
                     `allowed_lateness: 0s` to complete it with rows of d+1",
                    clock.field(),
                    completion.allowed_lateness
                ),
            ),
            Ok(_) => {}
            Err(problems) => {
                for problem in problems {
                    out.error(at(&["partition", "path"]), problem);
                }
            }
        }
    }
    if let Some(why) = marker_problem(&completion.marker) {
        out.error(key("marker"), format!("marker `{}` {why}; the default is `_SUCCESS`", completion.marker));
    }
    let idle = completion.idle_timeout;
    if idle.get().is_zero() {
        out.error(key("idle_timeout"), "idle_timeout must be greater than 0, e.g. `5m`".into());
    } else if clean.clean("roll") {
        let max_age = config.roll.max_age;
        if idle.get() <= max_age.get() {
            out.error(
                key("idle_timeout"),
                format!(
                    "idle_timeout {idle} must exceed roll.max_age {max_age}: a busy source partition commits only \
                     every max_age, so it would look idle between two commits and complete buckets it still has \
                     rows for; the default is 5m"
                ),
            );
        } else if idle.get() < 2 * max_age.get() {
            out.warn(
                key("idle_timeout"),
                format!(
                    "idle_timeout {idle} is less than twice roll.max_age {max_age}: one slow commit makes a busy \
                     source partition look idle, and its rows in the buckets completed meanwhile land late; keep it \
                     at least {}",
                    super::units::HumanDuration(2 * max_age.get())
                ),
            );
        }
    }
}

/// Why `marker` cannot be the completion marker's file name, or `None`. Spark, Hive and Hadoop
/// skip names starting with `_` or `.`; `_landfall` and `_rejected` are Landfall's own.
fn marker_problem(marker: &str) -> Option<String> {
    let why = if marker.contains('/') {
        "must be one file name, without `/`".to_string()
    } else if let Some(why) = crate::partition::segment_problem(marker) {
        format!("is not a file name: {why}")
    } else if !(marker.starts_with('_') || marker.starts_with('.')) {
        "must start with `_` or `.`, so Spark and Hive never read it as data".to_string()
    } else if marker == "_landfall" || marker == "_rejected" {
        "is a directory of Landfall's own (`_landfall/` holds commits, `_rejected/` quarantined messages)".to_string()
    } else {
        return None;
    };
    Some(why)
}

/// With `sink.hive`, the partition template's directories become the table's partition
/// columns: they must be Hive-style (`key=value`) and must not repeat a data column (Hive
/// refuses a partition column named like a column of the table).
fn check_hive_partitions(template: &str, schema: &[FieldSpec], out: &mut Findings) {
    match crate::partition::hive_keys(template) {
        Ok(keys) => {
            for key in keys {
                if let Some(field) = schema.iter().find(|f| f.name.eq_ignore_ascii_case(&key)) {
                    out.error(
                        at(&["partition", "path"]),
                        format!(
                            "partition key `{key}` is also the column `{}`: a Hive table cannot have both (sink.hive); \
                             rename the directory key, e.g. `{key}_part=`",
                            field.name
                        ),
                    );
                }
            }
        }
        Err(problems) => {
            for problem in problems {
                out.error(at(&["partition", "path"]), format!("{problem} (needed by sink.hive)"));
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

fn check_schema(schema: &[FieldSpec], issue: &mut impl FnMut(Vec<Seg>, String)) {
    let base = |i: usize, rest: &str| vec![key("decode"), key("json"), key("schema"), Seg::Index(i), key(rest)];
    if schema.is_empty() {
        issue(at(&["decode", "json", "schema"]), "schema must declare at least one field".into());
    }
    let mut seen = HashSet::new();
    for (i, field) in schema.iter().enumerate() {
        if field.name.is_empty() {
            issue(base(i, "name"), "field name must not be empty".into());
        } else if field.name == "_ingest" {
            issue(
                base(i, "name"),
                "`_ingest` is reserved for the arrival time in partition templates; rename the field".into(),
            );
        } else if !seen.insert(field.name.as_str()) {
            issue(base(i, "name"), format!("field `{}` is declared twice", field.name));
        }
        if let Some(name) = duplicate_struct_member(&field.field_type) {
            issue(base(i, "type"), format!("struct member `{name}` is declared twice in `{}`", field.field_type));
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
