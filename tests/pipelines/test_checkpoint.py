"""pipelines/checkpoint.py: a query's id and a batch's end offsets, read from checkpoints that Spark wrote.

The files under fixtures/checkpoints/ are copies of `metadata` and `offsets/0` of two real queries
(Spark 4.2.0, Kafka 4.1.1), made exactly as `test_the_offsets_of_real_queries` makes its own:
`ledger/`, one Kafka source subscribed to `chat` (4 records) and `chat_actions` (2 records), as the
ledger reads them; `two_sources/`, a `rate-micro-batch` source (3 rows) unioned with `chat` alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipelines.checkpoint import end_offsets, query_id
from pipelines.kafka_io import read_topics
from stack.topics import create_topics

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"


def test_the_end_offsets_of_each_topic_of_a_kafka_source():
    ledger = FIXTURES / "ledger"
    assert end_offsets(ledger, 0, "chat") == {0: 4}
    assert end_offsets(ledger, 0, "chat_actions") == {0: 2}
    assert end_offsets(ledger, 0, "chat_notices") is None  # not read by this query


def test_other_sources_are_passed_over():
    assert end_offsets(FIXTURES / "two_sources", 0, "chat") == {0: 4}  # after the rate source's line


def test_a_batch_the_log_does_not_hold_has_no_offsets(tmp_path):
    assert end_offsets(FIXTURES / "ledger", 1, "chat") is None
    assert end_offsets(tmp_path / "no-checkpoint", 0, "chat") is None


def test_a_source_without_offsets_and_several_partitions(tmp_path):
    """The shape of a log line for a source that had no offsets yet ("-") and of a topic with partitions."""
    lines = (FIXTURES / "ledger" / "offsets" / "0").read_text().splitlines()
    (tmp_path / "offsets").mkdir()
    (tmp_path / "offsets" / "7").write_text("\n".join([*lines[:2], "-", '{"chat":{"1":12,"0":40}}']) + "\n")
    assert end_offsets(tmp_path, 7, "chat") == {0: 40, 1: 12}


def test_the_query_id_is_the_checkpoints():
    assert query_id(FIXTURES / "ledger") == "70dc3e09-1f70-4282-9b4b-890291319ca1"
    assert query_id(FIXTURES / "two_sources") != query_id(FIXTURES / "ledger")


@pytest.mark.integration
def test_the_offsets_of_real_queries(spark, kafka_only, tmp_path):
    chat, actions = "checkpoint_test_chat", "checkpoint_test_actions"
    create_topics(kafka_only, topics=(chat,), partitions=2)
    create_topics(kafka_only, topics=(actions,))
    producer = KafkaProducer(bootstrap_servers=kafka_only, acks="all")
    for i in range(5):
        producer.send(chat, f"m{i}".encode(), partition=i % 2)
    producer.send(actions, b"a0")
    producer.flush()
    producer.close()

    one_source = tmp_path / "one_source"
    query = (
        read_topics(spark, kafka_only, [chat, actions])
        .writeStream.format("noop")
        .option("checkpointLocation", str(one_source))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    two_sources = tmp_path / "two_sources"
    rate = spark.readStream.format("rate-micro-batch").option("rowsPerBatch", 3).load()
    query2 = (
        rate.selectExpr("CAST(CAST(value AS STRING) AS BINARY) AS value")
        .unionByName(read_topics(spark, kafka_only, [chat]).select("value"))
        .writeStream.format("noop")
        .option("checkpointLocation", str(two_sources))
        .trigger(availableNow=True)
        .start()
    )
    query2.awaitTermination()

    consumer = KafkaConsumer(bootstrap_servers=kafka_only)
    ends = consumer.end_offsets([TopicPartition(chat, 0), TopicPartition(chat, 1), TopicPartition(actions, 0)])
    consumer.close()
    assert end_offsets(one_source, 0, chat) == {0: ends[TopicPartition(chat, 0)], 1: ends[TopicPartition(chat, 1)]}
    assert end_offsets(one_source, 0, actions) == {0: 1}
    assert end_offsets(two_sources, 0, chat) == {0: 3, 1: 2}
    assert query_id(one_source) == str(query.id) and query_id(two_sources) == str(query2.id)
    # the fixtures above have the same shape
    for name, checkpoint in (("ledger", one_source), ("two_sources", two_sources)):
        fixture = (FIXTURES / name / "offsets" / "0").read_text().splitlines()
        written = (checkpoint / "offsets" / "0").read_text().splitlines()
        assert [len(fixture), fixture[0]] == [len(written), written[0]]
