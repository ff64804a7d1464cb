"""Reads many landed tables the way a user would, in one Spark session, and prints per table
what the fault matrix compares with its own reading, as JSON.

    count_tables.py TABLE_URL [TABLE_URL ...]

Prints `RESULT {table: {"count", "distinct_ids", "rejected"} or {"error"}}`. A table Spark
cannot read (a partial file visible to it) is reported with the error, not raised, so one bad
table does not hide the others.
"""
import json
import sys

from lab_spark import session

spark = session("landfall-fault-matrix", keep_partition_strings=True)
out = {}
for table in sys.argv[1:]:
    try:
        df = spark.read.parquet(table)
        row = {"count": df.count(), "distinct_ids": df.select("id").distinct().count()}
        try:
            row["rejected"] = spark.read.parquet(table.rstrip("/") + "/_rejected").count()
        except Exception as e:  # noqa: BLE001 - an absent quarantine means nothing was rejected
            if "PATH_NOT_FOUND" not in str(e) and "Path does not exist" not in str(e):
                raise
            row["rejected"] = 0
        out[table] = row
    except Exception as e:  # noqa: BLE001 - reported per table, judged by the test
        out[table] = {"error": str(e).splitlines()[0][:500]}
print("RESULT " + json.dumps(out))
spark.stop()
