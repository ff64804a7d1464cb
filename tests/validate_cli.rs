//! `landfall validate` as a user meets it: every shipped example passes; each class of mistake
//! fails with exit ≠ 0 and a message naming `file:line` and the key path.

mod common;

use common::*;

fn validate(yaml: &str) -> (bool, String, String) {
    let (_dir, path) = pipeline_file(yaml);
    let out = landfall().arg("validate").arg(&path).output().expect("run landfall validate");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), path.display().to_string())
}

fn base() -> String {
    pipeline_yaml("clicks", "clicks", &hdfs_sink("/landing/clicks"), "60s")
}

/// Line number (1-based) of the first line containing `needle`.
fn line_of(yaml: &str, needle: &str) -> usize {
    yaml.lines().position(|l| l.contains(needle)).expect("needle in yaml") + 1
}

#[test]
fn every_shipped_pipeline_validates() {
    let dir = repo_root().join("pipelines");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.len() >= 2, "examples in pipelines/");
    let out = landfall().arg("validate").arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "validate pipelines/: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok: pipeline clicks"), "{stdout}");
    assert!(stdout.contains("ok: pipeline clicks-local"), "{stdout}");
    assert!(stdout.contains("ok: pipeline orders"), "{stdout}");
}

#[test]
fn typo_key_names_file_line_and_path() {
    let yaml = base().replace("    group: clicks", "    groupp: clicks");
    let (ok, err, path) = validate(&yaml);
    assert!(!ok);
    let line = line_of(&yaml, "groupp");
    assert!(err.contains(&format!("{path}:{line}:")), "{err}");
    assert!(err.contains("source.kafka.groupp"), "{err}");
}

#[test]
fn wrong_type_names_file_line_and_path() {
    let yaml = base().replace("max_rows: 1000000", "max_rows: lots");
    let (ok, err, path) = validate(&yaml);
    assert!(!ok);
    let line = line_of(&yaml, "max_rows");
    assert!(err.contains(&format!("{path}:{line}:")), "{err}");
    assert!(err.contains("roll.max_rows"), "{err}");
}

#[test]
fn missing_env_var_is_named() {
    let yaml = base().replace("group: clicks", "group: ${LANDFALL_TEST_SURELY_UNSET_VAR}");
    let (ok, err, path) = validate(&yaml);
    assert!(!ok);
    let line = line_of(&yaml, "LANDFALL_TEST_SURELY_UNSET_VAR");
    assert!(err.contains("LANDFALL_TEST_SURELY_UNSET_VAR"), "{err}");
    assert!(err.contains(&format!("{path}:{line}:")), "{err}");
}

#[test]
fn partition_field_not_in_schema() {
    let yaml = base().replace("dt={ts:%Y-%m-%d}/hour={ts:%H}", "dt={tz:%Y-%m-%d}/hour={ts:%H}");
    let (ok, err, path) = validate(&yaml);
    assert!(!ok);
    let line = line_of(&yaml, "path: \"dt=");
    assert!(err.contains(&format!("{path}:{line}:")), "{err}");
    assert!(err.contains("partition.path"), "{err}");
    assert!(err.contains("tz"), "{err}");
}

#[test]
fn strftime_on_a_non_timestamp_field() {
    let yaml = base().replace("hour={ts:%H}", "hour={id:%H}");
    let (ok, err, path) = validate(&yaml);
    assert!(!ok);
    let line = line_of(&yaml, "path: \"dt=");
    assert!(err.contains(&format!("{path}:{line}:")), "{err}");
    assert!(err.contains("partition.path"), "{err}");
    assert!(err.contains("id"), "{err}");
}

#[test]
fn several_problems_are_reported_at_once() {
    let yaml = base().replace("    group: clicks", "    groupp: clicks").replace("hour={ts:%H}", "hour={nope}");
    let (ok, err, _) = validate(&yaml);
    assert!(!ok);
    assert!(err.contains("groupp") && err.contains("nope"), "both problems in one report: {err}");
}

#[tokio::test]
async fn connect_probes_the_broker_and_the_store() {
    let _kafka = require_kafka();
    let _hdfs = require_hdfs();
    let topic = unique("probe");
    create_topic(&topic, 1).await;
    let good = pipeline_yaml("probe", &topic, &hdfs_sink(&format!("/landing-test/{topic}")), "60s");
    let (_dir, path) = pipeline_file(&good);
    let out = landfall().args(["validate", "--connect"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let missing = good.replace(&format!("topics: [\"{topic}\"]"), "topics: [\"no-such-topic-landfall\"]");
    let (_dir2, path2) = pipeline_file(&missing);
    let out = landfall().args(["validate", "--connect"]).arg(&path2).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no-such-topic-landfall") && err.contains("does not exist"), "{err}");
}

#[test]
fn max_age_beyond_the_staging_grace_is_refused() {
    let yaml = base().replace("max_age: 60s", "max_age: 2h");
    let (ok, err, path) = validate(&yaml);
    assert!(!ok);
    let line = line_of(&yaml, "max_age");
    assert!(err.contains(&format!("{path}:{line}:")) && err.contains("roll.max_age") && err.contains("900s"), "{err}");
}

fn rabbitmq_base() -> String {
    rabbitmq_pipeline_yaml("orders", "orders", "quorum", &hdfs_sink("/landing/orders"), "60s")
}

#[test]
fn rabbitmq_uri_without_credentials_is_refused_not_guest() {
    let yaml = rabbitmq_base().replace(AMQP_URI, "amqp://127.0.0.1:5672/%2f");
    let (ok, err, path) = validate(&yaml);
    assert!(!ok);
    let line = line_of(&yaml, "uri:");
    assert!(err.contains(&format!("{path}:{line}:")), "{err}");
    assert!(
        err.contains("source.rabbitmq.uri")
            && err.contains("has no credentials")
            && err.contains("does not fall back to guest"),
        "{err}"
    );
    assert!(
        err.contains("write `amqp://USER:PASSWORD@host:5672/vhost`"),
        "the hint's placeholder is not redacted: {err}"
    );
}

#[test]
fn rabbitmq_prefetch_zero_and_a_max_age_past_the_ack_timeout_are_refused() {
    let yaml = rabbitmq_base().replace("prefetch: 20000", "prefetch: 0\n    ack_timeout: 60s");
    let (ok, err, path) = validate(&yaml);
    assert!(!ok);
    assert!(err.contains(&format!("{path}:{}:", line_of(&yaml, "prefetch: 0"))), "{err}");
    assert!(err.contains("source.rabbitmq.prefetch: prefetch must be between 1 and 65535, got 0"), "{err}");
    assert!(err.contains("source.rabbitmq.ack_timeout: roll.max_age 60s is not shorter than the broker's delivery acknowledgement timeout (60s"), "{err}");
}

/// `landfall validate` with stdout and stderr.
fn validate_output(yaml: &str) -> (bool, String, String, String) {
    let (_dir, path) = pipeline_file(yaml);
    let out = landfall().arg("validate").arg(&path).output().expect("run landfall validate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

#[test]
fn rabbitmq_settings_that_work_but_surprise_are_warnings_not_errors() {
    // A prefetch that caps commits (and so files) below an explicit max_rows: files simply hold
    // fewer rows. It runs, with a warning that says how many.
    let yaml =
        rabbitmq_base().replace("prefetch: 20000", "prefetch: 5000").replace("max_rows: 1000000", "max_rows: 4000");
    let (ok, stdout, err, path) = validate_output(&yaml);
    assert!(ok, "{err}");
    assert!(stdout.contains("ok: pipeline orders"), "{stdout}");
    let line = line_of(&yaml, "prefetch: 5000");
    assert!(err.contains(&format!("{path}:{line}:")), "{err}");
    assert!(
        err.contains("warning: source.rabbitmq.prefetch: files will hold at most 3333 rows, not roll.max_rows 4000")
            && err.contains("raise prefetch to at least 6000"),
        "{err}"
    );
    // roll.max_age over half the broker's ack timeout (but under it): a warning too.
    let yaml = rabbitmq_base().replace("prefetch: 20000", "prefetch: 20000\n    ack_timeout: 90s");
    let (ok, _, err, path) = validate_output(&yaml);
    assert!(ok, "{err}");
    assert!(err.contains(&format!("{path}:{}:", line_of(&yaml, "ack_timeout: 90s"))), "{err}");
    assert!(err.contains("warning: source.rabbitmq.ack_timeout: roll.max_age 60s could exceed the broker's delivery acknowledgement timeout (90s"), "{err}");
}

#[test]
fn run_logs_the_warnings_of_the_pipelines_it_loads() {
    let _rabbitmq = require_rabbitmq();
    // The queue does not exist, so the run stops right after loading: the warning came first.
    let queue = unique("no-such-queue");
    let table = std::env::temp_dir().join(unique("landfall-warn"));
    let sink = format!("  local:\n    path: {}\n", table.display());
    let yaml = rabbitmq_pipeline_yaml("orders", &queue, "quorum", &sink, "60s")
        .replace("prefetch: 20000", "prefetch: 5000")
        .replace("max_rows: 1000000", "max_rows: 4000");
    let (_dir, path) = pipeline_file(&yaml);
    let out = landfall().args(["run", "--until-caught-up"]).arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&table);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARN")
            && err.contains("source.rabbitmq.prefetch")
            && err.contains("files will hold at most 3333 rows"),
        "{err}"
    );
}

#[tokio::test]
async fn connect_names_a_missing_rabbitmq_queue() {
    let _rabbitmq = require_rabbitmq();
    let queue = unique("no-such-queue");
    let yaml = rabbitmq_base().replace("queue: orders", &format!("queue: {queue}"));
    let (_dir, path) = pipeline_file(&yaml);
    let out = landfall().arg("validate").arg("--connect").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("queue `{queue}` does not exist on 127.0.0.1:5672/%2f")), "{err}");
    assert!(err.contains("add `declare:`"), "{err}");
    // The same pipeline against an existing queue probes clean.
    declare_queue(&queue, "quorum").await;
    let out = landfall().arg("validate").arg("--connect").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
