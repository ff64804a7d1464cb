//! The metastore objects Landfall reads and writes (`Database`, `Table`, `Partition` and the
//! storage descriptor inside them), mapped onto Thrift structs by the field ids of Hive's
//! `hive_metastore.thrift` (ids are stable from Hive 3 to 4). Each object read from the metastore
//! keeps the struct it came from, so writing it back (`alter_partition`, and `alter_table` when
//! a table evolves) sends every field the metastore set, including those this module does not
//! know.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::thrift::{Struct, Value};

/// Hive's classes for a Parquet table: what `STORED AS PARQUET` sets, and what Spark, Hive,
/// Trino and Impala recognise as Parquet.
pub const PARQUET_INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
pub const PARQUET_OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";

/// The table parameter where the metastore keeps the time of the last DDL, in seconds
/// (`hive_metastoreConstants.DDL_TIME`).
pub const DDL_TIME: &str = "transient_lastDdlTime";

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
    /// Names of the columns the decode schema declares `required: true`. The table cannot
    /// gain one of them: rows landed before it have no value for it.
    pub required: BTreeSet<String>,
}

/// How an existing table fits a [`TableSpec`] ([`TableSpec::fit`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Fit {
    /// The table takes Landfall's files as they are.
    Same,
    /// The table takes them once these nullable columns are appended to its data columns:
    /// everything else matches.
    AddColumns(Vec<Column>),
    /// Every way the table differs that Landfall does not evolve, one sentence each, saying
    /// what to do.
    Incompatible(Vec<String>),
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

    /// How `table` fits this spec: the same, the same but for nullable columns the pipeline
    /// appends (the table evolves), or incompatible, each difference named. Names and types
    /// compare as Hive stores them (lower case, no spaces); a location compares without a
    /// trailing `/`.
    pub fn fit(&self, table: &Table) -> Fit {
        let (added, mut out) = match self.column_changes(table) {
            Ok(added) => (added, Vec::new()),
            Err(differences) => (Vec::new(), differences),
        };
        let norm = |c: &Column| (c.name.to_ascii_lowercase(), normal_type(c));
        let list =
            |cols: &[Column]| cols.iter().map(|c| format!("{} {}", c.name, c.hive_type)).collect::<Vec<_>>().join(", ");
        if self.partition_keys.iter().map(norm).ne(table.partition_keys.iter().map(norm)) {
            out.push(format!(
                "partition keys are ({}), the pipeline's partition template gives ({}); partition keys never \
                 evolve: change the template back, or register into a new table",
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
        match (out.is_empty(), added.is_empty()) {
            (false, _) => Fit::Incompatible(out),
            (true, true) => Fit::Same,
            (true, false) => Fit::AddColumns(added),
        }
    }

    /// The columns to append to the table's, or every column difference that does not evolve.
    /// Evolvable: the table's columns, in their order and with their types, followed only by
    /// new columns the pipeline does not require.
    fn column_changes(&self, table: &Table) -> Result<Vec<Column>, Vec<String>> {
        let key = |c: &Column| c.name.to_ascii_lowercase();
        let in_spec: HashMap<String, &Column> = self.columns.iter().map(|c| (key(c), c)).collect();
        let in_table: HashMap<String, &Column> = table.columns.iter().map(|c| (key(c), c)).collect();
        let mut out = Vec::new();
        for t in &table.columns {
            match in_spec.get(&key(t)) {
                None => out.push(format!(
                    "column {} {} is in the table, and the pipeline no longer declares it; a column is never \
                     dropped (the files landed hold it): declare it again, without `required: true` if new \
                     events lack it",
                    t.name, t.hive_type
                )),
                Some(s) if normal_type(s) != normal_type(t) => out.push(format!(
                    "column {}: the table has {} {}, the pipeline declares {} {}; a column's type never evolves \
                     (the files landed hold the old one): declare the table's type, or register into a new table",
                    t.name, t.name, t.hive_type, s.name, s.hive_type
                )),
                Some(_) => {}
            }
        }
        let kept_in_table: Vec<String> = table.columns.iter().map(key).filter(|k| in_spec.contains_key(k)).collect();
        let kept_in_spec: Vec<String> = self.columns.iter().map(key).filter(|k| in_table.contains_key(k)).collect();
        if kept_in_table != kept_in_spec {
            out.push(format!(
                "the table has its columns in the order ({}), the pipeline declares them in the order ({}); \
                 a column keeps its place: declare them in the table's order",
                kept_in_table.join(", "),
                kept_in_spec.join(", ")
            ));
        }
        // Index in the spec of the last column the table has: new columns must come after it.
        let last_kept = self.columns.iter().rposition(|c| in_table.contains_key(&key(c)));
        let mut added = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            if in_table.contains_key(&key(c)) {
                continue;
            }
            if self.required.iter().any(|r| r.eq_ignore_ascii_case(&c.name)) {
                out.push(format!(
                    "column {} {} is new and required; rows landed before it have no value for it: declare it \
                     without `required: true` (older rows read as null), or register into a new table",
                    c.name, c.hive_type
                ));
            }
            if let Some(last) = last_kept.filter(|last| i < *last) {
                out.push(format!(
                    "column {} {} is new, declared before {} which the table has; new columns are appended: \
                     declare it after {}",
                    c.name,
                    c.hive_type,
                    self.columns[i + 1..].iter().find(|c| in_table.contains_key(&key(c))).map_or("", |c| &c.name),
                    self.columns[last].name
                ));
            }
            added.push(c.clone());
        }
        if out.is_empty() {
            Ok(added)
        } else {
            Err(out)
        }
    }
}

/// A Hive type as the metastore compares it: lower case, without spaces.
fn normal_type(c: &Column) -> String {
    c.hive_type.replace(' ', "").to_ascii_lowercase()
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

    /// The struct to send in `alter_table` to append `added` to the data columns: the table as
    /// the metastore returned it (every field kept, the existing columns' structs too), with
    /// the columns appended and without [`DDL_TIME`], so that the metastore records the time
    /// of this change (as Hive's own `ALTER TABLE` does).
    pub(crate) fn evolved_struct(&self, added: &[Column]) -> Struct {
        let mut s = self.raw.clone();
        let mut sd = s.get(7).and_then(Value::as_struct).cloned().unwrap_or_default();
        let mut columns = sd.get(1).and_then(Value::as_list).map(<[Value]>::to_vec).unwrap_or_default();
        columns.extend(added.iter().map(|c| Value::Struct(c.to_thrift())));
        sd.set(1, Value::List { elem: super::thrift::Ttype::Struct, items: columns, set: false });
        s.set(7, Value::Struct(sd));
        let mut params = self.parameters.clone();
        params.remove(DDL_TIME);
        s.set(9, Value::string_map(&params));
        s
    }
}

/// A partition as the metastore returns it (or as Landfall adds it).
#[derive(Debug, Clone)]
pub struct Partition {
    /// Values in partition-key order (`["2026-12-07", "17"]` for `dt=2026-12-07/hour=17`).
    pub values: Vec<String>,
    pub location: String,
    /// The data columns the metastore lists for this partition (Hive's engine reads the
    /// partition's files with these, not the table's). Read only: `alter_partition` sends
    /// back the columns as read.
    pub columns: Vec<Column>,
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
            columns: columns_from_thrift(sd.get(1)),
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
            required: BTreeSet::from(["id".to_string()]),
        }
    }

    /// The table `spec()` creates, as the metastore would return it.
    fn table() -> Table {
        Table::from_thrift(spec().create_struct(1_700_000_000))
    }

    /// A declared column: name, type, required.
    type Declared<'a> = (&'a str, &'a str, bool);

    /// `spec()` declaring `columns`.
    fn declaring(columns: &[Declared]) -> TableSpec {
        let mut spec = spec();
        spec.columns = columns.iter().map(|(n, t, _)| Column::new(*n, *t)).collect();
        spec.required = columns.iter().filter(|(_, _, r)| *r).map(|(n, _, _)| n.to_string()).collect();
        spec
    }

    fn incompatible(fit: Fit) -> Vec<String> {
        match fit {
            Fit::Incompatible(differences) => differences,
            other => panic!("expected incompatible, got {other:?}"),
        }
    }

    #[test]
    fn a_created_table_reads_back_as_the_spec_with_no_differences() {
        let table = table();
        assert_eq!(table.table_type, "EXTERNAL_TABLE");
        assert_eq!(table.parameters.get("EXTERNAL").map(String::as_str), Some("TRUE"));
        assert_eq!(table.serde_lib, PARQUET_SERDE);
        assert_eq!(spec().fit(&table), Fit::Same);
    }

    #[test]
    fn differences_name_each_mismatch_and_ignore_case_spaces_and_trailing_slashes() {
        let spec = spec();
        let mut other = spec.clone();
        other.columns = vec![Column::new("ID", "STRING"), Column::new("amount", "decimal(12, 2)")];
        other.location.push('/');
        assert_eq!(spec.fit(&Table::from_thrift(other.create_struct(0))), Fit::Same);

        other.columns[1].hive_type = "decimal(10,2)".into();
        other.partition_keys.pop();
        other.location = "hdfs://127.0.0.1:9000/elsewhere".into();
        let diffs = incompatible(spec.fit(&Table::from_thrift(other.create_struct(0))));
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert!(diffs[0].contains("amount decimal(10,2)") && diffs[0].contains("amount decimal(12,2)"), "{}", diffs[0]);
        assert!(diffs[0].contains("type never evolves"), "{}", diffs[0]);
        assert!(diffs[1].starts_with("partition keys are (dt string)"), "{}", diffs[1]);
        assert!(diffs[2].contains("/elsewhere"), "{}", diffs[2]);
    }

    #[test]
    fn nullable_columns_appended_after_the_tables_evolve_it() {
        let spec = declaring(&[
            ("id", "string", true),
            ("amount", "decimal(12,2)", false),
            ("country", "string", false),
            ("geo", "struct<lat: double, lon: double>", false),
        ]);
        let want = vec![Column::new("country", "string"), Column::new("geo", "struct<lat: double, lon: double>")];
        assert_eq!(spec.fit(&table()), Fit::AddColumns(want));
        // Evolved, the table fits as it is.
        let evolved = Table::from_thrift(table().evolved_struct(&[Column::new("country", "string")]));
        assert_eq!(
            declaring(&[("id", "string", true), ("amount", "decimal(12,2)", false), ("country", "string", false)])
                .fit(&evolved),
            Fit::Same
        );
    }

    #[test]
    fn anything_else_is_incompatible_each_difference_named_with_what_to_do() {
        let table = table();
        let cases: &[(&[Declared], &[&str])] = &[
            // A dropped column.
            (&[("id", "string", true)], &["column amount decimal(12,2) is in the table", "never dropped"]),
            // A changed type, with a new nullable column: nothing evolves.
            (
                &[("id", "string", true), ("amount", "decimal(10,2)", false), ("country", "string", false)],
                &["the table has amount decimal(12,2), the pipeline declares amount decimal(10,2)"],
            ),
            // A new required column.
            (
                &[("id", "string", true), ("amount", "decimal(12,2)", false), ("country", "string", true)],
                &["column country string is new and required", "without `required: true`"],
            ),
            // A new column in the middle.
            (
                &[("id", "string", true), ("country", "string", false), ("amount", "decimal(12,2)", false)],
                &["column country string is new, declared before amount", "declare it after amount"],
            ),
            // Reordered.
            (
                &[("amount", "decimal(12,2)", false), ("id", "string", true)],
                &["in the order (id, amount), the pipeline declares them in the order (amount, id)"],
            ),
        ];
        for (columns, want) in cases {
            let diffs = incompatible(declaring(columns).fit(&table));
            assert_eq!(diffs.len(), 1, "{columns:?}: {diffs:?}");
            for w in *want {
                assert!(diffs[0].contains(w), "{columns:?}: `{w}` in {diffs:?}");
            }
        }
        // A new nullable column with other partition keys: the keys stop it.
        let mut spec = declaring(&[("id", "string", true), ("amount", "decimal(12,2)", false), ("c", "string", false)]);
        spec.partition_keys[1].hive_type = "string".into();
        let diffs = incompatible(spec.fit(&table));
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert!(diffs[0].contains("partition keys never evolve"), "{}", diffs[0]);
        // A rename is a dropped column (named) and a new nullable one (which alone would evolve).
        let diffs = incompatible(declaring(&[("id", "string", true), ("amt", "decimal(12,2)", false)]).fit(&table));
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert!(diffs[0].contains("column amount decimal(12,2) is in the table"), "{}", diffs[0]);
    }

    #[test]
    fn an_evolved_table_keeps_every_field_it_was_read_with() {
        let mut raw = spec().create_struct(0);
        raw.set(17, Value::string("hive")); // catName, a field this module does not map
        let mut sd = raw.get(7).and_then(Value::as_struct).cloned().unwrap();
        sd.set(11, Value::Struct(Struct::new().with(1, Value::string_list(["x"])))); // skewedInfo
        let mut id = Column::new("id", "string");
        id.comment = Some("the event id".into());
        sd.set(1, Value::struct_list(vec![id.to_thrift(), Column::new("amount", "decimal(12,2)").to_thrift()]));
        raw.set(7, Value::Struct(sd));
        let mut params = BTreeMap::from([(DDL_TIME.to_string(), "1700000000".to_string())]);
        params.insert("owner_note".into(), "kept".into());
        raw.set(9, Value::string_map(&params));
        let table = Table::from_thrift(raw);

        let added = [Column::new("country", "string")];
        let evolved = Table::from_thrift(table.evolved_struct(&added));
        assert_eq!(evolved.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["id", "amount", "country"]);
        assert_eq!(evolved.columns[0].comment.as_deref(), Some("the event id"));
        assert_eq!(evolved.raw.get(17), table.raw.get(17));
        let sd = evolved.raw.get(7).and_then(Value::as_struct).unwrap();
        assert_eq!(sd.get(11), table.raw.get(7).and_then(Value::as_struct).unwrap().get(11));
        assert_eq!(sd.str(3), Some(PARQUET_INPUT_FORMAT));
        assert_eq!(evolved.location, table.location);
        assert_eq!(evolved.partition_keys, table.partition_keys);
        assert_eq!(evolved.parameters.get("owner_note").map(String::as_str), Some("kept"));
        assert_eq!(evolved.parameters.get(DDL_TIME), None, "the metastore sets it");
    }

    #[test]
    fn a_partition_keeps_unknown_fields_when_written_back() {
        let table = table();
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
