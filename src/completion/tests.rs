//! Completion passes against the in-memory store: what is marked when, what a late row does,
//! unpublished commits, idle partitions, and a decision re-driven after a crash.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::records::{self, Step};
use super::task::CompletionTask;
use super::Completion;
use crate::commit::{staged_path, Backoff, CommitConfig, CommitLog, RunContext, StagedFile};
use crate::config::{CompletionConfig, HumanDuration};
use crate::observe::PipelineWatch;
use crate::partition::clock::Clock;
use crate::partition::PartitionTemplate;
use crate::schema::{FieldSpec, FieldType};
use crate::sink::memory::MemStore;
use crate::sink::FileStore;

const ROOT: &str = "/t";
const HOUR: i64 = 3_600_000_000;
const MIN: i64 = 60_000_000;
/// 2026-11-25T00:00:00Z in µs.
const DAY: i64 = 1_795_564_800_000_000;

fn at(hour: i64, minute: i64) -> i64 {
    DAY + hour * HOUR + minute * MIN
}

fn dir(hour: u32) -> String {
    format!("dt=2026-11-25/hour={hour:02}")
}

struct Lab {
    store: MemStore,
    watch: Arc<PipelineWatch>,
    completion: Arc<Completion>,
    _stop_tx: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
    next: std::collections::HashMap<i32, i64>,
}

fn lab() -> Lab {
    let schema = vec![FieldSpec { name: "ts".into(), field_type: FieldType::Timestamp, required: true }];
    let template = PartitionTemplate::parse("dt={ts:%Y-%m-%d}/hour={ts:%H}", &schema).unwrap();
    let clock = Clock::resolve(&template, chrono_tz::UTC).unwrap();
    let observer = crate::observe::Observer::new();
    let watch = observer.pipeline("clicks", "kafka", ROOT, Duration::from_secs(120));
    let completion = Arc::new(Completion::new(clock, watch.metrics.clone()));
    let (stop_tx, stop) = watch::channel(false);
    Lab { store: MemStore::new(), watch, completion, _stop_tx: stop_tx, stop, next: Default::default() }
}

fn settings(idle_timeout_s: u64) -> CompletionConfig {
    CompletionConfig {
        allowed_lateness: HumanDuration::from_secs(600),
        idle_timeout: HumanDuration::from_secs(idle_timeout_s),
        marker: "_SUCCESS".into(),
    }
}

impl Lab {
    /// The completer's task (this instance holds the first source partition).
    fn task(&self, idle_timeout_s: u64) -> CompletionTask {
        self.completion.set_completer(true);
        self.task_of(self.completion.clone(), idle_timeout_s)
    }

    /// A task on `completion`, completer or not as it says.
    fn task_of(&self, completion: Arc<Completion>, idle_timeout_s: u64) -> CompletionTask {
        CompletionTask {
            pipeline: "clicks".into(),
            store: Arc::new(self.store.clone()),
            root: ROOT.into(),
            completion,
            settings: settings(idle_timeout_s),
            ends: None,
            starts_at_latest: false,
            expected_logs: Vec::new(),
            hive: None,
            compaction: false,
            watch: self.watch.clone(),
            state: Default::default(),
        }
    }

    /// Commits 10 offsets of `partition` with one file per directory; the commit records
    /// `reached` when given (a manifest without it when `record` is false).
    async fn commit(&mut self, partition: i32, dirs: &[String], reached: Option<i64>, record: bool) {
        let backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(2), give_up_after: None };
        let run = RunContext {
            run_id: "run-1".into(),
            config: CommitConfig { backoff, record_event_time: record, ..CommitConfig::default() },
            stop: self.stop.clone(),
        };
        let mut log = CommitLog::new(Arc::new(self.store.clone()), ROOT, "clicks", partition, run).unwrap();
        log.recover().await.unwrap();
        let files = dirs
            .iter()
            .map(|d| {
                let staged = staged_path(ROOT, "run-1");
                self.store.put(&staged, b"rows");
                StagedFile { staged, dir: d.clone(), ext: "zstd.parquet".into(), rows: 4, bytes: 4 }
            })
            .collect();
        let start = *self.next.get(&partition).unwrap_or(&0);
        log.commit_while_closing(start, start + 9, files, vec![], reached, async { Ok(()) }).await.unwrap();
        self.next.insert(partition, start + 10);
    }

    fn marker(&self, hour: u32) -> Option<Vec<u8>> {
        self.store.get(&format!("{ROOT}/{}/_SUCCESS", dir(hour)))
    }

    fn marked_hours(&self) -> Vec<u32> {
        (0..24).filter(|h| self.marker(*h).is_some()).collect()
    }
}

#[tokio::test]
async fn buckets_the_watermark_passed_are_marked_once_and_late_rows_are_counted() {
    let mut lab = lab();
    lab.commit(0, &[dir(10), dir(11), dir(12)], Some(at(12, 30)), true).await;
    lab.commit(1, &[dir(10), dir(11)], Some(at(11, 20)), true).await;
    let mut task = lab.task(3600);
    task.pass().await.unwrap();
    // W = 11:20 − 10m = 11:10: only the bucket ending at 11:00 is complete.
    assert_eq!(lab.marked_hours(), [10]);
    assert_eq!(lab.marker(10), Some(Vec::new()), "an empty marker, as Hadoop's committers write");
    let recs = records::read(&lab.store, ROOT).await.unwrap();
    assert_eq!((recs.frontier(), recs.unmarked()), (Some(at(11, 0)), vec![]));
    assert_eq!(lab.watch.metrics.watermark.get(), at(11, 10) / 1_000_000);
    assert_eq!(lab.watch.metrics.completed_until.get(), at(11, 0) / 1_000_000);
    assert_eq!(lab.watch.metrics.partitions_completed.get(), 1);

    // A marker someone wrote by hand (or an earlier pass) is never rewritten.
    lab.store.put(&format!("{ROOT}/{}/_SUCCESS", dir(10)), b"by hand");
    lab.commit(1, &[dir(12)], Some(at(12, 20)), true).await;
    task.pass().await.unwrap();
    assert_eq!(lab.marked_hours(), [10, 11], "W = 12:10 completes the hour ending at 12:00");
    assert_eq!(lab.marker(10).as_deref(), Some(&b"by hand"[..]));

    // Rows published into a complete bucket are late: counted, landed, and a directory that
    // only late rows created gets its marker.
    lab.completion.published([(dir(10).as_str(), 5), (dir(9).as_str(), 2), (dir(12).as_str(), 7)]);
    assert_eq!(lab.watch.metrics.late_events.get(), 7);
    lab.store.put(&format!("{ROOT}/{}/part-late.parquet", dir(9)), b"rows");
    task.pass().await.unwrap();
    assert_eq!(lab.marked_hours(), [9, 10, 11]);
    assert_eq!(lab.marker(10).as_deref(), Some(&b"by hand"[..]));
}

#[tokio::test]
async fn an_unpublished_commit_and_an_unknown_event_time_hold_the_watermark() {
    let mut lab = lab();
    lab.commit(0, &[dir(10), dir(11), dir(12)], Some(at(12, 30)), true).await;
    lab.commit(1, &[dir(10)], None, false).await;
    let mut task = lab.task(3600);
    task.pass().await.unwrap();
    assert!(lab.marked_hours().is_empty(), "partition 1 has published no event time");
    assert_eq!(lab.watch.metrics.watermark.get(), 0);

    lab.commit(1, &[dir(11)], Some(at(11, 20)), true).await;
    lab.commit(1, &[dir(12)], Some(at(12, 40)), true).await;
    // The newest commit of partition 1 is committed but not published yet: its staged file
    // is still there, so the commit before it counts.
    let newest = lab.store.files_under("/t/_landfall/commits/").into_values().last().unwrap();
    let m = crate::commit::Manifest::parse(&newest).unwrap();
    lab.store.put(&m.files[0].staged, b"rows");
    task.pass().await.unwrap();
    assert_eq!(lab.marked_hours(), [10], "held at 11:20 by the published commit");
    lab.store.delete(&m.files[0].staged).await.unwrap();
    task.pass().await.unwrap();
    assert_eq!(lab.marked_hours(), [10, 11], "published: 12:30 (partition 0) holds it now");
}

#[tokio::test]
async fn idle_partitions_stop_holding_the_watermark_back() {
    let mut lab = lab();
    lab.commit(0, &[dir(10), dir(11), dir(12)], Some(at(12, 30)), true).await;
    lab.commit(1, &[dir(10)], Some(at(10, 5)), true).await;
    lab.task(3600).pass().await.unwrap();
    assert!(lab.marked_hours().is_empty(), "partition 1 holds W at 09:55");
    // With no commit for idle_timeout (0 s here) and nothing left, both count at the store's
    // now (December 2026): every hour of that day is complete.
    let mut idle = lab.task(0);
    idle.pass().await.unwrap();
    assert_eq!(lab.marked_hours(), [10, 11, 12]);
    assert_eq!(lab.watch.metrics.idle_partitions.get(), 2);
}

#[tokio::test]
async fn a_decision_without_its_markers_is_re_driven_by_the_next_pass() {
    let mut lab = lab();
    lab.commit(0, &[dir(10), dir(11)], Some(at(10, 30)), true).await;
    // A completer recorded F = 11:00 and crashed before any marker.
    assert!(records::create_empty(&lab.store, &records::path(ROOT, at(11, 0), Step::Decided)).await.unwrap());
    lab.task(3600).pass().await.unwrap();
    assert_eq!(lab.marked_hours(), [10], "the decision stands although W (10:20) is below it now");
    let recs = records::read(&lab.store, ROOT).await.unwrap();
    assert!(recs.marked.contains(&at(11, 0)));
    assert_eq!(recs.frontier(), Some(at(11, 0)), "the frontier never moves back");
}

/// A partition whose newest commit is committed but not published yet (its owner was killed
/// between the commit point and the publish, or is still retrying) is never idle, however
/// long it has been quiet: its rows are not in the table yet.
#[tokio::test]
async fn a_committed_but_unpublished_partition_is_never_idle() {
    let mut lab = lab();
    lab.commit(0, &[dir(10), dir(11), dir(12)], Some(at(12, 30)), true).await;
    lab.commit(1, &[dir(10)], Some(at(10, 5)), true).await;
    lab.commit(1, &[dir(11), dir(12)], Some(at(12, 40)), true).await;
    let newest = lab.store.files_under("/t/_landfall/commits/clicks/1/").into_values().last().unwrap();
    let m = crate::commit::Manifest::parse(&newest).unwrap();
    lab.store.put(&m.files[1].staged, b"rows");
    lab.task(0).pass().await.unwrap();
    assert!(lab.marked_hours().is_empty(), "held at 10:05 by partition 1's last published commit");
    assert_eq!(lab.watch.metrics.idle_partitions.get(), 1, "only partition 0 is idle");
}

#[test]
fn a_short_idle_timeout_shortens_the_pass_interval_within_bounds() {
    use super::task::pass_every;
    let s = Duration::from_secs;
    assert_eq!(pass_every(s(300)), s(30), "the default timeout keeps the 30 s pass");
    assert_eq!(pass_every(s(60)), s(15), "a quarter of a shorter timeout");
    assert_eq!(pass_every(s(2)), s(1), "never more than once a second");
}

/// Another instance of the pipeline (not holding the first source partition) decides nothing
/// and reports no watermark, but follows the completer's frontier and marks the directories
/// its own late rows went to; it decides once it holds the partition.
#[tokio::test]
async fn only_the_completer_decides_and_every_instance_marks_its_late_rows() {
    let mut lab = lab();
    lab.commit(0, &[dir(10), dir(11), dir(12)], Some(at(12, 30)), true).await;
    lab.commit(1, &[dir(10), dir(11)], Some(at(11, 20)), true).await;
    let other_watch = crate::observe::Observer::new().pipeline("clicks", "kafka", ROOT, Duration::from_secs(120));
    let clock = Clock::resolve(
        &PartitionTemplate::parse(
            "dt={ts:%Y-%m-%d}/hour={ts:%H}",
            &[FieldSpec { name: "ts".into(), field_type: FieldType::Timestamp, required: true }],
        )
        .unwrap(),
        chrono_tz::UTC,
    )
    .unwrap();
    let other = Arc::new(Completion::new(clock, other_watch.metrics.clone()));
    let mut other_task = lab.task_of(other.clone(), 3600);
    other_task.watch = other_watch.clone();
    other_task.pass().await.unwrap();
    assert_eq!(lab.marked_hours(), Vec::<u32>::new(), "not the completer: no decision");
    assert_eq!(records::read(&lab.store, ROOT).await.unwrap().frontier(), None);
    assert_eq!(other_watch.metrics.watermark.get(), 0);

    let mut task = lab.task(3600);
    task.pass().await.unwrap();
    assert_eq!(lab.marked_hours(), [10], "the completer decides");

    // The other instance follows the frontier: its late rows count, and the directory they
    // alone created gets its marker from it.
    other_task.pass().await.unwrap();
    assert_eq!(other.frontier(), Some(at(11, 0)));
    other.published([(dir(9).as_str(), 3)]);
    assert_eq!(other_watch.metrics.late_events.get(), 3);
    lab.store.put(&format!("{ROOT}/{}/part-late.parquet", dir(9)), b"rows");
    other_task.pass().await.unwrap();
    assert_eq!(lab.marked_hours(), [9, 10]);
    let status = other_watch.completion().expect("a completion block");
    assert!(!status.completer && status.watermark.is_none(), "{status:?}");

    // Holding the first partition (a rebalance moved it here), it decides.
    lab.commit(1, &[dir(12)], Some(at(12, 20)), true).await;
    other.set_completer(true);
    other_task.pass().await.unwrap();
    assert_eq!(lab.marked_hours(), [9, 10, 11]);
    assert!(other_watch.completion().unwrap().completer);
}
