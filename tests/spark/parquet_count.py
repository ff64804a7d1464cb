"""Prints the row count of a Parquet path on the lab HDFS: parquet_count.py PATH"""
import sys

from pyspark.sql import SparkSession

spark = (
    SparkSession.builder.appName("landfall-test")
    .config("spark.ui.enabled", "false")
    .config("spark.driver.memory", "512m")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
df = spark.read.parquet(sys.argv[1])
print(f"count={df.count()}")
print(f"schema={df.schema.simpleString()}")
spark.stop()
