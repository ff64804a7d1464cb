//! Partition completion (`partition.completion`): an empty `_SUCCESS` in every partition
//! directory whose time bucket is complete, decided from an event-time watermark, so that a
//! downstream job (an Airflow or Oozie sensor) knows when an hour has all its on-time rows.
//! The design and its crash-point analysis: `docs/design/partition-completion.md`; for users:
//! `docs/hive.md`, "Completion".
//!
//! - Each commit records how far its partition's event time has reached
//!   ([`crate::commit::EventTime`]), durably with its rows.
//! - A completion pass ([`task`]) reads every source partition's commit log, computes the
//!   watermark `W` ([`watermark`]), decides the frontier `F` (the end of the newest bucket
//!   ending at or before `W`) in `_landfall/completion/` ([`records`]), creates the marker in
//!   every directory of the newly complete buckets, then (with `sink.hive`) sets
//!   `landfall.complete` on their metastore partitions.
//! - Committers hand every published directory to [`Completion::published`]: rows published
//!   into a bucket already complete are counted late and their directory gets its marker if it
//!   has none (never rewritten); other directories are remembered until `F` passes them.

mod logs;
pub(crate) mod records;
pub mod task;
#[cfg(test)]
mod tests;
mod watermark;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::observe::metrics::PipelineMetrics;
use crate::partition::clock::Clock;

/// Most directories remembered until the frontier passes them. The set only covers
/// directories born after the deciding pass listed the table; the listing covers the rest, so
/// a frontier stuck for long (a partition that never looks caught up) costs bounded memory.
const OPEN_CAP: usize = 10_000;

/// The completion state one pipeline's committers and its completion task share.
pub struct Completion {
    clock: Clock,
    metrics: PipelineMetrics,
    shared: Mutex<Shared>,
    /// Whether this instance is the pipeline's completer: its driver holds the pipeline's
    /// first source partition ([`Completion::first_stream`]). Exactly one instance of a
    /// consumer group holds it, so one instance reads every log and decides, instead of every
    /// instance multiplying the NameNode calls; during a rebalance two may briefly both hold
    /// it (every write is create-if-absent, so they write the same files) or none (passes wait).
    completer: AtomicBool,
}

#[derive(Default)]
struct Shared {
    /// The frontier as last read or decided (µs); `None` before the first pass read it.
    frontier: Option<i64>,
    /// Directories published into buckets not complete yet: they get their marker when `F`
    /// passes them (they may be born after the pass that decides their bucket listed it).
    open: BTreeSet<String>,
    /// Directories whose bucket is complete and that may lack their marker.
    to_mark: BTreeSet<String>,
}

impl Completion {
    pub fn new(clock: Clock, metrics: PipelineMetrics) -> Completion {
        Completion { clock, metrics, shared: Mutex::default(), completer: AtomicBool::new(false) }
    }

    /// The source partition whose holder completes: a Kafka source's first topic's partition
    /// 0, a queue's lane 0. Every instance derives the same one from the same configuration.
    pub fn first_stream(source: &crate::config::SourceConfig) -> crate::source::StreamId {
        match source {
            crate::config::SourceConfig::Kafka(k) => crate::source::StreamId::new(k.topics[0].clone(), 0),
            crate::config::SourceConfig::RabbitMq(r) => crate::source::StreamId::new(r.queue.clone(), 0),
        }
    }

    /// Whether this instance's driver holds [`Completion::first_stream`] (assigned, consuming,
    /// or failed and waiting): set by the driver as its assignment changes.
    pub fn set_completer(&self, holds_first: bool) {
        self.completer.store(holds_first, Ordering::Relaxed);
    }

    pub fn is_completer(&self) -> bool {
        self.completer.load(Ordering::Relaxed)
    }

    /// A commit published `rows` rows into each directory (relative to the table; the
    /// quarantine's are skipped). Cheap and never waits on the store: called on the commit path.
    pub fn published<'a>(&self, dirs: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut shared = self.shared.lock().expect("completion lock");
        let mut late = 0;
        for (dir, rows) in dirs {
            if crate::quarantine::is_rejected_dir(dir) {
                continue;
            }
            let Some(bucket) = self.clock.bucket_of_dir(dir) else { continue };
            if shared.frontier.is_some_and(|f| bucket.end <= f) {
                late += rows;
                shared.to_mark.insert(dir.to_string());
            } else if shared.open.len() < OPEN_CAP {
                shared.open.insert(dir.to_string());
            }
        }
        drop(shared);
        if late > 0 {
            self.metrics.late_events.inc_by(late);
        }
    }

    /// Moves the frontier to `f` (never back): open directories it passes are to be marked.
    fn advance(&self, f: i64) {
        let mut shared = self.shared.lock().expect("completion lock");
        if shared.frontier.is_some_and(|old| old >= f) {
            return;
        }
        shared.frontier = Some(f);
        let passed: Vec<String> =
            shared.open.iter().filter(|d| self.clock.bucket_of_dir(d).is_none_or(|b| b.end <= f)).cloned().collect();
        for dir in passed {
            shared.open.remove(&dir);
            shared.to_mark.insert(dir);
        }
    }

    /// Takes the directories waiting for their marker.
    fn take_to_mark(&self) -> BTreeSet<String> {
        std::mem::take(&mut self.shared.lock().expect("completion lock").to_mark)
    }

    /// Puts back directories whose marker could not be created (a store failure).
    fn retry_later(&self, dirs: impl IntoIterator<Item = String>) {
        self.shared.lock().expect("completion lock").to_mark.extend(dirs);
    }

    /// The frontier as this instance knows it.
    pub fn frontier(&self) -> Option<i64> {
        self.shared.lock().expect("completion lock").frontier
    }
}
