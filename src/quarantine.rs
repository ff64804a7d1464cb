//! Quarantine: messages that cannot become table rows are kept, never dropped, as Parquet under
//! `<table>/_rejected/dt=<day>/` (hidden from table scans by the leading `_`, readable on their own with
//! `spark.read.parquet(".../_rejected")`). Each row holds the raw bytes, why it was rejected and
//! where it came from, so it can be fixed and replayed.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, BinaryBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::schema::UTC;

/// Relative directory (under the table root) of quarantine files.
pub const REJECTED_DIR: &str = "_rejected";

/// The quarantine directory of the day (UTC) a commit is cut: `_rejected/dt=2026-12-02`. One
/// directory per day keeps each below HDFS' 1,048,576 items per directory, and Spark reads
/// `.../_rejected` as a table partitioned by `dt`.
pub fn rejected_dir(cut_at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{REJECTED_DIR}/dt={}", cut_at.format("%Y-%m-%d"))
}

/// Whether a commit's relative directory is quarantine (`_rejected` itself in tables written
/// before quarantine was partitioned by day).
pub fn is_rejected_dir(dir: &str) -> bool {
    dir == REJECTED_DIR || dir.strip_prefix(REJECTED_DIR).is_some_and(|rest| rest.starts_with('/'))
}

/// The quarantine table's schema.
pub fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
    Arc::new(Schema::new(vec![
        Field::new("raw", DataType::Binary, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("source_timestamp", ts.clone(), true),
        Field::new("rejected_at", ts, false),
    ]))
}

/// Where a rejected message came from.
pub struct SourcePosition<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Broker timestamp of the message in milliseconds, if it has one.
    pub timestamp_ms: Option<i64>,
}

/// Accumulates rejected messages of one source partition.
pub struct RejectBuilder {
    schema: SchemaRef,
    raw: BinaryBuilder,
    reason: StringBuilder,
    error: StringBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    source_ts: TimestampMicrosecondBuilder,
    rejected_at: TimestampMicrosecondBuilder,
    bytes: usize,
    /// Rows per reason code, for `landfall_events_rejected_total{reason}` (few distinct codes).
    reasons: Vec<(&'static str, u64)>,
}

impl Default for RejectBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RejectBuilder {
    pub fn new() -> Self {
        RejectBuilder {
            schema: schema(),
            raw: BinaryBuilder::new(),
            reason: StringBuilder::new(),
            error: StringBuilder::new(),
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            source_ts: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            rejected_at: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            bytes: 0,
            reasons: Vec::new(),
        }
    }

    /// Records one rejected message. `raw` is `None` for a message without payload.
    pub fn push(
        &mut self,
        raw: Option<&[u8]>,
        reason: &'static str,
        error: &str,
        at: &SourcePosition<'_>,
        now_micros: i64,
    ) {
        match self.reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.reasons.push((reason, 1)),
        }
        self.raw.append_option(raw);
        self.reason.append_value(reason);
        self.error.append_value(error);
        self.topic.append_value(at.topic);
        self.partition.append_value(at.partition);
        self.offset.append_value(at.offset);
        self.source_ts.append_option(at.timestamp_ms.map(|ms| ms * 1000));
        self.rejected_at.append_value(now_micros);
        self.bytes += raw.map_or(0, <[u8]>::len) + error.len() + reason.len() + at.topic.len() + 40;
    }

    pub fn len(&self) -> usize {
        self.offset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate buffered bytes, for the memory budget.
    pub fn estimated_bytes(&self) -> usize {
        self.bytes
    }

    /// Rows per reason code since the last call.
    pub fn take_reasons(&mut self) -> Vec<(&'static str, u64)> {
        std::mem::take(&mut self.reasons)
    }

    /// The buffered rows as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        self.bytes = 0;
        RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(self.raw.finish()),
                Arc::new(self.reason.finish()),
                Arc::new(self.error.finish()),
                Arc::new(self.topic.finish()),
                Arc::new(self.partition.finish()),
                Arc::new(self.offset.finish()),
                Arc::new(self.source_ts.finish()),
                Arc::new(self.rejected_at.finish()),
            ],
        )
        .expect("quarantine columns match the quarantine schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    #[test]
    fn quarantine_is_partitioned_by_day() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-02T23:59:59Z").unwrap().to_utc();
        assert_eq!(rejected_dir(at), "_rejected/dt=2026-12-02");
        assert!(is_rejected_dir(&rejected_dir(at)) && is_rejected_dir("_rejected"));
        assert!(!is_rejected_dir("_rejected_not") && !is_rejected_dir("dt=2026-12-02"));
    }

    #[test]
    fn keeps_raw_bytes_reason_and_position() {
        let mut b = RejectBuilder::new();
        let at = SourcePosition { topic: "clicks", partition: 3, offset: 42, timestamp_ms: Some(1_000) };
        b.push(Some(b"\xff{"), "invalid_utf8", "payload is not UTF-8", &at, 7);
        b.push(
            None,
            "empty_payload",
            "message has no payload",
            &SourcePosition { offset: 43, timestamp_ms: None, ..at },
            8,
        );
        assert_eq!(b.len(), 2);
        let batch = b.finish();
        assert!(b.is_empty());
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_binary::<i32>().value(0), b"\xff{");
        assert!(batch.column(0).is_null(1));
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "invalid_utf8");
        assert_eq!(batch.column(5).as_primitive::<Int64Type>().values(), &[42, 43]);
        assert_eq!(batch.column(6).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(0), 1_000_000);
        assert!(batch.column(6).is_null(1));
    }
}
