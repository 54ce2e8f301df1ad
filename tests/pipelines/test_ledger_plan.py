"""pipelines/ledger_plan.py: every table's rows and every notice of a batch, from in-memory records (no I/O)."""

from __future__ import annotations

import json
from datetime import datetime

import pyspark.sql.functions as F
from chispa import assert_df_equality

from config import contract
from pipelines.ledger_plan import (
    MODERATED_COLUMNS,
    PARSED_ACTION_SCHEMA,
    notice_text,
    parse_actions,
    prior_strikes_since_unblock,
    to_account_rows,
    to_action_rows,
    to_message_rows,
    to_moderated_rows,
    to_moderation_updates,
    to_notice_records,
    to_rejected_rows,
    to_slow_mode_rows,
    to_strike_rows,
    to_unblocked_notices,
    with_rejections,
    with_strikes,
)
from pipelines.wordlists import load_word_lists
from tests.pipelines.records import chat, kafka_batch, slow_mode, unblock
from warehouse.tables import ACCOUNTS_SCHEMA, MESSAGES_SCHEMA, MODERATOR_ACTIONS_SCHEMA, STRIKES_SCHEMA

MODERATED = (
    "author string, is_profane boolean, kafka_partition int, kafka_offset long, "
    "sent_at timestamp, terms array<string>, message_id string"
)


def moderated_df(spark, rows):
    """Moderated messages (MODERATED) none of which the API marked as spam."""
    return spark.createDataFrame(rows, MODERATED).withColumns(
        {"spam_reason": F.lit(None).cast("string"), "is_spam_strike": F.lit(False)}
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
        with_strikes(moderated_df(spark, rows), prior)
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
    out = with_strikes(moderated_df(spark, rows), prior).orderBy("kafka_offset").collect()
    assert [(r.is_withheld, r.is_strike, r.strike_number) for r in out] == [(True, False, None), (True, False, None)]


def test_moderation_updates_per_author(spark):
    rows = [
        ("ana", True, 0, 1, t(1), ["joder"], "a1"),
        ("ana", True, 0, 4, t(4), ["puta"], "a4"),
        ("ana", True, 0, 5, t(5), ["culo"], "a5"),
        ("bob", False, 0, 8, t(8), [], "b8"),
    ]
    prior = spark.createDataFrame([("ana", 1)], "author string, prior_strikes int")
    struck = with_strikes(moderated_df(spark, rows), prior)
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


def test_rejected_rows_keep_the_bytes_the_text_where_there_is_one_and_the_header_id(spark):
    bad_utf8 = b"\xff\xfe {"
    batch = kafka_batch(
        spark,
        [("r0", None), (None, bad_utf8), ("r2", "¡hola 👋".encode()), ("ok", chat("ana", "hola", 1))],
        first_offset=10,
    ).withColumn(  # each record its own Kafka time, 40 s after its offset: kept, not the time of the batch
        "timestamp",
        F.element_at(F.array(*(F.lit(t(40 + offset)) for offset in range(10, 14))), (F.col("offset") - 9).cast("int")),
    )
    actual = to_rejected_rows(with_rejections(batch), 4).drop("seen_at").orderBy("kafka_offset")
    expected = spark.createDataFrame(
        [
            (None, None, "empty record", "r0", 0, 10, t(50), 4),
            (bad_utf8, None, "value is not JSON", None, 0, 11, t(51), 4),  # no header: no made-up id
            ("¡hola 👋".encode(), "¡hola 👋", "value is not JSON", "r2", 0, 12, t(52), 4),
        ],
        "raw_value binary, raw_text string, reason string, message_id string, kafka_partition int, "
        "kafka_offset long, kafka_timestamp timestamp, batch_id long",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_moderated_rows_are_the_valid_messages_once_each_masked(spark):
    batch = kafka_batch(
        spark,
        [
            ("m1", chat("Zoë 🌍", "qué mierda 😡", 1)),
            ("m1", chat("Zoë 🌍", "qué mierda 😡", 1)),  # the same message twice (a producer's retry)
            ("m2", None),
            ("m3", chat("李小龙", "你好", 3)),
        ],
    )
    actual = to_moderated_rows(with_rejections(batch), load_word_lists())
    assert actual.columns == MODERATED_COLUMNS
    rows = [
        (r.message_id, r.author, r.masked_data, r.is_profane, r.terms, r.sent_at, r.kafka_offset)
        for r in actual.orderBy("message_id").collect()
    ]
    assert rows == [
        ("m1", "Zoë 🌍", "qué ****** 😡", True, ["mierda"], t(1), 0),
        ("m3", "李小龙", "你好", False, [], t(3), 3),
    ]


def struck_rows(spark):
    rows = [
        ("ana", True, 0, 1, t(1), ["joder"], "a1"),
        ("ana", False, 0, 2, t(2), [], "a2"),
        ("Zoë 🌍", True, 0, 3, t(3), ["coño"], "z3"),
        ("Zoë 🌍", False, 0, 4, t(4), [], "z4"),
    ]
    moderated = (
        moderated_df(spark, rows)
        .withColumn("data", F.concat(F.lit("text "), F.col("message_id")))
        .withColumn("masked_data", F.concat(F.lit("masked "), F.col("message_id")))
        .withColumn("kafka_timestamp", F.lit(t(9)))
    )
    prior = spark.createDataFrame([("Zoë 🌍", 2)], "author string, prior_strikes int")
    return with_strikes(moderated, prior)


def test_message_and_strike_rows_are_in_their_tables_columns(spark):
    struck = struck_rows(spark)
    messages = to_message_rows(struck, 5)
    assert messages.schema.names == MESSAGES_SCHEMA.names
    assert [
        (r.message_id, r.verdict, r.ingested_at, r.batch_id) for r in messages.orderBy("kafka_offset").collect()
    ] == [
        ("a1", "profane", t(9), 5),
        ("a2", "clean", t(9), 5),
        ("z3", "profane", t(9), 5),
        ("z4", "withheld", t(9), 5),  # after Zoë's third strike
    ]
    strikes = to_strike_rows(struck, 5)
    assert strikes.schema.names == STRIKES_SCHEMA.names
    expected = spark.createDataFrame(
        [("a1", "ana", ["joder"], 1, t(1), 0, 1, 5, None), ("z3", "Zoë 🌍", ["coño"], 3, t(3), 0, 3, 5, None)],
        STRIKES_SCHEMA,
    )
    assert_df_equality(strikes.orderBy("kafka_offset"), expected, ignore_nullable=True)


def test_notice_texts_are_the_contracts(spark):
    cases = [
        ("warning", 1, ["mierda", "joder"]),
        ("warning", 2, ["coño", "😀 emoji"]),
        ("blocked", 3, ["shit"]),
        ("warning", 1, []),
    ]
    df = spark.createDataFrame(
        [(i, k, s, terms) for i, (k, s, terms) in enumerate(cases)],
        "i int, kind string, strike int, terms array<string>",
    )
    texts = df.select(
        "i",
        F.when(F.col("kind") == "blocked", notice_text("blocked", F.col("strike"), F.col("terms")))
        .otherwise(notice_text("warning", F.col("strike"), F.col("terms")))
        .alias("text"),
    )
    assert [r.text for r in texts.orderBy("i").collect()] == [
        contract.notice_text(kind, strike, contract.STRIKE_LIMIT, terms) for kind, strike, terms in cases
    ]


def test_notice_records_warn_then_block_with_stable_ids(spark):
    notices = to_notice_records(to_strike_rows(struck_rows(spark), 5)).orderBy("key").collect()
    assert [n.key for n in notices] == ["Zoë 🌍", "ana"]
    assert [[(h.key, h.value) for h in n.headers] for n in notices] == [
        [("notice_id", b"z3:strike")],
        [("notice_id", b"a1:strike")],
    ]
    assert [json.loads(n.value) for n in notices] == [
        {
            "id": "z3:strike",
            "author": "Zoë 🌍",
            "kind": "blocked",
            "strike": 3,
            "limit": 3,
            "terms": ["coño"],
            "message_id": "z3",
            "text": contract.notice_text("blocked", 3, 3, ["coño"]),
            "timestamp": "2026-11-27 10:00:03",
            "partition": 0,
            "offset": 3,
            "batch": 5,
        },
        {
            "id": "a1:strike",
            "author": "ana",
            "kind": "warning",
            "strike": 1,
            "limit": 3,
            "terms": ["joder"],
            "message_id": "a1",
            "text": contract.notice_text("warning", 1, 3, ["joder"]),
            "timestamp": "2026-11-27 10:00:01",
            "partition": 0,
            "offset": 1,
            "batch": 5,
        },
    ]


def actions(spark, values):
    return kafka_batch(spark, [(None, v) for v in values], topic="chat_actions")


def test_parse_actions_keeps_unblocks_with_an_id_and_an_author(spark):
    values = [
        unblock("act-1", "Zoë 🌍"),
        json.dumps({"id": "act-2", "action": "ban", "author": "ana"}).encode(),
        json.dumps({"action": "unblock", "author": "ana"}).encode(),
        unblock("act-4", ""),
        b"garbage",
        None,
    ]
    parsed = parse_actions(actions(spark, values)).orderBy("offset")
    assert ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in parsed.schema) == PARSED_ACTION_SCHEMA
    assert [(r.id, r.author, r.offset, r.is_valid) for r in parsed.collect()] == [
        ("act-1", "Zoë 🌍", 0, True),
        ("act-2", "ana", 1, False),
        (None, "ana", 2, False),
        ("act-4", "", 3, False),
        (None, None, 4, False),
        (None, None, 5, False),
    ]


def test_a_second_unblock_of_a_user_in_the_batch_clears_nothing_more(spark):
    unblocks = parse_actions(
        actions(
            spark,
            # named moderators (api/moderators.py) and the shared token's `moderator`: each row keeps its own
            [
                unblock("act-1", "ana", by="mia"),
                unblock("act-2", "nobody"),
                unblock("act-3", "ana", by="noor"),
                unblock("act-4", "bob", by="mia"),
            ],
        )
    )
    state = spark.createDataFrame(
        [("ana", 3, True), ("bob", 1, False)], "author string, strikes int, is_blocked boolean"
    )
    actual = to_action_rows(unblocks, state, 6).orderBy("kafka_offset")
    at = datetime(2026, 11, 27, 10, 1, 0)
    expected = spark.createDataFrame(
        [
            ("act-1", "unblock", "ana", "mia", at, 3, True, 0, 0, 6, None),
            ("act-2", "unblock", "nobody", "moderator", at, 0, False, 0, 1, 6, None),  # no row yet: nothing to clear
            ("act-3", "unblock", "ana", "noor", at, 0, False, 0, 2, 6, None),
            ("act-4", "unblock", "bob", "mia", at, 1, False, 0, 3, 6, None),  # not blocked: a warning cleared
        ],
        MODERATOR_ACTIONS_SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_slow_mode_changes_are_recorded_chat_wide_with_their_interval_and_bad_ones_are_not(spark):
    parsed = parse_actions(
        actions(
            spark,
            [
                slow_mode("act-1", 30, by="noor"),
                slow_mode("act-2", 0),  # lifted
                slow_mode("act-3", -1),
                slow_mode("act-4", contract.MAX_SLOW_MODE_S + 1),
                slow_mode(None, 10),
                slow_mode("act-6", "ten"),
                unblock("act-7", "ana"),
            ],
        )
    ).orderBy("offset")
    assert [(r.id, r.is_valid, r.is_slow_mode) for r in parsed.collect()] == [
        ("act-1", False, True),
        ("act-2", False, True),
        ("act-3", False, False),
        ("act-4", False, False),
        (None, False, False),
        ("act-6", False, False),
        ("act-7", True, False),
    ]
    actual = to_slow_mode_rows(parsed.where("is_slow_mode"), 9).orderBy("kafka_offset")
    at = datetime(2026, 11, 27, 10, 1, 0)
    expected = spark.createDataFrame(
        [
            ("act-1", "slow_mode", "*", "noor", at, 0, False, 0, 0, 9, 30),
            ("act-2", "slow_mode", "*", "moderator", at, 0, False, 0, 1, 9, 0),
        ],
        MODERATOR_ACTIONS_SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_unblocked_notices_say_until_where_the_withheld_messages_stay_withheld(spark):
    unblocks = parse_actions(actions(spark, [unblock("act-1", "Zoë 🌍")]))
    [with_until] = to_unblocked_notices(unblocks, 8, {1: 40, 0: 4}).collect()
    [without] = to_unblocked_notices(unblocks, 8, None).collect()
    body = {
        "id": "act-1:unblocked",
        "author": "Zoë 🌍",
        "kind": "unblocked",
        "strike": 0,
        "limit": contract.STRIKE_LIMIT,
        "terms": [],
        "message_id": None,
        "text": contract.notice_text("unblocked"),
        "timestamp": "2026-11-27 10:01:00",
        "action_id": "act-1",
        "batch": 8,
    }
    assert json.loads(with_until.value) == {**body, "until": {"0": 4, "1": 40}}
    assert json.loads(without.value) == {**body, "until": None}
    assert with_until.key == "Zoë 🌍" and [(h.key, h.value) for h in with_until.headers] == [
        ("notice_id", b"act-1:unblocked")
    ]


def test_prior_strikes_count_earlier_batches_since_the_last_unblock(spark):
    strikes = spark.createDataFrame(
        [("ana", 0), ("ana", 1), ("ana", 3), ("ana", 4), ("Zoë 🌍", 1), ("Zoë 🌍", 2), ("bob", 0), ("bob", 5)],
        "author string, batch_id long",
    )
    unblocks = spark.createDataFrame(
        [("ana", 2, "unblock"), ("bob", 5, "unblock"), ("Zoë 🌍", 2, "unblock"), ("ana", 3, "slow_mode")],
        "author string, batch_id long, action string",
    )
    authors = spark.createDataFrame([("ana",), ("Zoë 🌍",), ("bob",), ("new",)], "author string")
    # batch 5 is the one being replayed: its own strikes and its own unblock do not count yet; Zoë's unblock
    # in batch 2 cleared the strikes of batch 2 too; an author without strikes has no row; a slow mode clears nothing
    actual = prior_strikes_since_unblock(strikes, unblocks, authors, 5).orderBy("author")
    expected = spark.createDataFrame([("ana", 2), ("bob", 1)], "author string, prior_strikes int")
    assert_df_equality(actual, expected, ignore_nullable=True)


def account(account_id, author, keys=("k",), timestamp="2026-11-27 10:02:00", **extra) -> bytes:
    """A new account on `chat_actions`, as the API writes it (api/accounts.py AccountStore.announce)."""
    action = {"id": account_id, "action": contract.ACCOUNT_ACTION, "author": author, "keys": list(keys)}
    return json.dumps({**action, "by": "sign-up", "timestamp": timestamp, **extra}).encode()


def test_new_accounts_are_recorded_once_each_without_anything_else(spark):
    parsed = parse_actions(
        actions(
            spark,
            [
                account("acc-1", "Lucía", ["lucia", "lucía"]),
                unblock("act-2", "ana"),
                account("acc-1", "Lucía", ["lucia", "lucía"], timestamp="2026-11-27 10:05:00"),  # sent again
                account("acc-4", "Zoë 🌍", ["zoe 🌍"], hash="$argon2id$never-taken"),  # a field of no column
                account("acc-5", "bob", []),  # no key
                account(None, "carol"),
                account("acc-7", "", ["x"]),
                account("acc-8", "dave", ["dave"], timestamp="yesterday"),
                json.dumps({"id": "acc-9", "action": "account", "author": "eve", "keys": None}).encode(),
                account("acc-10", None),
            ],
        )
    ).orderBy("offset")
    assert ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in parsed.schema) == PARSED_ACTION_SCHEMA
    assert [(r.offset, r.is_valid, r.is_slow_mode, r.is_account) for r in parsed.collect()] == [
        (0, False, False, True),
        (1, True, False, False),
        (2, False, False, True),
        (3, False, False, True),
        (4, False, False, False),
        (5, False, False, False),
        (6, False, False, False),
        (7, False, False, False),
        (8, False, False, False),
        (9, False, False, False),
    ]
    actual = to_account_rows(parsed, 4).orderBy("kafka_offset")
    expected = spark.createDataFrame(
        [
            ("acc-1", "Lucía", ["lucia", "lucía"], datetime(2026, 11, 27, 10, 2, 0), 0, 0, 4),
            ("acc-4", "Zoë 🌍", ["zoe 🌍"], datetime(2026, 11, 27, 10, 2, 0), 0, 3, 4),
        ],
        ACCOUNTS_SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_nullable=True)
    assert "hash" not in " ".join(ACCOUNTS_SCHEMA.names)
    # the moderators' actions take only the unblock
    state = spark.createDataFrame([], "author string, strikes int, is_blocked boolean")
    assert [r.action_id for r in to_action_rows(parsed.where("is_valid"), state, 4).collect()] == ["act-2"]
    assert to_slow_mode_rows(parsed.where("is_slow_mode"), 4).isEmpty()
