"""Reads a contender's landed table back with Spark, outside the measurement: rows, distinct
event ids, the schema Spark infers and the partition values. bench/run.py uses it for contenders
that do not count what they wrote themselves (Flink SQL).

    .lab/bin/lab-python bench/read_back.py hdfs://127.0.0.1:9000/bench/x/flink

Prints `RESULT {json}`.
"""
import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main() -> None:
    path = sys.argv[1]
    spark = (
        SparkSession.builder.appName("landfall-bench-read-back")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Keep partition values as the strings in the paths (hour=07 stays "07").
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    df = spark.read.parquet(path)
    row = df.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("event_id").alias("ids"),
                 F.min("ts").alias("min_ts"), F.max("ts").alias("max_ts")).collect()[0]
    fields = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    spark.stop()
    print("RESULT " + json.dumps({
        "rows": row["rows"], "distinct_ids": row["ids"],
        "min_ts": str(row["min_ts"]), "max_ts": str(row["max_ts"]), "schema": fields,
    }))


if __name__ == "__main__":
    main()
