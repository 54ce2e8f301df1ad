"""pipelines/relay.py transformations on in-memory records (the stream itself is tested in test_stack.py)."""

from __future__ import annotations

import json

from chispa import assert_df_equality

from pipelines.moderation import load_word_lists
from pipelines.relay import build_relay, to_controlled_record
from tests.test_validation import raw_df


def test_to_controlled_record_serves_the_masked_text_keyed_by_author_with_id_and_position(spark):
    df = spark.createDataFrame(
        [
            ("m1", "Zoë", "¡qué mierda! 😀 <b>x</b>", "¡qué ******! 😀 <b>x</b>", True, "2026-11-27 10:00:00", 0, 41),
            ("m2", "ana", "hola", "hola", False, "2026-11-27 10:00:01", 0, 42),
        ],
        "message_id string, author string, data string, masked_data string, is_profane boolean, "
        "timestamp string, partition int, offset long",
    )
    actual = to_controlled_record(df)
    expected = spark.createDataFrame(
        [
            (
                "Zoë",
                '{"author":"Zoë","data":"¡qué ******! 😀 <b>x</b>","timestamp":"2026-11-27 10:00:00"}',
                [("message_id", b"m1"), ("chat_position", b"0:41"), ("profane", b"true")],
            ),
            (
                "ana",
                '{"author":"ana","data":"hola","timestamp":"2026-11-27 10:00:01"}',
                [("message_id", b"m2"), ("chat_position", b"0:42"), ("profane", b"false")],
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
        ("ana", good, {"message_id": b"m0", "chat_position": b"0:0", "profane": b"false"}),
        (
            "bob",
            {**good, "author": "bob", "data": "qué ******, *****"},
            {"message_id": b"m4", "chat_position": b"0:4", "profane": b"true"},
        ),
    ]
