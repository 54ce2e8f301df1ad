"""pipelines/validation.py: which raw `chat` records are messages, and why the others are not."""

from __future__ import annotations

import json

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from pipelines.validation import filter_valid, message_id, with_validated_message
from tests.pipelines.records import raw_df

OK_TS = "2026-11-27 10:00:00"


def msg(author="ana", data="hola", timestamp=OK_TS, **extra) -> bytes:
    body = {"author": author, "data": data, "timestamp": timestamp, **extra}
    return json.dumps(body, ensure_ascii=False).encode()


def reasons(spark, values):
    out = raw_df(spark, values).transform(with_validated_message).orderBy("offset")
    return [r.reject_reason for r in out.select("reject_reason").collect()]


def test_valid_messages_keep_their_fields_and_id(spark):
    values = [msg(), msg("Zoë 🌍", "¿qué tal? ñandú — 你好 👋🏽", OK_TS), msg(data="línea 1\nlínea 2")]
    actual = (
        raw_df(spark, values)
        .transform(with_validated_message)
        .select("message_id", "author", "data", "timestamp", "reject_reason")
    )
    expected = spark.createDataFrame(
        [
            ("m0", "ana", "hola", OK_TS, None),
            ("m1", "Zoë 🌍", "¿qué tal? ñandú — 你好 👋🏽", OK_TS, None),
            ("m2", "ana", "línea 1\nlínea 2", OK_TS, None),
        ],
        "message_id string, author string, data string, timestamp string, reject_reason string",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


@pytest.mark.parametrize(
    "value, reason",
    [
        (None, "empty record"),
        (b"not json at all", "value is not JSON"),
        (b'{"author": "ana", "data": ', "value is not JSON"),
        (b'["ana", "hola"]', "value is not a JSON object"),
        (b'"just a string"', "value is not a JSON object"),
        (b'{"data": "hola", "timestamp": "2026-11-27 10:00:00"}', "missing field author"),
        (b'{"author": "ana", "timestamp": "2026-11-27 10:00:00"}', "missing field data"),
        (b'{"author": "ana", "data": "hola"}', "missing field timestamp"),
        (b'{"author": null, "data": "hola", "timestamp": "2026-11-27 10:00:00"}', "missing field author"),
        (b'{"author": 42, "data": "hola", "timestamp": "2026-11-27 10:00:00"}', "field author must be a string"),
        (b'{"author": "ana", "data": ["x"], "timestamp": "2026-11-27 10:00:00"}', "field data must be a string"),
        (b'{"author": "ana", "data": "hola", "timestamp": 1764237600}', "field timestamp must be a string"),
        (msg(room="general"), "unexpected fields (only author, data, timestamp)"),
        (msg(author="   "), "author is empty"),
        (msg(author="x" * 65), "author longer than 64 characters"),
        (msg(data=""), "data is empty"),
        (msg(data=" \n "), "data is empty"),
        (msg(data="a" * 2001), "data longer than 2000 characters"),
        (msg(timestamp="2026-11-27T10:00:00Z"), "timestamp is not YYYY-MM-DD HH:MM:SS"),
        (msg(timestamp="2026-13-45 99:00:00"), "timestamp is not YYYY-MM-DD HH:MM:SS"),
        ("\udcff".encode("utf-8", "surrogateescape"), "value is not JSON"),
    ],
)
def test_invalid_records_get_a_reason(spark, value, reason):
    assert reasons(spark, [value]) == [reason]


def test_limits_are_inclusive_and_count_characters_not_bytes(spark):
    assert reasons(spark, [msg(author="ñ" * 64, data="😀" * 2000)]) == [None]


def test_records_without_message_id_get_a_stable_id_from_kafka_coordinates(spark):
    df = raw_df(spark, [msg(), msg()], with_header=False).transform(with_validated_message)
    assert [r.message_id for r in df.orderBy("offset").collect()] == ["kafka-0-0", "kafka-0-1"]


def test_filter_valid_keeps_only_messages(spark):
    df = raw_df(spark, [msg(), b"garbage", None, msg(data="adiós")]).transform(with_validated_message)
    assert [r.data for r in filter_valid(df).orderBy("offset").collect()] == ["hola", "adiós"]


def test_message_id_is_the_header_or_the_kafka_coordinates(spark):
    df = spark.createDataFrame(
        [
            ([("other", b"x"), ("message_id", "id-ñ-😀".encode())], 0, 7),
            ([("other", b"x")], 1, 8),
            ([], 2, 9),
            (None, 3, 10),
        ],
        "headers array<struct<key:string,value:binary>>, partition int, offset long",
    )
    actual = df.select(message_id(F.col("headers"), F.col("partition"), F.col("offset")).alias("id"))
    expected = spark.createDataFrame([("id-ñ-😀",), ("kafka-1-8",), ("kafka-2-9",), ("kafka-3-10",)], "id string")
    assert_df_equality(actual, expected, ignore_nullable=True)
