"""The relay: `chat` → validate → mask profanity → `chat_controlled`, a Spark Structured Streaming query.

Stateless: every valid record is re-published masked, keyed by its author,
with its `message_id`, `chat_position` and `profane` headers (and the API's
`spam` verdict headers, passed on as they are); invalid records are left to
the ledger. Real-time mode by default (CHAT_RELAY_TRIGGER); README
"Why the relay runs in real-time mode" says why.

    python -m pipelines.relay
    spark-submit --properties-file conf/spark-defaults.conf pipelines/relay.py
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from config import contract, settings
from pipelines.kafka_io import header, read_topics, stream_to_topic
from pipelines.moderation import with_moderation
from pipelines.supervise import RELAY_QUERY, run_job
from pipelines.validation import filter_valid, with_validated_message
from pipelines.wordlists import WordLists, load_word_lists

# Real-time mode's batch length, Spark's default: each batch boundary holds the messages of that
# moment back, so a longer interval touches fewer of them; a crash replays up to this much, de-duplicated by id.
REALTIME_CHECKPOINT_INTERVAL = "5 minutes"


def chat_position(partition: Column, offset: Column) -> Column:
    """`partition:offset` of the record in `chat`: the API withholds what a blocked user sent after the block."""
    return F.concat(partition.cast("string"), F.lit(":"), offset.cast("string"))


def to_controlled_record(messages_df: DataFrame) -> DataFrame:
    """Kafka sink columns for `chat_controlled`: key = author, JSON value with the masked text,
    headers `message_id`, `chat_position`, `profane` ("true"/"false": the API counts the strikes
    the ledger has not announced yet) and `terms` (the listed words matched, as JSON: the API's
    instant notice names them as the ledger's will), then the `spam` and `spam_strike` headers of the
    record in `chat`, where the API put them (absent on other messages): the feed withholds what they mark."""
    return messages_df.select(
        F.col("author").alias("key"),
        F.to_json(F.struct("author", F.col("masked_data").alias("data"), "timestamp")).alias("value"),
        F.concat(
            F.array(
                header(contract.MESSAGE_ID_HEADER, F.col("message_id")),
                header(contract.CHAT_POSITION_HEADER, chat_position(F.col("partition"), F.col("offset"))),
                header(contract.PROFANE_HEADER, F.col("is_profane").cast("string")),
                header(contract.TERMS_HEADER, F.to_json(F.col("terms"))),
            ),
            spam_headers(F.col("headers")),
        ).alias("headers"),
    )


def spam_headers(headers: Column) -> Column:
    """The API's spam verdict among a `chat` record's headers (an empty array on most records; the Kafka source
    gives null for a record without headers, and a null would empty the whole concatenation)."""
    return F.coalesce(
        F.filter(headers, lambda h: h["key"].isin(contract.SPAM_HEADER, contract.SPAM_STRIKE_HEADER)),
        F.array().cast("array<struct<key:string,value:binary>>"),
    )


def build_relay(raw_df: DataFrame, word_lists: WordLists) -> DataFrame:
    """raw `chat` records → masked records ready for `chat_controlled`."""
    return (
        raw_df.transform(with_validated_message)
        .transform(filter_valid)
        .transform(lambda df: with_moderation(df, word_lists))
        .transform(to_controlled_record)
    )


def trigger_args(trigger: str) -> dict:
    """`realtime` (Spark's real-time mode: long-running tasks, records flow as they arrive) or
    `microbatch` (a new micro-batch as soon as the previous one ends)."""
    if trigger == "realtime":
        return {"realTime": REALTIME_CHECKPOINT_INTERVAL}
    if trigger == "microbatch":
        return {"processingTime": "0 seconds"}
    raise ValueError(f"unknown relay trigger {trigger!r}: use realtime or microbatch")


def start_relay(
    spark: SparkSession,
    bootstrap: str,
    checkpoint: Path,
    trigger: str,
    word_lists: WordLists,
    source_topic: str = contract.TOPIC_CHAT,
    target_topic: str = contract.TOPIC_CONTROLLED,
    query_name: str = RELAY_QUERY,
) -> StreamingQuery:
    return (
        stream_to_topic(build_relay(read_topics(spark, bootstrap, [source_topic]), word_lists), bootstrap, target_topic)
        .queryName(query_name)
        .option("checkpointLocation", str(checkpoint))
        .outputMode("update")  # the same as append for a stateless query; real-time mode requires it
        .trigger(**trigger_args(trigger))
        .start()
    )


def main(argv: list[str] | None = None) -> int:
    def start(spark: SparkSession, s: settings.Settings, checkpoint: Path) -> StreamingQuery:
        query = start_relay(spark, s.kafka_bootstrap, checkpoint, s.relay_trigger, load_word_lists())
        print(
            f"relay: streaming {contract.TOPIC_CHAT} -> {contract.TOPIC_CONTROLLED} ({s.relay_trigger} trigger)",
            flush=True,
        )
        return query

    return run_job(argv, __doc__.splitlines()[0], RELAY_QUERY, start)


if __name__ == "__main__":
    sys.exit(main())
