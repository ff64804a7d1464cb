"""Shows what Landfall landed: a Spark query over a table on the lab HDFS.

    ./bootstrap.sh query [/landing/clicks]
"""
import sys

from pyspark.sql import SparkSession

table = sys.argv[1] if len(sys.argv) > 1 else "/landing/clicks"
spark = SparkSession.builder.appName("landfall-query").config("spark.ui.enabled", "false").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
df = spark.read.parquet(table)
print(f"spark.read.parquet({table!r}) schema:")
df.printSchema()
print("SELECT dt, hour, count(*), count(DISTINCT id), sum(amount) GROUP BY dt, hour:")
df.createOrReplaceTempView("clicks")
spark.sql(
    "SELECT dt, hour, count(*) AS events, count(DISTINCT id) AS ids, sum(amount) AS amount "
    "FROM clicks GROUP BY dt, hour ORDER BY dt, hour"
).show(50, truncate=False)
spark.stop()
