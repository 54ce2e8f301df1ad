"""pipelines/ledger.py: whole batches into Delta and Kafka, replayed after a crash at each write (no process kill)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pyspark.sql.functions as F
import pyspark.sql.types as T
import pytest

from pipelines.ledger import Ledger
from pipelines.wordlists import load_word_lists
from tests.conftest import records_in
from tests.pipelines.records import chat, kafka_batch, slow_mode, unblock
from warehouse import paths
from warehouse.moderation_snapshot import ModerationSnapshot
from warehouse.tables import MODERATOR_ACTIONS_SCHEMA, TABLE_PROPERTIES, ensure_table, ensure_tables

pytestmark = pytest.mark.integration


def t(second: int) -> datetime:
    return datetime(2026, 11, 27, 10, 0, second)


def new_ledger(spark, tmp_path, kafka_only, query_id: str):
    """(a Ledger on fresh tables under tmp_path with a checkpoint of `query_id`, its warehouse, its checkpoint)."""
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "metadata").write_text(json.dumps({"id": query_id}))
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    return Ledger(spark, warehouse, kafka_only, load_word_lists(), checkpoint), warehouse, checkpoint


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

    notices = [json.loads(r.value) for r in records_in(kafka_only, "chat_notices")]
    # at-least-once: the replay may send again, with the same ids; this test's users only (the broker is shared)
    unique = {n["id"]: n for n in notices if n.get("author") in ("mallory", "ana")}
    assert [(n["author"], n["kind"], n["strike"]) for n in sorted(unique.values(), key=lambda n: n["offset"])] == [
        ("mallory", "warning", 1),
        ("mallory", "warning", 2),
        ("mallory", "blocked", 3),
        ("ana", "warning", 1),
        ("ana", "warning", 2),
    ]
    assert unique["m4:strike"]["text"].startswith("You are blocked")


def test_an_unblock_clears_strikes_and_block_after_the_messages_of_its_batch(spark, tmp_path, kafka_only):
    ledger, warehouse, checkpoint = new_ledger(spark, tmp_path, kafka_only, "test-unblock")
    read = lambda name: spark.read.format("delta").load(str(paths.table_path(name, warehouse)))  # noqa: E731
    details = spark.sql(f"DESCRIBE DETAIL delta.`{paths.table_path(paths.MODERATOR_ACTIONS, warehouse)}`").first()
    assert {k: details.properties.get(k) for k in TABLE_PROPERTIES} == TABLE_PROPERTIES
    # wen: one warning, on partition 1 of `chat`, and unblocked all the same (README: strikes then count from zero)
    wen = kafka_batch(spark, [("w0", chat("wen", "mierda", 0))]).withColumn("partition", F.lit(1))
    ledger.process_batch(
        kafka_batch(spark, [(f"u{i}", chat("ubu", "mierda", i)) for i in range(3)]).unionByName(wen), 0
    )
    assert read(paths.USER_MODERATION).where("author = 'ubu'").first().is_blocked

    # batch 1: a message ubu sent while blocked, then the unblock (and garbage on the actions topic);
    # Spark's offset log says where the batch ends in `chat`
    (checkpoint / "offsets").mkdir()
    (checkpoint / "offsets" / "1").write_text('v1\n{"batchWatermarkMs":0}\n{"chat":{"0":4},"chat_actions":{"0":3}}\n')
    batch1 = kafka_batch(spark, [("u3", chat("ubu", "joder", 3))], first_offset=3).unionByName(
        kafka_batch(
            spark,
            [(None, unblock("act-1", "ubu")), (None, b"garbage"), (None, unblock("act-2", "wen"))],
            topic="chat_actions",
        )
    )
    ledger.process_batch(batch1, 1)
    ledger.process_batch(batch1, 1)  # replayed after a crash: nothing twice
    assert read(paths.MESSAGES).where("message_id = 'u3'").first().verdict == "withheld"
    actions = sorted(
        (a.action_id, a.author, a.strikes_cleared, a.was_blocked, a.batch_id)
        for a in read(paths.MODERATOR_ACTIONS).collect()
    )
    assert actions == [("act-1", "ubu", 3, True, 1), ("act-2", "wen", 1, False, 1)]
    wen_row = read(paths.USER_MODERATION).where("author = 'wen'").first()
    assert (wen_row.strikes, wen_row.is_blocked, wen_row.messages) == (0, False, 1)
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
        ("w0", 1),  # wen's warning stays recorded: an unblock clears the count, not the history
    ]
    assert read(paths.MESSAGES).where("message_id = 'u5'").first().verdict == "profane"
    user = read(paths.USER_MODERATION).where("author = 'ubu'").first()
    assert (user.strikes, user.is_blocked) == (2, False)

    every = {n["id"]: n for n in (json.loads(r.value) for r in records_in(kafka_only, "chat_notices"))}
    notices = {i: n for i, n in every.items() if n["author"] == "ubu"}
    assert sorted((n["batch"], n["kind"], n["strike"]) for n in every.values() if n["author"] == "wen") == [
        (0, "warning", 1),
        (1, "unblocked", 0),
    ]
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


class Crash(Exception):
    """What the crashing ledger raises, in place of a process dying."""


@dataclass
class CrashingLedger(Ledger):
    """A ledger that crashes once, right after one of its writes completed: `crash_after` names it
    (`notices`, a table, or `merge` for the user_moderation MERGE of the batch's messages)."""

    crash_after: str = ""
    crashed: bool = False

    def _crash(self, step: str) -> None:
        if step == self.crash_after and not self.crashed:
            self.crashed = True
            raise Crash(step)

    def send_notices(self, notices_df) -> None:
        super().send_notices(notices_df)
        self._crash("notices")

    def _append(self, df, table: str, batch_id: int) -> None:
        super()._append(df, table, batch_id)
        self._crash(table)

    def merge_moderation(self, updates_df) -> None:
        super().merge_moderation(updates_df)
        self._crash("merge")


def test_slow_mode_changes_land_in_an_older_moderator_actions_table_once_beside_the_unblocks(
    spark, tmp_path, kafka_only
):
    # a warehouse from before slow mode: moderator_actions without `seconds`; the ledger's start adds it
    older = T.StructType([f for f in MODERATOR_ACTIONS_SCHEMA.fields if f.name != "seconds"])
    ensure_table(spark, paths.MODERATOR_ACTIONS, tmp_path / "warehouse", schema=older)
    ledger, warehouse, _ = new_ledger(spark, tmp_path, kafka_only, "test-slow-mode")
    read = lambda: spark.read.format("delta").load(str(paths.table_path(paths.MODERATOR_ACTIONS, warehouse)))  # noqa: E731
    assert read().schema["seconds"].dataType == T.IntegerType()

    only_actions = kafka_batch(
        spark, [(None, slow_mode("sm-1", 30)), (None, slow_mode("sm-2", -5)), (None, b"garbage")], topic="chat_actions"
    )
    ledger.process_batch(only_actions, 0)
    ledger.process_batch(only_actions, 0)  # replayed: nothing twice
    # messages, an unblock and a slow mode lifted in one batch: one append holds both actions
    ledger.process_batch(kafka_batch(spark, [("u0", chat("ubu", "mierda", 0))]), 1)
    mixed = kafka_batch(spark, [("u1", chat("ana", "hola", 1))], first_offset=1).unionByName(
        kafka_batch(
            spark, [(None, unblock("act-1", "ubu")), (None, slow_mode("sm-3", 0))], topic="chat_actions", first_offset=3
        )
    )
    ledger.process_batch(mixed, 2)
    ledger.process_batch(mixed, 2)
    rows = sorted(
        (a.action_id, a.action, a.author, a.seconds, a.strikes_cleared, a.was_blocked, a.batch_id)
        for a in read().collect()
    )
    assert rows == [
        ("act-1", "unblock", "ubu", None, 1, False, 2),
        ("sm-1", "slow_mode", "*", 30, 0, False, 0),
        ("sm-3", "slow_mode", "*", 0, 0, False, 2),
    ]
    user = spark.read.format("delta").load(str(paths.table_path(paths.USER_MODERATION, warehouse)))
    assert user.where("author = 'ubu'").first().strikes == 0  # the unblock beside the slow mode still cleared


def notices_of(bootstrap: str, authors: set[str]) -> list[dict]:
    return [n for n in (json.loads(r.value) for r in records_in(bootstrap, "chat_notices")) if n["author"] in authors]


def test_a_batch_that_crashed_after_any_write_is_replayed_into_each_row_exactly_once(spark, tmp_path, kafka_only):
    """Each batch crashes after a different write; a fresh ledger (nothing in memory, as after a restart)
    replays the same batch id. Before the replay the tables hold what the crash left; after it, every row
    is there once and the strike numbers are the ones a batch without a crash gives."""
    _, warehouse, checkpoint = new_ledger(spark, tmp_path, kafka_only, "test-crashes")
    rita, sam = "rita", "sam 🐍"
    read = lambda name: spark.read.format("delta").load(str(paths.table_path(name, warehouse)))  # noqa: E731

    def batch_ids(table: str) -> list[int]:
        return sorted(r.batch_id for r in read(table).collect())

    def user(author: str):
        return read(paths.USER_MODERATION).where(f"author = '{author}'").first()

    def notice_ids() -> set[str]:
        return {n["id"] for n in notices_of(kafka_only, {rita, sam})}

    def crash_and_replay(batch, batch_id: int, crash_after: str, left_by_the_crash) -> None:
        crashing = CrashingLedger(spark, warehouse, kafka_only, load_word_lists(), checkpoint, crash_after=crash_after)
        with pytest.raises(Crash):
            crashing.process_batch(batch, batch_id)
        assert left_by_the_crash(), f"batch {batch_id}: not the state a crash after {crash_after} leaves"
        Ledger(spark, warehouse, kafka_only, load_word_lists(), checkpoint).process_batch(batch, batch_id)

    Ledger(spark, warehouse, kafka_only, load_word_lists(), checkpoint).process_batch(
        kafka_batch(spark, [("s0", chat(sam, "mierda", 0)), ("r0", chat(rita, "hola", 0))]), 0
    )
    crash_and_replay(  # the notices are out, nothing is in Delta yet
        kafka_batch(spark, [("s1", chat(sam, "JODER", 1)), ("r1", chat(rita, "qué tal", 1))], 2),
        1,
        "notices",
        lambda: "s1:strike" in notice_ids() and 1 not in batch_ids(paths.MESSAGES) and user(sam).last_batch_id == 0,
    )
    crash_and_replay(  # the messages are in, the strikes and the user's row are not
        kafka_batch(spark, [("s2", chat(sam, "p*ta vida", 2)), (None, b"not json")], 4),
        2,
        paths.MESSAGES,
        lambda: 2 in batch_ids(paths.MESSAGES) and 2 not in batch_ids(paths.STRIKES) and user(sam).last_batch_id == 1,
    )
    crash_and_replay(  # the strikes are in, the user's row is not
        kafka_batch(spark, [("r3", chat(rita, "shit", 3)), ("s3", chat(sam, "hola", 3))], 6),
        3,
        paths.STRIKES,
        lambda: 3 in batch_ids(paths.STRIKES) and user(rita).last_batch_id == 1,
    )
    crash_and_replay(  # the users' rows are merged, nothing after
        kafka_batch(spark, [("r4", chat(rita, "coño", 4)), ("s4", chat(sam, "sigo aquí", 4))], 8),
        4,
        "merge",
        lambda: (user(sam).last_batch_id, user(rita).last_batch_id, user(rita).strikes) == (4, 4, 2),
    )
    crash_and_replay(  # the unblock is recorded, the user is not cleared yet
        kafka_batch(spark, [("r5", chat(rita, "adiós", 5))], 10).unionByName(
            kafka_batch(spark, [(None, unblock("act-sam", sam))], topic="chat_actions")
        ),
        5,
        paths.MODERATOR_ACTIONS,
        lambda: read(paths.MODERATOR_ACTIONS).count() == 1 and (user(sam).is_blocked, user(sam).strikes) == (True, 3),
    )

    messages = Counter(r.message_id for r in read(paths.MESSAGES).collect())
    assert messages == Counter(["s0", "r0", "s1", "r1", "s2", "r3", "s3", "r4", "s4", "r5"])
    verdicts = {r.message_id: r.verdict for r in read(paths.MESSAGES).collect()}
    assert (verdicts["s2"], verdicts["s3"], verdicts["s4"], verdicts["r4"]) == (
        "profane",
        "withheld",
        "withheld",
        "profane",
    )
    strikes = sorted((r.author, r.strike_number, r.message_id, r.batch_id) for r in read(paths.STRIKES).collect())
    assert strikes == [
        (rita, 1, "r3", 3),
        (rita, 2, "r4", 4),
        (sam, 1, "s0", 0),
        (sam, 2, "s1", 1),
        (sam, 3, "s2", 2),
    ]
    assert [(r.kafka_offset, r.reason) for r in read(paths.REJECTED_MESSAGES).collect()] == [(5, "value is not JSON")]
    [action] = read(paths.MODERATOR_ACTIONS).collect()
    assert (action.action_id, action.strikes_cleared, action.was_blocked, action.batch_id) == ("act-sam", 3, True, 5)
    users = {r.author: r for r in read(paths.USER_MODERATION).collect()}
    assert (users[sam].messages, users[sam].strikes, users[sam].is_blocked, users[sam].blocked_at) == (
        5,
        0,
        False,
        None,
    )
    assert (users[rita].messages, users[rita].strikes, users[rita].is_blocked, users[rita].last_batch_id) == (
        5,
        2,
        False,
        5,
    )

    # at-least-once: a notice sent again by a replay is the same notice, with the same strike number
    notices = notices_of(kafka_only, {rita, sam})
    by_id: dict[str, list[dict]] = {}
    for n in notices:
        by_id.setdefault(n["id"], []).append(n)
    assert all(copies == copies[:1] * len(copies) for copies in by_id.values()), by_id
    assert len(by_id["s1:strike"]) == 2  # batch 1 sent its notices, crashed, and sent them again
    assert sorted((n["author"], n["kind"], n["strike"]) for n in (c[0] for c in by_id.values())) == [
        (rita, "warning", 1),
        (rita, "warning", 2),
        (sam, "blocked", 3),
        (sam, "unblocked", 0),
        (sam, "warning", 1),
        (sam, "warning", 2),
    ]
