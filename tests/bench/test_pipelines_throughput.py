"""bench/pipelines_throughput.py against a real broker and Spark: the floor is an honest floor (it moves every
record, as it is, through the relay's source and sink), and a pass counts what reached the output topic."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, TopicPartition

from bench.kafka_limits import delete_topic, recreate_topic
from bench.pipelines_throughput import start_floor, stream_pass
from stack import demo_data

pytestmark = pytest.mark.integration


def topic_records(bootstrap: str, topic: str) -> list[tuple]:
    """(key, value, headers) of every record of a one-partition topic, in order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out = []
        while consumer.position(tp) < end:
            for batch in consumer.poll(timeout_ms=1000).values():
                out += [(r.key, r.value, [(k, bytes(v)) for k, v in r.headers]) for r in batch]
        return out
    finally:
        consumer.close()


def test_the_floor_copies_every_record_as_it_is_and_a_pass_counts_them(spark, kafka_only):
    run = secrets.token_hex(3)
    source = f"bench_floor_source_{run}"
    recreate_topic(kafka_only, source, 1)
    records = demo_data.generate(3000, 40, 1, 0.1, 0.1, seed=4, now=datetime.now(UTC))
    demo_data.send(records, kafka_only, source)
    try:
        result = stream_pass(
            kafka_only,
            lambda checkpoint, target: start_floor(spark, kafka_only, checkpoint, "realtime", source, target),
            f"bench_floor_target_{run}",
            expected=len(records),
            scale=2.0,
            keep_output=True,
        )
        copied = topic_records(kafka_only, f"bench_floor_target_{run}")
    finally:
        delete_topic(kafka_only, source)
        delete_topic(kafka_only, f"bench_floor_target_{run}")

    assert copied == topic_records_of(records)
    assert any(value is None or not value.startswith(b"{") for _, value, _ in copied)  # malformed ones too
    assert result["records"] == len(records)
    assert result["msgs_per_s"] > 0 and result["sustained_seconds"] > 0
    assert result["first_output_after_s"] <= result["total_seconds"]


def topic_records_of(records) -> list[tuple]:
    return [(r.key, r.value, [(k, v) for k, v in r.headers]) for r in records]
