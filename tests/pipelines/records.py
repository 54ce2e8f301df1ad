"""Kafka records as the Spark Kafka source gives them, for the tests of the transformations and the ledger."""

from __future__ import annotations

import json

import pyspark.sql.functions as F
import pyspark.sql.types as T

RAW_SCHEMA = T.StructType(
    [
        T.StructField("value", T.BinaryType()),
        T.StructField(
            "headers",
            T.ArrayType(T.StructType([T.StructField("key", T.StringType()), T.StructField("value", T.BinaryType())])),
        ),
        T.StructField("partition", T.IntegerType()),
        T.StructField("offset", T.LongType()),
    ]
)


def raw_df(spark, values, with_header=True):
    """Values at partition 0, offset i, with a `message_id` header m<i> (or none)."""
    rows = [(v, [("message_id", f"m{i}".encode())] if with_header else [], 0, i) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, RAW_SCHEMA)


def kafka_batch(spark, records, first_offset=0, topic="chat"):
    """A DataFrame shaped like Spark's Kafka source, from (message id | None, value) pairs."""
    rows = []
    for i, (message_id, value) in enumerate(records):
        headers = [("message_id", message_id.encode())] if message_id else []
        rows.append((value, headers, 0, first_offset + i))
    return (
        spark.createDataFrame(rows, RAW_SCHEMA)
        .withColumn("timestamp", F.current_timestamp())
        .withColumn("key", F.lit(None).cast("binary"))
        .withColumn("topic", F.lit(topic))
    )


def chat(author, data, second=0) -> bytes:
    return json.dumps({"author": author, "data": data, "timestamp": f"2026-11-27 10:00:{second:02d}"}).encode()


def slow_mode(action_id, seconds, by="moderator") -> bytes:
    """A moderator's slow-mode change on `chat_actions`, as the API writes it (PUT /chat/slow_mode); `by`: the
    moderator's name."""
    return json.dumps(
        {
            "id": action_id,
            "action": "slow_mode",
            "by": by,
            "timestamp": "2026-11-27 10:01:00",
            "seconds": seconds,
        }
    ).encode()


def unblock(action_id, author, by="moderator") -> bytes:
    return json.dumps(
        {"id": action_id, "action": "unblock", "author": author, "by": by, "timestamp": "2026-11-27 10:01:00"}
    ).encode()
