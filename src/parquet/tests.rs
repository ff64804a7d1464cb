//! Round trips of every Landfall type through both stores, checked value by value and
//! against the Parquet logical types Spark relies on.

use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array, ListArray,
    StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{LogicalType, TimeUnit, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;

use super::*;
use crate::schema::{arrow_schema, FieldSpec, FieldType};
use crate::sink::testing::{hdfs_dir, local_dir, TestDir};
use crate::sink::{FileStore, StoreError, StoreWriter};

fn spec(name: &str, t: &str, required: bool) -> FieldSpec {
    FieldSpec { name: name.to_string(), field_type: FieldType::parse(t).unwrap(), required }
}

/// One column of every Landfall type, as a pipeline would declare it.
fn landfall_schema() -> SchemaRef {
    Arc::new(arrow_schema(&[
        spec("id", "string", true),
        spec("ts", "timestamp", true),
        spec("amount", "decimal(12,2)", false),
        spec("tags", "list<string>", false),
        spec("geo", "struct<lat: float64, lon: float64>", false),
        spec("day", "date", false),
        spec("ok", "bool", false),
        spec("n", "int32", false),
        spec("f", "float32", false),
    ]))
}

/// 2026-11-25T17:00:00.123456Z in microseconds.
const TS0: i64 = 1_795_626_000_123_456;

/// `n` rows starting at row number `start`, covering extremes and nulls.
fn batch(schema: &SchemaRef, start: usize, n: usize) -> RecordBatch {
    let rows: Vec<usize> = (start..start + n).collect();
    let ids = StringArray::from_iter_values(rows.iter().map(|i| format!("evt-{i:06}")));
    let ts = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|&i| TS0 + i as i64 * 1_000_001))
        .with_timezone(crate::schema::UTC);
    let amount = Decimal128Array::from_iter(rows.iter().map(|&i| match i % 4 {
        0 => Some(123_456),         // 1234.56
        1 => Some(-1),              // -0.01
        2 => Some(999_999_999_999), // 9999999999.99, the largest decimal(12,2)
        _ => None,
    }))
    .with_precision_and_scale(12, 2)
    .unwrap();
    // tags: i % 3 == 0 → null list, 1 → [], 2 → ["a<i>", "b"].
    let mut offsets = vec![0i32];
    let mut values = Vec::new();
    for &i in &rows {
        if i % 3 == 2 {
            values.push(format!("a{i}"));
            values.push("b".to_string());
        }
        offsets.push(values.len() as i32);
    }
    let tags = ListArray::new(
        Arc::new(Field::new("element", DataType::Utf8, true)),
        OffsetBuffer::new(offsets.into()),
        Arc::new(StringArray::from(values)),
        Some(NullBuffer::from(rows.iter().map(|i| i % 3 != 0).collect::<Vec<_>>())),
    );
    let geo_fields = match landfall_schema().field_with_name("geo").unwrap().data_type() {
        DataType::Struct(fields) => fields.clone(),
        other => panic!("geo is {other}"),
    };
    let geo = StructArray::new(
        geo_fields,
        vec![
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|&i| 52.52 + i as f64 / 1000.0))) as ArrayRef,
            Arc::new(Float64Array::from_iter(rows.iter().map(|&i| (i % 5 != 0).then_some(13.405 - i as f64)))),
        ],
        Some(NullBuffer::from(rows.iter().map(|i| i % 7 != 6).collect::<Vec<_>>())),
    );
    let day = Date32Array::from_iter(rows.iter().map(|&i| (i % 6 != 5).then_some(20_000 + i as i32)));
    let ok = BooleanArray::from_iter(rows.iter().map(|&i| (i % 8 != 7).then_some(i % 2 == 0)));
    let n_col = Int32Array::from_iter(rows.iter().map(|&i| match i % 4 {
        0 => Some(i32::MIN),
        1 => Some(i32::MAX),
        2 => Some(i as i32),
        _ => None,
    }));
    let f = Float32Array::from_iter(rows.iter().map(|&i| (i % 9 != 8).then_some(i as f32 * -0.25)));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(ts),
        Arc::new(amount),
        Arc::new(tags),
        Arc::new(geo),
        Arc::new(day),
        Arc::new(ok),
        Arc::new(n_col),
        Arc::new(f),
    ];
    RecordBatch::try_new(schema.clone(), columns).expect("batch matches the declared schema")
}

fn source_json() -> String {
    r#"{"topic":"clicks","ranges":[{"partition":0,"from":100,"to":199}]}"#.to_string()
}

/// Writes `batches` to `path` in `store` through a [`StagedParquetFile`].
async fn write_file(
    store: &dyn FileStore,
    path: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    props: WriterProperties,
) -> FileSummary {
    let sink = store.create(path).await.unwrap();
    let mut file = StagedParquetFile::new(path, sink, schema.clone(), props).unwrap();
    for b in batches {
        file.write(b).await.unwrap();
    }
    assert_eq!(file.rows(), batches.iter().map(|b| b.num_rows() as u64).sum::<u64>());
    file.finish(vec![("landfall.source".to_string(), source_json())]).await.unwrap()
}

fn read_back(bytes: Bytes) -> (RecordBatch, Arc<ParquetMetaData>) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let metadata = builder.metadata().clone();
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    (arrow::compute::concat_batches(&schema, &batches).unwrap(), metadata)
}

fn assert_same_values(read: &RecordBatch, expected: &RecordBatch) {
    assert_eq!(read.num_rows(), expected.num_rows());
    assert_eq!(read.num_columns(), expected.num_columns());
    for (i, field) in expected.schema().fields().iter().enumerate() {
        assert_eq!(read.schema().field(i).data_type(), field.data_type(), "type of {}", field.name());
        assert_eq!(read.column(i).as_ref(), expected.column(i).as_ref(), "values of {}", field.name());
    }
}

async fn round_trip_all_types(t: &TestDir) {
    let schema = landfall_schema();
    let batches = [batch(&schema, 0, 10), batch(&schema, 10, 7)];
    let expected = arrow::compute::concat_batches(&schema, &batches).unwrap();
    let path = t.path("_landfall/part-0.parquet");
    let props = writer_properties(zstd1(), 8, vec![("landfall.pipeline".into(), "clicks".into())]).unwrap();
    let summary = write_file(&*t.store, &path, &schema, &batches, props).await;

    let bytes = t.store.read(&path).await.unwrap();
    assert_eq!(summary, FileSummary { rows: 17, bytes: bytes.len() as u64, row_groups: 3 });
    assert_eq!(t.store.stat(&path).await.unwrap().unwrap().len, summary.bytes);
    let (read, metadata) = read_back(bytes);
    assert_same_values(&read, &expected);

    // Spot checks that do not depend on the builders above being right.
    let ts = read.column(1).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
    assert_eq!(ts.value(0), TS0);
    let amount = read.column(2).as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(
        (amount.value_as_string(0), amount.value_as_string(1), amount.value_as_string(2)),
        ("1234.56".to_string(), "-0.01".to_string(), "9999999999.99".to_string())
    );
    assert!(amount.is_null(3));

    check_spark_metadata(&metadata);
}

/// The Parquet-level facts Spark reads: logical types, statistics, footer metadata.
fn check_spark_metadata(metadata: &ParquetMetaData) {
    let file = metadata.file_metadata();
    assert_eq!(file.created_by(), Some("landfall version 0.1.0"));
    let kv: Vec<(String, Option<String>)> = file
        .key_value_metadata()
        .expect("footer key-value metadata")
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    assert!(kv.contains(&("landfall.source".to_string(), Some(source_json()))), "{kv:?}");
    assert!(kv.contains(&("landfall.pipeline".to_string(), Some("clicks".to_string()))), "{kv:?}");

    let columns = file.schema_descr().columns();
    let column =
        |path: &str| columns.iter().find(|c| c.path().string() == path).unwrap_or_else(|| panic!("no column {path}"));
    let ts = column("ts");
    assert_eq!(ts.physical_type(), PhysicalType::INT64);
    assert_eq!(ts.logical_type_ref(), Some(&LogicalType::timestamp(true, TimeUnit::MICROS)));
    let amount = column("amount");
    assert_eq!(amount.physical_type(), PhysicalType::INT64, "decimal(12,2) fits INT64");
    assert_eq!(amount.logical_type_ref(), Some(&LogicalType::decimal(2, 12)));
    assert_eq!(column("day").logical_type_ref(), Some(&LogicalType::Date));
    assert_eq!(column("id").logical_type_ref(), Some(&LogicalType::String));
    assert_eq!(column("tags.list.element").logical_type_ref(), Some(&LogicalType::String));
    assert_eq!(column("geo.lat").physical_type(), PhysicalType::DOUBLE);
    assert_eq!(column("f").physical_type(), PhysicalType::FLOAT);
    assert_eq!(column("ok").physical_type(), PhysicalType::BOOLEAN);
    assert_eq!(column("n").physical_type(), PhysicalType::INT32);
    for c in columns {
        assert!(
            !matches!(c.logical_type_ref(), Some(LogicalType::Integer(int)) if !int.is_signed),
            "unsigned column {}",
            c.path()
        );
    }
    let tags = file.schema_descr().root_schema().get_fields().iter().find(|f| f.name() == "tags").unwrap();
    assert_eq!(tags.get_basic_info().logical_type_ref(), Some(&LogicalType::List));

    for rg in metadata.row_groups() {
        for chunk in rg.columns() {
            let name = chunk.column_path().string();
            assert!(matches!(chunk.compression(), parquet::basic::Compression::ZSTD(_)), "{name}");
            let stats = chunk.statistics().unwrap_or_else(|| panic!("statistics for {name}"));
            assert!(stats.null_count_opt().is_some(), "null count for {name}");
            assert!(chunk.column_index_offset().is_some(), "page index for {name}");
        }
    }
    let n_stats =
        metadata.row_group(0).columns().iter().find(|c| c.column_path().string() == "n").unwrap().statistics().unwrap();
    assert_eq!(n_stats.min_bytes_opt(), Some(&i32::MIN.to_le_bytes()[..]));
    assert_eq!(n_stats.max_bytes_opt(), Some(&i32::MAX.to_le_bytes()[..]));
}

#[tokio::test]
async fn all_types_round_trip_through_local_store() {
    let t = local_dir();
    round_trip_all_types(&t).await;
    t.cleanup().await;
}

#[tokio::test]
async fn all_types_round_trip_through_hdfs_store() {
    let Some(t) = hdfs_dir().await else { return };
    round_trip_all_types(&t).await;
    t.cleanup().await;
}

/// A [`StoreWriter`] that records what it is handed.
#[derive(Clone, Default)]
struct Recorder {
    chunks: Arc<Mutex<Vec<Bytes>>>,
    closed: Arc<Mutex<bool>>,
    fail_writes: bool,
}

#[async_trait]
impl StoreWriter for Recorder {
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        if self.fail_writes {
            return Err(StoreError::Transient {
                op: "write",
                path: "/x".into(),
                message: "down".into(),
                hint: "test".into(),
            });
        }
        self.chunks.lock().unwrap().push(data);
        Ok(())
    }
    async fn close(self: Box<Self>) -> Result<(), StoreError> {
        *self.closed.lock().unwrap() = true;
        Ok(())
    }
}

#[tokio::test]
async fn row_groups_are_shipped_while_writing_in_bounded_chunks() {
    let schema = landfall_schema();
    let recorder = Recorder::default();
    let props = writer_properties(zstd1(), 20_000, vec![]).unwrap();
    let mut file = StagedParquetFile::new("/t/x.parquet", Box::new(recorder.clone()), schema.clone(), props).unwrap();
    let (mut peak, mut first_group_peak) = (0, 0);
    for i in 0..10 {
        file.write(&batch(&schema, i * 10_000, 10_000)).await.unwrap();
        peak = peak.max(file.in_progress_bytes());
        if i < 2 {
            first_group_peak = peak;
        }
        if i == 1 {
            assert!(!recorder.chunks.lock().unwrap().is_empty(), "first row group shipped before finish");
        }
        if i % 2 == 1 {
            assert_eq!(file.encoder.as_ref().unwrap().inner().len(), 0, "completed row group {i} left unshipped");
        }
    }
    // Memory per file is about one row group and does not grow with the file.
    assert!(peak <= first_group_peak * 5 / 4, "peak {peak} vs first row group {first_group_peak}");
    let before_finish = recorder.chunks.lock().unwrap().len();
    assert!(before_finish >= 4, "one chunk per completed row group, got {before_finish}");
    assert!(file.estimated_file_bytes() > 0);
    let summary = file.finish(vec![]).await.unwrap();
    assert!(*recorder.closed.lock().unwrap());
    let chunks = recorder.chunks.lock().unwrap().clone();
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= SHIP_CHUNK_BYTES));
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(summary, FileSummary { rows: 100_000, bytes: whole.len() as u64, row_groups: 5 });
    let (read, _) = read_back(Bytes::from(whole));
    assert_eq!(read.num_rows(), 100_000);
}

#[tokio::test]
async fn flushing_a_row_group_early_frees_its_memory_and_keeps_every_row() {
    let schema = landfall_schema();
    let recorder = Recorder::default();
    let props = writer_properties(zstd1(), 100_000, vec![]).unwrap();
    let mut file = StagedParquetFile::new("/t/x.parquet", Box::new(recorder.clone()), schema.clone(), props).unwrap();
    file.write(&batch(&schema, 0, 10_000)).await.unwrap();
    let before = file.in_progress_bytes();
    assert!(before > 0 && file.has_open_row_group(), "rows are buffered in the open row group");
    file.flush_row_group().await.unwrap();
    assert!(!file.has_open_row_group(), "memory pressure closes the row group");
    assert!(
        file.in_progress_bytes() < before / 2,
        "only its encoded bytes wait: {} of {before}",
        file.in_progress_bytes()
    );
    assert!(recorder.chunks.lock().unwrap().is_empty(), "small encoded row groups wait for the next chunk or finish");
    file.write(&batch(&schema, 10_000, 5_000)).await.unwrap();
    let summary = file.finish(vec![]).await.unwrap();
    assert_eq!((summary.rows, summary.row_groups), (15_000, 2));
    let whole: Vec<u8> = recorder.chunks.lock().unwrap().iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(read_back(Bytes::from(whole)).0.num_rows(), 15_000);
}

#[tokio::test]
async fn a_store_failure_poisons_the_file_and_is_transient() {
    let schema = landfall_schema();
    let recorder = Recorder { fail_writes: true, ..Recorder::default() };
    let props = writer_properties(zstd1(), 5, vec![]).unwrap();
    let mut file = StagedParquetFile::new("/t/x.parquet", Box::new(recorder), schema.clone(), props).unwrap();
    let err = file.write(&batch(&schema, 0, 10)).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("/t/x.parquet"), "{err}");
    let err = file.write(&batch(&schema, 10, 1)).await.unwrap_err();
    assert!(matches!(err, ParquetWriteError::Poisoned { .. }), "{err}");
}

#[tokio::test]
async fn a_batch_with_another_schema_is_an_encode_error() {
    let schema = landfall_schema();
    let props = writer_properties(parquet::basic::Compression::SNAPPY, 5, vec![]).unwrap();
    let mut file = StagedParquetFile::new("/t/y.parquet", Box::new(Recorder::default()), schema, props).unwrap();
    let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
    let wrong = RecordBatch::try_new(other, vec![Arc::new(Int32Array::from(vec![1]))]).unwrap();
    let err = file.write(&wrong).await.unwrap_err();
    assert!(matches!(err, ParquetWriteError::Encode { .. }), "{err}");
    assert!(!err.is_transient());
}

fn zstd1() -> parquet::basic::Compression {
    parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::try_new(DEFAULT_ZSTD_LEVEL).unwrap())
}

#[test]
fn writer_properties_apply_the_settings() {
    let zstd3 = parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3).unwrap());
    let props = writer_properties(zstd3, 1000, vec![("k".into(), "v".into())]).unwrap();
    let col = parquet::schema::types::ColumnPath::from("n");
    assert_eq!(props.compression(&col), zstd3);
    assert_eq!(props.statistics_enabled(&col), EnabledStatistics::Page);
    assert!(props.dictionary_enabled(&col));
    assert_eq!(props.max_row_group_row_count(), Some(1000));
    assert_eq!(props.max_row_group_bytes(), Some(MAX_ROW_GROUP_BYTES));
    assert_eq!(props.created_by(), "landfall version 0.1.0");
    assert_eq!(props.key_value_metadata().unwrap()[0].key, "k");
}

#[test]
fn writer_properties_reject_empty_row_groups() {
    assert!(writer_properties(zstd1(), 0, vec![]).is_err());
}

#[test]
fn staged_files_can_move_between_tasks() {
    fn assert_send<T: Send>() {}
    assert_send::<StagedParquetFile>();
}
