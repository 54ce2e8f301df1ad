"""pipelines/user_moderation.py: a user's row derived from the appended tables, in one refresh or in many."""

from __future__ import annotations

from datetime import datetime

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from pipelines.user_moderation import CHANGE_COLUMNS, changes, merge_changes
from warehouse import paths
from warehouse.tables import MESSAGES_SCHEMA, MODERATOR_ACTIONS_SCHEMA, STRIKES_SCHEMA, ensure_tables

ZOE = "Zoë 🌍"


def t(second: int) -> datetime:
    return datetime(2026, 11, 27, 10, 0, second)


def message(message_id, author, offset, batch, verdict="clean"):
    profane = verdict != "clean"
    terms = ["mierda"] if profane else []
    return (message_id, author, "x", "x", profane, terms, verdict, t(offset), t(offset), 0, offset, batch)


def strike(message_id, author, number, offset, batch):
    return (message_id, author, ["mierda"], number, t(offset), 0, offset, batch)


def action(action_id, author, batch, offset):
    return (action_id, "unblock", author, "moderator", t(50), 3, True, 0, offset, batch)


# batch 0: ana says hello, Zoë swears (strike 1); batch 1: Zoë's strikes 2 and 3 (blocked at offset 3);
# batch 2: what Zoë sends while blocked is withheld, then a moderator unblocks her (and someone never seen);
# batch 3: Zoë swears again (strike 1 after the unblock), a second unblock in another batch comes later
MESSAGES = [
    message("m0", "ana", 0, 0),
    message("z0", ZOE, 1, 0, "profane"),
    message("z1", ZOE, 2, 1, "profane"),
    message("z2", ZOE, 3, 1, "profane"),
    message("m1", "ana", 4, 1),
    message("z3", ZOE, 5, 2, "withheld"),
    message("z4", ZOE, 6, 3, "profane"),
]
STRIKES = [
    strike("z0", ZOE, 1, 1, 0),
    strike("z1", ZOE, 2, 2, 1),
    strike("z2", ZOE, 3, 3, 1),
    strike("z4", ZOE, 1, 6, 3),
]
ACTIONS = [action("a1", ZOE, 2, 0), action("a2", "ghost", 2, 1)]
CHANGES = (
    "author string, messages long, first_seen timestamp, last_seen timestamp, unblocked_in long, strikes int, "
    "blocked_at timestamp, blocked_partition int, blocked_offset long"
)


def sources(spark):
    return (
        spark.createDataFrame(MESSAGES, MESSAGES_SCHEMA),
        spark.createDataFrame(STRIKES, STRIKES_SCHEMA),
        spark.createDataFrame(ACTIONS, MODERATOR_ACTIONS_SCHEMA),
    )


def test_the_changes_of_a_range_of_batches_per_author(spark):
    actual = changes(*sources(spark), since=0, through=1).orderBy("author")
    expected = spark.createDataFrame(
        [
            ("ana", 1, t(4), t(4), None, None, None, None, None),
            (ZOE, 2, t(2), t(3), None, 3, t(3), 0, 3),
        ],
        CHANGES,
    )
    assert actual.columns == CHANGE_COLUMNS
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)


def test_an_unblock_in_the_range_clears_the_strikes_before_it_and_of_its_own_batch(spark):
    actual = changes(*sources(spark), since=-1, through=3).orderBy("author")
    expected = spark.createDataFrame(
        [
            ("ana", 2, t(0), t(4), None, None, None, None, None),
            ("ghost", None, None, None, 2, None, None, None, None),  # an unblock of someone with no message
            (ZOE, 5, t(1), t(6), 2, 1, None, None, None),  # strike 1 again, not blocked
        ],
        CHANGES,
    )
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)


def test_nothing_outside_the_range(spark):
    assert changes(*sources(spark), since=3, through=5).count() == 0


def user_rows(spark, location) -> list[tuple]:
    return sorted(
        (r.author, r.messages, r.strikes, r.is_blocked, r.blocked_at, r.blocked_offset, r.first_seen, r.last_seen)
        + (r.last_batch_id,)
        for r in spark.read.format("delta").load(str(location)).collect()
    )


@pytest.mark.integration
def test_one_refresh_gives_the_rows_of_a_refresh_per_batch_and_a_repeated_one_changes_nothing(spark, tmp_path):
    states = {}
    for name, steps in (("per_batch", [0, 1, 2, 3]), ("at_once", [3])):
        warehouse = tmp_path / name
        ensure_tables(spark, warehouse)
        location = paths.table_path(paths.USER_MODERATION, warehouse)
        table = DeltaTable.forPath(spark, str(location))
        since, seen = -1, []
        for through in steps:
            merge_changes(table, changes(*sources(spark), since, through), through)
            seen.append(user_rows(spark, location))
            since = through
        # the last range merged again (a refresh repeated after a crash): every row it touches is at 3 already
        merge_changes(table, changes(*sources(spark), steps[-2] if len(steps) > 1 else -1, 3), 3)
        assert user_rows(spark, location) == seen[-1]
        states[name] = seen
    # the same rows, except the batch each is known up to: a refresh marks the rows it touched
    assert [r[:-1] for r in states["per_batch"][-1]] == [r[:-1] for r in states["at_once"][-1]]
    assert states["at_once"][-1] == [
        (ZOE, 5, 1, False, None, None, t(1), t(6), 3),
        ("ana", 2, 0, False, None, None, t(0), t(4), 3),
    ]  # no row for "ghost"
    per_batch = states["per_batch"]
    assert per_batch[1] == [
        (ZOE, 3, 3, True, t(3), 3, t(1), t(3), 1),
        ("ana", 2, 0, False, None, None, t(0), t(4), 1),
    ]
    assert per_batch[2][0][:6] == (ZOE, 4, 0, False, None, None)  # unblocked; the withheld message counted
    assert [r[-1] for r in per_batch[3]] == [3, 1]  # ana had nothing after batch 1: her row was left alone
