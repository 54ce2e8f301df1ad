"""The ledger: `chat` and `chat_actions` → the Delta tables, and the notices on `chat_notices`.

A micro-batch query whose foreachBatch sink (`Ledger`) writes what pipelines/ledger_plan.py plans,
the one writer of the tables: exactly once into Delta (each append carries the batch id as a Delta
transaction version; the `user_moderation` MERGE only applies a newer batch), notices at-least-once
with stable ids. README "Delta tables" and "Reliability and durability" describe the guarantees.

    python -m pipelines.ledger
    spark-submit --properties-file conf/spark-defaults.conf pipelines/ledger.py
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyspark.sql.functions as F
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.streaming import StreamingQuery

from config import contract, settings
from pipelines import checkpoint as checkpoints
from pipelines import ledger_plan as plan
from pipelines.kafka_io import read_topics, write_records
from pipelines.supervise import run_job
from pipelines.wordlists import WordLists, load_word_lists
from warehouse import paths
from warehouse.tables import USER_MODERATION_SCHEMA, ensure_tables

QUERY_NAME = "ledger"

# What the MERGE of a batch's updates does to a user's row: a batch applies once (newer than the row's).
_MERGE_UPDATE = {
    "messages": "t.messages + s.messages",
    "strikes": "s.strikes",
    "is_blocked": "s.is_blocked",
    "blocked_at": "coalesce(t.blocked_at, s.blocked_at)",
    "blocked_partition": "coalesce(t.blocked_partition, s.blocked_partition)",
    "blocked_offset": "coalesce(t.blocked_offset, s.blocked_offset)",
    "last_seen": "greatest(t.last_seen, s.last_seen)",
    "updated_at": "current_timestamp()",
    "last_batch_id": "s.batch_id",
}
_MERGE_INSERT = {
    **{c: f"s.{c}" for c in USER_MODERATION_SCHEMA.names if c not in ("updated_at", "last_batch_id")},
    "updated_at": "current_timestamp()",
    "last_batch_id": "s.batch_id",
}


class StepClock:
    """How long each step of a batch took, for the batch's log line (and bench/ledger_batch.py: `seconds`)."""

    def __init__(self) -> None:
        self.started = self._last = time.monotonic()
        self.seconds: dict[str, float] = {}  # step → seconds, in the order the steps ran

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __str__(self) -> str:
        return ", ".join(f"{name} {s:.1f}s" for name, s in self.seconds.items())


@dataclass
class Ledger:
    """The foreachBatch sink: one call per micro-batch, idempotent per batch id."""

    spark: SparkSession
    warehouse: Path
    bootstrap: str
    word_lists: WordLists
    checkpoint: Path
    _app_id: str | None = field(default=None, init=False)
    # strikes per author (authors with at least one) after batch `_known_through`, kept between
    # batches so a batch need not read Delta for them; None until a batch completes in this process
    _strikes: dict[str, int] = field(default_factory=dict, init=False)
    _known_through: int | None = field(default=None, init=False)
    # the step clock of the last batch this process ran, complete or not
    last_clock: StepClock | None = field(default=None, init=False)

    def path(self, table: str) -> str:
        return str(paths.table_path(table, self.warehouse))

    def table(self, name: str) -> DataFrame:
        return self.spark.read.format("delta").load(self.path(name))

    def app_id(self) -> str:
        """Stable for this checkpoint (Spark's query id is kept in it): a fresh checkpoint
        starts its batch ids at 0 again and must not be mistaken for a replay."""
        if self._app_id is None:
            self._app_id = checkpoints.query_id(self.checkpoint)
        return self._app_id

    def _append(self, df: DataFrame, table: str, batch_id: int) -> None:
        (
            df.write.format("delta")
            .mode("append")
            .option("txnAppId", f"{self.app_id()}-{table}")
            .option("txnVersion", batch_id)
            .save(self.path(table))
        )

    def prior_strikes(self, authors_df: DataFrame, batch_id: int, from_memory: bool) -> DataFrame:
        """Each author's strikes before this batch: from memory when the previous batch completed in this
        process, else from Delta (also right when a failed attempt of this batch already merged it)."""
        if from_memory:
            return self.spark.createDataFrame(list(self._strikes.items()), "author string, prior_strikes int")
        return plan.prior_strikes_since_unblock(
            self.table(paths.STRIKES), self.table(paths.MODERATOR_ACTIONS), authors_df, batch_id
        )

    def merge_moderation(self, updates_df: DataFrame) -> None:
        (
            DeltaTable.forPath(self.spark, self.path(paths.USER_MODERATION))
            .alias("t")
            .merge(updates_df.alias("s"), "t.author = s.author")
            .whenMatchedUpdate(condition="t.last_batch_id < s.batch_id", set=_MERGE_UPDATE)
            .whenNotMatchedInsert(values=_MERGE_INSERT)
            .execute()
        )

    def moderation_rows(self, authors: list[str] | None = None) -> DataFrame:
        """`user_moderation` as it is now (of `authors` only, when given)."""
        rows = DeltaTable.forPath(self.spark, self.path(paths.USER_MODERATION)).toDF()
        return rows if authors is None else rows.where(F.col("author").isin(authors))

    def remember_strikes(self, batch_strikes: list[Row], incremental: bool) -> None:
        """After a batch: the (author, strike_number) of the strikes it added, or (first batch in this process)
        all of them from Delta."""
        if incremental:
            for row in batch_strikes:
                self._strikes[row.author] = max(self._strikes.get(row.author, 0), row.strike_number)
        else:
            rows = self.moderation_rows().where(F.col("strikes") > 0).select("author", "strikes").collect()
            self._strikes = {row.author: row.strikes for row in rows}

    def send_notices(self, notices_df: DataFrame) -> None:
        write_records(notices_df, self.bootstrap, contract.TOPIC_NOTICES)

    def announce_unblocks(self, unblocks: list[Row], batch_id: int) -> None:
        """The "unblocked" notices, sent with the batch's strike notices (before the Delta writes, like them:
        the API lifts the block when the notice arrives; a replay sends the same notice ids)."""
        until = checkpoints.end_offsets(self.checkpoint, batch_id, contract.TOPIC_CHAT)
        self.send_notices(plan.to_unblocked_notices(self._actions_df(unblocks), batch_id, until))

    def record_actions(self, unblocks: list[Row], slow_modes: list[Row], batch_id: int) -> None:
        """Record the moderators' actions (one append: the batch's transaction id allows one per table), then
        clear the unblocked users' strikes and block (idempotent per batch)."""
        rows = self._actions_df(slow_modes).transform(lambda df: plan.to_slow_mode_rows(df, batch_id))
        authors = sorted({a.author for a in unblocks})
        if authors:
            before = self.moderation_rows(authors).localCheckpoint()  # read now, before the clearing below
            rows = plan.to_action_rows(self._actions_df(unblocks), before, batch_id).unionByName(rows)
        self._append(rows, paths.MODERATOR_ACTIONS, batch_id)
        if authors:
            self.clear_blocks(authors, batch_id)

    def clear_blocks(self, authors: list[str], batch_id: int) -> None:
        """Clear the unblocked users' strikes and block in `user_moderation`."""
        (
            DeltaTable.forPath(self.spark, self.path(paths.USER_MODERATION))
            .alias("t")
            .merge(
                self.spark.createDataFrame([(a,) for a in authors], "author string").alias("s"), "t.author = s.author"
            )
            .whenMatchedUpdate(
                set={
                    "strikes": "0",
                    "is_blocked": "false",
                    "blocked_at": "null",
                    "blocked_partition": "null",
                    "blocked_offset": "null",
                    "updated_at": "current_timestamp()",
                    "last_batch_id": f"greatest(t.last_batch_id, {int(batch_id)})",
                }
            )
            .execute()
        )
        for author in authors:
            self._strikes.pop(author, None)

    def _actions_df(self, unblocks: list[Row]) -> DataFrame:
        return self.spark.createDataFrame(unblocks, plan.PARSED_ACTION_SCHEMA)

    def read_actions(self, records: DataFrame, batch_id: int) -> tuple[list[Row], list[Row], list[Row]]:
        """The batch's valid unblocks, slow-mode changes and new accounts, in Kafka order; the other
        `chat_actions` records are logged and ignored."""
        parsed = (
            plan.parse_actions(records.where(F.col("topic") == contract.TOPIC_ACTIONS)).orderBy("partition", "offset")
        ).collect()
        for record in parsed:
            if not record.is_valid and not record.is_slow_mode and not record.is_account:
                print(
                    f"ledger: batch {batch_id}: ignored a record of {contract.TOPIC_ACTIONS} that is not a valid "
                    f"moderator's action (partition {record.partition}, offset {record.offset})",
                    flush=True,
                )
        return (
            [r for r in parsed if r.is_valid],
            [r for r in parsed if r.is_slow_mode],
            [r for r in parsed if r.is_account],
        )

    def record_accounts(self, accounts: list[Row], batch_id: int) -> None:
        """MERGE the batch's new accounts into `accounts` by account id: a replayed batch, or an account the API
        sent twice, inserts nothing more."""
        rows = plan.to_account_rows(self._actions_df(accounts), batch_id)
        (
            DeltaTable.forPath(self.spark, self.path(paths.ACCOUNTS))
            .alias("t")
            .merge(rows.alias("s"), "t.account_id = s.account_id")
            .whenNotMatchedInsertAll()
            .execute()
        )

    def process_batch(self, batch_df: DataFrame, batch_id: int) -> None:
        clock = self.last_clock = StepClock()
        # Every count, collect and localCheckpoint is a Spark job, a fixed cost on a small batch
        # (bench/ledger_batch.py): the batch-level figures come from one small collect each.
        # localCheckpoint (not persist) cuts the lineage: the moderation expressions are large, and
        # every later write would otherwise analyse and optimise them again. (On a cluster, where an
        # executor can be lost, a reliable checkpoint() would be the safer choice.)
        in_memory = self._known_through == batch_id - 1  # the strikes in memory are this batch's start
        self._known_through = None  # and no longer valid if this batch fails half-way
        # One read of the batch's Kafka ranges for both topics: the Kafka source does not push a filter
        # on `topic` down, so filtering it twice would read every `chat` record twice.
        records = plan.with_rejections(batch_df).localCheckpoint()
        unblocks, slow_modes, accounts = self.read_actions(records, batch_id)
        if accounts:  # no MERGE (a Delta commit) for the batches without a sign-up
            self.record_accounts(accounts, batch_id)
        validated = records.where(F.col("topic") == contract.TOPIC_CHAT)
        chat_count, rejected_count = validated.agg(F.count(F.lit(1)), F.count("reject_reason")).first()
        if not chat_count:
            if accounts:
                print(f"ledger: batch {batch_id}: {len(accounts)} account(s)", flush=True)
            if unblocks or slow_modes:
                if unblocks:
                    self.announce_unblocks(unblocks, batch_id)
                self.record_actions(unblocks, slow_modes, batch_id)
                print(
                    f"ledger: batch {batch_id}: {len(unblocks)} unblock(s), {len(slow_modes)} slow-mode change(s) "
                    f"in {clock.elapsed():.1f}s",
                    flush=True,
                )
            self._known_through = batch_id if in_memory else None
            return
        clock.step("validate")
        if rejected_count:  # an empty append would still cost a Delta commit
            self._append(plan.to_rejected_rows(validated, batch_id), paths.REJECTED_MESSAGES, batch_id)
        clock.step("rejected")
        # the valid records' authors, read without the moderation (at most a few more than the moderated
        # messages' authors, when a repeated message id is dropped: their prior strikes then match no message)
        authors = validated.where(F.col("reject_reason").isNull()).select("author").distinct()
        moderated = plan.to_moderated_rows(validated, self.word_lists)
        struck = plan.with_strikes(moderated, self.prior_strikes(authors, batch_id, in_memory)).localCheckpoint()
        clock.step("moderate")
        strikes = plan.to_strike_rows(struck, batch_id)  # a filter of the checkpointed rows: no job of its own
        message_count, batch_strikes = struck.agg(
            F.count(F.lit(1)),
            F.collect_list(F.when(F.col("is_strike"), F.struct("author", "strike_number"))),
        ).first()
        strike_count = len(batch_strikes)
        clock.step("strikes")
        # Notices first: the API blocks a user as soon as the "blocked" notice arrives, so the Delta
        # writes below do not delay the block. A crash before they commit replays this batch with the
        # same strikes (the state it starts from is unchanged) and the same notice ids.
        if strike_count:
            self.send_notices(plan.to_notice_records(strikes))
        if unblocks:  # after the strike notices: an unblock applies after the messages of its batch
            self.announce_unblocks(unblocks, batch_id)
        clock.step("notices")
        self._append(plan.to_message_rows(struck, batch_id), paths.MESSAGES, batch_id)
        clock.step("messages")
        if strike_count:
            self._append(strikes, paths.STRIKES, batch_id)
        clock.step("strikes-table")
        self.merge_moderation(plan.to_moderation_updates(struck, batch_id))
        clock.step("merge")
        self.remember_strikes(batch_strikes, incremental=in_memory)
        clock.step("remember")
        if unblocks or slow_modes:
            self.record_actions(unblocks, slow_modes, batch_id)
            clock.step("actions")
        self._known_through = batch_id
        print(
            f"ledger: batch {batch_id}: {message_count} messages, {strike_count} strikes, {len(unblocks)} unblocks, "
            f"{len(accounts)} accounts, "
            f"{rejected_count} rejected in {clock.elapsed():.1f}s ({clock})",
            flush=True,
        )


def start_ledger(
    spark: SparkSession,
    bootstrap: str,
    warehouse: Path,
    checkpoint: Path,
    word_lists: WordLists,
    trigger_s: float,
) -> StreamingQuery:
    ensure_tables(spark, warehouse)
    ledger = Ledger(spark, warehouse, bootstrap, word_lists, checkpoint)
    return (
        read_topics(spark, bootstrap, [contract.TOPIC_CHAT, contract.TOPIC_ACTIONS])
        .writeStream.queryName(QUERY_NAME)
        .foreachBatch(ledger.process_batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{trigger_s} seconds")
        .start()
    )


def main(argv: list[str] | None = None) -> int:
    def start(spark: SparkSession, s: settings.Settings, checkpoint: Path) -> StreamingQuery:
        query = start_ledger(
            spark, s.kafka_bootstrap, s.warehouse_dir, checkpoint, load_word_lists(), s.ledger_trigger_s
        )
        print(f"ledger: recording {contract.TOPIC_CHAT} into Delta under {s.warehouse_dir}", flush=True)
        return query

    return run_job(argv, __doc__.splitlines()[0], QUERY_NAME, start)


if __name__ == "__main__":
    sys.exit(main())
