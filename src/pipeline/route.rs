//! What every source does with one message: decode it in place into its partition's Arrow
//! builder under its Hive path, or quarantine it with the reason; and how a source partition's
//! open range becomes writer messages when it is cut.

use arrow::array::RecordBatch;

use super::handoff::ToWriter;
use super::partitions::{PartitionBuffer, RollPolicy, Trigger};
use super::writer::WriterMsg;
use crate::decode::RowParser;
use crate::partition::PartitionTemplate;
use crate::quarantine::{rejected_dir, SourcePosition};
use crate::schema::FieldSpec;
use crate::source::StreamId;

/// Decoder, partition template and scratch space of one pipeline.
pub struct Router {
    schema: Vec<FieldSpec>,
    parser: RowParser,
    template: PartitionTemplate,
    tz: chrono_tz::Tz,
    uses_ingest: bool,
    path: String,
    /// `partition.completion`: the template's clock, read once per routed row so that each
    /// commit records how far its partition's event time reached.
    clock: Option<crate::partition::clock::Clock>,
}

/// What routing one message asks of the caller.
pub struct Routed {
    /// A builder filled up: ship this chunk (Hive path, rows) to the writer.
    pub chunk: Option<(String, RecordBatch)>,
    /// The message's file (or the quarantine) reached this roll limit: cut the range.
    pub roll: Option<Trigger>,
    /// The message opened a new file (the open-file cap is checked then).
    pub opened: bool,
}

pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

impl Router {
    pub fn new(plan: &super::plan::Plan) -> Router {
        Router {
            schema: plan.schema.clone(),
            parser: RowParser::new(&plan.schema, plan.strict),
            template: plan.template.clone(),
            tz: plan.tz,
            uses_ingest: plan.template.uses_ingest_time(),
            path: String::with_capacity(128),
            clock: plan.clock.clone(),
        }
    }

    /// Decodes `payload` (`None`: the message had none) into `buf`, or quarantines it with
    /// the reason and `at`. Does not mark the position consumed: the caller does, after.
    pub fn route(
        &mut self,
        buf: &mut PartitionBuffer,
        payload: Option<&[u8]>,
        at: &SourcePosition,
        policy: &RollPolicy,
    ) -> Routed {
        let Some(payload) = payload else {
            buf.rejected.push(None, "empty_payload", "the message has no payload (tombstone?)", at, now_micros());
            buf.note_rejected();
            return Routed { chunk: None, roll: buf.rejects_full(policy), opened: false };
        };
        // Arrival time only when the template uses it (a clock read per message otherwise).
        let ingest = if self.uses_ingest { now_micros() } else { 0 };
        self.path.clear();
        let row = match self.parser.parse(payload) {
            Ok(row) => row,
            Err(e) => {
                buf.rejected.push(Some(payload), e.reason(), &e.to_string(), at, now_micros());
                buf.note_rejected();
                return Routed { chunk: None, roll: buf.rejects_full(policy), opened: false };
            }
        };
        if let Err(e) = self.template.render(row, ingest, self.tz, &mut self.path) {
            buf.rejected.push(Some(payload), e.reason(), &e.to_string(), at, now_micros());
            buf.note_rejected();
            return Routed { chunk: None, roll: buf.rejects_full(policy), opened: false };
        }
        if let Some(t) = self.clock.as_ref().and_then(|c| c.micros(row, ingest)) {
            buf.note_event_time(t);
        }
        let (chunk, roll, opened) = buf.append(&self.path, &self.schema, row, policy);
        Routed { chunk: chunk.map(|b| (self.path.clone(), b)), roll, opened }
    }
}

/// Sends the open range of `buf` to the writer as chunks and a commit (with the queue's
/// `message_id`s, empty for offset sources, and what cut it). Returns whether a commit was sent.
pub fn send_cut(
    tx: &ToWriter,
    stream: &StreamId,
    buf: &mut PartitionBuffer,
    ids: Vec<String>,
    trigger: Trigger,
) -> Result<bool, String> {
    let range_start = buf.next_expected;
    let epoch = buf.epoch;
    let append = |dir, batch| tx.append(stream.clone(), epoch, dir, batch).map_err(|e| e.to_string());
    let Some(cut) = buf.cut() else { return Ok(false) };
    // Ranges tile the partition: a range starts right after the last published one, even
    // when the first offsets were compaction gaps or transaction markers.
    let start = range_start.map_or(cut.start, |s| s.min(cut.start));
    for (dir, batch) in cut.chunks {
        append(dir, batch)?;
    }
    if let Some(batch) = cut.rejected {
        append(rejected_dir(chrono::Utc::now()), batch)?;
    }
    let (rejected, event_max) = (cut.rejected_reasons, cut.event_max);
    tx.send(WriterMsg::Commit {
        stream: stream.clone(),
        epoch,
        start,
        end: cut.end,
        ids,
        rejected,
        event_max,
        trigger,
    })
    .map_err(|e| e.to_string())?;
    Ok(true)
}
