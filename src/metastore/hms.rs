//! The metastore objects Landfall reads and writes (`Database`, `Table`, `Partition` and the
//! storage descriptor inside them), mapped onto Thrift structs by the field ids of Hive's
//! `hive_metastore.thrift` (ids are stable from Hive 3 to 4). Each object read from the metastore
//! keeps the struct it came from, so writing it back (`alter_partition`) sends every field the
//! metastore set, including those this module does not know.

use std::collections::BTreeMap;

use super::thrift::{Struct, Value};

/// Hive's classes for a Parquet table: what `STORED AS PARQUET` sets, and what Spark, Hive,
/// Trino and Impala recognise as Parquet.
pub const PARQUET_INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
pub const PARQUET_OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";

/// A column or partition key: a name and a Hive type (`bigint`, `string`, `timestamp`,
/// `decimal(12,2)`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub hive_type: String,
    pub comment: Option<String>,
}

impl Column {
    pub fn new(name: impl Into<String>, hive_type: impl Into<String>) -> Column {
        Column { name: name.into(), hive_type: hive_type.into(), comment: None }
    }

    fn to_thrift(&self) -> Struct {
        let mut s = Struct::new().with(1, Value::string(&self.name)).with(2, Value::string(&self.hive_type));
        if let Some(c) = &self.comment {
            s.set(3, Value::string(c));
        }
        s
    }

    fn from_thrift(s: &Struct) -> Column {
        Column { name: s.string(1), hive_type: s.string(2), comment: s.str(3).map(str::to_string) }
    }
}

fn columns_to_thrift(cols: &[Column]) -> Value {
    Value::struct_list(cols.iter().map(Column::to_thrift).collect())
}

fn columns_from_thrift(v: Option<&Value>) -> Vec<Column> {
    v.and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_struct)
        .map(Column::from_thrift)
        .collect()
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.map(Value::as_string_map).unwrap_or_default().into_iter().collect()
}

/// A database as the metastore returns it.
#[derive(Debug, Clone)]
pub struct Database {
    pub name: String,
    pub location: String,
    pub description: String,
}

impl Database {
    /// The `Database` struct for `create_database`: owner `landfall` (a USER principal).
    pub(crate) fn create_struct(name: &str, location: Option<&str>, description: &str) -> Struct {
        let mut s = Struct::new()
            .with(1, Value::string(name))
            .with(2, Value::string(description))
            .with(4, Value::string_map(&BTreeMap::new()))
            .with(6, Value::string("landfall"))
            .with(7, Value::I32(1)); // PrincipalType.USER
        if let Some(loc) = location {
            s.set(3, Value::string(loc));
        }
        s
    }

    pub(crate) fn from_thrift(s: &Struct) -> Database {
        Database { name: s.string(1), location: s.string(3), description: s.string(2) }
    }
}

/// What Landfall wants a table to be: an external Parquet table at `location`, partitioned by
/// `partition_keys` (in path order: `dt=…/hour=…`).
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub database: String,
    pub name: String,
    /// The table's root directory, e.g. `hdfs://127.0.0.1:9000/landing/clicks`.
    pub location: String,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    /// Extra table properties (`EXTERNAL=TRUE` is always set).
    pub parameters: BTreeMap<String, String>,
}

impl TableSpec {
    fn storage(&self) -> Struct {
        let serde = Struct::new()
            .with(1, Value::string(&self.name))
            .with(2, Value::string(PARQUET_SERDE))
            .with(3, Value::string_map(&BTreeMap::from([("serialization.format".to_string(), "1".to_string())])));
        Struct::new()
            .with(1, columns_to_thrift(&self.columns))
            .with(2, Value::string(&self.location))
            .with(3, Value::string(PARQUET_INPUT_FORMAT))
            .with(4, Value::string(PARQUET_OUTPUT_FORMAT))
            .with(5, Value::Bool(false))
            .with(6, Value::I32(-1))
            .with(7, Value::Struct(serde))
            .with(8, Value::string_list(Vec::<String>::new()))
            .with(9, Value::struct_list(Vec::new()))
            .with(10, Value::string_map(&BTreeMap::new()))
            .with(12, Value::Bool(false))
    }

    /// The `Table` struct for `create_table`.
    pub(crate) fn create_struct(&self, now: i32) -> Struct {
        let mut params = self.parameters.clone();
        params.insert("EXTERNAL".into(), "TRUE".into());
        Struct::new()
            .with(1, Value::string(&self.name))
            .with(2, Value::string(&self.database))
            .with(3, Value::string("landfall"))
            .with(4, Value::I32(now))
            .with(5, Value::I32(0))
            .with(6, Value::I32(0))
            .with(7, Value::Struct(self.storage()))
            .with(8, columns_to_thrift(&self.partition_keys))
            .with(9, Value::string_map(&params))
            .with(12, Value::string("EXTERNAL_TABLE"))
    }

    /// Every way `table` differs from this spec, one readable sentence each; empty when the
    /// table can take Landfall's files as they are. Names and types compare as Hive stores them
    /// (lower case); a location compares without a trailing `/`.
    pub fn differences(&self, table: &Table) -> Vec<String> {
        let mut out = Vec::new();
        let norm = |c: &Column| (c.name.to_ascii_lowercase(), c.hive_type.replace(' ', "").to_ascii_lowercase());
        let list =
            |cols: &[Column]| cols.iter().map(|c| format!("{} {}", c.name, c.hive_type)).collect::<Vec<_>>().join(", ");
        if self.columns.iter().map(norm).ne(table.columns.iter().map(norm)) {
            out.push(format!(
                "columns are ({}), the pipeline declares ({})",
                list(&table.columns),
                list(&self.columns)
            ));
        }
        if self.partition_keys.iter().map(norm).ne(table.partition_keys.iter().map(norm)) {
            out.push(format!(
                "partition keys are ({}), the pipeline's partition template gives ({})",
                list(&table.partition_keys),
                list(&self.partition_keys)
            ));
        }
        if self.location.trim_end_matches('/') != table.location.trim_end_matches('/') {
            out.push(format!("location is {}, the pipeline writes to {}", table.location, self.location));
        }
        if table.input_format != PARQUET_INPUT_FORMAT {
            out.push(format!("storage is {} (input format), not Parquet", table.input_format));
        }
        if table.table_type != "EXTERNAL_TABLE" {
            out.push(format!(
                "table type is {}, not EXTERNAL_TABLE (a managed table's files belong to the metastore)",
                table.table_type
            ));
        }
        out
    }
}

/// A table as the metastore returns it.
#[derive(Debug, Clone)]
pub struct Table {
    pub database: String,
    pub name: String,
    pub owner: String,
    pub table_type: String,
    pub location: String,
    pub input_format: String,
    pub serde_lib: String,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    pub parameters: BTreeMap<String, String>,
    raw: Struct,
}

impl Table {
    pub(crate) fn from_thrift(s: Struct) -> Table {
        let sd = s.get(7).and_then(Value::as_struct).cloned().unwrap_or_default();
        let serde = sd.get(7).and_then(Value::as_struct).cloned().unwrap_or_default();
        Table {
            database: s.string(2),
            name: s.string(1),
            owner: s.string(3),
            table_type: s.string(12),
            location: sd.string(2),
            input_format: sd.string(3),
            serde_lib: serde.string(2),
            columns: columns_from_thrift(sd.get(1)),
            partition_keys: columns_from_thrift(s.get(8)),
            parameters: string_map(s.get(9)),
            raw: s,
        }
    }

    /// The table's storage descriptor with another location: a partition's descriptor (same
    /// columns, formats and serde, as Hive's own `ALTER TABLE … ADD PARTITION` makes it).
    fn storage_at(&self, location: &str) -> Struct {
        let mut sd = self.raw.get(7).and_then(Value::as_struct).cloned().unwrap_or_default();
        sd.set(2, Value::string(location));
        sd
    }
}

/// A partition as the metastore returns it (or as Landfall adds it).
#[derive(Debug, Clone)]
pub struct Partition {
    /// Values in partition-key order (`["2026-12-07", "17"]` for `dt=2026-12-07/hour=17`).
    pub values: Vec<String>,
    pub location: String,
    pub parameters: BTreeMap<String, String>,
    pub create_time: i32,
    raw: Struct,
}

impl Partition {
    /// A new partition of `table` at `location`, with the table's storage descriptor.
    pub(crate) fn new_struct(table: &Table, values: &[String], location: &str, now: i32) -> Struct {
        Struct::new()
            .with(1, Value::string_list(values))
            .with(2, Value::string(&table.database))
            .with(3, Value::string(&table.name))
            .with(4, Value::I32(now))
            .with(5, Value::I32(0))
            .with(6, Value::Struct(table.storage_at(location)))
            .with(7, Value::string_map(&BTreeMap::new()))
    }

    pub(crate) fn from_thrift(s: Struct) -> Partition {
        let sd = s.get(6).and_then(Value::as_struct).cloned().unwrap_or_default();
        Partition {
            values: s
                .get(1)
                .and_then(Value::as_list)
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            location: sd.string(2),
            parameters: string_map(s.get(7)),
            create_time: s.get(4).and_then(Value::as_i32).unwrap_or(0),
            raw: s,
        }
    }

    /// The struct to send back in `alter_partition`: what the metastore returned, with this
    /// value's location and parameters.
    pub(crate) fn to_thrift(&self) -> Struct {
        let mut s = self.raw.clone();
        let mut sd = s.get(6).and_then(Value::as_struct).cloned().unwrap_or_default();
        sd.set(2, Value::string(&self.location));
        s.set(6, Value::Struct(sd));
        s.set(7, Value::string_map(&self.parameters));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TableSpec {
        TableSpec {
            database: "landing".into(),
            name: "clicks".into(),
            location: "hdfs://127.0.0.1:9000/landing/clicks".into(),
            columns: vec![Column::new("id", "string"), Column::new("amount", "decimal(12,2)")],
            partition_keys: vec![Column::new("dt", "string"), Column::new("hour", "int")],
            parameters: BTreeMap::new(),
        }
    }

    #[test]
    fn a_created_table_reads_back_as_the_spec_with_no_differences() {
        let spec = spec();
        let table = Table::from_thrift(spec.create_struct(1_700_000_000));
        assert_eq!(table.table_type, "EXTERNAL_TABLE");
        assert_eq!(table.parameters.get("EXTERNAL").map(String::as_str), Some("TRUE"));
        assert_eq!(table.serde_lib, PARQUET_SERDE);
        assert!(spec.differences(&table).is_empty(), "{:?}", spec.differences(&table));
    }

    #[test]
    fn differences_name_each_mismatch_and_ignore_case_spaces_and_trailing_slashes() {
        let spec = spec();
        let mut other = spec.clone();
        other.columns = vec![Column::new("ID", "STRING"), Column::new("amount", "decimal(12, 2)")];
        other.location.push('/');
        assert!(spec.differences(&Table::from_thrift(other.create_struct(0))).is_empty());

        other.columns[1].hive_type = "decimal(10,2)".into();
        other.partition_keys.pop();
        other.location = "hdfs://127.0.0.1:9000/elsewhere".into();
        let diffs = spec.differences(&Table::from_thrift(other.create_struct(0)));
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert!(diffs[0].contains("amount decimal(10,2)") && diffs[0].contains("amount decimal(12,2)"), "{}", diffs[0]);
        assert!(diffs[1].starts_with("partition keys are (dt string)"), "{}", diffs[1]);
        assert!(diffs[2].contains("/elsewhere"), "{}", diffs[2]);
    }

    #[test]
    fn a_partition_keeps_unknown_fields_when_written_back() {
        let table = Table::from_thrift(spec().create_struct(0));
        let values = vec!["2026-12-07".to_string(), "17".to_string()];
        let mut raw = Partition::new_struct(&table, &values, "hdfs://x/landing/clicks/dt=2026-12-07/hour=17", 5);
        raw.set(10, Value::I64(42)); // a field from a newer IDL (Hive 4's writeId)
        let mut p = Partition::from_thrift(raw);
        assert_eq!(p.values, values);
        assert_eq!(p.create_time, 5);
        // The partition's storage descriptor is the table's, at the partition's path.
        let sd = p.raw.get(6).and_then(Value::as_struct).unwrap();
        assert_eq!(sd.str(3), Some(PARQUET_INPUT_FORMAT));
        p.location = "hdfs://x/landing/clicks/_gen/1/dt=2026-12-07/hour=17".into();
        p.parameters.insert("landfall.complete".into(), "true".into());
        let back = Partition::from_thrift(p.to_thrift());
        assert_eq!(back.location, p.location);
        assert_eq!(back.parameters.get("landfall.complete").map(String::as_str), Some("true"));
        assert_eq!(back.raw.get(10), Some(&Value::I64(42)));
    }
}
