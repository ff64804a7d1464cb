//! The writer alone on the in-memory store: what one partition's commits wait for must not
//! hold the other partitions back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int32Array, RecordBatch};
use parquet::file::properties::WriterProperties;
use tokio::sync::{mpsc, Semaphore};

use super::{Downstream, Feedback, Writer, WriterMsg};
use crate::commit::{CommitConfig, RunContext};
use crate::pipeline::partitions::Trigger;
use crate::shutdown::Shutdown;
use crate::sink::memory::MemStore;
use crate::source::StreamId;

/// A writer task on `store`; its channel, its feedback, and the shutdown its retries watch.
fn start(store: &MemStore) -> (mpsc::Sender<WriterMsg>, mpsc::UnboundedReceiver<Feedback>, Shutdown) {
    let shutdown = Shutdown::default();
    let (feedback, answers) = mpsc::unbounded_channel();
    let observer = crate::observe::Observer::new();
    let writer = Writer {
        store: Arc::new(store.clone()),
        table_root: "/table".to_string(),
        run: RunContext {
            run_id: crate::commit::new_run_id(),
            config: CommitConfig::default(),
            stop: shutdown.subscribe_expired(),
        },
        props: WriterProperties::builder().build(),
        max_bytes: u64::MAX,
        max_buffered_bytes: usize::MAX,
        ext: "parquet".to_string(),
        feedback,
        pending: HashMap::new(),
        slots: HashMap::new(),
        watch: observer.pipeline("test", "fake", "/table", Duration::from_secs(120)),
        downstream: Downstream::default(),
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(writer.run(rx));
    (tx, answers, shutdown)
}

/// Two rows of `stream` (offsets `start` and `start + 1`), then their commit.
async fn two_rows_committed(tx: &mpsc::Sender<WriterMsg>, room: &Arc<Semaphore>, stream: &StreamId, start: i64) {
    let column: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
    let batch = RecordBatch::try_from_iter([("k", column)]).unwrap();
    let room = room.clone().acquire_owned().await.unwrap();
    let (stream, dir) = (stream.clone(), "k=1".to_string());
    tx.send(WriterMsg::Append { stream: stream.clone(), epoch: 1, dir, batch, room }).await.unwrap();
    let commit = WriterMsg::Commit {
        stream,
        epoch: 1,
        start,
        end: start + 1,
        ids: Vec::new(),
        rejected: Vec::new(),
        event_max: None,
        trigger: Trigger::MaxRows,
    };
    tx.send(commit).await.unwrap();
}

/// The next answer, as (stream, the offset the table now reaches); panics on anything but a
/// publish, or after `limit`.
async fn committed(
    answers: &mut mpsc::UnboundedReceiver<Feedback>,
    limit: Duration,
    waiting_for: &str,
) -> (String, i64) {
    match tokio::time::timeout(limit, answers.recv()).await {
        Ok(Some(Feedback::Committed { stream, next, .. })) => (stream.to_string(), next),
        Ok(other) => panic!("waiting for {waiting_for}: expected a publish, got {other:?}"),
        Err(_) => panic!("{waiting_for}: nothing published within {limit:?}"),
    }
}

/// Partition a's manifests hang in the store, so its first two commits hold both of its
/// commit slots and its third has to wait. Partition b's commit, sent after it, publishes
/// meanwhile; a's three publish in order once the store answers. The writer used to wait for
/// a's slot before reading on, so b waited for a's store calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_waiting_for_its_commits_does_not_hold_the_others_back() {
    let store = MemStore::new();
    let release = store.hold_closes("/_landfall/tmp/a-0-");
    let (tx, mut answers, _shutdown) = start(&store);
    let room = Arc::new(Semaphore::new(64));
    let (a, b) = (StreamId::new("a", 0), StreamId::new("b", 0));
    for start in [0, 2, 4] {
        two_rows_committed(&tx, &room, &a, start).await;
    }
    two_rows_committed(&tx, &room, &b, 0).await;

    assert_eq!(committed(&mut answers, Duration::from_secs(10), "b's commit while a's hang").await, ("b[0]".into(), 2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(answers.try_recv().is_err(), "a's commits wait for the store");

    release.send(true).unwrap();
    for next in [2, 4, 6] {
        let published = committed(&mut answers, Duration::from_secs(10), "a's commits once the store answers").await;
        assert_eq!(published, ("a[0]".into(), next));
    }
    assert_eq!(room.available_permits(), 64, "every row's hand-off room is given back");
}
