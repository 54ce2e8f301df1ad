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
import threading
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
from pipelines import maintenance
from pipelines import user_moderation as moderation
from pipelines.kafka_io import read_topics, write_records
from pipelines.supervise import run_job
from pipelines.wordlists import WordLists, load_word_lists
from warehouse import paths
from warehouse.tables import ensure_tables

QUERY_NAME = "ledger"
# How often `user_moderation` is brought up to date with the batches the ledger completed: the API does not
# wait for it (it has the notices), and one refresh covers all the batches since the last.
MODERATION_REFRESH_S = 5.0


class StepClock:
    """How long each step of a batch took, for the batch's log line."""

    def __init__(self) -> None:
        self.started = self._last = time.monotonic()
        self.steps: list[str] = []

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.steps.append(f"{name} {now - self._last:.2f}s")
        self._last = now

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __str__(self) -> str:
        return ", ".join(self.steps)


@dataclass
class BatchSummary:
    """What a batch holds, from one small aggregation: the valid messages per author, rejected records, actions."""

    authors: dict[str, int]
    rejected: int
    actions: int

    @property
    def messages(self) -> int:
        return sum(self.authors.values())


@dataclass
class Ledger:
    """The foreachBatch sink: one call per micro-batch, idempotent per batch id."""

    spark: SparkSession
    warehouse: Path
    bootstrap: str
    word_lists: WordLists
    checkpoint: Path
    _app_id: str | None = field(default=None, init=False)
    # strikes per author since their last unblock (authors with at least one) after batch `_known_through`,
    # kept between batches so a batch need not read Delta for them; read from Delta when not known
    _strikes: dict[str, int] = field(default_factory=dict, init=False)
    _known_through: int | None = field(default=None, init=False)
    # the last batch whose writes are all in Delta (None: none yet that this process knows of)
    completed_through: int | None = field(default=None, init=False)
    _refreshing: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.completed_through = checkpoints.last_committed_batch(self.checkpoint)

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
            df.coalesce(1)  # one file per table and batch: a batch is small, and files are what compaction undoes
            .write.format("delta")
            .mode("append")
            .option("txnAppId", f"{self.app_id()}-{table}")
            .option("txnVersion", batch_id)
            .save(self.path(table))
        )

    def strikes_before(self, batch_id: int) -> dict[str, int]:
        """Every author's strikes since their last unblock, from the batches before `batch_id` in Delta
        (right after a crash too: a failed attempt of this batch is not counted)."""
        strikes = self.table(paths.STRIKES)
        rows = plan.prior_strikes_since_unblock(
            strikes, self.table(paths.MODERATOR_ACTIONS), strikes.select("author").distinct(), batch_id
        ).collect()
        return {row.author: row.prior_strikes for row in rows}

    def summarize(self, records: DataFrame) -> BatchSummary:
        kind = (
            F.when(F.col("topic") == contract.TOPIC_ACTIONS, "action")
            .when(F.col("reject_reason").isNull(), "valid")
            .otherwise("rejected")
        )
        rows = (
            records.select(kind.alias("kind"), F.when(kind == "valid", F.col("author")).alias("author"))
            .groupBy("kind", "author")
            .count()
            .collect()
        )
        count = {k: sum(r["count"] for r in rows if r.kind == k) for k in ("rejected", "action")}
        authors = {r.author: r["count"] for r in rows if r.kind == "valid"}
        return BatchSummary(authors, count["rejected"], count["action"])

    def send_notices(self, notices_df: DataFrame) -> None:
        write_records(notices_df, self.bootstrap, contract.TOPIC_NOTICES)

    def announce_unblocks(self, unblocks: list[Row], batch_id: int) -> None:
        """The "unblocked" notices, sent with the batch's strike notices (before the Delta writes, like them:
        the API lifts the block when the notice arrives; a replay sends the same notice ids)."""
        until = checkpoints.end_offsets(self.checkpoint, batch_id, contract.TOPIC_CHAT)
        self.send_notices(plan.to_unblocked_notices(self._unblocks_df(unblocks), batch_id, until))

    def record_unblocks(self, unblocks: list[Row], batch_id: int) -> None:
        """Record the unblocks with each user's strikes just before them (after the messages of the batch); the
        user's strikes count from zero again. `user_moderation` follows at its next refresh."""
        authors = sorted({a.author for a in unblocks})
        state = self.spark.createDataFrame(
            [(a, self._strikes.get(a, 0), self._strikes.get(a, 0) >= plan.STRIKE_LIMIT) for a in authors],
            "author string, strikes int, is_blocked boolean",
        )
        self._append(
            plan.to_action_rows(self._unblocks_df(unblocks), state, batch_id), paths.MODERATOR_ACTIONS, batch_id
        )
        for author in authors:
            self._strikes.pop(author, None)

    def _unblocks_df(self, unblocks: list[Row]) -> DataFrame:
        return self.spark.createDataFrame(unblocks, plan.PARSED_ACTION_SCHEMA)

    def read_unblocks(self, records: DataFrame, batch_id: int) -> list[Row]:
        """The batch's valid unblocks, in Kafka order; the other `chat_actions` records are logged and ignored."""
        parsed = (
            plan.parse_actions(records.where(F.col("topic") == contract.TOPIC_ACTIONS)).orderBy("partition", "offset")
        ).collect()
        for record in parsed:
            if not record.is_valid:
                print(
                    f"ledger: batch {batch_id}: ignored a record of {contract.TOPIC_ACTIONS} that is not an unblock "
                    f"action (partition {record.partition}, offset {record.offset})",
                    flush=True,
                )
        return [record for record in parsed if record.is_valid]

    def process_batch(self, batch_df: DataFrame, batch_id: int) -> None:
        clock = StepClock()
        if self._known_through != batch_id - 1:  # first batch in this process, or one after a failed attempt
            self._strikes = self.strikes_before(batch_id)
            clock.step("state")
        self._known_through = None  # the strikes in memory are no longer valid if this batch fails half-way
        # localCheckpoint (not persist) cuts the lineage: the validation and moderation expressions are large,
        # and every later write would otherwise analyse and optimise them again. One read of the batch's Kafka
        # ranges for both topics: the Kafka source does not push a filter on `topic` down. (On a cluster, where
        # an executor can be lost, a reliable checkpoint() would be the safer choice.)
        records = plan.with_rejections(batch_df).localCheckpoint()
        summary = self.summarize(records)
        unblocks = self.read_unblocks(records, batch_id) if summary.actions else []
        clock.step("validate")
        strike_rows: list[Row] = []
        if summary.authors:
            prior = self.spark.createDataFrame(
                [(a, self._strikes[a]) for a in summary.authors if a in self._strikes],
                "author string, prior_strikes int",
            )
            moderated = plan.to_moderated_rows(records.where(F.col("topic") == contract.TOPIC_CHAT), self.word_lists)
            struck = plan.with_strikes(moderated, prior).localCheckpoint()
            strike_rows = struck.where("is_strike").select("author", "strike_number").collect()
            strikes = plan.to_strike_rows(struck, batch_id)
            clock.step("moderate")
            # Notices first: the API learns the ledger's decision without waiting for the Delta writes below.
            # A crash before they commit replays this batch with the same strikes (the state it starts from is
            # unchanged) and the same notice ids.
            if strike_rows:
                self.send_notices(plan.to_notice_records(strikes))
        if unblocks:  # after the strike notices: an unblock applies after the messages of its batch
            self.announce_unblocks(unblocks, batch_id)
        clock.step("notices")
        if summary.authors:
            self._append(plan.to_message_rows(struck, batch_id), paths.MESSAGES, batch_id)
            clock.step("messages")
            if strike_rows:
                self._append(strikes, paths.STRIKES, batch_id)
                clock.step("strikes")
        if summary.rejected:  # an empty append would still cost a Delta commit
            self._append(
                plan.to_rejected_rows(records.where(F.col("topic") == contract.TOPIC_CHAT), batch_id),
                paths.REJECTED_MESSAGES,
                batch_id,
            )
            clock.step("rejected")
        for row in strike_rows:
            self._strikes[row.author] = max(self._strikes.get(row.author, 0), row.strike_number)
        if unblocks:
            self.record_unblocks(unblocks, batch_id)
            clock.step("unblocks")
        self._known_through = self.completed_through = batch_id
        print(
            f"ledger: batch {batch_id}: {summary.messages} messages, {len(strike_rows)} strikes, {len(unblocks)} "
            f"unblocks, {summary.rejected} rejected in {clock.elapsed():.2f}s ({clock})",
            flush=True,
        )

    def refresh_moderation(self) -> int | None:
        """Bring `user_moderation` up to the last batch completed (all its appends in Delta); the batch it is
        up to, or None when no batch is complete yet. Safe to repeat, and to interrupt: one MERGE."""
        through = self.completed_through
        if through is None:
            return None
        with self._refreshing:
            table = DeltaTable.forPath(self.spark, self.path(paths.USER_MODERATION))
            since = table.toDF().agg(F.max("last_batch_id")).first()[0]
            since = -1 if since is None else since
            if since >= through:
                return since
            started = time.monotonic()
            moderation.merge_changes(
                table,
                moderation.changes(
                    self.table(paths.MESSAGES),
                    self.table(paths.STRIKES),
                    self.table(paths.MODERATOR_ACTIONS),
                    since,
                    through,
                ),
                through,
            )
            print(
                f"ledger: user_moderation up to batch {through} (from {since + 1}) in {time.monotonic() - started:.2f}s",
                flush=True,
            )
            return through


def start_ledger(
    spark: SparkSession,
    bootstrap: str,
    warehouse: Path,
    checkpoint: Path,
    word_lists: WordLists,
    trigger_s: float,
    moderation_refresh_s: float = MODERATION_REFRESH_S,
    maintenance_every_s: float = maintenance.CHECK_EVERY_S,
    maintenance_min_files: int = maintenance.MIN_NEW_FILES,
) -> StreamingQuery:
    """The ledger's query, and beside it a thread that keeps `user_moderation` up to date and the tables
    compacted and vacuumed while the query runs."""
    ensure_tables(spark, warehouse)
    ledger = Ledger(spark, warehouse, bootstrap, word_lists, checkpoint)
    query = (
        read_topics(spark, bootstrap, [contract.TOPIC_CHAT, contract.TOPIC_ACTIONS])
        .writeStream.queryName(QUERY_NAME)
        .foreachBatch(ledger.process_batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{trigger_s} seconds")
        .start()
    )
    maintainer = maintenance.Maintainer(spark, warehouse, min_new_files=maintenance_min_files)
    maintenance.Housekeeper(
        [
            maintenance.Task("user_moderation", moderation_refresh_s, ledger.refresh_moderation),
            maintenance.Task("compaction", maintenance_every_s, maintainer.compact_due),
            maintenance.Task("vacuum", maintenance_every_s, maintainer.vacuum_due),
        ],
        alive=lambda: query.isActive,
    ).start()
    return query


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
