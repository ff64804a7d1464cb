//! Step 3 of `docs/design/compaction.md`: read a plan's inputs, one row group at a time, and
//! write them into files of about the target size in a build directory nobody points at yet.
//! Rows keep their order (inputs in plan order, row groups in file order); columns follow the
//! pipeline's schema, and a nullable column an older file lacks reads null, as Spark reads it.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

use super::plan::Plan;
use super::ranged;
use crate::parquet::{FileSummary, ParquetWriteError, StagedParquetFile};
use crate::sink::{FileStore, StoreError};

/// Rows per batch read back: small enough that a wide row group is decoded in pieces.
const READ_BATCH_ROWS: usize = 8192;

/// Why a build failed. A build directory is never pointed at until its check passes, so every
/// failure only costs the work: the next round builds again in a fresh directory.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("compaction: {0}")]
    Store(#[from] StoreError),
    #[error("compaction: reading {path}: {detail} (the file stays where it is; the partition is not compacted)")]
    Read { path: String, detail: String },
    #[error(
        "compaction: {path} does not fit the pipeline's schema: {detail} (the partition is not \
         compacted; a file of another schema in a table directory needs a person)"
    )]
    Schema { path: String, detail: String },
    #[error("compaction: {0}")]
    Write(#[from] ParquetWriteError),
    #[error(
        "compaction: the build in {dir} holds {written} rows where its inputs hold {read}; it is \
         not used (a bug: please report it with the plan in _landfall/compaction/)"
    )]
    Count { dir: String, read: u64, written: u64 },
}

/// How to write a generation.
pub struct BuildSettings {
    /// The pipeline's Arrow schema: every output file's.
    pub schema: SchemaRef,
    pub props: WriterProperties,
    /// An output file is closed once its estimated size reaches this.
    pub target_bytes: u64,
    /// Output names: `<prefix>-<k:05>.parquet` (`part-clicks-c1`).
    pub prefix: String,
}

/// What a build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub files: Vec<(String, FileSummary)>,
    /// Rows read, as the inputs' footers count them (and as written: the check passed).
    pub rows: u64,
}

/// Writes `plan`'s rows into `dir` (which must be empty or absent) and checks the count.
pub async fn build(
    store: &dyn FileStore,
    plan: &Plan,
    dir: &str,
    settings: &BuildSettings,
) -> Result<Built, BuildError> {
    let mut out = Output { store, dir, settings, open: None, done: Vec::new() };
    let mut read = 0u64;
    for input in &plan.inputs {
        read += copy_file(store, &input.path, input.bytes, &settings.schema, &mut out).await?;
    }
    let files = out.finish().await?;
    let written = files.iter().map(|(_, s)| s.rows).sum::<u64>();
    if written != read {
        return Err(BuildError::Count { dir: dir.to_string(), read, written });
    }
    Ok(Built { files, rows: read })
}

/// Copies one input (`len` bytes) into `out`, a row group at a time, reading from the store only
/// its footer and that row group's column chunks; returns the footer's row count.
async fn copy_file(
    store: &dyn FileStore,
    path: &str,
    len: u64,
    schema: &SchemaRef,
    out: &mut Output<'_>,
) -> Result<u64, BuildError> {
    let read_err = |e: &dyn std::fmt::Display| BuildError::Read { path: path.to_string(), detail: e.to_string() };
    let footer = ranged::footer(store, path, len).await?;
    let rows = footer.metadata().file_metadata().num_rows().max(0) as u64;
    for row_group in 0..footer.metadata().num_row_groups() {
        let window = ranged::row_group(store, path, &footer, row_group, len).await?;
        let (footer, path_owned, schema) = (footer.clone(), path.to_string(), schema.clone());
        let batches = tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>, BuildError> {
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(window, footer)
                .with_row_groups(vec![row_group])
                .with_batch_size(READ_BATCH_ROWS)
                .build()
                .map_err(|e| BuildError::Read { path: path_owned.clone(), detail: e.to_string() })?;
            reader
                .map(|batch| {
                    let batch =
                        batch.map_err(|e| BuildError::Read { path: path_owned.clone(), detail: e.to_string() })?;
                    conform(&path_owned, &batch, &schema)
                })
                .collect()
        })
        .await
        .map_err(|e| read_err(&e))??;
        for batch in &batches {
            out.write(batch).await?;
        }
    }
    Ok(rows)
}

/// `batch` with the pipeline's columns in the pipeline's order: columns found by name and of
/// the same type, nullable ones it lacks as nulls. A column the pipeline does not declare, or
/// declares with another type, refuses the file.
fn conform(path: &str, batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, BuildError> {
    let schema_err = |detail: String| BuildError::Schema { path: path.to_string(), detail };
    let theirs = batch.schema();
    if let Some(extra) = theirs.fields().iter().find(|f| schema.field_with_name(f.name()).is_err()) {
        return Err(schema_err(format!("it has a column `{}` the pipeline does not declare", extra.name())));
    }
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => Err(schema_err(format!(
                "column `{}` is {} in the file and {} in the pipeline",
                field.name(),
                column.data_type(),
                field.data_type()
            ))),
            None if field.is_nullable() => Ok(new_null_array(field.data_type(), batch.num_rows())),
            None => Err(schema_err(format!("it lacks the required column `{}`", field.name()))),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| schema_err(e.to_string()))
}

/// The output files of one build: one open at a time, closed at the target size.
struct Output<'a> {
    store: &'a dyn FileStore,
    dir: &'a str,
    settings: &'a BuildSettings,
    open: Option<(String, StagedParquetFile)>,
    done: Vec<(String, FileSummary)>,
}

impl Output<'_> {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), BuildError> {
        if self.open.is_none() {
            let path = format!("{}/{}-{:05}.parquet", self.dir, self.settings.prefix, self.done.len());
            let sink = self.store.create(&path).await?;
            let file =
                StagedParquetFile::new(&path, sink, Arc::clone(&self.settings.schema), self.settings.props.clone())?;
            self.open = Some((path, file));
        }
        let (_, file) = self.open.as_mut().expect("opened above");
        file.write(batch).await?;
        if file.estimated_file_bytes() >= self.settings.target_bytes {
            self.close().await?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), BuildError> {
        if let Some((path, file)) = self.open.take() {
            let summary = file.finish(Vec::new()).await?;
            self.done.push((path, summary));
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Vec<(String, FileSummary)>, BuildError> {
        self.close().await?;
        Ok(self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compaction::plan::{next, Plan};
    use crate::parquet::writer_properties;
    use crate::sink::memory::{MemStore, Verb};
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use bytes::Bytes;

    fn schema(with_note: bool) -> SchemaRef {
        let mut fields = vec![Field::new("id", DataType::Utf8, false), Field::new("n", DataType::Int64, true)];
        if with_note {
            fields.push(Field::new("note", DataType::Utf8, true));
        }
        Arc::new(Schema::new(fields))
    }

    fn props() -> WriterProperties {
        writer_properties(parquet::basic::Compression::UNCOMPRESSED, 1000, Vec::new()).unwrap()
    }

    /// A small file of `rows` rows numbered from `first`, in the schema with or without `note`.
    async fn small_file(store: &MemStore, path: &str, first: i64, rows: i64, with_note: bool) {
        let s = schema(with_note);
        let ids: Vec<String> = (first..first + rows).map(|i| format!("evt-{i:06}")).collect();
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(ids)), Arc::new(Int64Array::from_iter_values(first..first + rows))];
        if with_note {
            columns.push(Arc::new(StringArray::from_iter_values((first..first + rows).map(|i| format!("note {i}")))));
        }
        let batch = RecordBatch::try_new(s.clone(), columns).unwrap();
        let mut file = StagedParquetFile::new(path, store.create(path).await.unwrap(), s, props()).unwrap();
        file.write(&batch).await.unwrap();
        file.finish(Vec::new()).await.unwrap();
    }

    /// Every row of the files, in order: (id, n, note).
    async fn rows_of(store: &MemStore, files: &[(String, FileSummary)]) -> Vec<(String, i64, Option<String>)> {
        let mut rows = Vec::new();
        for (path, _) in files {
            let bytes = store.read(path).await.unwrap();
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap() {
                let batch = batch.unwrap();
                let ids = batch.column_by_name("id").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
                let ns = batch.column_by_name("n").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
                let notes =
                    batch.column_by_name("note").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
                for i in 0..batch.num_rows() {
                    rows.push((
                        ids.value(i).to_string(),
                        ns.value(i),
                        notes.is_valid(i).then(|| notes.value(i).to_string()),
                    ));
                }
            }
        }
        rows
    }

    const D: &str = "/t/dt=2026-11-25/hour=17";

    #[tokio::test]
    async fn many_small_files_become_few_target_size_files_in_order_with_older_rows_null() {
        let store = MemStore::new();
        // 40 files of 50 rows; the first 10 written before `note` was appended to the schema.
        for k in 0..40i64 {
            small_file(&store, &format!("{D}/part-{k:03}.parquet"), k * 50, 50, k >= 10).await;
        }
        let listing = store.list(D).await.unwrap();
        let plan: Plan = next(&listing, None, 10).unwrap();
        let per_input = plan.input_bytes() / 40;
        let settings = BuildSettings {
            schema: schema(true),
            props: props(),
            target_bytes: per_input * 15,
            prefix: "part-clicks-c1".into(),
        };
        let dir = "/t/_landfall/generations/dt=2026-11-25/hour=17/g000001-r";
        let built = build(&store, &plan, dir, &settings).await.unwrap();
        assert_eq!(built.rows, 2000);
        assert!(
            (2..=4).contains(&built.files.len()),
            "40 inputs at a target of about 15 inputs' bytes: {:?}",
            built.files.iter().map(|(p, s)| (p, s.bytes)).collect::<Vec<_>>()
        );
        assert_eq!(built.files[0].0, format!("{dir}/part-clicks-c1-00000.parquet"));
        let rows = rows_of(&store, &built.files).await;
        assert_eq!(rows.len(), 2000);
        for (i, (id, n, note)) in rows.iter().enumerate() {
            assert_eq!((id.as_str(), *n), (format!("evt-{i:06}").as_str(), i as i64), "row {i} in order");
            assert_eq!(note.is_some(), i >= 500, "row {i}: rows of files without `note` read null");
        }
    }

    /// An input is never read whole: its footer (two ranged reads), then each row group's
    /// column chunks (one read each).
    #[tokio::test]
    async fn inputs_are_read_a_row_group_at_a_time() {
        let store = MemStore::new();
        small_file(&store, &format!("{D}/part-0.parquet"), 0, 3_500, true).await; // 4 row groups of ≤ 1,000
        small_file(&store, &format!("{D}/part-1.parquet"), 3_500, 10, true).await;
        let plan = next(&store.list(D).await.unwrap(), None, 2).unwrap();
        let settings =
            BuildSettings { schema: schema(true), props: props(), target_bytes: 1 << 20, prefix: "p".into() };
        let (reads, ranged) = (store.calls(Verb::Read), store.calls(Verb::ReadRange));
        let built = build(&store, &plan, "/t/_landfall/generations/x/g000001-r", &settings).await.unwrap();
        assert_eq!(built.rows, 3_510);
        assert_eq!(store.calls(Verb::Read), reads, "no input read whole");
        assert_eq!(store.calls(Verb::ReadRange) - ranged, (2 + 4) + (2 + 1), "footer twice, then one per row group");
        let rows = rows_of(&store, &built.files).await;
        assert_eq!(rows.len(), 3_510);
        assert!(rows.iter().enumerate().all(|(i, (id, n, _))| *n == i as i64 && *id == format!("evt-{i:06}")));
    }

    #[tokio::test]
    async fn a_file_of_another_schema_refuses_the_build_and_names_the_column() {
        let store = MemStore::new();
        small_file(&store, &format!("{D}/part-0.parquet"), 0, 5, true).await;
        small_file(&store, &format!("{D}/part-1.parquet"), 5, 5, true).await;
        let plan = next(&store.list(D).await.unwrap(), None, 2).unwrap();
        let settings =
            BuildSettings { schema: schema(false), props: props(), target_bytes: 1 << 20, prefix: "p".into() };
        let err = build(&store, &plan, "/t/_landfall/generations/x/g000001-r", &settings).await.unwrap_err();
        assert!(matches!(&err, BuildError::Schema { detail, .. } if detail.contains("`note`")), "{err}");
    }

    #[tokio::test]
    async fn a_file_that_is_not_parquet_refuses_the_build_and_names_the_file() {
        let store = MemStore::new();
        small_file(&store, &format!("{D}/part-0.parquet"), 0, 5, true).await;
        let mut w = store.create(&format!("{D}/part-1.parquet")).await.unwrap();
        w.write(Bytes::from_static(b"not parquet")).await.unwrap();
        w.close().await.unwrap();
        let plan = next(&store.list(D).await.unwrap(), None, 2).unwrap();
        let settings =
            BuildSettings { schema: schema(true), props: props(), target_bytes: 1 << 20, prefix: "p".into() };
        let err = build(&store, &plan, "/t/_landfall/generations/x/g000001-r", &settings).await.unwrap_err();
        assert!(matches!(&err, BuildError::Read { path, .. } if path.ends_with("part-1.parquet")), "{err}");
    }
}
