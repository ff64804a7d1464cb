//! The consumer side's per-partition buffers and the roll policy: rows are decoded straight
//! into Arrow builders, one per (source partition, Hive path), shipped to the writer in chunks,
//! and a commit of the whole source partition is cut when any of its files is full or old.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

use crate::decode::BatchBuilder;
use crate::quarantine::RejectBuilder;
use crate::schema::FieldSpec;

/// When to cut a commit for a source partition (`roll:` in the pipeline YAML).
#[derive(Debug, Clone, Copy)]
pub struct RollPolicy {
    pub max_rows: u64,
    pub max_bytes: u64,
    pub max_age: Duration,
}

impl RollPolicy {
    pub fn of(roll: &crate::config::RollConfig) -> RollPolicy {
        RollPolicy { max_rows: roll.max_rows, max_bytes: roll.max_bytes.bytes(), max_age: roll.max_age.get() }
    }

    /// The limit a file (or the quarantine) of `rows` and `bytes` reached, if any; rows first.
    fn reached(&self, rows: u64, bytes: u64) -> Option<Trigger> {
        if rows >= self.max_rows {
            Some(Trigger::MaxRows)
        } else if bytes >= self.max_bytes {
            Some(Trigger::MaxBytes)
        } else {
            None
        }
    }
}

/// What cut a commit: the `trigger` label of `landfall_commits_total` and what the small-files
/// advisory ([`super::sizes`]) names. Two things that look like cuts are not: over
/// `roll.max_buffered_bytes` row groups are encoded early (smaller row groups, the same files),
/// and a revoked partition's open range (a rebalance, a lost session, a rewind) is dropped and
/// consumed again, not committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A file (or the range's quarantine) reached `roll.max_rows`.
    MaxRows,
    /// A file (or the quarantine) reached `roll.max_bytes`: as buffered rows on the consumer
    /// side, or as encoded bytes in the writer.
    MaxBytes,
    /// The range's first message is `roll.max_age` old.
    MaxAge,
    /// A row opened a file past `roll.max_open_files`: the stream with the most open files.
    MaxOpenFiles,
    /// A queue's range holds its share of the unacknowledged window (a third of
    /// 2 x `prefetch`, [`crate::source::Source::max_open_range`]).
    Window,
    /// The run ends: a stop signal, or `--until-caught-up` reached the end.
    Shutdown,
}

impl Trigger {
    pub const ALL: [Trigger; 6] = [
        Trigger::MaxRows,
        Trigger::MaxBytes,
        Trigger::MaxAge,
        Trigger::MaxOpenFiles,
        Trigger::Window,
        Trigger::Shutdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Trigger::MaxRows => "max_rows",
            Trigger::MaxBytes => "max_bytes",
            Trigger::MaxAge => "max_age",
            Trigger::MaxOpenFiles => "max_open_files",
            Trigger::Window => "window",
            Trigger::Shutdown => "shutdown",
        }
    }
}

/// Rows are shipped to the writer in chunks this size: large enough to amortise the hand-off,
/// small enough that the consumer side holds little memory per open file.
pub const CHUNK_ROWS: usize = 8192;
pub const CHUNK_BYTES: usize = 4 << 20;

/// One open file's rows not yet shipped, and how many it holds in all.
pub struct FileBuffer {
    builder: BatchBuilder,
    rows_in_file: u64,
    bytes_in_file: u64,
}

/// What is buffered for one source partition since its last commit.
pub struct PartitionBuffer {
    /// Bumped whenever the partition's state restarts (assignment, fence): the writer and
    /// feedback from older epochs are ignored.
    pub epoch: u64,
    /// First offset of the open (uncommitted) range; `None` until a message arrives.
    pub start: Option<i64>,
    /// Last offset consumed.
    pub last: Option<i64>,
    /// The next offset the committed table expects (resume position), for gap-free tiling.
    pub next_expected: Option<i64>,
    /// High watermark when assigned, for `--until-caught-up`.
    pub end_at_start: i64,
    /// Where consumption starts while nothing is committed (`start: latest` pins the high
    /// watermark seen at assignment); rewinds before the first commit return here.
    pub origin: Option<i64>,
    pub caught_up: bool,
    opened_at: Option<Instant>,
    /// Keyed by Hive path; FxHash because it is looked up once per message.
    files: rustc_hash::FxHashMap<String, FileBuffer>,
    pub rejected: RejectBuilder,
    rejected_rows: u64,
    /// A commit was requested by the writer (a file's encoded bytes reached max_bytes).
    pub roll_requested: bool,
    /// Queue sources: the `message_id`s of the open range, recorded by its commit.
    pub ids: Vec<String>,
    /// The greatest clock value (µs) among the open range's rows, with partition completion.
    event_max: Option<i64>,
}

impl PartitionBuffer {
    pub fn new(epoch: u64, next_expected: Option<i64>, origin: Option<i64>, end_at_start: i64) -> Self {
        let next_expected = next_expected.or(origin);
        PartitionBuffer {
            epoch,
            start: None,
            last: None,
            next_expected,
            end_at_start,
            origin,
            caught_up: next_expected.is_some_and(|n| n >= end_at_start),
            opened_at: None,
            files: Default::default(),
            rejected: RejectBuilder::new(),
            rejected_rows: 0,
            roll_requested: false,
            ids: Vec::new(),
            event_max: None,
        }
    }

    /// Messages in the open range (rows and rejections).
    pub fn open_rows(&self) -> u64 {
        match (self.start, self.last) {
            (Some(start), Some(last)) => (last - start + 1) as u64,
            _ => 0,
        }
    }

    /// Notes that `offset` was consumed (as a row or a rejection).
    pub fn consumed(&mut self, offset: i64, now: Instant) {
        self.start.get_or_insert(offset);
        self.last = Some(offset);
        self.opened_at.get_or_insert(now);
        if offset + 1 >= self.end_at_start {
            self.caught_up = true;
        }
    }

    /// Appends `row` to the file at `path` (one map lookup): returns the chunk to ship if the
    /// builder filled up, the roll limit the file (or the quarantine) reached if any, and
    /// whether the row opened a new file.
    pub fn append(
        &mut self,
        path: &str,
        schema: &[FieldSpec],
        row: &crate::decode::ParsedRow,
        policy: &RollPolicy,
    ) -> (Option<RecordBatch>, Option<Trigger>, bool) {
        let mut opened = false;
        let f = match self.files.get_mut(path) {
            Some(f) => f,
            None => {
                opened = true;
                self.files.entry(path.to_string()).or_insert_with(|| FileBuffer {
                    builder: BatchBuilder::new(schema),
                    rows_in_file: 0,
                    bytes_in_file: 0,
                })
            }
        };
        f.builder.append(row);
        let chunk = if f.builder.len() >= CHUNK_ROWS || f.builder.estimated_bytes() >= CHUNK_BYTES {
            f.rows_in_file += f.builder.len() as u64;
            f.bytes_in_file += f.builder.estimated_bytes() as u64;
            Some(f.builder.finish())
        } else {
            None
        };
        let full = policy
            .reached(f.rows_in_file + f.builder.len() as u64, f.bytes_in_file + f.builder.estimated_bytes() as u64);
        (chunk, full.or_else(|| self.rejects_full(policy)), opened)
    }

    /// Notes a routed row's clock value (µs): its commit records how far event time reached.
    pub fn note_event_time(&mut self, micros: i64) {
        self.event_max = self.event_max.max(Some(micros));
    }

    pub fn note_rejected(&mut self) {
        self.rejected_rows += 1;
    }

    /// Whether a commit should be cut now, and for which limit (a full file before age).
    pub fn should_roll(&self, policy: &RollPolicy, now: Instant) -> Option<Trigger> {
        self.start?;
        if self.roll_requested {
            return Some(Trigger::MaxBytes);
        }
        self.files
            .values()
            .find_map(|f| {
                policy.reached(
                    f.rows_in_file + f.builder.len() as u64,
                    f.bytes_in_file + f.builder.estimated_bytes() as u64,
                )
            })
            .or_else(|| self.rejects_full(policy))
            .or_else(|| self.opened_at.filter(|t| now.duration_since(*t) >= policy.max_age).map(|_| Trigger::MaxAge))
    }

    /// The roll limit the quarantine of the open range reached (checked after each rejection; a
    /// file's limits are checked by [`append`](Self::append)).
    pub fn rejects_full(&self, policy: &RollPolicy) -> Option<Trigger> {
        policy.reached(self.rejected_rows, self.rejected.estimated_bytes() as u64)
    }

    /// The largest builder's rows as a chunk to ship now (consumer-side memory pressure).
    pub fn ship_largest(&mut self) -> Option<(String, RecordBatch, usize)> {
        let (path, f) = self.files.iter_mut().max_by_key(|(_, f)| f.builder.estimated_bytes())?;
        let size = f.builder.estimated_bytes();
        if f.builder.is_empty() {
            return None;
        }
        f.rows_in_file += f.builder.len() as u64;
        f.bytes_in_file += size as u64;
        Some((path.clone(), f.builder.finish(), size))
    }

    /// Cuts the open range: every remaining chunk (per path, and the quarantine) and the
    /// offset range they cover. The buffer is empty afterwards and ready for the next range.
    pub fn cut(&mut self) -> Option<Cut> {
        let (start, end) = (self.start?, self.last?);
        let mut chunks: Vec<(String, RecordBatch)> = Vec::new();
        for (path, mut f) in self.files.drain() {
            if !f.builder.is_empty() {
                chunks.push((path, f.builder.finish()));
            }
        }
        let rejected = (!self.rejected.is_empty()).then(|| self.rejected.finish());
        let rejected_reasons = self.rejected.take_reasons();
        self.start = None;
        self.opened_at = None;
        self.rejected_rows = 0;
        self.roll_requested = false;
        self.next_expected = Some(end + 1);
        let event_max = self.event_max.take();
        Some(Cut { start, end, chunks, rejected, rejected_reasons, event_max })
    }

    /// Bytes buffered on the consumer side, for the memory budget.
    pub fn buffered_bytes(&self) -> usize {
        self.files.values().map(|f| f.builder.estimated_bytes()).sum::<usize>() + self.rejected.estimated_bytes()
    }

    pub fn open_files(&self) -> usize {
        self.files.len()
    }
}

/// A closed offset range with its last chunks.
pub struct Cut {
    pub start: i64,
    pub end: i64,
    pub chunks: Vec<(String, RecordBatch)>,
    pub rejected: Option<RecordBatch>,
    /// The quarantined rows per reason code.
    pub rejected_reasons: Vec<(&'static str, u64)>,
    /// The greatest clock value (µs) among the range's rows, when partition completion is on.
    pub event_max: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::RowParser;
    use crate::schema::FieldType;

    fn schema() -> Vec<FieldSpec> {
        vec![FieldSpec { name: "id".into(), field_type: FieldType::String, required: true }]
    }

    fn policy() -> RollPolicy {
        RollPolicy { max_rows: 3, max_bytes: 1 << 30, max_age: Duration::from_secs(60) }
    }

    /// Appends a row; returns the roll limit its file reached.
    fn append(
        buf: &mut PartitionBuffer,
        parser: &mut RowParser,
        path: &str,
        offset: i64,
        now: Instant,
    ) -> Option<Trigger> {
        let row = parser.parse(format!(r#"{{"id":"r{offset}"}}"#).as_bytes()).unwrap();
        let (_, roll, _) = buf.append(path, &schema(), row, &policy());
        buf.consumed(offset, now);
        roll
    }

    #[test]
    fn a_cut_covers_every_consumed_offset_across_files_and_resets() {
        let mut parser = RowParser::new(&schema(), false);
        let now = Instant::now();
        let mut buf = PartitionBuffer::new(1, Some(10), None, 100);
        assert_eq!(buf.should_roll(&policy(), now), None, "nothing buffered, nothing to roll");
        assert_eq!(append(&mut buf, &mut parser, "h=1", 10, now), None);
        assert_eq!(append(&mut buf, &mut parser, "h=2", 11, now), None);
        assert_eq!(append(&mut buf, &mut parser, "h=1", 12, now), None, "two rows in h=1");
        assert_eq!(append(&mut buf, &mut parser, "h=1", 13, now), Some(Trigger::MaxRows), "three rows reach max_rows");
        assert_eq!(
            buf.should_roll(&policy(), now + Duration::from_secs(60)),
            Some(Trigger::MaxRows),
            "full before old"
        );
        let cut = buf.cut().unwrap();
        assert_eq!((cut.start, cut.end), (10, 13));
        let mut rows: Vec<(String, usize)> = cut.chunks.iter().map(|(p, b)| (p.clone(), b.num_rows())).collect();
        rows.sort();
        assert_eq!(rows, [("h=1".to_string(), 3), ("h=2".to_string(), 1)]);
        assert!(cut.rejected.is_none());
        assert_eq!(buf.next_expected, Some(14), "the next range starts after this one");
        assert_eq!(buf.open_files(), 0);
        assert!(buf.cut().is_none(), "an empty buffer cuts nothing");
    }

    #[test]
    fn age_rolls_and_catch_up_is_tracked() {
        let mut parser = RowParser::new(&schema(), false);
        let start = Instant::now();
        let mut buf = PartitionBuffer::new(1, None, None, 2);
        append(&mut buf, &mut parser, "h=1", 0, start);
        assert!(!buf.caught_up);
        assert_eq!(buf.should_roll(&policy(), start + Duration::from_secs(59)), None);
        assert_eq!(buf.should_roll(&policy(), start + Duration::from_secs(60)), Some(Trigger::MaxAge));
        buf.roll_requested = true;
        assert_eq!(buf.should_roll(&policy(), start), Some(Trigger::MaxBytes), "the writer's encoded bytes");
        buf.roll_requested = false;
        append(&mut buf, &mut parser, "h=1", 1, start);
        assert!(buf.caught_up, "offset 1 is the last before the end offset 2");
    }

    #[test]
    fn latest_pins_its_origin_as_the_first_range_start() {
        let buf = PartitionBuffer::new(1, None, Some(500), 500);
        assert_eq!(buf.next_expected, Some(500));
        assert!(buf.caught_up, "nothing to read past the pinned end");
    }

    #[test]
    fn shipping_the_largest_builder_keeps_its_rows_counted_for_the_file() {
        let mut parser = RowParser::new(&schema(), false);
        let now = Instant::now();
        let mut buf = PartitionBuffer::new(1, Some(0), None, 100);
        append(&mut buf, &mut parser, "h=1", 0, now);
        append(&mut buf, &mut parser, "h=1", 1, now);
        let (path, batch, _) = buf.ship_largest().unwrap();
        assert_eq!((path.as_str(), batch.num_rows()), ("h=1", 2));
        assert_eq!(buf.buffered_bytes(), 0);
        assert_eq!(
            append(&mut buf, &mut parser, "h=1", 2, now),
            Some(Trigger::MaxRows),
            "shipped rows still count toward max_rows"
        );
    }
}
