"""pipelines/relay.py transformations on in-memory records (the stream itself is tested in test_stack.py)."""
from __future__ import annotations

import json

from chispa import assert_df_equality

from pipelines.relay import build_relay, to_controlled_record
from tests.test_validation import raw_df


def test_to_controlled_record_keys_by_author_and_carries_the_id(spark):
    df = spark.createDataFrame([("m1", "Zoë", "¡hola! 😀 <b>x</b>", "2026-11-27 10:00:00")],
                               "message_id string, author string, data string, timestamp string")
    actual = to_controlled_record(df)
    expected = spark.createDataFrame(
        [("Zoë", '{"author":"Zoë","data":"¡hola! 😀 <b>x</b>","timestamp":"2026-11-27 10:00:00"}',
          [("message_id", b"m1")])],
        "key string, value string, headers array<struct<key:string,value:binary>>")
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_build_relay_passes_valid_messages_unchanged_and_drops_invalid_ones(spark):
    good = {"author": "ana", "data": "hola mundo", "timestamp": "2026-11-27 10:00:00"}
    values = [json.dumps(good).encode(), b"garbage", None,
              json.dumps({**good, "data": ""}).encode(), json.dumps({**good, "author": "bob"}).encode()]
    rows = build_relay(raw_df(spark, values)).collect()
    assert [(r.key, json.loads(r.value), r.headers[0].value) for r in rows] == [
        ("ana", good, b"m0"), ("bob", {**good, "author": "bob"}, b"m4")]
