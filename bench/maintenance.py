"""Tables that stay fast for months: the ledger's small files of `batches` micro-batches spread over `days`, then
the statistics job and typical analysts' queries, before and after the tables' maintenance.

    python -m bench.maintenance [--batches 2000] [--per-batch 250] [--days 30] [--work DIR]

The tables have the ledger's schemas and layout (warehouse/tables.py) and its files: one file per batch in
`messages`, `strikes` and `rejected_messages` (a batch writes one per table), one per refresh (every five
batches) in `user_moderation`. They are written in a few commits rather than one per batch: a query pays per
file it opens, and a reader of a long log reads its last checkpoint and the commits after it. `simulate`
returns the file counts, the statistics job's time (spark-submit, as `make stats` runs it), each query's time
(the median of `repeats` runs in a warm session) and the maintenance's own time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import pyspark.sql.functions as F
from pyspark.sql import SparkSession, Window

from bench.stats_scale import TERMS, time_stats_job
from config import settings
from pipelines import maintenance
from warehouse import paths
from warehouse.tables import ensure_tables, register_tables

START = "2026-10-01 00:00:00"
DATABASE = "chat_bench"
REFRESH_EVERY = 5  # batches per user_moderation refresh (one file each)


def queries(day: str, week_before: str, author: str) -> dict[str, str]:
    """The analysts' usual questions (README "Statistics, report and SQL"), on one day, one week, one author."""
    return {
        "one_author": f"SELECT sent_at, verdict, data, masked_data, terms FROM {DATABASE}.messages "
        f"WHERE author = '{author}' ORDER BY kafka_partition, kafka_offset",
        "one_day_by_hour": f"SELECT date_trunc('hour', sent_at) AS hour, count(*) AS messages, "
        f"round(avg(CAST(is_profane AS INT)) * 100, 1) AS pct_profane FROM {DATABASE}.messages "
        f"WHERE sent_at >= '{day}' AND sent_at < date_add('{day}', 1) GROUP BY 1 ORDER BY 1",
        "week_offenders": f"SELECT author, count(*) AS strikes FROM {DATABASE}.strikes "
        f"WHERE struck_at >= '{week_before}' AND struck_at < '{day}' GROUP BY author ORDER BY strikes DESC LIMIT 10",
        "whole_month_by_day": f"SELECT to_date(sent_at) AS day, count(*) AS messages FROM {DATABASE}.messages "
        "GROUP BY 1 ORDER BY 1",
    }


def build(spark: SparkSession, warehouse: Path, batches: int, per_batch: int, days: float, users: int = 300) -> dict:
    """The ledger's tables after `batches` batches of `per_batch` messages over `days` days; what was written."""
    ensure_tables(spark, warehouse)
    n = batches * per_batch
    span_s = days * 24 * 3600
    author = F.concat(F.lit("user-"), F.floor(F.pow(F.rand(7), 2) * users).cast("string"))
    profane = F.rand(11) < 0.06
    term = F.element_at(F.array(*[F.lit(t) for t in TERMS]), (F.floor(F.rand(13) * len(TERMS)) + 1).cast("int"))
    rows = (
        spark.range(n, numPartitions=4)
        .select(
            F.col("id"),
            (F.col("id") / per_batch).cast("long").alias("batch_id"),
            author.alias("author"),
            profane.alias("is_profane"),
            term.alias("term"),
            F.rand(17).alias("noise"),
        )
        .withColumn(
            "sent_at",
            (F.unix_timestamp(F.lit(START)) + (F.col("id") * span_s / n).cast("long")).cast("timestamp"),
        )
        .withColumn(
            "data",
            F.concat(
                F.when(F.col("is_profane"), F.concat(F.lit("oh "), F.col("term"), F.lit(" again, "))).otherwise(
                    F.lit("see you at the meeting tomorrow, ")
                ),
                F.col("noise").cast("string"),
            ),
        )
    )
    w = Window.partitionBy("author").orderBy("id")
    numbered = (
        rows.withColumn("profane_so_far", F.sum(F.col("is_profane").cast("int")).over(w))
        .withColumn(
            "verdict",
            F.when((F.col("profane_so_far") > 3) | ((F.col("profane_so_far") == 3) & ~F.col("is_profane")), "withheld")
            .when(F.col("is_profane"), "profane")
            .otherwise("clean"),
        )
        .persist()
    )
    one_file_per_batch = lambda df, files: df.repartitionByRange(files, "batch_id")  # noqa: E731
    messages = numbered.select(
        F.concat(F.lit("m-"), F.col("id").cast("string")).alias("message_id"),
        "author",
        "data",
        F.regexp_replace("data", "|".join(TERMS), "****").alias("masked_data"),
        "is_profane",
        F.when(F.col("is_profane"), F.array("term")).otherwise(F.array().cast("array<string>")).alias("terms"),
        "verdict",
        "sent_at",
        F.col("sent_at").alias("ingested_at"),
        F.lit(0).alias("kafka_partition"),
        F.col("id").alias("kafka_offset"),
        "batch_id",
    )
    struck = numbered.where(F.col("verdict") == "profane")
    strikes = struck.select(
        F.concat(F.lit("m-"), F.col("id").cast("string")).alias("message_id"),
        "author",
        F.array("term").alias("terms"),
        F.col("profane_so_far").cast("int").alias("strike_number"),
        F.col("sent_at").alias("struck_at"),
        F.lit(0).alias("kafka_partition"),
        F.col("id").alias("kafka_offset"),
        "batch_id",
    )
    rejected = numbered.where(F.rand(19) < 0.01).select(
        F.col("data").cast("binary").alias("raw_value"),
        F.col("data").alias("raw_text"),
        F.lit("value is not JSON").alias("reason"),
        F.lit(None).cast("string").alias("message_id"),
        F.lit(0).alias("kafka_partition"),
        F.col("id").alias("kafka_offset"),
        F.col("sent_at").alias("kafka_timestamp"),
        F.col("sent_at").alias("seen_at"),
        "batch_id",
    )
    users_df = numbered.groupBy("author").agg(
        F.count(F.lit(1)).alias("messages"),
        F.least(F.sum(F.col("is_profane").cast("int")), F.lit(3)).cast("int").alias("strikes"),
        F.min(F.when(F.col("is_profane") & (F.col("profane_so_far") == 3), F.col("sent_at"))).alias("blocked_at"),
        F.min("sent_at").alias("first_seen"),
        F.max("sent_at").alias("last_seen"),
        F.max("batch_id").alias("last_batch_id"),
    )
    moderation = users_df.select(
        "author",
        "messages",
        "strikes",
        (F.col("strikes") >= 3).alias("is_blocked"),
        "blocked_at",
        F.lit(None).cast("int").alias("blocked_partition"),
        F.lit(None).cast("long").alias("blocked_offset"),
        "first_seen",
        "last_seen",
        F.col("last_seen").alias("updated_at"),
        "last_batch_id",
    )
    for table, df in (
        (paths.MESSAGES, one_file_per_batch(messages, batches)),
        (paths.STRIKES, one_file_per_batch(strikes, batches)),
        (paths.REJECTED_MESSAGES, one_file_per_batch(rejected, batches)),
        (paths.USER_MODERATION, moderation.repartition(max(1, batches // REFRESH_EVERY))),
    ):
        df.write.format("delta").mode("append").save(str(paths.table_path(table, warehouse)))
    numbered.unpersist()
    return {"messages": n, "batches": batches, "per_batch": per_batch, "days": days}


def file_counts(spark: SparkSession, warehouse: Path) -> dict[str, int]:
    return {t: maintenance.file_count(spark, paths.table_path(t, warehouse)) for t in maintenance.COMPACTED}


def time_queries(spark: SparkSession, warehouse: Path, repeats: int = 3) -> dict[str, float]:
    """Each query's median time in seconds over `repeats` runs, after one run that warms the session."""
    register_tables(spark, warehouse, database=DATABASE)
    last = spark.sql(f"SELECT max(sent_at) AS t FROM {DATABASE}.messages").first().t
    day = (last.replace(hour=0, minute=0, second=0) - timedelta(days=1)).strftime("%Y-%m-%d")
    week = (last - timedelta(days=8)).strftime("%Y-%m-%d")
    chatty = spark.sql(f"SELECT author FROM {DATABASE}.user_moderation ORDER BY messages DESC LIMIT 1").first().author
    times = {}
    for name, sql in queries(day, week, chatty).items():
        spark.sql(sql).collect()
        runs = []
        for _ in range(repeats):
            started = time.monotonic()
            spark.sql(sql).collect()
            runs.append(time.monotonic() - started)
        times[name] = round(statistics.median(runs), 3)
    spark.sql(f"DROP DATABASE IF EXISTS {DATABASE} CASCADE")
    return times


def maintain(spark: SparkSession, warehouse: Path) -> dict:
    """What the streams' housekeeper does when the tables are due: compact every table, then VACUUM."""
    started = time.monotonic()
    compacted = maintenance.Maintainer(spark, warehouse, min_new_files=1, vacuum_every_s=0)
    done = compacted.compact_due()
    compact_s = time.monotonic() - started
    compacted.vacuum_due()
    return {"compacted": done, "compact_seconds": round(compact_s, 1), "seconds": round(time.monotonic() - started, 1)}


def simulate(
    work: Path, batches: int = 2000, per_batch: int = 250, days: float = 30, repeats: int = 3, stats_job: bool = True
) -> dict:
    """The whole comparison in `work` (a data directory of its own, replaced): file counts, the statistics job's
    time and the queries' seconds `before` and `after` the maintenance, and the maintenance's own time."""
    import shutil

    from pipelines.session import get_spark

    shutil.rmtree(work, ignore_errors=True)
    warehouse = paths.warehouse_dir(work)
    spark = get_spark("bench-maintenance")
    spark.sparkContext.setLogLevel("ERROR")
    result: dict = {}
    try:
        started = time.monotonic()
        result["data"] = build(spark, warehouse, batches, per_batch, days)
        result["data"]["build_seconds"] = round(time.monotonic() - started, 1)
        for when in ("before", "after"):
            if when == "after":
                result["maintenance"] = maintain(spark, warehouse)
            result[when] = {
                "files": file_counts(spark, warehouse),
                "queries_s": time_queries(spark, warehouse, repeats),
            }
            if stats_job:  # in its own JVM, as `make stats` runs it, while this session waits
                result[when]["stats_job"] = time_stats_job(work)
    finally:
        spark.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.maintenance", description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--per-batch", type=int, default=250)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=settings.load().data_dir / "bench" / "maintenance")
    args = parser.parse_args(argv)
    result = simulate(args.work, args.batches, args.per_batch, args.days, args.repeats)
    print(json.dumps({"bench": "maintenance", **result}, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
