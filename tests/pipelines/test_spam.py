"""Repeated-message spam in the Spark jobs: the relay passes the API's verdict on, the ledger records it (verdict
`spam`, the reason, a strike of category `spam`), and what the API then serves agrees with Delta, after a replay
too. The records are judged by the API's own window (api/flood.py), as a POST judges them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyspark.sql.functions as F
import pytest

from api.feed import Feed
from api.flood import RepeatWindow, record_headers
from api.notices import Moderation, NoticeBoard
from config import contract
from pipelines.ledger_plan import (
    to_message_rows,
    to_moderated_rows,
    to_notice_records,
    to_strike_rows,
    with_rejections,
    with_strikes,
)
from pipelines.relay import build_relay
from pipelines.wordlists import load_word_lists
from tests.api.test_flood import Clock
from tests.conftest import records_in
from tests.pipelines.records import RAW_SCHEMA, chat
from tests.pipelines.test_ledger import new_ledger
from warehouse import paths
from warehouse.moderation_snapshot import ModerationSnapshot


def judged(messages: list[tuple[str, str, str]], second: int | None = 0) -> list[tuple[bytes, list]]:
    """(value, headers) of `chat` records for (message id, author, text), judged one second apart by the API's
    window (3 copies in 30 s). `second`: the messages' timestamps from 10:00:<second>; None: now."""
    clock = Clock()
    window = RepeatWindow(3, 30.0, clock)
    records = []
    for i, (message_id, author, text) in enumerate(messages):
        spam = window.judge(author, message_id, text)
        clock.now += 1
        if second is None:
            now = datetime.now(UTC).strftime(contract.TIMESTAMP_FORMAT)
            value = json.dumps({"author": author, "data": text, "timestamp": now}).encode()
        else:
            value = chat(author, text, second + i)
        records.append((value, record_headers(message_id, spam)))
    return records


def batch_df(spark, records: list[tuple[bytes, list]], topic: str = "chat"):
    """The records as Spark's Kafka source gives them, at partition 0 from offset 0."""
    rows = [(value, headers, 0, offset) for offset, (value, headers) in enumerate(records)]
    return (
        spark.createDataFrame(rows, RAW_SCHEMA)
        .withColumn("timestamp", F.current_timestamp())
        .withColumn("key", F.lit(None).cast("binary"))
        .withColumn("topic", F.lit(topic))
    )


MESSAGES = [  # ana's third copy is her spam strike, the fourth only spam; her profane messages are strikes too
    ("a0", "ana", "qué mierda"),
    ("a1", "ana", "Compra ya en example.com!"),
    ("a2", "ana", "compra ya en example.com"),
    ("a3", "ana", "COMPRA   YA en example . com!!"),
    ("a4", "ana", "compra ya en example.com"),
    ("b5", "bob", "compra ya en example.com"),  # bob's first copy
    ("a6", "ana", "hola"),
    ("a7", "ana", "joder"),  # her third strike: blocked
    ("a8", "ana", "compra ya en example.com"),  # after the block: withheld, whatever else it is
]


def test_the_ledger_plan_records_the_verdict_its_reason_and_the_spam_strike(spark):
    moderated = to_moderated_rows(with_rejections(batch_df(spark, judged(MESSAGES))), load_word_lists())
    prior = spark.createDataFrame([], "author string, prior_strikes int")
    struck = with_strikes(moderated, prior)
    messages = to_message_rows(struck, 4).orderBy("kafka_offset").collect()
    assert [(m.message_id, m.verdict, m.spam_reason) for m in messages] == [
        ("a0", "profane", None),
        ("a1", "clean", None),
        ("a2", "clean", None),
        ("a3", "spam", "repeat:3/30s"),
        ("a4", "spam", "repeat:4/30s"),
        ("b5", "clean", None),
        ("a6", "clean", None),
        ("a7", "profane", None),
        ("a8", "withheld", "repeat:5/30s"),
    ]
    strikes = to_strike_rows(struck, 4)
    assert [
        (s.message_id, s.strike_number, s.category, s.terms) for s in strikes.orderBy("kafka_offset").collect()
    ] == [
        ("a0", 1, None, ["mierda"]),
        ("a3", 2, "spam", []),
        ("a7", 3, None, ["joder"]),
    ]
    notices = {json.loads(n.value)["id"]: json.loads(n.value) for n in to_notice_records(strikes).collect()}
    assert notices["a3:strike"]["category"] == "spam" and "category" not in notices["a0:strike"]
    assert notices["a3:strike"]["text"] == contract.notice_text("warning", 2, 3, [], category="spam")
    assert notices["a7:strike"]["text"] == contract.notice_text("blocked", 3, 3, ["joder"])


def test_the_relay_passes_the_verdict_on_after_its_own_headers(spark):
    records = judged(MESSAGES[1:5]) + [(chat("carl", "sin cabeceras"), None)]
    rows = build_relay(batch_df(spark, records), load_word_lists()).collect()
    headers = [[(h.key, bytes(h.value)) for h in row.headers] for row in rows]
    assert [[k for k, _ in h] for h in headers] == [
        ["message_id", "chat_position", "profane", "terms"],
        ["message_id", "chat_position", "profane", "terms"],
        ["message_id", "chat_position", "profane", "terms", "spam", "spam_strike"],
        ["message_id", "chat_position", "profane", "terms", "spam", "spam_strike"],
        ["message_id", "chat_position", "profane", "terms"],  # a record without headers keeps the relay's
    ]
    assert headers[2][4:] == [("spam", b"repeat:3/30s"), ("spam_strike", b"true")]
    assert headers[3][4:] == [("spam", b"repeat:4/30s"), ("spam_strike", b"false")]


@pytest.mark.integration
def test_delta_and_what_readers_get_agree_on_which_were_withheld_and_why_after_a_replay(spark, tmp_path, kafka_only):
    records = judged([(f"sp-{i}", a, text) for i, (_, a, text) in enumerate(MESSAGES)], second=None)
    ledger, warehouse, _ = new_ledger(spark, tmp_path, kafka_only, "test-spam")
    batch = batch_df(spark, records)
    ledger.process_batch(batch, 0)
    ledger.process_batch(batch, 0)  # a replay of the same batch after a crash: the same verdicts, once
    read = lambda name: spark.read.format("delta").load(str(paths.table_path(name, warehouse)))  # noqa: E731
    recorded = {r.message_id: (r.verdict, r.spam_reason) for r in read(paths.MESSAGES).collect()}
    assert len(recorded) == len(MESSAGES)
    assert {m: v for m, v in recorded.items() if v[1]} == {
        "sp-3": ("spam", "repeat:3/30s"),
        "sp-4": ("spam", "repeat:4/30s"),
        "sp-8": ("withheld", "repeat:5/30s"),
    }
    strikes = sorted((r.message_id, r.strike_number, r.category) for r in read(paths.STRIKES).collect())
    assert strikes == [("sp-0", 1, None), ("sp-3", 2, "spam"), ("sp-7", 3, None)]
    ana = read(paths.USER_MODERATION).where("author = 'ana'").first()
    assert (ana.strikes, ana.is_blocked) == (3, True)

    # the API, fed what the relay publishes for the same records, serves exactly what Delta calls served
    feed = Feed()
    notices = NoticeBoard()
    moderation = Moderation(ModerationSnapshot(tmp_path / "no-snapshot"), notices, feed)
    feed.on_record = moderation.on_feed_record
    notices.mark_caught_up()
    for offset, row in enumerate(build_relay(batch_df(spark, records), load_word_lists()).collect()):
        feed.add_record(row.value.encode(), [(h.key, bytes(h.value)) for h in row.headers], 0, offset)
    served, _ = feed.read(None, 0, 100, hide=moderation.is_withheld)
    assert sorted(m.id for m in served) == sorted(
        m for m, (verdict, _) in recorded.items() if verdict in ("clean", "profane")
    )
    assert [n.as_json()["category"] for n in notices.read("ana", None, 0)[0] if "category" in n.as_json()] == ["spam"]

    # the ledger's notices, read back from Kafka, say what the API told at once: nothing new to tell
    told = [n.as_json() for n in notices.read("ana", None, 0)[0]]
    for record in records_in(kafka_only, contract.TOPIC_NOTICES):
        if json.loads(record.value)["id"].startswith("sp-"):
            notices.add_record(record.value, record.headers, record.partition, record.offset)
    assert [n.as_json() for n in notices.read("ana", None, 0)[0]] == told
    assert [(n["message_id"], n["kind"], n["strike"], n.get("category")) for n in told] == [
        ("sp-0", "warning", 1, None),
        ("sp-3", "warning", 2, "spam"),
        ("sp-7", "blocked", 3, None),
    ]
