"""Delta maintenance, before and after: 2,000 ledger batches' worth of small files, then the statistics job,
analysts' queries and ledger-like batches before, during and after `pipelines.maintenance`.

    python -m bench.maintenance [--batches 2000] [--work DIR] [--reuse] [--repeat 3] [--out FILE]

The built tables are kept in WORK/built and each run works on a copy in WORK/run: `--reuse` skips the build
(the slow part) when WORK/built holds as many batches.

The file pattern of the ledger (README "Delta tables"): every batch leaves one small file in `messages` and
in `strikes` (the batch's time slice: 50 messages, 6 % profane, 500 authors, 30 days in all), one in
`rejected_messages` every 20 batches and in `moderator_actions` every 100; `user_moderation` holds 50
files, the most it keeps before it compacts itself. The files are written 100 batches to a commit (a
commit per batch would take an hour here; with a Delta checkpoint every 10 commits, readers pay for the
files, not the commits). A "batch" below is the ledger's two main writes: an append of 50 messages
(with its transaction id) and a MERGE of their authors into `user_moderation`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pyspark.sql.functions as F
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from bench.steady import load_average
from config import settings
from pipelines import user_stats
from pipelines.maintenance import COMPACTED, VACUUMED, file_count, run_maintenance
from warehouse import paths
from warehouse.tables import ensure_tables

START = datetime(2026, 10, 28)
SPAN = timedelta(days=30)
PER_BATCH = 50
AUTHORS = 500
BATCHES_PER_COMMIT = 100
TERMS = ["mierda", "joder", "fuck", "shit"]


def _batch_messages(spark: SparkSession, first: int, last: int, batches: int) -> DataFrame:
    """The messages of batches first … last-1, one output partition per batch, in the ledger's schema."""
    slice_s = SPAN.total_seconds() / batches
    ids = spark.range(first * PER_BATCH, last * PER_BATCH)
    batch = (F.col("id") / PER_BATCH).cast("long")
    profane = F.rand(11) < 0.06
    term = F.element_at(F.array(*[F.lit(t) for t in TERMS]), (F.floor(F.rand(13) * len(TERMS)) + 1).cast("int"))
    sent_at = F.timestamp_seconds(
        F.lit(START.timestamp()) + batch * slice_s + (F.col("id") % PER_BATCH) * (slice_s / PER_BATCH)
    )
    df = ids.select(
        F.concat(F.lit("m-"), F.col("id").cast("string")).alias("message_id"),
        # skewed activity: squaring a uniform number favours the low user ids
        F.concat(F.lit("user-"), F.floor(F.pow(F.rand(7), 2) * AUTHORS).cast("string")).alias("author"),
        F.when(profane, F.concat(F.lit("oh "), term)).otherwise(F.lit("see you at the meeting")).alias("data"),
        F.when(profane, F.lit("oh ****")).otherwise(F.lit("see you at the meeting")).alias("masked_data"),
        profane.alias("is_profane"),
        F.when(profane, F.array(term)).otherwise(F.array().cast("array<string>")).alias("terms"),
        F.when(profane, F.lit("profane")).otherwise(F.lit("clean")).alias("verdict"),
        sent_at.alias("sent_at"),
        sent_at.alias("ingested_at"),
        F.lit(0).alias("kafka_partition"),
        F.col("id").alias("kafka_offset"),
        batch.alias("batch_id"),
        F.lit(None).cast("string").alias("spam_reason"),
    )
    return df.repartitionByRange(last - first, "batch_id")


def build(spark: SparkSession, warehouse: Path, batches: int) -> None:
    """The ledger's tables as `batches` batches leave them (see the module docstring)."""
    ensure_tables(spark, warehouse)
    for first in range(0, batches, BATCHES_PER_COMMIT):
        last = min(batches, first + BATCHES_PER_COMMIT)
        messages = _batch_messages(spark, first, last, batches).persist()
        messages.write.format("delta").mode("append").save(str(paths.table_path(paths.MESSAGES, warehouse)))
        strikes = messages.where("is_profane").select(
            "message_id",
            "author",
            "terms",
            F.lit(1).alias("strike_number"),
            F.col("sent_at").alias("struck_at"),
            "kafka_partition",
            "kafka_offset",
            "batch_id",
            F.lit(None).cast("string").alias("category"),
        )
        strikes.repartitionByRange(last - first, "batch_id").write.format("delta").mode("append").save(
            str(paths.table_path(paths.STRIKES, warehouse))
        )
        rejected = messages.where(F.col("kafka_offset") % 1000 == 0).select(
            F.encode("data", "UTF-8").alias("raw_value"),
            F.col("data").alias("raw_text"),
            F.lit("not JSON").alias("reason"),
            F.lit(None).cast("string").alias("message_id"),
            "kafka_partition",
            "kafka_offset",
            F.col("sent_at").alias("kafka_timestamp"),
            F.col("sent_at").alias("seen_at"),
            "batch_id",
        )
        rejected.repartitionByRange(max(1, (last - first) // 20), "batch_id").write.format("delta").mode("append").save(
            str(paths.table_path(paths.REJECTED_MESSAGES, warehouse))
        )
        actions = messages.where(F.col("kafka_offset") % (PER_BATCH * 100) == 0).select(
            F.concat(F.lit("a-"), "message_id").alias("action_id"),
            F.lit("unblock").alias("action"),
            "author",
            F.lit("moderator").alias("requested_by"),
            F.col("sent_at").alias("requested_at"),
            F.lit(0).alias("strikes_cleared"),
            F.lit(False).alias("was_blocked"),
            "kafka_partition",
            "kafka_offset",
            "batch_id",
            F.lit(None).cast("int").alias("seconds"),
        )
        actions.coalesce(1).write.format("delta").mode("append").save(
            str(paths.table_path(paths.MODERATOR_ACTIONS, warehouse))
        )
        messages.unpersist()
    messages = spark.read.format("delta").load(str(paths.table_path(paths.MESSAGES, warehouse)))
    moderation = messages.groupBy("author").agg(
        F.count(F.lit(1)).alias("messages"),
        F.least(F.count(F.when(F.col("is_profane"), 1)), F.lit(2)).cast("int").alias("strikes"),
        F.min("sent_at").alias("first_seen"),
        F.max("sent_at").alias("last_seen"),
    )
    moderation.select(
        "author",
        "messages",
        "strikes",
        F.lit(False).alias("is_blocked"),
        F.lit(None).cast("timestamp").alias("blocked_at"),
        F.lit(None).cast("int").alias("blocked_partition"),
        F.lit(None).cast("long").alias("blocked_offset"),
        "first_seen",
        "last_seen",
        F.col("last_seen").alias("updated_at"),
        F.lit(0).cast("long").alias("last_batch_id"),
    ).repartition(50).write.format("delta").mode("append").save(str(paths.table_path(paths.USER_MODERATION, warehouse)))


def timed(fn: Callable[[], object], repeat: int) -> dict:
    """`fn` once to warm up, then `repeat` times: median, min, max seconds."""
    fn()
    runs = []
    for _ in range(repeat):
        started = time.monotonic()
        fn()
        runs.append(time.monotonic() - started)
    return {"median_s": round(statistics.median(runs), 3), "min_s": round(min(runs), 3), "max_s": round(max(runs), 3)}


def queries(spark: SparkSession, warehouse: Path, end: datetime) -> dict[str, Callable[[], object]]:
    """Typical analysts' questions (README "Statistics, report and SQL")."""
    since, until = (end - timedelta(days=1)).isoformat(sep=" "), end.isoformat(sep=" ")
    messages = f"delta.`{paths.table_path(paths.MESSAGES, warehouse)}`"  # its current version at every run
    return {
        "one_author_last_day": lambda: spark.sql(
            f"SELECT sent_at, masked_data FROM {messages} WHERE author = 'user-3' AND sent_at >= '{since}' "
            f"AND sent_at < '{until}'"
        ).collect(),
        "messages_per_hour_last_day": lambda: spark.sql(
            f"SELECT date_trunc('hour', sent_at) AS hour, count(*) AS n FROM {messages} WHERE sent_at >= '{since}' "
            f"AND sent_at < '{until}' GROUP BY 1 ORDER BY 1"
        ).collect(),
        "one_author_all_time": lambda: spark.sql(
            f"SELECT count(*), max(sent_at) FROM {messages} WHERE author = 'user-42' AND sent_at < '{until}'"
        ).collect(),
    }


def measure_reads(spark: SparkSession, data_dir: Path, warehouse: Path, end: datetime, repeat: int) -> dict:
    def stats_job() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            user_stats.run(spark, data_dir, data_dir / "report.html")

    result = {"statistics_job": timed(stats_job, repeat)}
    for name, query in queries(spark, warehouse, end).items():
        result[name] = timed(query, repeat * 2 + 1)
    return result


class Batches:
    """Ledger-like batches: append 50 messages with a transaction id, MERGE their authors into user_moderation."""

    def __init__(self, spark: SparkSession, warehouse: Path, first_batch: int, total: int) -> None:
        self.spark, self.warehouse, self.next, self.total = spark, warehouse, first_batch, total

    def run_one(self) -> dict:
        batch = self.next
        self.next += 1
        messages = _batch_messages(self.spark, batch, batch + 1, self.total).localCheckpoint()
        moderation = str(paths.table_path(paths.USER_MODERATION, self.warehouse))
        files_before = file_count(self.spark, moderation)
        started = time.monotonic()
        messages.write.format("delta").mode("append").option("txnAppId", "bench-maintenance").option(
            "txnVersion", batch
        ).save(str(paths.table_path(paths.MESSAGES, self.warehouse)))
        updates = messages.groupBy("author").agg(F.count(F.lit(1)).alias("n"), F.max("sent_at").alias("seen"))
        (
            DeltaTable.forPath(self.spark, moderation)
            .alias("t")
            .merge(updates.alias("s"), "t.author = s.author")
            .whenMatchedUpdate(
                set={
                    "messages": "t.messages + s.n",
                    "last_seen": "greatest(t.last_seen, s.seen)",
                    "last_batch_id": str(batch),
                }
            )
            .execute()
        )
        seconds = time.monotonic() - started
        return {
            "seconds": round(seconds, 3),
            "compacted_user_moderation": file_count(self.spark, moderation) < files_before,
        }


def _summary(runs: list[dict]) -> dict:
    times = [r["seconds"] for r in runs]
    if not times:
        return {"batches": 0}
    return {
        "batches": len(times),
        "median_s": round(statistics.median(times), 3),
        "min_s": min(times),
        "max_s": max(times),
        "that_compacted_user_moderation": [r["seconds"] for r in runs if r["compacted_user_moderation"]],
    }


def counts(spark: SparkSession, warehouse: Path) -> tuple[dict, dict]:
    files, rows = {}, {}
    for name in VACUUMED:
        location = paths.table_path(name, warehouse)
        if DeltaTable.isDeltaTable(spark, str(location)):
            files[name] = file_count(spark, location)
            rows[name] = spark.read.format("delta").load(str(location)).count()
    return files, rows


def vacuum_listing(spark: SparkSession, warehouse: Path, repeat: int) -> dict:
    """VACUUM of `messages` (nothing old enough to delete: the cost is its file listing) with Spark's default
    listing parallelism and with the configured one, alternating, in the same JVM."""
    key = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    configured = spark.conf.get(key)
    runs: dict[str, list[float]] = {"10000": [], configured: []}
    try:
        for _ in range(repeat):
            for value in runs:
                spark.conf.set(key, value)
                started = time.monotonic()
                run_maintenance(spark, warehouse, compact=(), vacuum=[paths.MESSAGES], log=lambda _: None)
                runs[value].append(time.monotonic() - started)
    finally:
        spark.conf.set(key, configured)
    return {
        f"parallelism_{value}": {
            "median_s": round(statistics.median(t), 2),
            "min_s": round(min(t), 2),
            "max_s": round(max(t), 2),
        }
        for value, t in runs.items()
    }


def prepared(spark: SparkSession, work: Path, batches: int, reuse: bool) -> tuple[Path, float | None]:
    """WORK/run: a fresh copy of WORK/built (built first unless `reuse` finds it); the build's seconds or None."""
    built, marker = work / "built", work / "built" / "batches.json"
    build_s = None
    if not (reuse and marker.exists() and json.loads(marker.read_text()) == {"batches": batches}):
        shutil.rmtree(built, ignore_errors=True)
        started = time.monotonic()
        build(spark, paths.warehouse_dir(built), batches)
        build_s = round(time.monotonic() - started, 1)
        marker.write_text(json.dumps({"batches": batches}))
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(built, run)
    return run, build_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=settings.load().data_dir / "bench" / "maintenance")
    parser.add_argument("--reuse", action="store_true", help="use WORK/built if it holds as many batches")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the statistics job (queries: 2n+1)")
    parser.add_argument("--out", type=Path, help="also write the result here (JSON)")
    args = parser.parse_args()
    from pipelines.session import get_spark

    spark = get_spark("bench-maintenance")
    spark.sparkContext.setLogLevel("ERROR")
    result: dict = {"batches_simulated": args.batches, "messages": args.batches * PER_BATCH}
    end = START + SPAN
    try:
        data_dir, result["build_s"] = prepared(spark, args.work, args.batches, args.reuse)
        warehouse = paths.warehouse_dir(data_dir)
        result["files_before"], rows_before = counts(spark, warehouse)
        print(
            f"maintenance-bench: built in {result['build_s']}s (None: reused); files {result['files_before']}",
            flush=True,
        )
        result["before"] = measure_reads(spark, data_dir, warehouse, end, args.repeat)
        print(f"maintenance-bench: before {result['before']}", flush=True)

        batches = Batches(spark, warehouse, args.batches, args.batches)
        result["batch_without_maintenance"] = _summary([batches.run_one() for _ in range(6)])
        outcomes: list = []
        worker = threading.Thread(
            target=lambda: outcomes.extend(run_maintenance(spark, warehouse, COMPACTED, VACUUMED, log=lambda _: None))
        )
        started = time.monotonic()
        worker.start()
        during = []
        while worker.is_alive():
            during.append(batches.run_one())
        worker.join()
        result["maintenance_s"] = round(time.monotonic() - started, 1)
        result["maintenance_steps"] = [
            {"table": o.table, "action": o.action, "files": [o.files_before, o.files_after], "s": round(o.seconds, 1)}
            for o in outcomes
        ]
        result["batch_during_maintenance"] = _summary(during)
        result["batch_after_maintenance"] = _summary([batches.run_one() for _ in range(6)])
        print(f"maintenance-bench: maintenance {result['maintenance_steps']}", flush=True)

        result["vacuum_listing"] = vacuum_listing(spark, warehouse, 2)
        print(f"maintenance-bench: vacuum {result['vacuum_listing']}", flush=True)
        result["files_after"], rows_after = counts(spark, warehouse)
        added = batches.next - args.batches  # the timed batches' messages
        result["rows_kept"] = rows_after[paths.MESSAGES] == rows_before[paths.MESSAGES] + added * PER_BATCH and all(
            rows_after[n] == rows_before[n] for n in rows_before if n != paths.MESSAGES
        )
        result["after"] = measure_reads(spark, data_dir, warehouse, end, args.repeat)
        result["speedup_median"] = {
            k: round(result["before"][k]["median_s"] / result["after"][k]["median_s"], 2) for k in result["before"]
        }
    finally:
        spark.stop()
    result["load_average"] = load_average()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
