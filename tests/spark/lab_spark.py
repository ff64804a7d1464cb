"""The Spark session of the test scripts: local, quiet, in UTC (the tests compare timestamps
as UTC), on the lab HDFS. `keep_partition_strings` keeps partition values as written
(`hour=07` stays "07"), as Landfall's Hive tables declare them; `hive` reads tables by name
through the lab's metastore."""
from pyspark.sql import SparkSession


def session(app: str, *, hive: bool = False, keep_partition_strings: bool = False) -> SparkSession:
    builder = (
        SparkSession.builder.appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "768m")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if keep_partition_strings:
        builder = builder.config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    if hive:
        builder = builder.enableHiveSupport()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
