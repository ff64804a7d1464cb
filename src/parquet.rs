//! Parquet files that Spark reads correctly, streamed into a [`StoreWriter`] with bounded
//! memory.
//!
//! Spark-correctness comes mostly from the Arrow types `crate::schema` chooses
//! (`Timestamp(µs, "+00:00")` → `TIMESTAMP(MICROS, isAdjustedToUTC=true)`, `Decimal128` →
//! `DECIMAL`, signed integers only); this module adds the writer settings: page-level
//! statistics (min/max that Spark uses to skip row groups and pages), dictionary encoding,
//! zstd, and a `created_by` that parquet-mr can parse. The last one matters: parquet-mr
//! (Spark's reader) *ignores the string/binary statistics* of any file whose `created_by` does
//! not match `<app> version <x>` (PARQUET-251 guard), so it is `landfall version 0.1.0`.
//!
//! Encoding and compression are CPU work, so [`StagedParquetFile`] runs parquet's synchronous
//! `ArrowWriter` on tokio's blocking pool over an in-memory buffer and only ships finished
//! bytes to the store from the async side. What sits in memory per open file is the row group
//! being built (capped by rows and by [`MAX_ROW_GROUP_BYTES`]) plus at most one finished row
//! group on its way out; [`StagedParquetFile::in_progress_bytes`] reports it so the caller can
//! enforce a global budget (flush or roll the largest file).

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

use crate::sink::{StoreError, StoreWriter};

/// zstd level used when the pipeline sets none. Measured in session 1 with a throwaway tool (1 M
/// synthetic click events, ~238 MB as JSON, one core, release build): level 1 gave 47.9 MB in
/// 0.33 s, level 3 gave 48.6 MB in 0.45 s, level 6 48.8 MB in 0.76 s (snappy: 69.9 MB, 0.34 s).
/// Higher levels buy nothing on dictionary-encoded, 1 MiB pages and cost CPU, which is what a
/// 2-core deployment runs out of first.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Largest piece handed to the store in one `write` call: keeps every store call well inside
/// its timeout and lets the DataNode pipeline stream instead of taking a 128 MiB write.
pub const SHIP_CHUNK_BYTES: usize = 4 << 20;

/// Encoded bytes a row group flushed under memory pressure may leave waiting in memory.
pub const FLUSH_SHIP_BYTES: usize = 256 << 10;

/// Cap on the estimated encoded size of one row group, whatever the row count: the whole row
/// group sits in memory until it is complete. 128 MiB is the HDFS block size and
/// parquet-mr's default row group size, so one row group maps to one block.
pub const MAX_ROW_GROUP_BYTES: usize = 128 << 20;

/// The value of `created_by` in every file; `<app> version <semver>` is the form parquet-mr's
/// `VersionParser` accepts (otherwise Spark drops binary column statistics).
pub fn created_by() -> String {
    format!("landfall version {}", env!("CARGO_PKG_VERSION"))
}

/// What went wrong while producing a Parquet file.
#[derive(Debug, thiserror::Error)]
pub enum ParquetWriteError {
    /// Bad writer settings from the pipeline config.
    #[error("invalid Parquet settings: {0}")]
    Settings(String),
    /// parquet refused the schema or a batch (a batch not matching the declared schema).
    #[error("encoding Parquet file {path}: {source} (check that batches match the declared schema)")]
    Encode { path: String, source: ParquetError },
    /// Shipping bytes to the store failed; see [`StoreError::is_transient`].
    #[error("writing Parquet file {path}: {source}")]
    Store { path: String, source: StoreError },
    /// An earlier call failed; the file is incomplete and must be abandoned (deleted).
    #[error("Parquet file {path} is unusable after an earlier failure; abandon and delete it")]
    Poisoned { path: String },
    /// The encoding task panicked (a bug in Landfall or parquet).
    #[error("encoding task for Parquet file {path} failed: {message}")]
    TaskFailed { path: String, message: String },
}

impl ParquetWriteError {
    /// Whether writing the same rows to a *new* file may succeed; this file is lost either way.
    pub fn is_transient(&self) -> bool {
        matches!(self, ParquetWriteError::Store { source, .. } if source.is_transient())
    }

    /// The store refused the bytes until a person acts (an exhausted quota, a permission);
    /// see [`StoreError::needs_person`].
    pub fn needs_person(&self) -> bool {
        matches!(self, ParquetWriteError::Store { source, .. } if source.needs_person())
    }
}

/// Writer settings for Landfall's files. `level` applies to zstd (1..=22) and gzip (0..=9);
/// `row_group_rows` caps rows per row group ([`MAX_ROW_GROUP_BYTES`] caps its size);
/// `key_value_metadata` lands in every file's footer (e.g. `landfall.pipeline`).
pub fn writer_properties(
    codec: parquet::basic::Compression,
    row_group_rows: usize,
    key_value_metadata: Vec<(String, String)>,
) -> Result<WriterProperties, ParquetWriteError> {
    if row_group_rows == 0 {
        return Err(ParquetWriteError::Settings("row group rows must be at least 1".to_string()));
    }
    let kv: Vec<KeyValue> = key_value_metadata.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
    Ok(WriterProperties::builder()
        // Data page v1: every Spark/Hive/Trino version reads it; v2 gains little here.
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(codec)
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_max_row_group_bytes(Some(MAX_ROW_GROUP_BYTES))
        .set_created_by(created_by())
        .set_key_value_metadata((!kv.is_empty()).then_some(kv))
        .build())
}

/// What a finished file holds, for the manifest and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    pub rows: u64,
    /// Exact file size, footer included.
    pub bytes: u64,
    pub row_groups: usize,
}

/// A Parquet file whose every byte is written and shipped, waiting for its store file to close.
pub struct SealedParquetFile {
    path: String,
    sink: Box<dyn StoreWriter>,
    summary: FileSummary,
}

impl SealedParquetFile {
    /// What the file holds once closed: rows, exact size, row groups.
    pub fn summary(&self) -> &FileSummary {
        &self.summary
    }

    /// Closes the store file: once this returns, the file is durable and complete.
    pub async fn close(self) -> Result<FileSummary, ParquetWriteError> {
        let SealedParquetFile { path, sink, summary } = self;
        sink.close().await.map_err(|source| ParquetWriteError::Store { path, source })?;
        Ok(summary)
    }
}

/// One Parquet file being streamed into a store (normally a hidden staging path that the
/// commit protocol later renames). Dropping it without [`finish`](Self::finish) leaves an
/// incomplete file behind, which recovery deletes like any unpublished staging file.
pub struct StagedParquetFile {
    /// Store path, for error messages.
    path: String,
    /// `None` while an encode task owns it, and for good after a failure (poisoned).
    encoder: Option<ArrowWriter<Vec<u8>>>,
    sink: Box<dyn StoreWriter>,
    rows: u64,
    /// Bytes already handed to `sink`.
    shipped: u64,
    /// Row groups whose bytes were already taken out of the buffer.
    drained_row_groups: usize,
}

impl StagedParquetFile {
    /// Starts a file with `schema` (the declared schema's Arrow form) and `props`.
    pub fn new(
        path: &str,
        sink: Box<dyn StoreWriter>,
        schema: SchemaRef,
        props: WriterProperties,
    ) -> Result<StagedParquetFile, ParquetWriteError> {
        let encoder = ArrowWriter::try_new(Vec::new(), schema, Some(props))
            .map_err(|source| ParquetWriteError::Encode { path: path.to_string(), source })?;
        Ok(StagedParquetFile {
            path: path.to_string(),
            encoder: Some(encoder),
            sink,
            rows: 0,
            shipped: 0,
            drained_row_groups: 0,
        })
    }

    /// Encodes `batch` on the blocking pool; ships any completed row group to the store.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetWriteError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows() as u64;
        let batch = batch.clone(); // Arc clones of the columns, no data copy
        self.encode_and_ship(move |encoder, drained| {
            encoder.write(&batch).and_then(|()| drain(encoder, drained, false))
        })
        .await?;
        self.rows += rows;
        Ok(())
    }

    /// Ends the row group being built now (smaller than `row_group_rows`), freeing its column
    /// writers and raw buffers: the answer to memory pressure that does not close the file.
    /// Encoded bytes below [`FLUSH_SHIP_BYTES`] wait for the next chunk or `finish`: with
    /// hundreds of small files open, a store write per flush would serialize the writer on
    /// round trips; larger ones are shipped now, so memory is freed.
    pub async fn flush_row_group(&mut self) -> Result<(), ParquetWriteError> {
        self.encode_and_ship(|encoder, _| {
            encoder.flush()?;
            if encoder.inner().len() < FLUSH_SHIP_BYTES {
                return Ok(None);
            }
            encoder.sync()?;
            let chunk = std::mem::take(encoder.inner_mut());
            Ok((!chunk.is_empty()).then_some(chunk))
        })
        .await
    }

    /// Runs `step` on the encoder on the blocking pool, then ships the bytes it drained. Any
    /// failure poisons the file.
    async fn encode_and_ship(
        &mut self,
        step: impl FnOnce(&mut ArrowWriter<Vec<u8>>, usize) -> Result<Option<Vec<u8>>, ParquetError> + Send + 'static,
    ) -> Result<(), ParquetWriteError> {
        let mut encoder = self.take_encoder()?;
        let drained = self.drained_row_groups;
        let (encoder, outcome) = Self::blocking(&self.path, move || {
            let outcome = step(&mut encoder, drained);
            (encoder, outcome)
        })
        .await?;
        let chunk = outcome.map_err(|source| ParquetWriteError::Encode { path: self.path.clone(), source })?;
        self.drained_row_groups = encoder.flushed_row_groups().len();
        self.encoder = Some(encoder);
        if let Err(e) = self.ship(chunk).await {
            self.encoder = None;
            return Err(e);
        }
        Ok(())
    }

    /// Rows accepted so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Memory held for this file and not yet shipped: the row group being built plus encoded
    /// bytes waiting to be shipped. The number a global memory budget should sum.
    pub fn in_progress_bytes(&self) -> usize {
        self.encoder.as_ref().map_or(0, |e| e.memory_size() + e.inner().len())
    }

    /// Whether a row group is being built (its column writers, with their page buffers and
    /// compression contexts, are alive).
    pub fn has_open_row_group(&self) -> bool {
        self.encoder.as_ref().is_some_and(|e| e.in_progress_rows() > 0)
    }

    /// Expected file size if finished now (shipped + buffered + the in-progress row group's
    /// estimated encoded size), for size-based roll policies.
    pub fn estimated_file_bytes(&self) -> u64 {
        self.encoder.as_ref().map_or(self.shipped, |e| (e.bytes_written() + e.in_progress_size()) as u64)
    }

    /// Writes the last row group and the footer with `key_value_metadata` (e.g.
    /// `landfall.source` = JSON of topic/partition/offset ranges), ships everything and
    /// closes the store file: once this returns, the file is durable and complete.
    pub async fn finish(self, key_value_metadata: Vec<(String, String)>) -> Result<FileSummary, ParquetWriteError> {
        self.seal(key_value_metadata).await?.close().await
    }

    /// The first half of [`finish`](Self::finish): writes the last row group and the footer
    /// and ships every byte, so the file's size is final; the store file is not closed yet.
    /// A commit writes its manifest while its files close: on HDFS a close waits for the
    /// DataNode's block report, often half a second, and doing both at once halves a commit.
    pub async fn seal(
        mut self,
        key_value_metadata: Vec<(String, String)>,
    ) -> Result<SealedParquetFile, ParquetWriteError> {
        let mut encoder = self.take_encoder()?;
        let (encoder, outcome) = Self::blocking(&self.path, move || {
            for (key, value) in key_value_metadata {
                encoder.append_key_value_metadata(KeyValue::new(key, value));
            }
            let outcome =
                encoder.finish().and_then(|metadata| Ok((drain(&mut encoder, 0, true)?, metadata.num_row_groups())));
            (encoder, outcome)
        })
        .await?;
        let (tail, row_groups) =
            outcome.map_err(|source| ParquetWriteError::Encode { path: self.path.clone(), source })?;
        let expected = encoder.bytes_written() as u64;
        self.ship(tail).await?;
        debug_assert_eq!(self.shipped, expected, "every encoded byte is shipped once");
        let StagedParquetFile { path, sink, rows, shipped, .. } = self;
        Ok(SealedParquetFile { path, sink, summary: FileSummary { rows, bytes: shipped, row_groups } })
    }

    fn take_encoder(&mut self) -> Result<ArrowWriter<Vec<u8>>, ParquetWriteError> {
        self.encoder.take().ok_or_else(|| ParquetWriteError::Poisoned { path: self.path.clone() })
    }

    /// Runs CPU-bound encoding on the blocking pool. Takes only the path (not `&self`): the
    /// file is `Send` but not `Sync`, so a `&self` held across the await would make callers'
    /// futures non-`Send`.
    async fn blocking<T: Send + 'static>(
        path: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ParquetWriteError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ParquetWriteError::TaskFailed { path: path.to_string(), message: e.to_string() })
    }

    /// Hands `chunk` to the store in pieces of at most [`SHIP_CHUNK_BYTES`] (zero-copy slices).
    async fn ship(&mut self, chunk: Option<Vec<u8>>) -> Result<(), ParquetWriteError> {
        let Some(chunk) = chunk else { return Ok(()) };
        let bytes = Bytes::from(chunk);
        let mut offset = 0;
        while offset < bytes.len() {
            let end = (offset + SHIP_CHUNK_BYTES).min(bytes.len());
            self.sink
                .write(bytes.slice(offset..end))
                .await
                .map_err(|source| ParquetWriteError::Store { path: self.path.clone(), source })?;
            self.shipped += (end - offset) as u64;
            offset = end;
        }
        Ok(())
    }
}

/// Takes the encoded bytes out of the writer's buffer when a row group was completed since
/// `drained_row_groups`, when [`SHIP_CHUNK_BYTES`] have piled up, or when `force`d (footer).
/// Taking them through `inner_mut` is safe: parquet tracks offsets in its own counter, and
/// `sync` first empties its internal `BufWriter` into the buffer.
fn drain(
    encoder: &mut ArrowWriter<Vec<u8>>,
    drained_row_groups: usize,
    force: bool,
) -> Result<Option<Vec<u8>>, ParquetError> {
    let completed = encoder.flushed_row_groups().len() > drained_row_groups;
    if !(force || completed || encoder.inner().len() >= SHIP_CHUNK_BYTES) {
        return Ok(None);
    }
    encoder.sync()?;
    let chunk = std::mem::take(encoder.inner_mut());
    Ok((!chunk.is_empty()).then_some(chunk))
}

#[cfg(test)]
mod tests;
