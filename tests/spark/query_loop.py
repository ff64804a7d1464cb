"""Queries a table by name in a loop, as a dashboard would while Landfall compacts it, and
prints what each query saw, for the test to check that no query ever saw a wrong count.

    query_loop.py DATABASE.TABLE SECONDS

Prints one line per query: `LOOP {"counts": {hour: rows}, "files": n}`, where `files` is how
many files the query read (Spark's `inputFiles`): it drops when the metastore's partitions
switch to their compacted generation. The table is looked up again for every query, as a new
query in a long-running session does.
"""
import json
import sys
import time

from lab_spark import session

name, seconds = sys.argv[1], float(sys.argv[2])
spark = session("landfall-query-loop", hive=True, keep_partition_strings=True)
end = time.time() + seconds
while time.time() < end:
    df = spark.table(name)
    counts = {r["hour"]: r["count"] for r in df.groupBy("hour").count().collect()}
    print("LOOP " + json.dumps({"counts": counts, "files": len(df.inputFiles())}, sort_keys=True), flush=True)
    time.sleep(0.5)
