//! End-to-end tests of pipeline loading: every error class, positions, redaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::load::{parse_pipeline_text, EXAMPLES};
use super::shape::{shapes_of, Shape};
use super::*;
use crate::schema::{FieldSpec, FieldType};

const EXAMPLE: &str = include_str!("examples/clicks.yaml");

fn env(name: &str) -> Option<String> {
    match name {
        "KAFKA_PASSWORD" => Some("hunter2-long".into()),
        "BROKER" => Some("10.0.0.1:9092".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<PipelineConfig, ConfigErrors> {
    parse_pipeline(text, Path::new("p.yaml"), &env)
}

/// The error lines for `text`, which must be invalid.
fn errors(text: &str) -> Vec<String> {
    parse(text).unwrap_err().iter().map(ToString::to_string).collect()
}

/// The contract example with `from` replaced by `to` (which must occur exactly once).
fn example_with(from: &str, to: &str) -> String {
    assert_eq!(EXAMPLE.matches(from).count(), 1, "{from}");
    EXAMPLE.replace(from, to)
}

#[test]
fn the_contract_example_parses_and_validates() {
    let config = parse(EXAMPLE).unwrap();
    assert_eq!(config.name, "clicks");
    let SourceConfig::Kafka(kafka) = &config.source else { panic!("a kafka source") };
    assert_eq!(kafka.brokers, ["127.0.0.1:9092"]);
    assert_eq!(kafka.topics, ["clicks"]);
    assert_eq!(kafka.group, "landfall-clicks");
    assert_eq!(kafka.start, StartPosition::Earliest);
    assert_eq!(kafka.session_timeout, None);
    assert_eq!(kafka.session_timeout(), Duration::from_secs(45));
    assert!(!kafka.next_gen_protocol());
    assert!(kafka.options.is_empty());
    assert_eq!(config.schema().len(), 6);
    assert_eq!(
        config.schema()[5],
        FieldSpec {
            name: "geo".into(),
            field_type: FieldType::Struct(vec![("lat".into(), FieldType::Float64), ("lon".into(), FieldType::Float64)]),
            required: false,
        }
    );
    assert_eq!(config.partition.path, "dt={ts:%Y-%m-%d}/hour={ts:%H}");
    assert_eq!(config.partition.timezone, "UTC");
    assert_eq!(
        config.roll,
        RollConfig {
            max_rows: 1_000_000,
            max_bytes: ByteSize(128 << 20),
            max_age: HumanDuration::from_secs(60),
            max_buffered_bytes: ByteSize(32 << 20),
            max_open_files: 1000
        }
    );
    assert_eq!(
        config.parquet,
        ParquetConfig { compression: Compression::Zstd, compression_level: None, row_group_rows: 122_880 }
    );
    let StoreConfig::Hdfs(hdfs) = &config.sink.store else { panic!("{:?}", config.sink) };
    assert_eq!(config.sink.hive, None);
    assert_eq!(
        (hdfs.url.as_str(), hdfs.path.as_str(), hdfs.user.as_deref()),
        ("hdfs://127.0.0.1:9000", "/landing/clicks", None)
    );
}

#[test]
fn every_shipped_example_validates() {
    for (name, text) in EXAMPLES {
        if let Err(errors) = parse(text) {
            panic!("{name}:\n{errors}");
        }
    }
    let orders = parse(EXAMPLES[1].1).unwrap();
    assert_eq!(
        orders.sink,
        SinkConfig { store: StoreConfig::Local(LocalSinkConfig { path: "./landing/orders".into() }), hive: None }
    );
    assert_eq!(
        orders.parquet.codec().unwrap(),
        parquet::basic::Compression::GZIP(parquet::basic::GzipLevel::try_new(6).unwrap())
    );
}

#[test]
fn known_keys_are_read_from_the_serde_structs() {
    let shapes = shapes_of::<PipelineConfig>();
    assert_eq!(
        shapes[""],
        Shape::Struct(&["name", "source", "decode", "partition", "roll", "parquet", "sink", "quarantine", "staging"])
    );
    assert_eq!(shapes["staging"], Shape::Struct(&["grace"]));
    assert_eq!(shapes["quarantine"], Shape::Struct(&["permissions"]));
    assert_eq!(shapes["source"], Shape::Enum(&["kafka", "rabbitmq"]));
    assert_eq!(
        shapes["source.rabbitmq"],
        Shape::Struct(&[
            "uri",
            "queue",
            "queue_type",
            "prefetch",
            "auth",
            "tls",
            "declare",
            "dedup_window",
            "ack_timeout",
            "start",
            "on_position_lost"
        ])
    );
    assert_eq!(
        shapes["source.kafka"],
        Shape::Struct(&["brokers", "topics", "group", "start", "on_position_lost", "session_timeout", "options"])
    );
    assert_eq!(shapes["source.kafka.options"], Shape::OpenMap);
    assert_eq!(shapes["decode.json.schema[]"], Shape::Struct(&["name", "type", "required"]));
    assert_eq!(shapes["sink"], Shape::Struct(&["hdfs", "local", "hive"]));
    assert_eq!(shapes["sink.hive"], Shape::Struct(&["metastore", "database", "table", "compaction"]));
    assert_eq!(shapes["sink.hive.compaction"], Shape::Struct(&["min_files", "target_file_size", "grace"]));
    assert_eq!(shapes["sink.hdfs"], Shape::Struct(&["url", "path", "user", "options"]));
    assert_eq!(shapes["sink.local"], Shape::Struct(&["path"]));
    assert_eq!(shapes["parquet.compression"], Shape::Enum(&["zstd", "snappy", "gzip", "lz4", "none"]));
    assert_eq!(shapes["source.kafka.start"], Shape::Enum(&["earliest", "latest"]));
    assert_eq!(
        shapes["source.rabbitmq.declare"],
        Shape::Struct(&["bindings", "dead_letter_exchange", "single_active_consumer"])
    );
    assert_eq!(shapes["source.rabbitmq.queue_type"], Shape::Enum(&["quorum", "classic", "stream"]));
    for source in ["kafka", "rabbitmq"] {
        assert_eq!(shapes[&format!("source.{source}.on_position_lost")], Shape::Enum(&["fail", "earliest", "latest"]));
    }
    assert_eq!(shapes["partition.completion"], Shape::Struct(&["allowed_lateness", "idle_timeout", "marker"]));
    assert_eq!(shapes.len(), 30, "{shapes:#?}");
}

#[test]
fn a_typo_key_is_reported_with_its_position_and_a_suggestion() {
    let text = example_with("    group: landfall-clicks", "    groupp: landfall-clicks");
    assert_eq!(
        errors(&text),
        [
            "p.yaml:3:3: source.kafka.group: missing required field `group`",
            "p.yaml:6:5: source.kafka.groupp: unknown field `groupp`, expected one of `brokers`, `topics`, `group`, `start`, `on_position_lost`, `session_timeout`, `options` (did you mean `group`?)",
        ]
    );
}

#[test]
fn a_wrong_type_is_reported_at_the_value() {
    let text = example_with("  max_rows: 1000000", "  max_rows: lots");
    assert_eq!(errors(&text), ["p.yaml:22:13: roll.max_rows: invalid type: string \"lots\", expected u64"]);
}

#[test]
fn quarantine_permissions_are_quoted_octal_and_private_by_default() {
    assert_eq!(parse(EXAMPLE).unwrap().quarantine.permissions, crate::config::FileMode(0o640));
    let set = |v: &str| format!("{EXAMPLE}quarantine:\n  permissions: {v}\n");
    assert_eq!(parse(&set("\"0600\"")).unwrap().quarantine.permissions.0, 0o600);
    assert_eq!(parse(&set("\"644\"")).unwrap().quarantine.permissions.for_directory(), 0o755);
    assert_eq!(parse(&set("0750")).unwrap().quarantine.permissions.0, 0o750, "a leading 0 keeps it a string");
    let number = errors(&set("640"));
    assert!(number[0].contains(r#"quote the permission bits, e.g. "0640""#), "{number:?}");
    let bad = errors(&set("\"0980\""));
    assert!(bad[0].contains("quarantine.permissions") && bad[0].contains("three octal digits"), "{bad:?}");
}

#[test]
fn a_bad_enum_value_and_an_unknown_connector_are_reported() {
    let text = example_with("compression: zstd ", "compression: zstdd ").replace("  hdfs:\n", "  s3:\n");
    assert_eq!(
        errors(&text),
        [
            "p.yaml:26:16: parquet.compression: unknown variant `zstdd`, expected one of `zstd`, `snappy`, `gzip`, `lz4`, `none`",
            "p.yaml:28:3: sink.s3: unknown field `s3`, expected one of `hdfs`, `local`, `hive`",
            "p.yaml:28:3: sink: choose exactly one of `hdfs`, `local`, found none",
        ]
    );
}

#[test]
fn a_missing_required_key_is_reported_at_its_parent() {
    let text = example_with("name: clicks\n", "");
    assert_eq!(errors(&text), ["p.yaml:1:1: name: missing required field `name`"]);
    let text = example_with("    topics: [\"clicks\"]\n", "");
    assert_eq!(errors(&text), ["p.yaml:3:3: source.kafka.topics: missing required field `topics`"]);
}

#[test]
fn a_missing_environment_variable_names_it_with_its_position() {
    let text = example_with("    group: landfall-clicks", "    group: ${GROUP_NAME}")
        .replace("[\"127.0.0.1:9092\"]", "[\"${BROKER}\"]");
    assert_eq!(
        errors(&text),
        ["p.yaml:6:12: source.kafka.group: environment variable `GROUP_NAME` is not set (referenced as `${GROUP_NAME}`); export it, or write `$${` for a literal `${`"]
    );
}

#[test]
fn environment_values_are_substituted_before_parsing() {
    let text = example_with("[\"127.0.0.1:9092\"]", "[\"${BROKER}\"]");
    let config = parse(&text).unwrap();
    let SourceConfig::Kafka(kafka) = &config.source else { panic!("a kafka source") };
    assert_eq!(kafka.brokers, ["10.0.0.1:9092"]);
}

#[test]
fn many_problems_are_reported_together_in_line_order() {
    let text = "\
name: Clicks!
source:
  kafka:
    brokers: []
    topics: [clicks, clicks]
    group: g
    options: { group.id: other, sasl.password: x }
    sesion_timeout: 10s
decode:
  json:
    schema:
      - { name: id, type: string }
      - { name: id, type: int63 }
      - { name: ts, type: timestamp }
partition:
  path: \"dt={ts:%Y-%m-%d}\"
  timezone: Mars/Olympus
roll:
  max_rows: 0
  max_age: 0s
parquet:
  compression: snappy
  compression_level: 3
sink:
  hdfs: { url: \"http://nn:9000\", path: landing }
";
    assert_eq!(
        errors(text),
        [
            "p.yaml:1:7: name: pipeline name `Clicks!` must be non-empty and use only a-z, 0-9, `_` and `-` (it goes into paths and metric labels)",
            "p.yaml:4:14: source.kafka.brokers: brokers must list at least one `host:port`",
            "p.yaml:5:22: source.kafka.topics[1]: topic `clicks` is listed twice",
            "p.yaml:7:26: source.kafka.options.group.id: `group.id` is managed by Landfall (set by `group`); remove it",
            "p.yaml:8:5: source.kafka.sesion_timeout: unknown field `sesion_timeout`, expected one of `brokers`, `topics`, `group`, `start`, `on_position_lost`, `session_timeout`, `options` (did you mean `session_timeout`?)",
            "p.yaml:13:27: decode.json.schema[1].type: unknown type `int63` (expected one of: string, bool, int32, int64, float32, float64, decimal(p,s), date, timestamp, list<T>, struct<name: T, …>)",
            "p.yaml:17:13: partition.timezone: unknown time zone `Mars/Olympus`: use an IANA name such as `UTC` or `Europe/Berlin`",
            "p.yaml:19:13: roll.max_rows: max_rows must be at least 1",
            "p.yaml:20:12: roll.max_age: max_age must be greater than 0, e.g. `60s`",
            "p.yaml:23:22: parquet.compression_level: snappy takes no compression_level (got 3); remove it",
            "p.yaml:25:16: sink.hdfs.url: url `http://nn:9000` must start with `hdfs://` or `viewfs://`",
            "p.yaml:25:40: sink.hdfs.path: path `landing` must be absolute (start with `/`)",
        ]
    );
}

#[test]
fn duplicate_schema_fields_and_duplicate_keys_are_reported() {
    let text = example_with(
        "      - { name: tags,    type: \"list<string>\" }",
        "      - { name: user_id, type: \"list<string>\" }",
    )
    .replace("  max_rows: 1000000\n", "  max_rows: 1000000\n  max_rows: 5\n");
    assert_eq!(
        errors(&text),
        [
            "p.yaml:16:17: decode.json.schema[4].name: field `user_id` is declared twice",
            "p.yaml:23:3: roll.max_rows: duplicate key `max_rows`; the first one is used, remove the other",
        ]
    );
}

#[test]
fn a_yaml_syntax_error_stops_with_its_position() {
    let lines = errors("name: clicks\nsource: [kafka\nsink: x\n");
    assert_eq!(lines, ["p.yaml:3:5: YAML syntax error: illegal placement of ':' indicator"]);
}

#[test]
fn managed_and_secret_kafka_options() {
    let text = example_with(
        "    options: {}  ",
        "    options: { enable.auto.commit: true, isolation.level: read_uncommitted, security.protocol: SASL_SSL, sasl.password: \"${KAFKA_PASSWORD}\", sasl.username: landfall }",
    );
    let lines = errors(&text);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("source.kafka.options.enable.auto.commit: `enable.auto.commit` is managed by Landfall"),
        "{lines:?}"
    );
    assert!(lines[1].contains("source.kafka.options.isolation.level: `isolation.level` is managed by Landfall (Landfall reads `read_committed`"), "{lines:?}");
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let text = example_with(
        "    options: {}  ",
        "    options: { security.protocol: SASL_SSL, sasl.password: \"${KAFKA_PASSWORD}\", ssl.key.pem: PEMDATA }",
    )
    .replace("url: hdfs://127.0.0.1:9000", "url: hdfs://alice:topsecret@127.0.0.1:9000");
    let config = parse(&text).unwrap();
    let SourceConfig::Kafka(kafka) = &config.source else { panic!("a kafka source") };
    assert_eq!(kafka.options.get("sasl.password"), Some("hunter2-long"));
    for printed in [format!("{config:?}"), config.redacted()] {
        assert!(!printed.contains("hunter2-long"), "{printed}");
        assert!(!printed.contains("PEMDATA"), "{printed}");
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("SASL_SSL"), "{printed}");
        assert!(printed.contains("hdfs://***@127.0.0.1:9000"), "{printed}");
    }
}

#[test]
fn values_of_secret_env_vars_are_redacted_in_error_messages() {
    let text = example_with("  max_rows: 1000000", "  max_rows: ${KAFKA_PASSWORD}");
    let lines = errors(&text);
    assert_eq!(lines, ["p.yaml:22:13: roll.max_rows: invalid type: string \"***\", expected u64"]);
}

#[test]
fn partition_template_problems_are_reported_at_partition_path() {
    fn fake_template(text: &str, schema: &[FieldSpec]) -> Result<(), Vec<String>> {
        assert_eq!(schema.len(), 6);
        Err(vec![format!("`{text}`: field `nope` is not in the schema"), "second problem".into()])
    }
    let parsed = parse_pipeline_text(EXAMPLE, Path::new("p.yaml"), &env, fake_template);
    let lines: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "p.yaml:19:9: partition.path: `dt={ts:%Y-%m-%d}/hour={ts:%H}`: field `nope` is not in the schema",
            "p.yaml:19:9: partition.path: second problem",
        ]
    );
    // A broken schema skips the template check instead of blaming the template.
    let broken = example_with("type: int64 }", "type: int65 }");
    let parsed = parse_pipeline_text(&broken, Path::new("p.yaml"), &env, fake_template);
    assert_eq!(parsed.errors.len(), 1, "{}", parsed.errors);
    assert_eq!(parsed.errors.iter().next().unwrap().key_path, "decode.json.schema[1].type");
}

#[test]
fn partition_field_not_in_schema_is_reported() {
    let text = example_with("hour={ts:%H}", "hour={nope}");
    let lines = errors(&text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("p.yaml:19:9: partition.path: "), "{lines:?}");
    assert!(lines[0].contains("nope"), "{lines:?}");
}

#[test]
fn strftime_on_a_non_timestamp_field_is_reported() {
    let text = example_with("hour={ts:%H}", "hour={user_id:%H}");
    let lines = errors(&text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("p.yaml:19:9: partition.path: "), "{lines:?}");
    assert!(lines[0].contains("user_id"), "{lines:?}");
}

#[test]
fn load_pipelines_reads_directories_in_order_and_refuses_duplicate_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.yaml"), EXAMPLE).unwrap();
    std::fs::write(dir.path().join("a.yml"), EXAMPLE).unwrap();
    std::fs::write(dir.path().join("c.yaml"), example_with("name: clicks", "name: clicks2")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a pipeline").unwrap();
    let missing = dir.path().join("missing.yaml");
    let Loaded { pipelines: loaded, errors, warnings } = load_pipelines(&[dir.path().to_path_buf(), missing.clone()]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let names: Vec<(PathBuf, &str)> = loaded.iter().map(|(p, c)| (p.clone(), c.name.as_str())).collect();
    assert_eq!(names, [(dir.path().join("a.yml"), "clicks"), (dir.path().join("c.yaml"), "clicks2")]);
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with(&format!("{}: cannot read pipeline path", missing.display())), "{lines:?}");
    assert_eq!(
        lines[1],
        format!(
            "{}:1:7: name: pipeline name `clicks` is already used by {}; names must be unique (they name paths, offsets and metrics)",
            dir.path().join("b.yaml").display(),
            dir.path().join("a.yml").display()
        )
    );
    assert_eq!(load_pipeline(&dir.path().join("c.yaml")).unwrap().name, "clicks2");
}

#[test]
fn odd_shapes_get_readable_errors() {
    assert_eq!(
        errors(""),
        ["p.yaml:1:1: a pipeline file is a YAML mapping with the keys `name`, `source`, `decode`, `partition`, `roll`, `parquet`, `sink`, `quarantine`, `staging`; found an empty document"]
    );
    let sink = "sink:\n  hdfs:\n    url: hdfs://127.0.0.1:9000\n    path: /landing/clicks\n";
    assert_eq!(
        errors(&example_with(sink, "sink: local\n")),
        ["p.yaml:27:7: sink: invalid type: string \"local\", expected a mapping with `hdfs` or `local` (and optionally `hive`) and its settings below it"]
    );
    assert_eq!(
        errors(&example_with(sink, "sink:\n  hdfs: {}\n  local: {path: x}\n")),
        [
            "p.yaml:28:3: sink.hdfs.url: missing required field `url`",
            "p.yaml:28:3: sink.hdfs.path: missing required field `path`",
            "p.yaml:28:3: sink: choose exactly one of `hdfs`, `local`, found `hdfs`, `local`",
        ]
    );
    assert_eq!(
        errors(&example_with("brokers: [\"127.0.0.1:9092\"]", "brokers:\n      - 1\n      - [x]")),
        [
            "p.yaml:5:9: source.kafka.brokers[0]: invalid type: integer `1`, expected a string",
            "p.yaml:6:9: source.kafka.brokers[1]: invalid type: sequence, expected a string",
        ]
    );
    assert_eq!(
        errors(&example_with("    schema:\n", "    schema:\n      - name: a\n        type: int64\n        requird: true\n      - oops\n")),
        [
            "p.yaml:14:9: decode.json.schema[0].requird: unknown field `requird`, expected one of `name`, `type`, `required` (did you mean `required`?)",
            "p.yaml:15:9: decode.json.schema[1]: invalid type: string \"oops\", expected struct FieldSpec",
        ]
    );
}

/// The warnings for `text`, which must parse without errors.
fn warnings(text: &str) -> Vec<String> {
    let parsed = parse_pipeline_text(text, Path::new("p.yaml"), &env, validate::partition_template);
    assert!(parsed.errors.is_empty(), "{}", parsed.errors);
    parsed.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn settings_that_work_but_surprise_are_warnings_with_positions() {
    let start = EXAMPLE.find("source:\n").unwrap();
    let end = EXAMPLE.find("decode:").unwrap();
    let source = "source:\n  rabbitmq:\n    uri: amqp://u:p@h:5672/%2f\n    queue: orders\n    prefetch: 5000\n";
    let rabbit =
        format!("{}{source}{}", &EXAMPLE[..start], &EXAMPLE[end..]).replace("max_rows: 1000000", "max_rows: 4000");
    let found = warnings(&rabbit);
    let line = rabbit.lines().position(|l| l.contains("prefetch: 5000")).unwrap() + 1;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!("p.yaml:{line}:15: warning: source.rabbitmq.prefetch: files will hold at most 3333 rows, not roll.max_rows 4000")),
        "{}",
        found[0]
    );
    // max_age between a quarter and a half of the staging grace period: a warning.
    let slow = example_with("max_age: 60s", "max_age: 20m");
    let line = slow.lines().position(|l| l.contains("max_age: 20m")).unwrap() + 1;
    let found = warnings(&slow);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!("p.yaml:{line}:12: warning: roll.max_age: max_age 20m leaves little margin")),
        "{}",
        found[0]
    );
    assert!(warnings(EXAMPLE).is_empty());
    // A longer staging grace makes room for it.
    let graced = format!("{slow}staging:\n  grace: 2h\n");
    assert!(warnings(&graced).is_empty(), "{:?}", warnings(&graced));
    let short = format!("{EXAMPLE}staging:\n  grace: 30s\n");
    let found = errors(&short);
    assert!(found.iter().any(|e| e.contains("staging.grace: grace must be at least 1m")), "{found:?}");
}

/// The contract example with a `sink.hive` section (`hive` is the YAML below `hive:`).
fn example_with_hive(hive: &str) -> String {
    let sink = "    path: /landing/clicks\n";
    example_with(sink, &format!("{sink}  hive:\n{hive}"))
}

#[test]
fn sink_hive_names_the_metastore_database_and_table() {
    let text = example_with_hive("    metastore: thrift://127.0.0.1:9083\n    database: landing\n    table: clicks\n");
    let config = parse(&text).unwrap();
    assert!(matches!(config.sink.store, StoreConfig::Hdfs(_)));
    assert_eq!(
        config.sink.hive,
        Some(HiveConfig {
            metastore: "thrift://127.0.0.1:9083".into(),
            database: "landing".into(),
            table: "clicks".into(),
            compaction: None,
        })
    );
}

#[test]
fn sink_hive_problems_are_reported_at_their_keys() {
    let text = example_with_hive(
        "    metastore: http://127.0.0.1:9083\n    database: Landing\n    table: click-s\n    tabel: x\n",
    );
    assert_eq!(
        errors(&text),
        [
            "p.yaml:32:16: sink.hive.metastore: `http://127.0.0.1:9083`: the scheme is \"http\", not thrift; write thrift://HOST:PORT",
            "p.yaml:33:15: sink.hive.database: database `Landing` must be lower case, as Hive stores it: write `landing`",
            "p.yaml:34:12: sink.hive.table: table `click-s` may only use a-z, 0-9 and `_` (Hive's identifier characters)",
            "p.yaml:35:5: sink.hive.tabel: unknown field `tabel`, expected one of `metastore`, `database`, `table`, `compaction` (did you mean `table`?)",
        ]
    );
    let text = example_with_hive("    metastore: thrift://127.0.0.1:9083\n    database: landing\n");
    assert_eq!(errors(&text), ["p.yaml:31:3: sink.hive.table: missing required field `table`"]);
}

#[test]
fn sink_hive_compaction_has_defaults_needs_completion_refuses_what_cannot_work_and_warns_of_a_short_grace() {
    let hive = "    metastore: thrift://127.0.0.1:9083\n    database: landing\n    table: clicks\n    compaction: {}\n";
    let text = example_with_hive(hive);
    let lines = errors(&text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("sink.hive.compaction: compaction rewrites only complete partitions"), "{}", lines[0]);

    let with_completion =
        |hive: &str| example_with_hive(hive).replace("  path: \"dt=", "  completion: {}\n  path: \"dt=");
    let config = parse(&with_completion(hive)).unwrap();
    let compaction = config.sink.hive.unwrap().compaction.unwrap();
    assert_eq!(
        (compaction.min_files, compaction.target_file_size.bytes(), compaction.grace.get().as_secs()),
        (10, 128 << 20, 3600)
    );
    let bad =
        "    metastore: thrift://127.0.0.1:9083\n    database: landing\n    table: clicks\n    compaction:\n      \
               min_files: 1\n      grace: 1m\n      target_file_size: 1KiB\n";
    let lines = errors(&with_completion(bad));
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, key) in lines.iter().zip(["min_files", "target_file_size"]) {
        assert!(line.contains(&format!("sink.hive.compaction.{key}: {key} must be at least")), "{line}");
    }
    // A short grace works (the tests use one) but can fail long queries: a warning.
    let short = bad.replace("min_files: 1", "min_files: 2").replace("1KiB", "1MiB");
    let lines = warnings(&with_completion(&short));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("sink.hive.compaction.grace: grace is 1m, under 10m"), "{}", lines[0]);
}

#[test]
fn sink_hive_needs_an_hdfs_sink() {
    let text = "sink:\n  local:\n    path: ./landing/clicks\n  hive: { metastore: \"thrift://m\", database: landing, table: clicks }\n";
    let text = EXAMPLE[..EXAMPLE.find("sink:").unwrap()].to_string() + text;
    let lines = errors(&text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("sink.hive: a Hive Metastore table needs an HDFS sink"), "{}", lines[0]);
}

#[test]
fn sink_hive_needs_hive_style_partition_directories_apart_from_the_columns() {
    let hive = "    metastore: thrift://127.0.0.1:9083\n    database: landing\n    table: clicks\n";
    let with = |template: &str| example_with_hive(hive).replace("dt={ts:%Y-%m-%d}/hour={ts:%H}", template);
    assert_eq!(
        errors(&with("{ts:%Y-%m-%d}/hour={ts:%H}")),
        ["p.yaml:19:9: partition.path: segment `{ts:%Y-%m-%d}` is not `key=value`; a Hive table's partition directories name their column, e.g. `dt={ts:%Y-%m-%d}` (needed by sink.hive)"]
    );
    assert_eq!(
        errors(&with("dt={ts:%Y-%m-%d}/ID={id}")).len(),
        1,
        "an upper-case key is refused (the metastore would store `id`)"
    );
    assert_eq!(
        errors(&with("dt={ts:%Y-%m-%d}/id={id}")),
        ["p.yaml:19:9: partition.path: partition key `id` is also the column `id`: a Hive table cannot have both (sink.hive); rename the directory key, e.g. `id_part=`"]
    );
    // Without sink.hive the same template is fine.
    assert!(parse(&example_with("dt={ts:%Y-%m-%d}/hour={ts:%H}", "{ts:%Y-%m-%d}/id={id}")).is_ok());
}

#[test]
fn the_next_generation_group_protocol_refuses_classic_settings_and_ignores_session_timeout_loudly() {
    let next_gen = example_with("    options: {}", "    options: { group.protocol: consumer }");
    let SourceConfig::Kafka(kafka) = parse(&next_gen).unwrap().source else { panic!("a kafka source") };
    assert!(kafka.next_gen_protocol());
    assert!(warnings(&next_gen).is_empty(), "{:?}", warnings(&next_gen));

    let timed = next_gen.replace("    options: {", "    session_timeout: 10s\n    options: {");
    let found = warnings(&timed);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(
            "warning: source.kafka.session_timeout: session_timeout 10s is ignored with `group.protocol: consumer`"
        ),
        "{}",
        found[0]
    );
    // Without the option the same session_timeout is simply used.
    let classic = example_with("    options: {}", "    session_timeout: 10s\n    options: {}");
    assert!(warnings(&classic).is_empty(), "{:?}", warnings(&classic));

    let assigned = example_with(
        "    options: {}",
        "    options: { group.protocol: consumer, partition.assignment.strategy: range }",
    );
    let found = errors(&assigned);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("source.kafka.options.partition.assignment.strategy: `partition.assignment.strategy` does not apply with `group.protocol: consumer`"),
        "{}",
        found[0]
    );
    // The classic protocol accepts another strategy (eager rebalances, the user's choice).
    let eager = example_with("    options: {}", "    options: { partition.assignment.strategy: range }");
    assert!(parse(&eager).is_ok());
}

/// The contract example with partition template `path` and the YAML `completion` (indented
/// below `partition.completion:`).
fn example_with_completion(path: &str, completion: &str) -> String {
    example_with("\"dt={ts:%Y-%m-%d}/hour={ts:%H}\"", &format!("\"{path}\""))
        .replace("  timezone: UTC ", &format!("  completion:\n{completion}\n  timezone: UTC "))
}

/// The errors and warnings of `text` (`key.path: message`, no position).
fn completion_findings(text: &str) -> (Vec<String>, Vec<String>) {
    let parsed = parse_pipeline_text(text, Path::new("p.yaml"), &env, validate::partition_template);
    let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
    let strip = |line: &str| {
        let rest = line.split_once(": ").unwrap().1;
        rest.strip_prefix("warning: ").unwrap_or(rest).to_string()
    };
    let errors = errors.iter().map(|e| strip(e)).collect();
    let warnings = parsed.warnings.iter().map(|w| strip(&w.to_string())).collect();
    (errors, warnings)
}

const HOURS: &str = "dt={ts:%Y-%m-%d}/hour={ts:%H}";

#[test]
fn completion_is_absent_by_default_and_has_documented_defaults() {
    assert_eq!(parse(EXAMPLE).unwrap().partition.completion, None);
    let text = example_with_completion(HOURS, "    marker: _SUCCESS");
    let parsed = parse_pipeline_text(&text, Path::new("p.yaml"), &env, validate::partition_template);
    assert_eq!(
        parsed.config.unwrap().partition.completion,
        Some(CompletionConfig {
            allowed_lateness: HumanDuration::from_secs(600),
            idle_timeout: HumanDuration::from_secs(300),
            marker: "_SUCCESS".into(),
        })
    );
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(completion_findings(&text), (vec![], vec![]), "nothing to say about the defaults");
    let typo = example_with_completion(HOURS, "    lateness: 5m");
    let errors = errors(&typo);
    assert!(errors[0].contains("partition.completion.lateness: unknown field `lateness`"), "{errors:?}");
}

#[test]
fn completion_needs_one_clock_naming_one_interval_per_directory() {
    for (path, message) in [
        ("u={user_id}", "partition.path: completion needs a time field in partition.path, e.g. `dt={ts:%Y-%m-%d}`"),
        ("dt={ts:%Y-%m-%d}/hour={_ingest:%H}", "partition.path: completion needs one clock, but"),
        ("dt={user_id}-{ts:%Y-%m-%d}", "partition.path: segment `dt={user_id}-{ts:%Y-%m-%d}` mixes the time field"),
        ("hour={ts:%H}", "partition.path: `hour={ts:%H}` does not name one hour per directory"),
        ("m={ts:%m}", "partition.path: `m={ts:%m}` does not name one month per directory"),
        ("dt={ts:%y-%m-%d}", "partition.path: `dt={ts:%y-%m-%d}` does not name one day per directory"),
        ("dt={ts:%Y-%m-%d}/wd={ts:%a}/h={ts:%I}", "partition.path: `dt={ts:%Y-%m-%d}/wd={ts:%a}/h={ts:%I}` does not"),
        ("t={ts:%Y%m%d%H%M%S}", "partition.path: `t={ts:%Y%m%d%H%M%S}` prints seconds or finer"),
        ("w={ts:%G-%V}", "partition.path: `w={ts:%G-%V}` prints a week"),
    ] {
        let (errors, warnings) = completion_findings(&example_with_completion(path, "    marker: _SUCCESS"));
        assert_eq!(errors.len(), 1, "{path}: {errors:?}");
        assert!(errors[0].starts_with(message), "{path}: {errors:?}");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
    // Without completion nothing is said.
    let ok = example_with("\"dt={ts:%Y-%m-%d}/hour={ts:%H}\"", "\"hour={ts:%H}\"");
    assert!(parse(&ok).is_ok());
}

#[test]
fn the_marker_must_be_one_hidden_file_name_of_its_own() {
    for marker in ["_SUCCESS", ".done", "_DONE.flag"] {
        let text = example_with_completion(HOURS, &format!("    marker: \"{marker}\""));
        assert_eq!(completion_findings(&text), (vec![], vec![]), "{marker}");
    }
    for (marker, why) in [
        ("SUCCESS", "must start with `_` or `.`"),
        ("_a/_b", "must be one file name, without `/`"),
        ("..", "is not a file name"),
        ("", "is not a file name: empty"),
        ("_landfall", "is a directory of Landfall's own"),
        ("_rejected", "is a directory of Landfall's own"),
    ] {
        let text = example_with_completion(HOURS, &format!("    marker: \"{marker}\""));
        let (errors, _) = completion_findings(&text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let expected = format!("partition.completion.marker: marker `{marker}` {why}");
        assert!(errors[0].starts_with(&expected), "{errors:?}");
    }
}

#[test]
fn idle_timeout_must_clear_the_roll_interval() {
    let idle =
        |timeout: &str| completion_findings(&example_with_completion(HOURS, &format!("    idle_timeout: {timeout}")));
    let (errors, _) = idle("0s");
    assert_eq!(errors, ["partition.completion.idle_timeout: idle_timeout must be greater than 0, e.g. `5m`"]);
    // roll.max_age is 60s in the example.
    let (errors, _) = idle("60s");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("partition.completion.idle_timeout: idle_timeout 1m must exceed roll.max_age 1m"),
        "{errors:?}"
    );
    let (errors, warnings) = idle("90s");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .starts_with("partition.completion.idle_timeout: idle_timeout 90s is less than twice roll.max_age 1m"),
        "{warnings:?}"
    );
    assert!(warnings[0].ends_with("keep it at least 2m"), "{warnings:?}");
    assert_eq!(idle("2m"), (vec![], vec![]));
}

#[test]
fn a_date_clock_with_lateness_is_a_warning() {
    let with_day = |completion: &str| {
        example_with_completion("dt={day}", completion)
            .replace("      - { name: tags,", "      - { name: day,     type: date }\n      - { name: tags,")
    };
    let (errors, warnings) = completion_findings(&with_day("    marker: _SUCCESS"));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "partition.completion.allowed_lateness: the clock `day` is a date, so every row counts as the start of its day: \
             with allowed_lateness 10m day d completes only once every source partition has published rows dated d+2"
        ),
        "{warnings:?}"
    );
    assert_eq!(completion_findings(&with_day("    allowed_lateness: 0s")), (vec![], vec![]));
}

#[test]
fn completion_on_a_queue_runs_with_a_warning_that_idleness_is_judged_by_commit_age_alone() {
    let text = example_with_completion(HOURS, "    marker: _SUCCESS");
    let start = text.find("source:\n").unwrap();
    let end = text.find("decode:").unwrap();
    let source = "source:\n  rabbitmq:\n    uri: amqp://u:p@h:5672/%2f\n    queue: orders\n";
    let rabbit = format!("{}{source}{}", &text[..start], &text[end..]);
    let (errors, warnings) = completion_findings(&rabbit);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("partition.completion: with a RabbitMQ source a queue counts as idle"),
        "{warnings:?}"
    );
}

#[test]
fn completion_refuses_a_topic_pattern_it_could_not_enumerate() {
    let text = example_with_completion(HOURS, "    marker: _SUCCESS")
        .replace("topics: [\"clicks\"]", "topics: [\"^clicks-.*\"]");
    assert!(text.contains("^clicks-"), "the example lists its topic as expected");
    let (errors, _) = completion_findings(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "partition.completion: completion needs every topic listed by name, not the pattern `^clicks-.*`"
        ),
        "{errors:?}"
    );
}
