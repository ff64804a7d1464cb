"""Prints the row count of a Parquet path on the lab HDFS: parquet_count.py PATH"""
import sys

from lab_spark import session

spark = session("landfall-test")
df = spark.read.parquet(sys.argv[1])
print(f"count={df.count()}")
print(f"schema={df.schema.simpleString()}")
spark.stop()
