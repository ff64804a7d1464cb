"""Reads a table the way a user of the metastore would, by name, and prints what the tests
assert on, as JSON.

    metastore_table.py DATABASE.TABLE [ID ...]

Prints: row count, distinct ids, Spark's column types (partition columns included), the
partitions the metastore lists, row counts per partition, and the rows of the given ids.
The lab's spark-defaults.conf points Spark's Hive 4 client at the lab metastore.
"""
import json
import sys

from pyspark.sql import functions as F

from lab_spark import session

name = sys.argv[1]
ids = sys.argv[2:]
spark = session("landfall-metastore-table", hive=True)
out = {}
df = spark.table(name)
out["count"] = df.count()
out["distinct_ids"] = df.select("id").distinct().count()
out["types"] = {f.name: f.dataType.simpleString() for f in df.schema.fields}
out["listed_partitions"] = sorted(r[0] for r in spark.sql(f"SHOW PARTITIONS {name}").collect())
rows = df.groupBy("dt", "hour").count().collect()
out["partitions"] = {f"dt={r['dt']}/hour={r['hour']}": r["count"] for r in rows}
if ids:
    sample = {}
    rendered = df.where(F.col("id").isin(ids)).select(
        "id", "user_id", "tags", "geo", "dt", "hour",
        F.col("amount").cast("string").alias("amount"),
        F.date_format("ts", "yyyy-MM-dd HH:mm:ss.SSSSSS").alias("ts"),
    )
    for r in rendered.collect():
        d = r.asDict(recursive=True)
        sample[d["id"]] = d
    out["sample"] = sample
print("RESULT " + json.dumps(out, sort_keys=True))
