"""`user_moderation` derived from what the ledger appends: `messages`, `strikes` and `moderator_actions`.

Pure DataFrame functions and the MERGE that applies them (pipelines/ledger.py runs it every few seconds,
not in each micro-batch): the changes of the batches after `since` up to `through`, per author, merged
once (a row already at `through` is left alone), so a refresh repeated after a crash changes nothing.
"""

from __future__ import annotations

import pyspark.sql.functions as F
from delta.tables import DeltaTable
from pyspark.sql import DataFrame

from config import contract

STRIKE_LIMIT = contract.STRIKE_LIMIT

# the per-author changes that `changes` gives
CHANGE_COLUMNS = [
    "author",
    "messages",
    "first_seen",
    "last_seen",
    "unblocked_in",
    "strikes",
    "blocked_at",
    "blocked_partition",
    "blocked_offset",
]

# A row after the changes: strikes numbered since the last unblock win, else an unblock clears, else the row's.
_STRIKES = "coalesce(s.strikes, CASE WHEN s.unblocked_in IS NOT NULL THEN 0 END, t.strikes)"


def _blocked(column: str, old: str | None) -> str:
    """A blocking strike after the last unblock, else nothing when there was an unblock, else the row's."""
    fallback = "NULL" if old is None else f"t.{old}"
    return f"CASE WHEN s.{column} IS NOT NULL THEN s.{column} WHEN s.unblocked_in IS NOT NULL THEN NULL ELSE {fallback} END"


def _in_range(since: int, through: int):
    return (F.col("batch_id") > since) & (F.col("batch_id") <= through)


def changes(
    messages_df: DataFrame, strikes_df: DataFrame, actions_df: DataFrame, since: int, through: int
) -> DataFrame:
    """Per author, what the batches `since` < batch ≤ `through` changed (CHANGE_COLUMNS; null: nothing of that kind):
    messages recorded, their first and last time, the batch of the last unblock, the last strike number after it
    and the strike that blocked (the STRIKE_LIMIT-th) after it. An unblock clears the strikes of its own batch."""
    recorded = (
        messages_df.where(_in_range(since, through))
        .groupBy("author")
        .agg(F.count("*").alias("messages"), F.min("sent_at").alias("first_seen"), F.max("sent_at").alias("last_seen"))
    )
    unblocked = (
        actions_df.where(_in_range(since, through) & (F.col("action") == "unblock"))
        .groupBy("author")
        .agg(F.max("batch_id").alias("unblocked_in"))
    )
    blocking = F.col("strike_number") >= STRIKE_LIMIT
    struck = (
        strikes_df.where(_in_range(since, through))
        .join(unblocked, "author", "left")
        .where(F.col("unblocked_in").isNull() | (F.col("batch_id") > F.col("unblocked_in")))
        .groupBy("author")
        .agg(
            F.max("strike_number").alias("strikes"),
            F.min(F.when(blocking, F.struct("kafka_partition", "kafka_offset", "struck_at"))).alias("block"),
        )
        .select(
            "author",
            "strikes",
            F.col("block.struck_at").alias("blocked_at"),
            F.col("block.kafka_partition").alias("blocked_partition"),
            F.col("block.kafka_offset").alias("blocked_offset"),
        )
    )
    return recorded.join(unblocked, "author", "full").join(struck, "author", "full").select(*CHANGE_COLUMNS)


def merge_changes(table: DeltaTable, changes_df: DataFrame, through: int) -> None:
    """Apply `changes` of the batches up to `through` to `user_moderation`, once: rows already at `through` stay."""
    strikes = _STRIKES
    (
        table.alias("t")
        .merge(changes_df.alias("s"), "t.author = s.author")
        .whenMatchedUpdate(
            condition=f"t.last_batch_id < {int(through)}",
            set={
                "messages": "t.messages + coalesce(s.messages, 0)",
                "strikes": strikes,
                "is_blocked": f"{strikes} >= {STRIKE_LIMIT}",
                "blocked_at": _blocked("blocked_at", "blocked_at"),
                "blocked_partition": _blocked("blocked_partition", "blocked_partition"),
                "blocked_offset": _blocked("blocked_offset", "blocked_offset"),
                "first_seen": "least(t.first_seen, s.first_seen)",
                "last_seen": "greatest(t.last_seen, s.last_seen)",
                "updated_at": "current_timestamp()",
                "last_batch_id": str(int(through)),
            },
        )
        # a user appears with a message (an unblock of someone never seen makes no row)
        .whenNotMatchedInsert(
            condition="s.messages IS NOT NULL",
            values={
                "author": "s.author",
                "messages": "s.messages",
                "strikes": "coalesce(s.strikes, 0)",
                "is_blocked": f"coalesce(s.strikes, 0) >= {STRIKE_LIMIT}",
                "blocked_at": "s.blocked_at",
                "blocked_partition": "s.blocked_partition",
                "blocked_offset": "s.blocked_offset",
                "first_seen": "s.first_seen",
                "last_seen": "s.last_seen",
                "updated_at": "current_timestamp()",
                "last_batch_id": str(int(through)),
            },
        )
        .execute()
    )
