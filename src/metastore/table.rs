//! The table a pipeline registers, derived from its config once: columns with the Hive type
//! of what the Parquet writer writes, partition keys from the template, the location.
//!
//! Types follow the Arrow types `crate::schema` gives the writer, so a reader through the
//! metastore and a reader of the files agree:
//!
//! | Landfall | Parquet (as written) | Hive |
//! |---|---|---|
//! | `string` | BYTE_ARRAY (UTF8) | `string` |
//! | `bool` | BOOLEAN | `boolean` |
//! | `int32` / `int64` | INT32 / INT64 | `int` / `bigint` |
//! | `float32` / `float64` | FLOAT / DOUBLE | `float` / `double` |
//! | `decimal(p,s)` | DECIMAL(p,s) | `decimal(p,s)` |
//! | `date` | INT32 DATE | `date` |
//! | `timestamp` | INT64 TIMESTAMP(MICROS, UTC) | `timestamp` (Spark: `timestamp`, an instant) |
//! | `list<T>` | LIST | `array<T>` |
//! | `struct<a: T, …>` | group | `struct<a:T,…>` |
//!
//! Partition keys are `string`, whatever the placeholder: a partition value *is* the directory
//! text (`hour=07`, `dt=2026-11-25`, a formatted `{_ingest:%Y%m}`), and only a string keeps it
//! exactly. A typed key (`hour int`) would make the metastore store `07` and readers cast it,
//! `hour=7` written by another tool would name another directory for the same value, and a
//! value that does not parse becomes null. Filters on string keys (`dt = '2026-11-25'`,
//! `dt >= '2026-11-01'`) still prune partitions; ISO dates and zero-padded hours sort right.

use std::collections::BTreeMap;

use super::hms::{Column, TableSpec};
use crate::config::{HdfsSinkConfig, HiveConfig};
use crate::schema::{FieldSpec, FieldType};

/// The Hive type of a column the Parquet writer writes as `t` (table in the module doc).
pub fn hive_type(t: &FieldType) -> String {
    match t {
        FieldType::String => "string".into(),
        FieldType::Bool => "boolean".into(),
        FieldType::Int32 => "int".into(),
        FieldType::Int64 => "bigint".into(),
        FieldType::Float32 => "float".into(),
        FieldType::Float64 => "double".into(),
        FieldType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        FieldType::Date => "date".into(),
        FieldType::Timestamp => "timestamp".into(),
        FieldType::List(item) => format!("array<{}>", hive_type(item)),
        FieldType::Struct(fields) => {
            let members: Vec<String> = fields.iter().map(|(name, t)| format!("{name}:{}", hive_type(t))).collect();
            format!("struct<{}>", members.join(","))
        }
    }
}

/// The table root as the metastore must see it: the sink's URL without userinfo (a password
/// there must not land in the metastore), plus the path.
pub fn table_location(hdfs: &HdfsSinkConfig) -> String {
    let base = match url::Url::parse(&hdfs.url) {
        Ok(url) => {
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!("{}://{host}:{port}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            }
        }
        Err(_) => hdfs.url.trim_end_matches('/').to_string(),
    };
    format!("{base}/{}", hdfs.path.trim_matches('/'))
}

/// The external Parquet table for a pipeline: its columns in declaration order (the required
/// ones noted, as a table cannot gain those), `keys` as `string` partition columns, at
/// `location`, marked with the pipeline's name.
pub fn table_spec(
    hive: &HiveConfig,
    pipeline: &str,
    schema: &[FieldSpec],
    keys: &[String],
    location: &str,
) -> TableSpec {
    TableSpec {
        database: hive.database.clone(),
        name: hive.table.clone(),
        location: location.to_string(),
        columns: schema.iter().map(|f| Column::new(&f.name, hive_type(&f.field_type))).collect(),
        partition_keys: keys.iter().map(|k| Column::new(k, "string")).collect(),
        parameters: BTreeMap::from([("landfall.pipeline".to_string(), pipeline.to_string())]),
        required: schema.iter().filter(|f| f.required).map(|f| f.name.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientOptions;

    fn t(text: &str) -> String {
        hive_type(&FieldType::parse(text).unwrap())
    }

    #[test]
    fn types_are_what_the_parquet_writer_writes() {
        for (landfall, hive) in [
            ("string", "string"),
            ("bool", "boolean"),
            ("int32", "int"),
            ("int64", "bigint"),
            ("float32", "float"),
            ("float64", "double"),
            ("decimal(12,2)", "decimal(12,2)"),
            ("decimal(38,0)", "decimal(38,0)"),
            ("date", "date"),
            ("timestamp", "timestamp"),
            ("list<string>", "array<string>"),
            ("struct<lat: float64, lon: float64>", "struct<lat:double,lon:double>"),
            ("list<struct<a: int64, b: list<date>>>", "array<struct<a:bigint,b:array<date>>>"),
        ] {
            assert_eq!(t(landfall), hive, "{landfall}");
        }
    }

    #[test]
    fn the_spec_has_string_partition_keys_and_a_location_without_userinfo() {
        let hdfs = |url: &str, path: &str| HdfsSinkConfig {
            url: url.into(),
            path: path.into(),
            user: None,
            options: ClientOptions::default(),
        };
        assert_eq!(
            table_location(&hdfs("hdfs://127.0.0.1:9000", "/landing/clicks")),
            "hdfs://127.0.0.1:9000/landing/clicks"
        );
        assert_eq!(table_location(&hdfs("hdfs://lf:secret@nn:8020/", "/t/")), "hdfs://nn:8020/t");
        assert_eq!(table_location(&hdfs("hdfs://ns1", "/landing/x")), "hdfs://ns1/landing/x");

        let hive = HiveConfig {
            metastore: "thrift://m:9083".into(),
            database: "landing".into(),
            table: "clicks".into(),
            compaction: None,
        };
        let schema = vec![
            FieldSpec { name: "id".into(), field_type: FieldType::String, required: true },
            FieldSpec { name: "ts".into(), field_type: FieldType::Timestamp, required: true },
        ];
        let keys = vec!["dt".to_string(), "hour".to_string()];
        let spec = table_spec(&hive, "clicks", &schema, &keys, "hdfs://nn:8020/t");
        assert_eq!((spec.database.as_str(), spec.name.as_str()), ("landing", "clicks"));
        assert_eq!(spec.columns, vec![Column::new("id", "string"), Column::new("ts", "timestamp")]);
        assert_eq!(spec.partition_keys, vec![Column::new("dt", "string"), Column::new("hour", "string")]);
        assert_eq!(spec.parameters.get("landfall.pipeline").map(String::as_str), Some("clicks"));
        assert_eq!(spec.required, ["id".to_string(), "ts".to_string()].into());
    }
}
