"""pipelines/relay.py transformations on in-memory records, and the stream in micro-batch mode on a real broker
(real-time mode, the default, runs in the stack: tests/stack/test_stack.py)."""

from __future__ import annotations

import json
import time

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from config import settings
from pipelines.relay import (
    REALTIME_CHECKPOINT_INTERVAL,
    build_relay,
    chat_position,
    start_relay,
    to_controlled_record,
    trigger_args,
)
from pipelines.wordlists import load_word_lists
from stack.topics import create_topics
from tests.pipelines.records import raw_df


def test_to_controlled_record_serves_the_masked_text_keyed_by_author_with_id_and_position(spark):
    df = spark.createDataFrame(
        [
            (
                "m1",
                "Zoë",
                "¡qué mierda! 😀 <b>x</b>",
                "¡qué ******! 😀 <b>x</b>",
                True,
                ["mierda"],
                "2026-11-27 10:00:00",
                0,
                41,
            ),
            ("m2", "ana", "hola", "hola", False, [], "2026-11-27 10:00:01", 0, 42),
        ],
        "message_id string, author string, data string, masked_data string, is_profane boolean, terms array<string>, "
        "timestamp string, partition int, offset long",
    ).withColumn("headers", F.lit(None).cast("array<struct<key:string,value:binary>>"))  # none, as the source gives
    actual = to_controlled_record(df)
    expected = spark.createDataFrame(
        [
            (
                "Zoë",
                '{"author":"Zoë","data":"¡qué ******! 😀 <b>x</b>","timestamp":"2026-11-27 10:00:00"}',
                [("message_id", b"m1"), ("chat_position", b"0:41"), ("profane", b"true"), ("terms", b'["mierda"]')],
            ),
            (
                "ana",
                '{"author":"ana","data":"hola","timestamp":"2026-11-27 10:00:01"}',
                [("message_id", b"m2"), ("chat_position", b"0:42"), ("profane", b"false"), ("terms", b"[]")],
            ),
        ],
        "key string, value string, headers array<struct<key:string,value:binary>>",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_build_relay_masks_valid_messages_and_drops_invalid_ones(spark):
    good = {"author": "ana", "data": "hola mundo", "timestamp": "2026-11-27 10:00:00"}
    values = [
        json.dumps(good).encode(),
        b"garbage",
        None,
        json.dumps({**good, "data": ""}).encode(),
        json.dumps({**good, "author": "bob", "data": "qué m1erda, JODER"}).encode(),
    ]
    rows = build_relay(raw_df(spark, values), load_word_lists()).collect()
    assert [(r.key, json.loads(r.value), dict(r.headers)) for r in rows] == [
        ("ana", good, {"message_id": b"m0", "chat_position": b"0:0", "profane": b"false", "terms": b"[]"}),
        (
            "bob",
            {**good, "author": "bob", "data": "qué ******, *****"},
            {"message_id": b"m4", "chat_position": b"0:4", "profane": b"true", "terms": b'["mierda","joder"]'},
        ),
    ]


def test_chat_position_is_partition_colon_offset(spark):
    df = spark.createDataFrame([(0, 41), (12, 9_000_000_000), (None, 3)], "partition int, offset long")
    assert [r.p for r in df.select(chat_position(F.col("partition"), F.col("offset")).alias("p")).collect()] == [
        "0:41",
        "12:9000000000",
        None,
    ]


def test_trigger_args_name_the_two_modes():
    assert trigger_args("realtime") == {"realTime": REALTIME_CHECKPOINT_INTERVAL}
    assert trigger_args("microbatch") == {"processingTime": "0 seconds"}
    with pytest.raises(ValueError, match="unknown relay trigger 'continuous'"):
        trigger_args("continuous")


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_relay_streams_in_micro_batches_with_chat_relay_trigger_microbatch(
    spark, kafka_only, tmp_path, monkeypatch
):
    """README: `CHAT_RELAY_TRIGGER=microbatch` runs the relay in back-to-back micro-batches: garbage is dropped,
    a profane message comes out masked, and a message sent while it runs follows in a later batch."""
    monkeypatch.setenv("CHAT_RELAY_TRIGGER", "microbatch")
    trigger = settings.load().relay_trigger
    source, target = "relay_mb_chat", "relay_mb_controlled"
    create_topics(kafka_only, topics=(source, target))
    producer = KafkaProducer(bootstrap_servers=kafka_only, acks="all")
    message = {"author": "bob", "data": "qué m1erda", "timestamp": "2026-12-01 10:00:00"}
    for value, message_id in ((b"garbage", b"g0"), (json.dumps(message).encode(), b"m1")):
        producer.send(source, value=value, key=b"bob", headers=[("message_id", message_id)]).get(timeout=30)
    consumer = KafkaConsumer(bootstrap_servers=kafka_only)
    consumer.assign([TopicPartition(target, 0)])
    consumer.seek_to_beginning()

    def relayed(count: int) -> list:
        records: list = []
        deadline = time.monotonic() + 300
        while len(records) < count:
            assert time.monotonic() < deadline, records
            records += [r for batch in consumer.poll(timeout_ms=1000).values() for r in batch]
        return records

    query = start_relay(spark, kafka_only, tmp_path / "checkpoint", trigger, load_word_lists(), source, target, "mb")
    try:
        [first] = relayed(1)
        assert (first.key, json.loads(first.value), dict(first.headers)["message_id"]) == (
            b"bob",
            {**message, "data": "qué ******"},
            b"m1",
        )
        later = {**message, "data": "hola"}
        producer.send(source, value=json.dumps(later).encode(), key=b"bob", headers=[("message_id", b"m2")]).get(30)
        [second] = relayed(1)
        assert (json.loads(second.value), dict(second.headers)["message_id"]) == (later, b"m2")
        # micro-batches: each finished batch reports its progress (a real-time batch would run for minutes)
        deadline = time.monotonic() + 60
        while len({p["batchId"] for p in query.recentProgress if p["numInputRows"] > 0}) < 2:
            assert time.monotonic() < deadline, query.recentProgress
            time.sleep(0.5)
    finally:
        query.stop()
        consumer.close()
        producer.close()
