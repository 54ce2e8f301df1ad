"""Kafka I/O of the Spark jobs, in one place: topics read as a stream, the sink options, a batch write.

Every function takes `security`, the connector's `kafka.*` security options; None: the settings'
(config/cluster_security.py: nothing on the loopback default, SASL_SSL on a secured cluster)."""

from __future__ import annotations

from collections.abc import Sequence

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter

from config.cluster_security import kafka_spark_options

# What the Kafka sink takes: one record per row.
RECORD_SCHEMA = "key string, value string, headers array<struct<key:string, value:binary>>"

# The producer settings of every sink (the relay's and the ledger's notices): acknowledged by every
# in-sync replica, retries without duplicates, and a few ms of batching for throughput on a backlog.
SINK_OPTIONS = {
    "kafka.acks": "all",
    "kafka.enable.idempotence": "true",
    "kafka.linger.ms": "5",
    "kafka.batch.size": str(256 * 1024),
}


def _security(security: dict[str, str] | None) -> dict[str, str]:
    return kafka_spark_options() if security is None else security


def read_topics(
    spark: SparkSession,
    bootstrap: str,
    topics: Sequence[str],
    starting_offsets: str = "earliest",
    security: dict[str, str] | None = None,
) -> DataFrame:
    """`topics` as one stream with the Kafka source's columns (key, value, headers, topic, partition, offset, ...)."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .options(**_security(security))
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", starting_offsets)
        .option("includeHeaders", "true")
        # a record deleted by retention before we read it is logged, not fatal
        .option("failOnDataLoss", "false")
        .load()
    )


def sink_options(bootstrap: str, topic: str, security: dict[str, str] | None = None) -> dict[str, str]:
    return {"kafka.bootstrap.servers": bootstrap, "topic": topic, **SINK_OPTIONS, **_security(security)}


def stream_to_topic(
    records_df: DataFrame, bootstrap: str, topic: str, security: dict[str, str] | None = None
) -> DataStreamWriter:
    """A streaming Kafka sink for `records_df` (RECORD_SCHEMA's columns); the caller adds checkpoint and trigger."""
    return records_df.writeStream.format("kafka").options(**sink_options(bootstrap, topic, security))


def write_records(records_df: DataFrame, bootstrap: str, topic: str, security: dict[str, str] | None = None) -> None:
    """Send `records_df` (RECORD_SCHEMA's columns) to `topic` now: at-least-once, with every acknowledgement awaited."""
    records_df.write.format("kafka").options(**sink_options(bootstrap, topic, security)).save()


def header(name: str, value: Column) -> Column:
    """One Kafka header, an element of the sink's `headers` column: `value` as bytes."""
    return F.struct(F.lit(name).alias("key"), value.cast("binary").alias("value"))
