"""pipelines/kafka_io.py: records written with the sink options come back, headers and all, through the reader."""

from __future__ import annotations

import pyspark.sql.functions as F
import pytest

from pipelines.kafka_io import RECORD_SCHEMA, header, read_topics, write_records
from stack.topics import create_topics


@pytest.mark.integration
def test_records_written_come_back_through_the_stream_reader(spark, kafka_only):
    topic = "kafka_io_test"
    create_topics(kafka_only, topics=(topic,))
    records = spark.createDataFrame(
        [("Zoë 🌍", "¡hola 👋", [("notice_id", "n-ñ".encode())]), ("ana", None, []), (None, "{}", [])],
        RECORD_SCHEMA,
    ).coalesce(1)
    write_records(records, kafka_only, topic)
    query = (
        read_topics(spark, kafka_only, [topic])
        .writeStream.format("memory")
        .queryName("kafka_io_test")
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    rows = spark.table("kafka_io_test").orderBy("offset").collect()
    assert [
        (
            r.key and r.key.decode(),
            r.value and r.value.decode(),
            [(h.key, h.value.decode()) for h in r.headers or []],
            r.topic,
            r.offset,
        )
        for r in rows
    ] == [
        ("Zoë 🌍", "¡hola 👋", [("notice_id", "n-ñ")], topic, 0),
        ("ana", None, [], topic, 1),
        (None, "{}", [], topic, 2),
    ]


def test_a_header_is_its_name_and_its_value_as_bytes(spark):
    df = spark.createDataFrame([("id-ñ",), (None,)], "v string")
    assert [tuple(r.h) for r in df.select(header("message_id", F.col("v")).alias("h")).collect()] == [
        ("message_id", "id-ñ".encode()),
        ("message_id", None),
    ]
