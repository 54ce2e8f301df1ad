"""pipelines/ledger.py: strike numbering, the per-user state, and a whole batch into Delta (twice: a replay)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from chispa import assert_df_equality
from kafka import KafkaConsumer, TopicPartition

from pipelines.ledger import Ledger, to_moderation_updates, with_strikes
from pipelines.moderation import load_word_lists
from tests.test_validation import RAW_SCHEMA
from warehouse import paths
from warehouse.moderation_snapshot import ModerationSnapshot
from warehouse.tables import TABLE_PROPERTIES

MODERATED = (
    "author string, is_profane boolean, kafka_partition int, kafka_offset long, "
    "sent_at timestamp, terms array<string>, message_id string"
)


def t(second: int) -> datetime:
    return datetime(2026, 11, 27, 10, 0, second)


def test_strikes_count_in_kafka_order_and_the_third_blocks(spark):
    rows = [  # out of order on purpose: Kafka order decides
        ("ana", True, 0, 3, t(3), ["mierda"], "a3"),
        ("ana", True, 0, 1, t(1), ["joder"], "a1"),
        ("ana", False, 0, 2, t(2), [], "a2"),
        ("ana", True, 0, 4, t(4), ["puta"], "a4"),
        ("ana", True, 0, 5, t(5), ["culo"], "a5"),  # after the block: withheld, no strike
        ("ana", False, 0, 6, t(6), [], "a6"),  # withheld too
        ("Zoë 🌍", True, 0, 7, t(7), ["shit"], "z7"),
        ("bob", False, 0, 8, t(8), [], "b8"),
    ]
    prior = spark.createDataFrame([("Zoë 🌍", 2), ("carl", 3)], "author string, prior_strikes int")
    actual = (
        with_strikes(spark.createDataFrame(rows, MODERATED), prior)
        .select("message_id", "prior_strikes", "is_withheld", "is_strike", "strike_number")
        .orderBy("message_id")
    )
    expected = spark.createDataFrame(
        [
            ("a1", 0, False, True, 1),
            ("a2", 0, False, False, None),
            ("a3", 0, False, True, 2),
            ("a4", 0, False, True, 3),
            ("a5", 0, True, False, None),
            ("a6", 0, True, False, None),
            ("b8", 0, False, False, None),
            ("z7", 2, False, True, 3),
        ],
        "message_id string, prior_strikes int, is_withheld boolean, is_strike boolean, strike_number int",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_a_user_blocked_before_the_batch_only_has_withheld_messages(spark):
    rows = [("carl", True, 0, 1, t(1), ["fuck"], "c1"), ("carl", False, 0, 2, t(2), [], "c2")]
    prior = spark.createDataFrame([("carl", 3)], "author string, prior_strikes int")
    out = with_strikes(spark.createDataFrame(rows, MODERATED), prior).orderBy("kafka_offset").collect()
    assert [(r.is_withheld, r.is_strike, r.strike_number) for r in out] == [(True, False, None), (True, False, None)]


def test_moderation_updates_per_author(spark):
    rows = [
        ("ana", True, 0, 1, t(1), ["joder"], "a1"),
        ("ana", True, 0, 4, t(4), ["puta"], "a4"),
        ("ana", True, 0, 5, t(5), ["culo"], "a5"),
        ("bob", False, 0, 8, t(8), [], "b8"),
    ]
    prior = spark.createDataFrame([("ana", 1)], "author string, prior_strikes int")
    struck = with_strikes(spark.createDataFrame(rows, MODERATED), prior)
    actual = (
        to_moderation_updates(struck, 7)
        .select(
            "author",
            "messages",
            "strikes",
            "is_blocked",
            "blocked_at",
            "blocked_offset",
            "first_seen",
            "last_seen",
            "batch_id",
        )
        .orderBy("author")
    )
    expected = spark.createDataFrame(
        [
            ("ana", 3, 3, True, t(4), 4, t(1), t(5), 7),
            ("bob", 1, 0, False, None, None, t(8), t(8), 7),
        ],
        "author string, messages long, strikes int, is_blocked boolean, blocked_at timestamp, "
        "blocked_offset long, first_seen timestamp, last_seen timestamp, batch_id long",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def kafka_batch(spark, records, first_offset=0, topic="chat"):
    """A DataFrame shaped like Spark's Kafka source, from (message id | None, value) pairs."""
    rows = []
    for i, (message_id, value) in enumerate(records):
        headers = [("message_id", message_id.encode())] if message_id else []
        rows.append((value, headers, 0, first_offset + i))
    df = spark.createDataFrame(rows, RAW_SCHEMA)
    import pyspark.sql.functions as F

    return (
        df.withColumn("timestamp", F.current_timestamp())
        .withColumn("key", F.lit(None).cast("binary"))
        .withColumn("topic", F.lit(topic))
    )


def unblock(action_id, author):
    return json.dumps(
        {"id": action_id, "action": "unblock", "author": author, "by": "moderator", "timestamp": "2026-11-27 10:01:00"}
    ).encode()


def chat(author, data, second=0):
    return json.dumps({"author": author, "data": data, "timestamp": f"2026-11-27 10:00:{second:02d}"}).encode()


def new_ledger(spark, tmp_path, kafka_only, query_id: str):
    """(a Ledger on fresh tables under tmp_path with a checkpoint of `query_id`, its warehouse, its checkpoint)."""
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "metadata").write_text(json.dumps({"id": query_id}))
    warehouse = tmp_path / "warehouse"
    from warehouse.tables import ensure_tables

    ensure_tables(spark, warehouse)
    return Ledger(spark, warehouse, kafka_only, load_word_lists(), checkpoint), warehouse, checkpoint


@pytest.mark.integration
def test_a_batch_lands_in_every_table_once_even_when_replayed(spark, tmp_path, kafka_only):
    ledger, warehouse, _ = new_ledger(spark, tmp_path, kafka_only, "test-query")
    batch0 = kafka_batch(
        spark,
        [
            ("m1", chat("mallory", "qué mierda", 1)),
            ("m2", chat("ana", "hola 👋", 2)),
            ("m3", chat("mallory", "JODER", 3)),
            (None, b"not json"),
            ("m4", chat("mallory", "puta vida", 4)),
            ("m5", chat("mallory", "I am nice now", 5)),
            ("m6", b'{"author": "x"}'),
        ],
    )
    ledger.process_batch(batch0, 0)
    ledger.process_batch(batch0, 0)  # a replay of the same batch after a crash
    read = lambda name: spark.read.format("delta").load(str(paths.table_path(name, warehouse)))  # noqa: E731

    messages = {r.message_id: r for r in read(paths.MESSAGES).collect()}
    assert sorted(messages) == ["m1", "m2", "m3", "m4", "m5"]
    assert [messages[m].verdict for m in ("m1", "m2", "m3", "m4", "m5")] == [
        "profane",
        "clean",
        "profane",
        "profane",
        "withheld",
    ]
    assert messages["m1"].data == "qué mierda" and messages["m1"].masked_data == "qué ******"
    assert messages["m1"].terms == ["mierda"]

    strikes = sorted((r.message_id, r.strike_number) for r in read(paths.STRIKES).collect())
    assert strikes == [("m1", 1), ("m3", 2), ("m4", 3)]

    users = {r.author: r for r in read(paths.USER_MODERATION).collect()}
    assert (users["mallory"].messages, users["mallory"].strikes, users["mallory"].is_blocked) == (4, 3, True)
    assert users["mallory"].blocked_offset == 4 and users["mallory"].blocked_at == t(4)
    assert (users["ana"].strikes, users["ana"].is_blocked) == (0, False)

    rejected = sorted((r.kafka_offset, r.reason, r.message_id) for r in read(paths.REJECTED_MESSAGES).collect())
    assert rejected == [(3, "value is not JSON", None), (6, "missing field data", "m6")]

    # the next batch continues the count; the API's deltalake reader sees what Spark wrote
    ledger.process_batch(kafka_batch(spark, [("m7", chat("ana", "shit", 7))], first_offset=7), 1)
    snapshot = ModerationSnapshot(paths.table_path(paths.USER_MODERATION, warehouse))
    assert snapshot.refresh() is True
    assert snapshot.get("mallory").is_blocked and snapshot.get("mallory").blocked_offset == 4
    assert (snapshot.get("ana").strikes, snapshot.get("ana").messages) == (1, 2)
    assert snapshot.get("nobody") is None

    # and the one after: strikes before it come from the ledger's memory now, not from Delta
    ledger.process_batch(
        kafka_batch(spark, [("m8", chat("ana", "joder", 8)), ("m9", chat("mallory", "hola", 9))], first_offset=8), 2
    )
    assert sorted((r.message_id, r.strike_number) for r in read(paths.STRIKES).collect())[-2:] == [("m7", 1), ("m8", 2)]
    assert read(paths.MESSAGES).where("message_id = 'm9'").first().verdict == "withheld"

    consumer = KafkaConsumer(bootstrap_servers=kafka_only, consumer_timeout_ms=3000)
    consumer.assign([TopicPartition("chat_notices", 0)])
    consumer.seek_to_beginning()
    notices = [json.loads(r.value) for r in consumer]
    consumer.close()
    unique = {n["id"]: n for n in notices}  # at-least-once: the replay may send again, with the same ids
    assert [(n["author"], n["kind"], n["strike"]) for n in sorted(unique.values(), key=lambda n: n["offset"])] == [
        ("mallory", "warning", 1),
        ("mallory", "warning", 2),
        ("mallory", "blocked", 3),
        ("ana", "warning", 1),
        ("ana", "warning", 2),
    ]
    assert unique["m4:strike"]["text"].startswith("You are blocked")


@pytest.mark.integration
def test_an_unblock_clears_strikes_and_block_after_the_messages_of_its_batch(spark, tmp_path, kafka_only):
    ledger, warehouse, checkpoint = new_ledger(spark, tmp_path, kafka_only, "test-unblock")
    read = lambda name: spark.read.format("delta").load(str(paths.table_path(name, warehouse)))  # noqa: E731
    details = spark.sql(f"DESCRIBE DETAIL delta.`{paths.table_path(paths.MODERATOR_ACTIONS, warehouse)}`").first()
    assert {k: details.properties.get(k) for k in TABLE_PROPERTIES} == TABLE_PROPERTIES
    ledger.process_batch(kafka_batch(spark, [(f"u{i}", chat("ubu", "mierda", i)) for i in range(3)]), 0)
    assert read(paths.USER_MODERATION).where("author = 'ubu'").first().is_blocked

    # batch 1: a message ubu sent while blocked, then the unblock (and garbage on the actions topic);
    # Spark's offset log says where the batch ends in `chat`
    (checkpoint / "offsets").mkdir()
    (checkpoint / "offsets" / "1").write_text('v1\n{"batchWatermarkMs":0}\n{"chat":{"0":4},"chat_actions":{"0":2}}\n')
    batch1 = kafka_batch(spark, [("u3", chat("ubu", "joder", 3))], first_offset=3).unionByName(
        kafka_batch(spark, [(None, unblock("act-1", "ubu")), (None, b"garbage")], topic="chat_actions")
    )
    ledger.process_batch(batch1, 1)
    ledger.process_batch(batch1, 1)  # replayed after a crash: nothing twice
    assert read(paths.MESSAGES).where("message_id = 'u3'").first().verdict == "withheld"
    [action] = read(paths.MODERATOR_ACTIONS).collect()
    assert (action.action_id, action.author, action.strikes_cleared, action.was_blocked, action.batch_id) == (
        "act-1",
        "ubu",
        3,
        True,
        1,
    )
    user = read(paths.USER_MODERATION).where("author = 'ubu'").first()
    assert (user.strikes, user.is_blocked, user.blocked_at, user.messages, user.last_batch_id) == (0, False, None, 4, 1)
    assert ModerationSnapshot(paths.table_path(paths.USER_MODERATION, warehouse)).refresh()

    # batch 2 counts from zero again (the strikes in memory), batch 3 in a restarted ledger (from Delta)
    ledger.process_batch(kafka_batch(spark, [("u4", chat("ubu", "puta", 4))], first_offset=4), 2)
    restarted = Ledger(spark, warehouse, kafka_only, load_word_lists(), checkpoint)
    restarted.process_batch(kafka_batch(spark, [("u5", chat("ubu", "coño", 5))], first_offset=5), 3)
    assert sorted((r.message_id, r.strike_number) for r in read(paths.STRIKES).collect()) == [
        ("u0", 1),
        ("u1", 2),
        ("u2", 3),
        ("u4", 1),
        ("u5", 2),
    ]
    assert read(paths.MESSAGES).where("message_id = 'u5'").first().verdict == "profane"
    user = read(paths.USER_MODERATION).where("author = 'ubu'").first()
    assert (user.strikes, user.is_blocked) == (2, False)

    consumer = KafkaConsumer(bootstrap_servers=kafka_only, consumer_timeout_ms=3000)
    consumer.assign([TopicPartition("chat_notices", 0)])
    consumer.seek_to_beginning()
    notices = {n["id"]: n for n in (json.loads(r.value) for r in consumer) if n["author"] == "ubu"}
    consumer.close()
    assert sorted((n["batch"], n["kind"], n["strike"]) for n in notices.values()) == [
        (0, "blocked", 3),
        (0, "warning", 1),
        (0, "warning", 2),
        (1, "unblocked", 0),
        (2, "warning", 1),
        (3, "warning", 2),
    ]
    assert notices["act-1:unblocked"]["text"].startswith("A moderator unblocked you")
    assert notices["act-1:unblocked"]["until"] == {"0": 4}  # u3, sent while blocked, stays withheld
