"""Schemas of the Delta tables, their creation and their registration by name for SQL.

Every table written here stays readable by the `deltalake` package the API
uses: deletion vectors are switched off explicitly (and column mapping and v2
checkpoints are never switched on), so the protocol stays at reader version 1.
"""

from __future__ import annotations

from pathlib import Path

import pyspark.sql.types as T
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from warehouse import paths

# Table properties every table gets at creation.
TABLE_PROPERTIES = {
    # readable by the API's deltalake package: see the module docstring
    "delta.enableDeletionVectors": "false",
    "delta.checkpointPolicy": "classic",
    # durability, set on purpose rather than left to defaults: a checkpoint (a Parquet summary of the
    # log) every 10 commits keeps reading the table cheap with a commit per ledger batch; the log is
    # kept 30 days, so `VERSION AS OF` and DESCRIBE HISTORY reach back that far; files a commit
    # removed stay 7 days before VACUUM may delete them, so readers of older versions are safe
    "delta.checkpointInterval": "10",
    "delta.logRetentionDuration": "interval 30 days",
    "delta.deletedFileRetentionDuration": "interval 7 days",
}

MESSAGES_SCHEMA = T.StructType(
    [
        T.StructField("message_id", T.StringType(), False),
        T.StructField("author", T.StringType(), False),
        T.StructField("data", T.StringType(), False),  # the original text, for audit
        T.StructField("masked_data", T.StringType(), False),  # what readers see
        T.StructField("is_profane", T.BooleanType(), False),
        T.StructField("terms", T.ArrayType(T.StringType()), False),
        # clean | profane | withheld (sent by a user who was already blocked: recorded, not served)
        T.StructField("verdict", T.StringType(), False),
        T.StructField("sent_at", T.TimestampType(), False),  # the message's timestamp (UTC)
        T.StructField("ingested_at", T.TimestampType(), True),  # when Kafka got it
        T.StructField("kafka_partition", T.IntegerType(), False),
        T.StructField("kafka_offset", T.LongType(), False),
        T.StructField("batch_id", T.LongType(), False),
    ]
)

STRIKES_SCHEMA = T.StructType(
    [
        T.StructField("message_id", T.StringType(), False),
        T.StructField("author", T.StringType(), False),
        T.StructField("terms", T.ArrayType(T.StringType()), False),
        T.StructField("strike_number", T.IntegerType(), False),
        T.StructField("struck_at", T.TimestampType(), False),
        T.StructField("kafka_partition", T.IntegerType(), False),
        T.StructField("kafka_offset", T.LongType(), False),
        T.StructField("batch_id", T.LongType(), False),
    ]
)

USER_MODERATION_SCHEMA = T.StructType(
    [
        T.StructField("author", T.StringType(), False),
        T.StructField("messages", T.LongType(), False),
        T.StructField("strikes", T.IntegerType(), False),
        T.StructField("is_blocked", T.BooleanType(), False),
        T.StructField("blocked_at", T.TimestampType(), True),
        # Kafka position (in `chat`) of the strike that blocked the user: later messages are withheld
        T.StructField("blocked_partition", T.IntegerType(), True),
        T.StructField("blocked_offset", T.LongType(), True),
        T.StructField("first_seen", T.TimestampType(), False),
        T.StructField("last_seen", T.TimestampType(), False),
        T.StructField("updated_at", T.TimestampType(), False),
        T.StructField("last_batch_id", T.LongType(), False),
    ]
)

REJECTED_MESSAGES_SCHEMA = T.StructType(
    [
        T.StructField("raw_value", T.BinaryType(), True),
        T.StructField("raw_text", T.StringType(), True),  # the value as UTF-8 text, where it is text
        T.StructField("reason", T.StringType(), False),
        T.StructField("message_id", T.StringType(), True),
        T.StructField("kafka_partition", T.IntegerType(), False),
        T.StructField("kafka_offset", T.LongType(), False),
        T.StructField("kafka_timestamp", T.TimestampType(), True),
        T.StructField("seen_at", T.TimestampType(), False),
        T.StructField("batch_id", T.LongType(), False),
    ]
)

# Delta has no NOT NULL inside arrays: the nested fields are nullable, though the job never writes a null there
MODERATOR_ACTIONS_SCHEMA = T.StructType(
    [
        T.StructField("action_id", T.StringType(), False),
        T.StructField("action", T.StringType(), False),  # "unblock"
        T.StructField("author", T.StringType(), False),
        T.StructField("requested_by", T.StringType(), True),
        T.StructField("requested_at", T.TimestampType(), True),  # when the API took the request (UTC)
        T.StructField("strikes_cleared", T.IntegerType(), False),  # the user's strikes just before
        T.StructField("was_blocked", T.BooleanType(), False),
        T.StructField("kafka_partition", T.IntegerType(), False),  # in `chat_actions`
        T.StructField("kafka_offset", T.LongType(), False),
        T.StructField("batch_id", T.LongType(), False),  # the ledger batch that applied it
    ]
)

TERM_COUNT = T.StructType([T.StructField("term", T.StringType(), True), T.StructField("hits", T.LongType(), True)])

# Built by the statistics job (pipelines/user_stats.py), replaced as a whole on every run
USER_STATS_SCHEMA = T.StructType(
    [
        T.StructField("author", T.StringType(), False),
        T.StructField("messages", T.LongType(), False),  # every recorded message, withheld ones included
        T.StructField("profane_messages", T.LongType(), False),
        T.StructField("profanity_rate", T.DoubleType(), False),  # profane_messages / messages, 0 … 1
        T.StructField("withheld_messages", T.LongType(), False),  # sent after the block: recorded, not served
        T.StructField("strikes", T.LongType(), False),  # rows in `strikes` (all time)
        T.StructField("is_blocked", T.BooleanType(), False),
        T.StructField("blocked_at", T.TimestampType(), True),
        T.StructField("first_seen", T.TimestampType(), False),
        T.StructField("last_seen", T.TimestampType(), False),
        T.StructField("active_days", T.IntegerType(), False),  # distinct UTC dates with a message
        T.StructField("messages_by_hour", T.ArrayType(T.LongType(), True), False),  # 24 counts, hour of day UTC
        T.StructField("busiest_hour", T.IntegerType(), False),  # 0 … 23, the earliest on a tie
        T.StructField("top_terms", T.ArrayType(TERM_COUNT, True), False),  # up to 5 matched terms, most frequent first
    ]
)

SCHEMAS = {
    paths.MESSAGES: MESSAGES_SCHEMA,
    paths.STRIKES: STRIKES_SCHEMA,
    paths.USER_MODERATION: USER_MODERATION_SCHEMA,
    paths.REJECTED_MESSAGES: REJECTED_MESSAGES_SCHEMA,
    paths.MODERATOR_ACTIONS: MODERATOR_ACTIONS_SCHEMA,
}
# created by its own job, not by the ledger's ensure_tables()
ALL_SCHEMAS = {**SCHEMAS, paths.USER_STATS: USER_STATS_SCHEMA}

COMMENTS = {
    paths.MESSAGES: "every chat message with its moderation verdict (original and masked text)",
    paths.STRIKES: "one row per profane message of a user who was not yet blocked",
    paths.USER_MODERATION: "per user: messages, strikes, blocked (3 strikes) and since when",
    paths.REJECTED_MESSAGES: "records of the chat topic that are not valid messages, with the reason",
    paths.MODERATOR_ACTIONS: "moderators' actions (unblock: strikes and block cleared), as the ledger applied them",
    paths.USER_STATS: "per user statistics, rebuilt by pipelines/user_stats.py (make stats)",
}


def ensure_table(
    spark: SparkSession, name: str, warehouse: Path | None = None, schema: T.StructType | None = None
) -> DeltaTable:
    """Create the table at its path if it does not exist yet; return it."""
    builder = (
        DeltaTable.createIfNotExists(spark)
        .location(str(paths.table_path(name, warehouse)))
        .addColumns(schema or ALL_SCHEMAS[name])
        .comment(COMMENTS.get(name, name))
    )
    for key, value in TABLE_PROPERTIES.items():
        builder = builder.property(key, value)
    return builder.execute()


def ensure_tables(spark: SparkSession, warehouse: Path | None = None) -> None:
    for name in SCHEMAS:
        ensure_table(spark, name, warehouse)


def register_tables(spark: SparkSession, warehouse: Path | None = None, database: str = paths.DATABASE) -> list[str]:
    """Register every existing table as `chat.<name>` in this session's catalog; return the names."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
    registered = []
    for name in paths.ALL_TABLES:
        location = paths.table_path(name, warehouse)
        if not (location / "_delta_log").exists():
            continue
        spark.sql(f"CREATE TABLE IF NOT EXISTS {database}.{name} USING DELTA LOCATION '{location}'")
        registered.append(f"{database}.{name}")
    return registered
