"""The ledger: `chat` → Delta `messages`, `strikes`, `user_moderation`, `rejected_messages`, and warnings on `chat_notices`.

It also applies the moderators' actions from `chat_actions` (unblock: the
user's strikes and block are cleared), into `moderator_actions` and
`user_moderation`, and announces them on `chat_notices`: one writer per table.
An action applies after the messages of its own batch.

A micro-batch query with `foreachBatch`, beside the relay. Every valid message
is recorded with its verdict; each profane message of a user who is not yet
blocked is a strike; the third strike blocks the user; messages a blocked user
still manages to send are recorded as `withheld`. Records that are not valid
messages go to `rejected_messages` with the reason, and the stream goes on.

Exactly once into Delta: each append carries the batch id as a Delta
transaction version (`txnAppId`/`txnVersion`), so a batch replayed after a
crash writes nothing twice; the `user_moderation` MERGE only applies a batch
newer than the row's `last_batch_id`; strike numbers are computed from the
state before the batch, so a replay numbers them the same (after a restart
that state is counted from `strikes` since each author's last unblock). Notices are
at-least-once: each carries a stable `notice_id` header and readers
de-duplicate on it.

    python -m pipelines.ledger
    spark-submit --properties-file conf/spark-defaults.conf pipelines/ledger.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyspark.sql.functions as F
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql.streaming import StreamingQuery

from config import contract, settings
from pipelines.moderation import WordLists, load_word_lists, with_moderation
from pipelines.relay import read_chat
from pipelines.validation import with_validated_message
from warehouse import paths
from warehouse.tables import ensure_tables

QUERY_NAME = "ledger"
STRIKE_LIMIT = contract.STRIKE_LIMIT
NOTICE_ID_HEADER = "notice_id"


# -- column functions ---------------------------------------------------------------


def sent_at(timestamp: Column) -> Column:
    return F.to_timestamp(timestamp, "yyyy-MM-dd HH:mm:ss")


def raw_text(value: Column) -> Column:
    """The raw Kafka value as text where it is valid UTF-8, else null (the bytes are kept beside it)."""
    return F.when(F.is_valid_utf8(value.cast("string")), value.cast("string"))


def notice_text(kind: Column, strike: Column, terms: Column) -> Column:
    words = F.array_join(terms, ", ")
    return F.when(
        kind == F.lit("blocked"),
        F.concat(
            F.lit(f"You are blocked: strike {STRIKE_LIMIT} of {STRIKE_LIMIT} for "),
            words,
            F.lit(". You can no longer send or read messages."),
        ),
    ).otherwise(
        F.concat(
            F.lit("Warning: strike "),
            strike.cast("string"),
            F.lit(f" of {STRIKE_LIMIT} for "),
            words,
            F.lit(f". Your message was masked. At {STRIKE_LIMIT} strikes you are blocked."),
        )
    )


# -- transformations ------------------------------------------------------------------


def with_rejections(raw_df: DataFrame) -> DataFrame:
    """Validated records, the Kafka record time renamed `kafka_timestamp` (the message has its own)."""
    return raw_df.withColumnRenamed("timestamp", "kafka_timestamp").transform(with_validated_message)


def to_rejected_rows(validated_df: DataFrame, batch_id: int) -> DataFrame:
    return validated_df.where(F.col("reject_reason").isNotNull()).select(
        F.col("value").alias("raw_value"),
        raw_text(F.col("value")).alias("raw_text"),
        F.col("reject_reason").alias("reason"),
        # the header only: an id made up from coordinates would mean nothing here
        F.when(~F.col("message_id").startswith("kafka-"), F.col("message_id")).alias("message_id"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        "kafka_timestamp",
        F.current_timestamp().alias("seen_at"),
        F.lit(batch_id).cast("long").alias("batch_id"),
    )


def with_strikes(moderated_df: DataFrame, prior_strikes_df: DataFrame) -> DataFrame:
    """Number the strikes per author in Kafka order, given each author's strikes before this batch.

    Adds `prior_strikes`, `is_withheld` (the author was blocked before this message),
    `is_strike` and `strike_number` (null when not a strike).
    """
    order = Window.partitionBy("author").orderBy("kafka_partition", "kafka_offset")
    profane_before = F.coalesce(
        F.sum(F.col("is_profane").cast("int")).over(order.rowsBetween(Window.unboundedPreceding, -1)), F.lit(0)
    )
    return (
        moderated_df.join(F.broadcast(prior_strikes_df), "author", "left")
        .withColumn("prior_strikes", F.coalesce("prior_strikes", F.lit(0)))
        .withColumn("is_withheld", F.col("prior_strikes") + profane_before >= STRIKE_LIMIT)
        .withColumn("is_strike", F.col("is_profane") & ~F.col("is_withheld"))
        .withColumn(
            "strike_number", F.when(F.col("is_strike"), (F.col("prior_strikes") + profane_before + 1).cast("int"))
        )
    )


def to_message_rows(struck_df: DataFrame, batch_id: int) -> DataFrame:
    verdict = F.when(F.col("is_withheld"), "withheld").when(F.col("is_profane"), "profane").otherwise("clean")
    return struck_df.select(
        "message_id",
        "author",
        "data",
        "masked_data",
        "is_profane",
        "terms",
        verdict.alias("verdict"),
        "sent_at",
        F.col("kafka_timestamp").alias("ingested_at"),
        "kafka_partition",
        "kafka_offset",
        F.lit(batch_id).cast("long").alias("batch_id"),
    )


def to_strike_rows(struck_df: DataFrame, batch_id: int) -> DataFrame:
    return struck_df.where("is_strike").select(
        "message_id",
        "author",
        "terms",
        "strike_number",
        F.col("sent_at").alias("struck_at"),
        "kafka_partition",
        "kafka_offset",
        F.lit(batch_id).cast("long").alias("batch_id"),
    )


def to_moderation_updates(struck_df: DataFrame, batch_id: int) -> DataFrame:
    """One row per author of the batch: the state after it."""
    blocking = F.col("strike_number") == STRIKE_LIMIT
    return (
        struck_df.groupBy("author")
        .agg(
            F.count("*").alias("messages"),
            F.max(F.greatest(F.col("prior_strikes"), F.coalesce("strike_number", F.lit(0))))
            .cast("int")
            .alias("strikes"),
            F.max(F.when(blocking, F.col("sent_at"))).alias("blocked_at"),
            F.max(F.when(blocking, F.col("kafka_partition"))).alias("blocked_partition"),
            F.max(F.when(blocking, F.col("kafka_offset"))).alias("blocked_offset"),
            F.min("sent_at").alias("first_seen"),
            F.max("sent_at").alias("last_seen"),
        )
        .withColumn("is_blocked", F.col("strikes") >= STRIKE_LIMIT)
        .withColumn("batch_id", F.lit(batch_id).cast("long"))
    )


def to_notice_records(strikes_df: DataFrame) -> DataFrame:
    """Kafka records for `chat_notices`: a warning per strike, "blocked" for the last one."""
    kind = F.when(F.col("strike_number") >= STRIKE_LIMIT, "blocked").otherwise("warning")
    notice_id = F.concat(F.col("message_id"), F.lit(":strike"))
    body = F.struct(
        notice_id.alias("id"),
        "author",
        kind.alias("kind"),
        F.col("strike_number").alias("strike"),
        F.lit(STRIKE_LIMIT).alias("limit"),
        "terms",
        "message_id",
        notice_text(kind, F.col("strike_number"), F.col("terms")).alias("text"),
        F.date_format("struck_at", "yyyy-MM-dd HH:mm:ss").alias("timestamp"),
        F.col("kafka_partition").alias("partition"),
        F.col("kafka_offset").alias("offset"),
        F.col("batch_id").alias("batch"),
    )
    return strikes_df.select(
        F.col("author").alias("key"),
        F.to_json(body).alias("value"),
        F.array(F.struct(F.lit(NOTICE_ID_HEADER).alias("key"), notice_id.cast("binary").alias("value"))).alias(
            "headers"
        ),
    )


ACTION_SCHEMA = "id string, action string, author string, by string, timestamp string"
UNBLOCKED_TEXT = "A moderator unblocked you: your strikes are cleared and you can send and read messages again."


def parse_actions(actions_df: DataFrame) -> tuple[list, list]:
    """(valid unblock actions in Kafka order, malformed records) of a batch of `chat_actions`."""
    parsed = (
        actions_df.select(F.from_json(F.col("value").cast("string"), ACTION_SCHEMA).alias("a"), "partition", "offset")
        .select("a.*", "partition", "offset")
        .orderBy("partition", "offset")
        .collect()
    )
    valid = [a for a in parsed if a.action == "unblock" and a.id and a.author]
    return valid, [a for a in parsed if a not in valid]


def to_unblocked_notices(spark: SparkSession, actions: list, batch_id: int, until: dict[int, int] | None) -> DataFrame:
    """`until`: the end offsets of `chat` in this batch. What a user sent while blocked, up to there,
    stays withheld: the API hides it, as the ledger recorded it."""
    rows = [
        (
            a.author,
            json.dumps(
                {
                    "id": f"{a.id}:unblocked",
                    "author": a.author,
                    "kind": "unblocked",
                    "strike": 0,
                    "limit": STRIKE_LIMIT,
                    "terms": [],
                    "message_id": None,
                    "text": UNBLOCKED_TEXT,
                    "timestamp": a.timestamp,
                    "action_id": a.id,
                    "batch": batch_id,
                    "until": {str(p): o for p, o in (until or {}).items()} or None,
                }
            ),
            [(NOTICE_ID_HEADER, f"{a.id}:unblocked".encode())],
        )
        for a in actions
    ]
    return spark.createDataFrame(rows, "key string, value string, headers array<struct<key:string, value:binary>>")


# -- the query ---------------------------------------------------------------------------


class Ledger:
    """The foreachBatch sink: one call per micro-batch, idempotent per batch id."""

    def __init__(self, spark: SparkSession, warehouse: Path, bootstrap: str, word_lists: WordLists, checkpoint: Path):
        self.spark = spark
        self.warehouse = warehouse
        self.bootstrap = bootstrap
        self.word_lists = word_lists
        self.checkpoint = checkpoint
        self._app_id: str | None = None
        # strikes per author (authors with at least one) after batch `_known_through`, kept between
        # batches so a batch need not read Delta for them; None until a batch completes in this process
        self._strikes: dict[str, int] = {}
        self._known_through: int | None = None

    def path(self, table: str) -> str:
        return str(paths.table_path(table, self.warehouse))

    def app_id(self) -> str:
        """Stable for this checkpoint (Spark's query id is kept in it): a fresh checkpoint
        starts its batch ids at 0 again and must not be mistaken for a replay."""
        if self._app_id is None:
            self._app_id = json.loads((self.checkpoint / "metadata").read_text())["id"]
        return self._app_id

    def chat_end_offsets(self, batch_id: int) -> dict[int, int] | None:
        """Where batch `batch_id` ends in `chat` (per partition, exclusive), from the query's offset log."""
        try:
            lines = (self.checkpoint / "offsets" / str(batch_id)).read_text().splitlines()
        except OSError:
            return None
        for line in lines[2:]:  # "v1", the batch metadata, then one line per source
            try:
                offsets = json.loads(line).get(contract.TOPIC_CHAT)
            except (ValueError, AttributeError):
                continue
            if isinstance(offsets, dict):
                return {int(p): int(o) for p, o in offsets.items()}
        return None

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
        return self.prior_strikes_from_delta(authors_df, batch_id)

    def prior_strikes_from_delta(self, authors_df: DataFrame, batch_id: int) -> DataFrame:
        """Strikes of the batches before this one, counted since each author's last unblock (an unblock
        clears the strikes of its own batch too). Right after a crash as well: it reads only earlier batches."""
        cleared = (
            self.spark.read.format("delta")
            .load(self.path(paths.MODERATOR_ACTIONS))
            .where(F.col("batch_id") < batch_id)
            .groupBy("author")
            .agg(F.max("batch_id").alias("cleared"))
        )
        return (
            self.spark.read.format("delta")
            .load(self.path(paths.STRIKES))
            .where(F.col("batch_id") < batch_id)
            .join(authors_df, "author")
            .join(cleared, "author", "left")
            .where(F.col("cleared").isNull() | (F.col("batch_id") > F.col("cleared")))
            .groupBy("author")
            .agg(F.count("*").cast("int").alias("prior_strikes"))
        )

    def merge_moderation(self, updates_df: DataFrame) -> None:
        (
            DeltaTable.forPath(self.spark, self.path(paths.USER_MODERATION))
            .alias("t")
            .merge(updates_df.alias("s"), "t.author = s.author")
            .whenMatchedUpdate(
                condition="t.last_batch_id < s.batch_id",
                set={
                    "messages": "t.messages + s.messages",
                    "strikes": "s.strikes",
                    "is_blocked": "s.is_blocked",
                    "blocked_at": "coalesce(t.blocked_at, s.blocked_at)",
                    "blocked_partition": "coalesce(t.blocked_partition, s.blocked_partition)",
                    "blocked_offset": "coalesce(t.blocked_offset, s.blocked_offset)",
                    "last_seen": "greatest(t.last_seen, s.last_seen)",
                    "updated_at": "current_timestamp()",
                    "last_batch_id": "s.batch_id",
                },
            )
            .whenNotMatchedInsert(
                values={
                    "author": "s.author",
                    "messages": "s.messages",
                    "strikes": "s.strikes",
                    "is_blocked": "s.is_blocked",
                    "blocked_at": "s.blocked_at",
                    "blocked_partition": "s.blocked_partition",
                    "blocked_offset": "s.blocked_offset",
                    "first_seen": "s.first_seen",
                    "last_seen": "s.last_seen",
                    "updated_at": "current_timestamp()",
                    "last_batch_id": "s.batch_id",
                }
            )
            .execute()
        )

    def remember_strikes(self, strikes_df: DataFrame, batch_id: int, incremental: bool) -> None:
        """After a batch: the strikes it added, or (first batch in this process) all of them from Delta."""
        if incremental:
            for row in strikes_df.groupBy("author").agg(F.max("strike_number").alias("n")).collect():
                self._strikes[row.author] = row.n
        else:
            self._strikes = {
                row.author: row.strikes
                for row in DeltaTable.forPath(self.spark, self.path(paths.USER_MODERATION))
                .toDF()
                .where(F.col("strikes") > 0)
                .select("author", "strikes")
                .collect()
            }

    def send_notices(self, notices_df: DataFrame) -> None:
        (
            notices_df.write.format("kafka")
            .option("kafka.bootstrap.servers", self.bootstrap)
            .option("kafka.acks", "all")
            .option("kafka.enable.idempotence", "true")
            .option("topic", contract.TOPIC_NOTICES)
            .save()
        )

    def announce_unblocks(self, actions: list, batch_id: int) -> None:
        """The "unblocked" notices, sent with the batch's strike notices (before the Delta writes, like them:
        the API lifts the block when the notice arrives; a replay sends the same notice ids)."""
        self.send_notices(to_unblocked_notices(self.spark, actions, batch_id, self.chat_end_offsets(batch_id)))

    def record_unblocks(self, actions: list, batch_id: int) -> None:
        """Record the unblocks, then clear the users' strikes and block (idempotent per batch)."""
        authors = sorted({a.author for a in actions})
        before = {
            r.author: r
            for r in DeltaTable.forPath(self.spark, self.path(paths.USER_MODERATION))
            .toDF()
            .where(F.col("author").isin(authors))
            .select("author", "strikes", "is_blocked")
            .collect()
        }
        rows = []
        for a in actions:
            state = before.get(a.author)
            rows.append(
                (
                    a.id,
                    a.action,
                    a.author,
                    a.by,
                    a.timestamp,
                    state.strikes if state else 0,
                    bool(state and state.is_blocked),
                    a.partition,
                    a.offset,
                    batch_id,
                )
            )
            before[a.author] = None  # a second unblock of the same user in this batch clears nothing more
        recorded = self.spark.createDataFrame(
            rows,
            "action_id string, action string, author string, "
            "requested_by string, requested_at string, strikes_cleared int, "
            "was_blocked boolean, kafka_partition int, kafka_offset long, "
            "batch_id long",
        ).withColumn("requested_at", sent_at(F.col("requested_at")))
        self._append(recorded, paths.MODERATOR_ACTIONS, batch_id)
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

    def process_batch(self, batch_df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        steps: list[str] = []
        clock = [started]

        def step(name: str) -> None:
            """Note how long the step since the previous one took, for the batch's log line."""
            now = time.monotonic()
            steps.append(f"{name} {now - clock[0]:.1f}s")
            clock[0] = now

        # localCheckpoint (not persist) cuts the lineage: the moderation expressions are large, and
        # every later write would otherwise analyse and optimise them again. (On a cluster, where an
        # executor can be lost, a reliable checkpoint() would be the safer choice.)
        in_memory = self._known_through == batch_id - 1  # the strikes in memory are this batch's start
        self._known_through = None  # and no longer valid if this batch fails half-way
        # One read of the batch's Kafka ranges for both topics: the Kafka source does not push a filter
        # on `topic` down, so filtering it twice would read every `chat` record twice.
        records = with_rejections(batch_df).localCheckpoint()
        actions, malformed = parse_actions(records.where(F.col("topic") == contract.TOPIC_ACTIONS))
        for record in malformed:
            print(
                f"ledger: batch {batch_id}: ignored a record of {contract.TOPIC_ACTIONS} that is not an unblock "
                f"action (partition {record.partition}, offset {record.offset})",
                flush=True,
            )
        validated = records.where(F.col("topic") == contract.TOPIC_CHAT)
        if validated.isEmpty():
            if actions:
                self.announce_unblocks(actions, batch_id)
                self.record_unblocks(actions, batch_id)
                print(
                    f"ledger: batch {batch_id}: {len(actions)} unblock(s) in {time.monotonic() - started:.1f}s",
                    flush=True,
                )
            self._known_through = batch_id if in_memory else None
            return
        step("validate")
        rejected = to_rejected_rows(validated, batch_id).localCheckpoint()
        rejected_count = rejected.count()
        if rejected_count:  # an empty append would still cost a Delta commit
            self._append(rejected, paths.REJECTED_MESSAGES, batch_id)
        step("rejected")
        moderated = (
            validated.where(F.col("reject_reason").isNull())
            .dropDuplicates(["message_id"])
            .withColumn("sent_at", sent_at(F.col("timestamp")))
            .withColumnRenamed("partition", "kafka_partition")
            .withColumnRenamed("offset", "kafka_offset")
            .transform(lambda df: with_moderation(df, self.word_lists))
            .select(
                "message_id",
                "author",
                "data",
                "masked_data",
                "is_profane",
                "terms",
                "sent_at",
                "kafka_timestamp",
                "kafka_partition",
                "kafka_offset",
            )
            .localCheckpoint()
        )
        step("moderate")
        authors = moderated.select("author").distinct()
        struck = with_strikes(moderated, self.prior_strikes(authors, batch_id, in_memory)).localCheckpoint()
        strikes = to_strike_rows(struck, batch_id).localCheckpoint()
        strike_count = strikes.count()
        step("strikes")
        # Notices first: the API blocks a user as soon as the "blocked" notice arrives, so the Delta
        # writes below do not delay the block. A crash before they commit replays this batch with the
        # same strikes (the state it starts from is unchanged) and the same notice ids.
        if strike_count:
            self.send_notices(to_notice_records(strikes))
        if actions:  # after the strike notices: an unblock applies after the messages of its batch
            self.announce_unblocks(actions, batch_id)
        step("notices")
        self._append(to_message_rows(struck, batch_id), paths.MESSAGES, batch_id)
        step("messages")
        if strike_count:
            self._append(strikes, paths.STRIKES, batch_id)
        step("strikes-table")
        self.merge_moderation(to_moderation_updates(struck, batch_id))
        step("merge")
        self.remember_strikes(strikes, batch_id, incremental=in_memory)
        step("remember")
        if actions:
            self.record_unblocks(actions, batch_id)
            step("unblocks")
        self._known_through = batch_id
        print(
            f"ledger: batch {batch_id}: {struck.count()} messages, {strike_count} strikes, {len(actions)} unblocks, "
            f"{rejected_count} rejected in {time.monotonic() - started:.1f}s ({', '.join(steps)})",
            flush=True,
        )


def start_ledger(
    spark: SparkSession,
    bootstrap: str,
    warehouse: Path,
    checkpoint: Path,
    word_lists: WordLists | None = None,
    trigger_s: float = 1.0,
) -> StreamingQuery:
    ensure_tables(spark, warehouse)
    ledger = Ledger(spark, warehouse, bootstrap, word_lists or load_word_lists(), checkpoint)
    return (
        read_chat(spark, bootstrap, topic=f"{contract.TOPIC_CHAT},{contract.TOPIC_ACTIONS}")
        .writeStream.queryName(QUERY_NAME)
        .foreachBatch(ledger.process_batch)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{trigger_s} seconds")
        .start()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default DATA_DIR/checkpoints/ledger")
    args = parser.parse_args(argv)
    s = settings.load()
    from pipelines.session import get_spark
    from pipelines.streams import supervise

    spark = get_spark("chat-ledger")
    query = start_ledger(spark, s.kafka_bootstrap, s.warehouse_dir, args.checkpoint or s.checkpoint_dir / "ledger")
    print(f"ledger: recording {contract.TOPIC_CHAT} into Delta under {s.warehouse_dir}", flush=True)
    supervise(spark, [query], s.run_dir / "ledger.ready")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
