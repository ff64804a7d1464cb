"""Spark Structured Streaming contender: the benchmark topic into Parquet on HDFS.

    spark-submit --jars <spark-sql-kafka jars> bench/spark_stream.py \
        --topic T --path hdfs:///bench/x/spark --checkpoint hdfs:///bench/x/spark-ckpt

Same work as Landfall's kafka-hdfs pipeline: the same 10-field schema via from_json (decimal,
timestamp with micros, list, struct), zstd Parquet, partitioned by dt (from ts, UTC) and country,
read once to the end with trigger(availableNow=True). Prints `RESULT {json}` with the rows read.
"""
import argparse
import json
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (ArrayType, BooleanType, DecimalType, DoubleType, LongType,
                               StringType, StructField, StructType, TimestampType)

SCHEMA = StructType([
    StructField("event_id", StringType()),
    StructField("user_id", LongType()),
    StructField("amount", DecimalType(12, 2)),
    StructField("ts", TimestampType()),
    StructField("country", StringType()),
    StructField("region", StringType()),
    StructField("is_mobile", BooleanType()),
    StructField("score", DoubleType()),
    StructField("tags", ArrayType(StringType())),
    StructField("device", StructType([StructField("os", StringType()),
                                      StructField("version", StringType())])),
])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", default="127.0.0.1:9092")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--checkpoint", required=True)
    args = ap.parse_args()

    t0 = time.time()
    spark = (
        SparkSession.builder.appName("landfall-bench-spark")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.compression.codec", "zstd")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    started = time.time()
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.brokers)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .load()
    )
    rows = raw.select(
        F.from_json(
            F.col("value").cast("string"),
            SCHEMA,
            {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX", "mode": "PERMISSIVE"},
        ).alias("e")
    ).select("e.*").withColumn("dt", F.date_format("ts", "yyyy-MM-dd"))
    query = (
        rows.writeStream.format("parquet")
        .option("path", args.path)
        .option("checkpointLocation", args.checkpoint)
        .partitionBy("dt", "country")
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    read = sum(p.get("numInputRows", 0) for p in query.recentProgress)
    done = time.time()
    spark.stop()
    print("RESULT " + json.dumps({
        "rows": read,
        "session_start_secs": round(started - t0, 2),
        "query_secs": round(done - started, 2),
    }))


if __name__ == "__main__":
    main()
