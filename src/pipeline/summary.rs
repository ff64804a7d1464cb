//! What a run did: the summary printed at the end of `--until-caught-up` and logged at
//! shutdown, and the progress line a backfill shows on a terminal.

use std::io::Write;
use std::time::Instant;

/// Counted per commit (rows, files, bytes) or per poll batch, never per message elsewhere.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub pipeline: String,
    /// Messages taken from the source (good, bad and redelivered).
    pub received: u64,
    /// Rows published to the table.
    pub events: u64,
    /// Messages published to quarantine.
    pub rejected: u64,
    /// Queue sources: redelivered messages dropped because their `message_id` was published.
    pub duplicates: u64,
    /// Queue sources: messages without a `message_id` (landed at-least-once).
    pub without_message_id: u64,
    /// Payload bytes consumed from the source.
    pub source_bytes: u64,
    /// Parquet files published (table and quarantine).
    pub files: u64,
    /// Bytes of Parquet published.
    pub parquet_bytes: u64,
    /// Most bytes the consumer-side builders held, as measured before shipping any (the budget
    /// is measured after each slice of it taken, so this is the peak within one slice).
    pub peak_consumer_bytes: u64,
    pub seconds: f64,
}

/// `\r<pipeline>: N events published, R events/s[, M to go, ETA T]` on stderr. `remaining` is
/// known only for sources whose end is known (offsets up to the end seen at assignment).
pub fn print_progress(summary: &RunSummary, started: Instant, remaining: Option<i64>) {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = summary.events as f64 / secs;
    let to_go = match remaining {
        Some(left) => {
            let eta = if rate > 0.0 { format!("{:.0} s", left as f64 / rate) } else { "?".into() };
            format!(", {left} to go, ETA {eta}")
        }
        None => String::new(),
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r{}: {} events published, {:.0} events/s{to_go}    ", summary.pipeline, summary.events, rate);
}
