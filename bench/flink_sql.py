"""Flink SQL contender: the benchmark topic into Parquet on HDFS with PyFlink's Table API.

    .lab/flink/venv/bin/python bench/flink_sql.py --topic T --path hdfs://127.0.0.1:9000/bench/x/flink \
        --jars a.jar,b.jar [--partition-by dt,country] [--parallelism 2]

Run by bench/run.py with HADOOP_CLASSPATH (Hadoop's client, for hdfs://) and JVM_ARGS set; the
jars come from `./bootstrap.sh flink`. Same work as Landfall's kafka-hdfs pipeline and the Spark
contender: the same 10-field schema through Flink's `json` format (decimal, timestamp with
micros, array, row), zstd Parquet with int64 microsecond timestamps, Hive-style partitions
(`dt` from ts in UTC, then `country` or `hour`).

Mode: **batch** over the bounded topic (`scan.bounded.mode = latest-offset`: the end offsets
when the job starts), the way Flink reads a finished topic. No checkpoints are involved; the
filesystem sink writes into a hidden staging dir and moves the files into place when the job
ends. Prints `RESULT {json}`; the row count is checked afterwards, outside the measurement, by
reading the output back with Spark (bench/run.py).
"""
import argparse
import json
import time

from pyflink.table import EnvironmentSettings, TableEnvironment

COLUMNS = """
  event_id STRING,
  user_id BIGINT,
  amount DECIMAL(12, 2),
  ts TIMESTAMP_LTZ(6),
  country STRING,
  region STRING,
  is_mobile BOOLEAN,
  score DOUBLE,
  tags ARRAY<STRING>,
  device ROW<os STRING, version STRING>"""
NAMES = ["event_id", "user_id", "amount", "ts", "country", "region", "is_mobile", "score", "tags",
         "device"]
# Partition columns derived from the event time (the session time zone is UTC).
DERIVED = {"dt": "DATE_FORMAT(ts, 'yyyy-MM-dd')", "hour": "DATE_FORMAT(ts, 'HH')"}


def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted identifier: `hour` is a reserved word in Flink SQL."""
    return "`" + name.replace("`", "``") + "`"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", default="127.0.0.1:9092")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--group", default="landfall-bench-flink")
    ap.add_argument("--jars", default="", help="comma-separated jar paths for pipeline.jars")
    ap.add_argument("--partition-by", default="dt,country",
                    help="comma-separated: dt and hour (from ts) or a column such as country")
    ap.add_argument("--parallelism", type=int, default=2)
    args = ap.parse_args()
    parts = [p.strip() for p in args.partition_by.split(",") if p.strip()]
    for p in parts:
        if p not in DERIVED and p not in NAMES:
            ap.error(f"unknown partition column {p}")

    t0 = time.time()
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    conf = env.get_config()
    conf.set("parallelism.default", str(args.parallelism))
    conf.set("table.local-time-zone", "UTC")
    jars = [j for j in args.jars.split(",") if j]
    if jars:
        conf.set("pipeline.jars", ";".join(f"file://{j}" for j in jars))

    env.execute_sql(f"""
CREATE TABLE events ({COLUMNS}
) WITH (
  'connector' = 'kafka',
  'topic' = {sql_string(args.topic)},
  'properties.bootstrap.servers' = {sql_string(args.brokers)},
  'properties.group.id' = {sql_string(args.group)},
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601',
  'json.fail-on-missing-field' = 'false',
  'json.ignore-parse-errors' = 'false'
)""")
    derived = [p for p in parts if p in DERIVED]
    extra = "".join(f",\n  {ident(p)} STRING" for p in derived)
    env.execute_sql(f"""
CREATE TABLE landed ({COLUMNS}{extra}
) PARTITIONED BY ({", ".join(map(ident, parts))}) WITH (
  'connector' = 'filesystem',
  'path' = {sql_string(args.path)},
  'format' = 'parquet',
  'parquet.compression' = 'ZSTD',
  'parquet.write.int64.timestamp' = 'true',
  'parquet.timestamp.time.unit' = 'micros',
  'parquet.utc-timezone' = 'true'
)""")
    select = ", ".join(NAMES + [f"{DERIVED[p]} AS {ident(p)}" for p in derived])
    started = time.time()
    result = env.execute_sql(f"INSERT INTO landed SELECT {select} FROM events")
    client = result.get_job_client()
    job_id = str(client.get_job_id()) if client else None
    result.wait()
    done = time.time()
    print("RESULT " + json.dumps({
        "mode": "batch, scan.bounded.mode=latest-offset",
        "partition_by": parts,
        "parallelism": args.parallelism,
        "job_id": job_id,
        "session_start_secs": round(started - t0, 2),
        "job_secs": round(done - started, 2),
    }), flush=True)


if __name__ == "__main__":
    main()
