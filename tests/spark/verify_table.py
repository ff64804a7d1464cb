"""Reads a landed table the way a user would and prints what the tests assert on, as JSON.

    verify_table.py TABLE_URL [ID ...]

Prints: row count, distinct ids, Spark's column types, row counts per partition path, the rows
of the given ids (values rendered exactly), and the quarantine's row count and reasons.
"""
import json
import sys

from pyspark.sql import functions as F

from lab_spark import session

table = sys.argv[1]
ids = sys.argv[2:]
spark = session("landfall-verify", keep_partition_strings=True)
out = {}
df = spark.read.parquet(table)
out["count"] = df.count()
out["distinct_ids"] = df.select("id").distinct().count()
out["types"] = {f.name: f.dataType.simpleString() for f in df.schema.fields}
# Partition columns are the ones named by `name=value` directories under the table (a
# column may be in the files too; Spark then shows the directory's value).
first = df.inputFiles()[0][len(table.rstrip("/")) :].strip("/").split("/")[:-1]
dir_cols = {seg.split("=", 1)[0] for seg in first if "=" in seg}
part_cols = [c for c in df.columns if c in dir_cols]
if part_cols:
    rows = df.groupBy(*part_cols).count().collect()
    out["partitions"] = {"/".join(f"{c}={r[c]}" for c in part_cols): r["count"] for r in rows}
if ids:
    sample = {}
    # Render in Spark (session time zone UTC) so values are exact and independent of Python's TZ.
    rendered = df.where(F.col("id").isin(ids)).select(
        "id", "user_id", "tags", "geo",
        F.col("amount").cast("string").alias("amount"),
        F.date_format("ts", "yyyy-MM-dd HH:mm:ss.SSSSSS").alias("ts"),
    )
    for r in rendered.collect():
        d = r.asDict(recursive=True)
        sample[d["id"]] = d
    out["sample"] = sample
try:
    rej = spark.read.parquet(table.rstrip("/") + "/_rejected")
    out["rejected_count"] = rej.count()
    out["rejected_reasons"] = {r["reason"]: r["count"] for r in rej.groupBy("reason").count().collect()}
    out["rejected_offsets"] = rej.select("partition", "offset").distinct().count()
except Exception as e:  # noqa: BLE001 - absent quarantine dir means nothing rejected
    if "PATH_NOT_FOUND" not in str(e) and "Path does not exist" not in str(e):
        raise
    out["rejected_count"] = 0
    out["rejected_reasons"] = {}
print("RESULT " + json.dumps(out, default=str))
spark.stop()
