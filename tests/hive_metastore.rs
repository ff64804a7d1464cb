//! The metastore client against the lab's real Hive Metastore (4.0.1, thrift 127.0.0.1:9083,
//! warehouse on the lab HDFS): a database, an external Parquet table, partitions added
//! idempotently, read back, a partition's location switched with `alter_partition`, and the
//! table evolved with a nullable column (`alter_table_with_environment_context`, cascaded to
//! the partitions).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use landfall::metastore::{Added, Column, Ensured, MetastoreClient, MetastoreError, TableSpec};

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[tokio::test]
async fn tables_and_partitions_are_registered_idempotently_and_read_back() {
    let _hms = require_hive_metastore();
    let _hdfs = require_hdfs(); // the metastore creates database and partition directories there
    let client = MetastoreClient::new(HIVE_METASTORE, Duration::from_secs(60)).unwrap();

    // Hive names: lower case letters, digits and underscores.
    let db = unique("lf_hms").replace('-', "_");
    let root = format!("{HDFS_URL}/hive-test/{db}");
    assert!(client.get_database(&db).await.unwrap().is_none());
    let database = client.ensure_database(&db, Some(&format!("{root}/{db}.db"))).await.unwrap();
    assert_eq!(database.name, db);
    assert_eq!(database.location, format!("{root}/{db}.db"));
    let again = client.ensure_database(&db, None).await.unwrap();
    assert_eq!(again.location, database.location, "an existing database is returned as it is");

    let spec = TableSpec {
        database: db.clone(),
        name: "clicks".into(),
        location: format!("{root}/clicks"),
        columns: vec![
            Column::new("event_id", "string"),
            Column::new("ts", "timestamp"),
            Column::new("amount", "decimal(12,2)"),
            Column::new("clicks", "bigint"),
        ],
        partition_keys: vec![Column::new("dt", "string"), Column::new("hour", "int")],
        parameters: BTreeMap::from([("landfall.pipeline".to_string(), "clicks".to_string())]),
        required: BTreeSet::from(["event_id".to_string()]),
    };
    assert!(client.get_table(&db, "clicks").await.unwrap().is_none());
    let created = client.ensure_table(&spec).await.unwrap();
    assert!(matches!(created, Ensured::Created(_)), "{created:?}");
    let existing = client.ensure_table(&spec).await.unwrap();
    assert!(matches!(existing, Ensured::Existing(_)), "a second ensure finds the table: {existing:?}");

    let table = client.get_table(&db, "clicks").await.unwrap().expect("the table exists");
    assert_eq!((table.database.as_str(), table.name.as_str()), (db.as_str(), "clicks"));
    assert_eq!(table.table_type, "EXTERNAL_TABLE");
    assert_eq!(table.parameters.get("EXTERNAL").map(String::as_str), Some("TRUE"));
    assert_eq!(table.parameters.get("landfall.pipeline").map(String::as_str), Some("clicks"));
    assert_eq!(table.location, spec.location);
    assert_eq!(table.input_format, landfall::metastore::hms::PARQUET_INPUT_FORMAT);
    assert_eq!(table.serde_lib, landfall::metastore::hms::PARQUET_SERDE);
    assert_eq!(table.columns, spec.columns);
    assert_eq!(table.partition_keys, spec.partition_keys);

    // A pipeline whose schema moved on is told exactly what differs.
    let mut changed = spec.clone();
    changed.columns[2].hive_type = "decimal(10,2)".into();
    let err = client.ensure_table(&changed).await.unwrap_err();
    assert!(matches!(err, MetastoreError::Incompatible { .. }), "{err}");
    assert!(!err.to_string().is_empty() && err.to_string().contains("amount decimal(10,2)"), "{err}");
    assert!(!err.is_transient());

    // Partitions: added once, then found; a second one alongside.
    let hour17 = strings(&["2026-12-07", "17"]);
    let hour18 = strings(&["2026-12-07", "18"]);
    let loc17 = format!("{}/dt=2026-12-07/hour=17", spec.location);
    let loc18 = format!("{}/dt=2026-12-07/hour=18", spec.location);
    assert!(client.get_partition(&db, "clicks", &hour17).await.unwrap().is_none());
    assert_eq!(client.add_partition(&table, &hour17, &loc17).await.unwrap(), Added::New);
    assert_eq!(client.add_partition(&table, &hour17, &loc17).await.unwrap(), Added::AlreadyThere);
    assert_eq!(client.add_partition(&table, &hour18, &loc18).await.unwrap(), Added::New);

    let mut p17 = client.get_partition(&db, "clicks", &hour17).await.unwrap().expect("partition hour=17");
    assert_eq!(p17.values, hour17);
    assert_eq!(p17.location, loc17);
    let p18 = client.get_partition(&db, "clicks", &hour18).await.unwrap().expect("partition hour=18");
    assert_eq!(p18.location, loc18);

    // Compaction's switch: a new location and a completion parameter, in one alter_partition.
    let generation = format!("{}/_compacted/g1/dt=2026-12-07/hour=17", spec.location);
    p17.location = generation.clone();
    p17.parameters.insert("landfall.complete".into(), "true".into());
    client.alter_partition(&db, "clicks", &p17).await.unwrap();
    let p17 = client.get_partition(&db, "clicks", &hour17).await.unwrap().unwrap();
    assert_eq!(p17.location, generation);
    assert_eq!(p17.parameters.get("landfall.complete").map(String::as_str), Some("true"));
    // Re-adding a partition that exists leaves it as it is (no reset of the location).
    assert_eq!(client.add_partition(&table, &hour17, &loc17).await.unwrap(), Added::AlreadyThere);
    let p17 = client.get_partition(&db, "clicks", &hour17).await.unwrap().unwrap();
    assert_eq!(p17.location, generation);

    // A partition of a table that does not exist is the metastore's refusal, not a panic.
    let mut missing = table.clone();
    missing.name = "no_such_table".into();
    let err = client.add_partition(&missing, &hour17, &loc17).await.unwrap_err();
    assert!(matches!(err, MetastoreError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("no_such_table"), "{err}");

    // Evolution: a nullable column appended, to the table and to every partition (CASCADE),
    // every other field as it was.
    let before = client.get_table(&db, "clicks").await.unwrap().unwrap();
    let mut evolved = spec.clone();
    evolved.columns.push(Column::new("country", "string"));
    let ensured = client.ensure_table(&evolved).await.unwrap();
    let Ensured::Evolved { table: after, added } = ensured else { panic!("evolved: {ensured:?}") };
    assert_eq!(added, vec![Column::new("country", "string")]);
    assert_eq!(after.columns, evolved.columns);
    assert_eq!(after.partition_keys, spec.partition_keys);
    assert_eq!((after.location.as_str(), after.table_type.as_str()), (spec.location.as_str(), "EXTERNAL_TABLE"));
    assert_eq!(after.serde_lib, before.serde_lib);
    assert_eq!(after.parameters.get("landfall.pipeline").map(String::as_str), Some("clicks"));
    assert_eq!(after.parameters.get("EXTERNAL").map(String::as_str), Some("TRUE"));
    assert!(after.parameters.contains_key(landfall::metastore::hms::DDL_TIME), "the metastore set the DDL time");
    for (values, location) in [(&hour17, &generation), (&hour18, &loc18)] {
        let p = client.get_partition(&db, "clicks", values).await.unwrap().unwrap();
        assert_eq!(p.columns, evolved.columns, "partition {values:?} has the new column (CASCADE)");
        assert_eq!(&p.location, location, "and keeps its location");
    }
    let p17 = client.get_partition(&db, "clicks", &hour17).await.unwrap().unwrap();
    assert_eq!(p17.parameters.get("landfall.complete").map(String::as_str), Some("true"), "and its parameters");
    assert!(matches!(client.ensure_table(&evolved).await.unwrap(), Ensured::Existing(_)), "evolved once");

    // A new required column does not evolve the table.
    let mut required = evolved.clone();
    required.columns.push(Column::new("user_id", "bigint"));
    required.required.insert("user_id".into());
    let err = client.ensure_table(&required).await.unwrap_err();
    assert!(matches!(err, MetastoreError::Incompatible { .. }), "{err}");
    assert!(err.to_string().contains("column user_id bigint is new and required"), "{err}");
    assert_eq!(client.get_table(&db, "clicks").await.unwrap().unwrap().columns, evolved.columns);
}
