//! The driver in-process: a fake [`Source`] of either position model, the real writer and
//! commit log, and the fault-injecting in-memory store. Each test states one rule the driver
//! must hold for every source.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::testing::{FakeLog, FakeSource, Script};
use super::writer::Downstream;
use super::{drive, RunMode, RunOptions, RunSummary, Shutdown};
use crate::config::PipelineConfig;
use crate::sink::memory::{Fault, MemStore, Verb};
use crate::source::{Positions, Source};

const ROOT: &str = "/table";

/// Source and roll settings for the test pipeline (either kind; the fake ignores the source).
fn config(positions: Positions, roll: &str) -> PipelineConfig {
    let source = match positions {
        Positions::SourceOffsets => "kafka: { brokers: [\"127.0.0.1:9\"], topics: [t], group: g }".to_string(),
        Positions::LandingSequence => {
            "rabbitmq: { uri: \"amqp://u:p@127.0.0.1:9/%2f\", queue: t, prefetch: 60, dedup_window: 1000 }".to_string()
        }
    };
    let yaml = format!(
        "name: fake\nsource:\n  {source}\ndecode:\n  json:\n    schema:\n      - {{ name: id, type: string, required: true }}\n      - {{ name: k, type: int32, required: true }}\npartition:\n  path: \"k={{k}}\"\nroll: {{ {roll} }}\nsink:\n  local:\n    path: /tmp/unused\n"
    );
    crate::config::parse_pipeline(&yaml, Path::new("fake.yaml"), &|_| None).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// `streams` lanes of `n` messages each, spread over `values` partition values.
fn messages(streams: usize, n: usize, values: usize) -> Vec<Vec<(Vec<u8>, Option<String>)>> {
    (0..streams)
        .map(|p| {
            (0..n)
                .map(|i| {
                    let id = format!("m-{p}-{i}");
                    (format!(r#"{{"id":"{id}","k":{}}}"#, i % values).into_bytes(), Some(id))
                })
                .collect()
        })
        .collect()
}

struct Run {
    result: Result<RunSummary, super::PipelineError>,
    log: Arc<Mutex<FakeLog>>,
    store: MemStore,
    took: Duration,
    /// What the run reported to `/metrics` and `/api/status`.
    observer: Arc<crate::observe::Observer>,
    /// The directories the commits handed over for Hive registration (`sink.hive`).
    registrar: Arc<crate::metastore::registrar::Registrar>,
    /// What the driver told partition completion (whether it holds topic `t`'s partition 0).
    completion: Arc<crate::completion::Completion>,
}

/// Completion state for a run: the fake table has no time field, so its clock comes from a
/// template of its own; the run only reports to it.
fn completion(watch: &crate::observe::PipelineWatch) -> Arc<crate::completion::Completion> {
    use crate::schema::{FieldSpec, FieldType};
    let schema = [FieldSpec { name: "ts".into(), field_type: FieldType::Timestamp, required: true }];
    let template = crate::partition::PartitionTemplate::parse("dt={ts:%Y-%m-%d}", &schema).unwrap();
    let clock = crate::partition::clock::Clock::resolve(&template, chrono_tz::UTC).unwrap();
    Arc::new(crate::completion::Completion::new(clock, watch.metrics.clone()))
}

impl Run {
    fn summary(&self) -> &RunSummary {
        self.result.as_ref().unwrap_or_else(|e| panic!("the pipeline failed: {e}"))
    }

    /// Published data files (quarantine aside), by commit: (stream, start, end) → file count.
    /// One line of `/metrics` for the test pipeline, e.g. `landfall_events_landed_total`.
    fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.observer.metrics.encode();
        let prefix = format!("{series}{{pipeline=\"test\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        line[prefix.len()..].parse().unwrap()
    }

    /// `landfall_commits_total` of the test pipeline for `trigger`.
    fn commits_by(&self, trigger: &str) -> f64 {
        let (_, text) = self.observer.metrics.encode();
        let prefix = format!("landfall_commits_total{{pipeline=\"test\",trigger=\"{trigger}\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        line[prefix.len()..].parse().unwrap()
    }

    fn commits(&self) -> BTreeMap<(String, i64, i64), usize> {
        let mut commits = BTreeMap::new();
        for path in self.store.files_under(ROOT).into_keys() {
            if path.contains("/_") {
                continue;
            }
            let name = path.rsplit('/').next().unwrap();
            let parts: Vec<&str> = name.trim_start_matches("part-").split('-').collect();
            let (stream, start, end) =
                (format!("{}-{}", parts[0], parts[1]), parts[2].parse().unwrap(), parts[3].parse().unwrap());
            *commits.entry((stream, start, end)).or_insert(0) += 1;
        }
        commits
    }

    /// Checks that each stream's commits tile `0..n` without gap or overlap.
    fn assert_tiles(&self, streams: usize, n: i64) {
        let commits = self.commits();
        for p in 0..streams {
            let ranges: Vec<(i64, i64)> =
                commits.keys().filter(|(s, _, _)| *s == format!("t-{p}")).map(|(_, a, b)| (*a, *b)).collect();
            let mut next = 0;
            for (start, end) in &ranges {
                assert_eq!(*start, next, "stream {p}: ranges {ranges:?} must tile");
                next = end + 1;
            }
            assert_eq!(next, n, "stream {p}: ranges {ranges:?} must reach {n}");
        }
    }
}

fn run(
    positions: Positions,
    roll: &str,
    fake: impl FnOnce(crate::source::Recovery) -> FakeSource + Send + 'static,
    prepare: impl FnOnce(&MemStore, &Shutdown),
) -> Run {
    run_mode(positions, roll, RunMode::UntilCaughtUp, fake, prepare)
}

fn run_mode(
    positions: Positions,
    roll: &str,
    mode: RunMode,
    fake: impl FnOnce(crate::source::Recovery) -> FakeSource + Send + 'static,
    prepare: impl FnOnce(&MemStore, &Shutdown),
) -> Run {
    let store = MemStore::new();
    let shutdown = Shutdown::default();
    prepare(&store, &shutdown);
    let plan = Arc::new(super::Plan::resolve(config(positions, roll)).expect("a valid plan"));
    let opts = RunOptions { mode, shutdown_deadline: Duration::from_secs(10), progress: false };
    let log: Arc<Mutex<Arc<Mutex<FakeLog>>>> = Arc::default();
    let log_out = log.clone();
    let make = move |recovery, _handle| {
        let source = fake(recovery);
        *log_out.lock().unwrap() = source.log.clone();
        Ok(Box::new(source) as Box<dyn Source>)
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let started = Instant::now();
    let observer = crate::observe::Observer::new();
    let watch = observer.pipeline("test", "fake", ROOT, Duration::from_secs(120));
    let registrar = Arc::new(crate::metastore::registrar::Registrar::default());
    let completion = completion(&watch);
    let store_arc = Arc::new(store.clone());
    let result = rt.block_on(drive(
        plan,
        opts,
        shutdown,
        store_arc,
        ROOT.to_string(),
        watch,
        Downstream { registrar: Some(registrar.clone()), completion: Some(completion.clone()) },
        make,
    ));
    let took = started.elapsed();
    let log = log.lock().unwrap().clone();
    Run { result, log, store, took, observer, registrar, completion }
}

/// The instance whose driver holds the pipeline's first source partition (topic `t`,
/// partition 0) is the completer; one that holds other partitions is not.
#[test]
fn the_driver_holding_the_first_partition_makes_its_instance_the_completer() {
    let holding = |topic: &'static str| {
        let r = run(
            Positions::SourceOffsets,
            "max_rows: 50",
            move |rec| FakeSource::new(Positions::SourceOffsets, topic, messages(2, 300, 3), rec, Script::default()),
            |_, _| {},
        );
        assert_eq!(r.summary().events, 600);
        r.completion.is_completer()
    };
    assert!(holding("t"), "t[0] is held");
    assert!(!holding("u"), "u[0] and u[1] are not the first partition of topic t");
}

#[test]
fn offset_streams_land_every_message_once_and_report_what_was_published() {
    let r = run(
        Positions::SourceOffsets,
        "max_rows: 50",
        |rec| FakeSource::new(Positions::SourceOffsets, "t", messages(2, 300, 3), rec, Script::default()),
        |_, _| {},
    );
    assert_eq!(r.summary().events, 600);
    r.assert_tiles(2, 300);
    assert_eq!(r.metric("landfall_events_received_total"), 600.0);
    assert_eq!(r.metric("landfall_events_landed_total"), 600.0);
    assert_eq!(r.metric("landfall_files_published_total"), r.summary().files as f64);
    assert_eq!(r.metric("landfall_bytes_landed_total"), r.summary().parquet_bytes as f64);
    assert!(r.metric("landfall_last_commit_timestamp_seconds") > 1.7e9);
    // Each commit counts once under what cut it; each of its files is a size.
    let triggers = crate::pipeline::partitions::Trigger::ALL.map(|t| r.commits_by(t.label()));
    assert_eq!(triggers.iter().sum::<f64>(), r.commits().len() as f64, "{triggers:?}");
    assert!(r.commits_by("max_rows") >= 4.0, "files of 50 rows cut most ranges: {triggers:?}");
    assert_eq!(r.commits_by("max_age"), 0.0, "max_age is 60 s: {triggers:?}");
    assert_eq!(r.metric("landfall_file_size_bytes_count"), r.summary().files as f64);
    assert_eq!(r.metric("landfall_file_size_bytes_sum"), r.summary().parquet_bytes as f64);
    let log = r.log.lock().unwrap();
    for p in 0..2 {
        let last = log.published.iter().filter(|(s, _, _)| s.partition == p).map(|(_, next, _)| *next).max();
        assert_eq!(last, Some(300), "stream {p} reported published up to its end");
    }
}

/// With `sink.hive`, every directory a commit published data into is handed over for
/// registration, once; quarantine directories never.
#[test]
fn each_published_hive_directory_is_handed_over_for_registration_once() {
    let mut msgs = messages(2, 300, 3);
    msgs[0].push((b"not json".to_vec(), Some("bad".into())));
    let r = run(
        Positions::SourceOffsets,
        "max_rows: 50",
        move |rec| FakeSource::new(Positions::SourceOffsets, "t", msgs, rec, Script::default()),
        |_, _| {},
    );
    assert_eq!(r.summary().events, 600);
    assert_eq!(r.summary().rejected, 1);
    assert_eq!(r.registrar.pending(), ["k=0", "k=1", "k=2"], "many commits, three directories, no _rejected");
}

/// Copies of already consumed offsets (a fetch from before a seek, delivered after it) are
/// dropped, not appended: each offset lands once.
#[test]
fn stale_copies_of_consumed_offsets_land_once() {
    let r = run(
        Positions::SourceOffsets,
        "max_rows: 50",
        |rec| {
            let script = Script { stale_copies: true, per_poll: 10, ..Script::default() };
            FakeSource::new(Positions::SourceOffsets, "t", messages(2, 300, 3), rec, script)
        },
        |_, _| {},
    );
    assert!(r.log.lock().unwrap().delivered > 600 + 100, "the fake must deliver stale copies");
    assert_eq!(r.summary().events, 600);
    r.assert_tiles(2, 300);
}

#[test]
fn a_queue_is_acknowledged_only_after_publish() {
    let r = run(
        Positions::LandingSequence,
        "max_rows: 40",
        |rec| FakeSource::new(Positions::LandingSequence, "t", messages(1, 500, 3), rec, Script::default()),
        |_, _| {},
    );
    assert_eq!(r.summary().events, 500);
    r.assert_tiles(1, 500);
    let log = r.log.lock().unwrap();
    assert!(log.early_acks.is_empty(), "acknowledged before published: {:?}", log.early_acks);
    assert!(
        log.published.iter().filter(|(_, _, t)| t.is_some()).count() >= 500 / 40,
        "a commit per 40 messages (the fake's window)"
    );
    assert!(r.commits_by("window") >= 500.0 / 40.0 - 1.0, "cut by the window: {}", r.commits_by("window"));
    assert_eq!(r.summary().duplicates, 0);
}

#[test]
fn a_lost_acknowledgement_is_deduplicated_by_message_id_on_reconnect() {
    let r = run(
        Positions::LandingSequence,
        "max_rows: 40",
        |rec| {
            FakeSource::new(
                Positions::LandingSequence,
                "t",
                messages(1, 500, 3),
                rec,
                Script { lose_first_ack: true, ..Script::default() },
            )
        },
        |_, _| {},
    );
    let s = r.summary();
    assert_eq!(s.events, 500, "every message lands once");
    r.assert_tiles(1, 500);
    let log = r.log.lock().unwrap();
    assert!(log.connects >= 2, "the session was reopened");
    assert!(s.duplicates >= 40, "the first commit's 40 messages came back and were dropped: {s:?}");
    assert_eq!(log.duplicates_acked, s.duplicates, "each dropped duplicate is acknowledged");
    assert_eq!(r.metric("landfall_events_duplicate_total"), s.duplicates as f64);
    assert!(r.metric("landfall_events_received_total") >= 500.0 + s.duplicates as f64);
    assert!(log.early_acks.is_empty(), "{:?}", log.early_acks);
}

#[test]
fn a_failed_commit_rewinds_voids_its_epoch_and_lands_once() {
    let r = run(
        Positions::SourceOffsets,
        "max_rows: 50",
        |rec| FakeSource::new(Positions::SourceOffsets, "t", messages(2, 300, 3), rec, Script::default()),
        // The second staged file's close fails: its commit cannot happen.
        |store, _| store.fail_nth(Verb::Close, 2, Fault::Transient),
    );
    assert_eq!(r.store.armed(), 0, "the fault fired");
    assert!(r.log.lock().unwrap().rewinds >= 1, "the failed commit rewound its stream");
    assert_eq!(r.summary().events, 600);
    r.assert_tiles(2, 300);
    assert!(r.log.lock().unwrap().paused.is_empty(), "the rewound stream was resumed after its backoff");
    let (_, text) = r.observer.metrics.encode();
    assert!(text.contains(r#"landfall_errors_total{kind="commit",pipeline="test"} 1"#), "{text}");
    assert_eq!(r.observer.status().pipelines[0].recent_errors[0].kind, "commit");
}

#[test]
fn the_open_file_cap_holds_for_every_position_model() {
    for positions in [Positions::SourceOffsets, Positions::LandingSequence] {
        let r = run(
            positions,
            "max_rows: 40, max_open_files: 4",
            move |rec| FakeSource::new(positions, "t", messages(1, 400, 20), rec, Script::default()),
            |_, _| {},
        );
        assert_eq!(r.summary().events, 400, "{positions:?}");
        r.assert_tiles(1, 400);
        let commits = r.commits();
        let widest = commits.values().max().copied().unwrap_or(0);
        assert!(widest <= 5, "{positions:?}: a commit held {widest} files with max_open_files 4: {commits:?}");
        assert!(commits.len() >= 400 / 5, "{positions:?}: the cap cut {} commits", commits.len());
        assert!(r.commits_by("max_open_files") >= 400.0 / 5.0 - 2.0, "{positions:?}: counted as max_open_files");
    }
}

/// The consumer side may hold half of `roll.max_buffered_bytes`; it must hold per message, not
/// per tick: here every message arrives within one poll (no tick in between), 8 MiB of payload
/// against a 1 MiB budget.
#[test]
fn the_memory_budget_holds_within_one_poll_of_large_messages() {
    let padding = "x".repeat(2000);
    let lanes = vec![(0..4000)
        .map(|i| (format!(r#"{{"id":"m-{i}-{padding}","k":{}}}"#, i % 50).into_bytes(), None))
        .collect::<Vec<_>>()];
    let r = run(
        Positions::SourceOffsets,
        "max_rows: 1000000, max_age: 10m, max_buffered_bytes: 1MiB",
        move |rec| {
            FakeSource::new(Positions::SourceOffsets, "t", lanes, rec, Script { per_poll: 4000, ..Script::default() })
        },
        |_, _| {},
    );
    assert_eq!(r.summary().events, 4000);
    r.assert_tiles(1, 4000);
    let bound = (1 << 20) / 2 + (1 << 20) / 16 + 4096;
    let peak = r.summary().peak_consumer_bytes;
    assert!(peak > 0, "the budget was never measured");
    assert!(peak <= bound, "the consumer side held {peak} bytes, over half the budget plus one slice ({bound})");
}

#[test]
fn shutdown_publishes_what_is_buffered_within_the_deadline() {
    let shutdown_at = Duration::from_millis(400);
    let r = run_mode(
        Positions::SourceOffsets,
        "max_rows: 1000000, max_age: 10m",
        RunMode::Forever,
        |rec| {
            FakeSource::new(
                Positions::SourceOffsets,
                "t",
                messages(1, 1000, 2),
                rec,
                Script { per_poll: 5, endless: true, ..Script::default() },
            )
        },
        move |_, shutdown| {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || {
                std::thread::sleep(shutdown_at);
                shutdown.request();
            });
        },
    );
    let delivered = r.log.lock().unwrap().delivered;
    assert!(delivered > 0);
    assert_eq!(r.summary().events, delivered, "everything delivered before the stop was published by it");
    assert!(r.took < Duration::from_secs(5), "stopped in {:?}", r.took);
}
