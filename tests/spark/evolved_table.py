"""Reads a table that gained a column, by name, with both of Spark's readers of a Hive Parquet
table, and prints what tests/hive_registration.rs asserts on, as JSON.

    evolved_table.py DATABASE.TABLE COLUMN

Readers: `native` (spark.sql.hive.convertMetastoreParquet=true, Spark's default: Spark's own
Parquet reader with the table's columns) and `hive_serde` (false: Spark's Hive reader, through
Hive's ParquetHiveSerDe and the partitions' descriptors). For each: the
rows, rows per id prefix (`evt`, `new`) with COLUMN null or not, COLUMN's distinct values, and
whether the plan used the reader asked for. Only `id`, COLUMN and the partition columns are
read, so the SerDe is not asked for types it does not read.
"""
import json
import sys

from pyspark.sql import functions as F

from lab_spark import session

name, column = sys.argv[1], sys.argv[2]
spark = session("landfall-evolved-table", hive=True)
out = {"types": {f.name: f.dataType.simpleString() for f in spark.table(name).schema.fields}}
for reader, convert in [("native", "true"), ("hive_serde", "false")]:
    spark.conf.set("spark.sql.hive.convertMetastoreParquet", convert)
    df = spark.table(name).select("id", column, "dt", "hour")
    plan = df._jdf.queryExecution().executedPlan().toString()
    groups = (
        df.select(F.split("id", "-")[0].alias("prefix"), F.col(column).isNull().alias("is_null"))
        .groupBy("prefix", "is_null")
        .count()
        .collect()
    )
    values = df.where(F.col(column).isNotNull()).select(column).distinct().collect()
    out[reader] = {
        "count": df.count(),
        "groups": {f"{r['prefix']} {'null' if r['is_null'] else 'value'}": r["count"] for r in groups},
        "values": sorted(str(r[0]) for r in values),
        "parquet_scan": "FileScan parquet" in plan,
        "hive_scan": "HiveTableScan" in plan or "Scan hive" in plan,
    }
print("RESULT " + json.dumps(out, sort_keys=True))
