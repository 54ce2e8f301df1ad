"""The statistics job on 1 and 10 million messages: build synthetic ledger tables, time `spark-submit pipelines/user_stats.py`.

    python -m bench.stats_scale [--sizes 1000000 10000000] [--work DIR]

The tables have the ledger's schemas and a realistic shape: one author per 100
messages with a skewed activity (some chatty, many quiet), 6 % profane
messages with one or two terms, strikes and blocks for the authors who reach
three profane messages, 30 days of timestamps. They are written once per size
and kept under --work (default var/bench/stats) for the next run. The time is
the wall time of the job as an operator runs it (spark-submit, JVM start
included), plus the job's own figure without the JVM start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyspark.sql.functions as F
from pyspark.sql import SparkSession, Window

from config import settings
from warehouse import paths
from warehouse.tables import ensure_tables

TERMS = ["mierda", "joder", "puta", "cabrón", "coño", "fuck", "shit", "bitch", "asshole", "gilipollas"]
START = "2026-10-28 00:00:00"
SPAN_S = 30 * 24 * 3600


def build_tables(spark: SparkSession, data_dir: Path, n: int) -> None:
    """Ledger tables with `n` messages under data_dir/warehouse (skipped when already there)."""
    warehouse = paths.warehouse_dir(data_dir)
    marker = data_dir / f"built-{n}"
    if marker.exists():
        return
    ensure_tables(spark, warehouse)
    users = max(10, n // 100)
    ids = spark.range(n, numPartitions=max(2, n // 1_000_000 * 2))
    # skewed activity: squaring a uniform number favours the low user ids
    author = F.concat(F.lit("user-"), F.floor(F.pow(F.rand(7), 2) * users).cast("string"))
    profane = F.rand(11) < 0.06
    term = F.element_at(F.array(*[F.lit(t) for t in TERMS]), (F.floor(F.rand(13) * len(TERMS)) + 1).cast("int"))
    messages = (
        ids.select(
            F.concat(F.lit("m-"), F.col("id").cast("string")).alias("message_id"),
            author.alias("author"),
            profane.alias("is_profane"),
            term.alias("term"),
            (F.unix_timestamp(F.lit(START)) + (F.col("id") * SPAN_S / n).cast("long"))
            .cast("timestamp")
            .alias("sent_at"),
            F.col("id"),
        )
        .withColumn("terms", F.when(F.col("is_profane"), F.array("term")).otherwise(F.array().cast("array<string>")))
        .withColumn(
            "data",
            F.when(F.col("is_profane"), F.concat(F.lit("oh "), F.col("term"), F.lit(", again"))).otherwise(
                F.lit("see you at the meeting tomorrow")
            ),
        )
        .withColumn("masked_data", F.when(F.col("is_profane"), F.lit("oh ****, again")).otherwise(F.col("data")))
    )
    # strike numbers in time order per author; the third blocks, later messages are withheld
    w = Window.partitionBy("author").orderBy("id")
    numbered = messages.withColumn("profane_so_far", F.sum(F.col("is_profane").cast("int")).over(w))
    verdict = (
        F.when((F.col("profane_so_far") > 3) | ((F.col("profane_so_far") == 3) & ~F.col("is_profane")), "withheld")
        .when(F.col("is_profane"), "profane")
        .otherwise("clean")
    )
    numbered = numbered.withColumn("verdict", verdict).persist()
    (
        numbered.select(
            "message_id",
            "author",
            "data",
            "masked_data",
            "is_profane",
            "terms",
            "verdict",
            "sent_at",
            F.col("sent_at").alias("ingested_at"),
            F.lit(0).alias("kafka_partition"),
            F.col("id").alias("kafka_offset"),
            F.lit(0).cast("long").alias("batch_id"),
        )
        .write.format("delta")
        .mode("overwrite")
        .save(str(warehouse / paths.MESSAGES))
    )
    strikes = numbered.where(F.col("is_profane") & (F.col("verdict") == "profane"))
    (
        strikes.select(
            "message_id",
            "author",
            "terms",
            F.col("profane_so_far").cast("int").alias("strike_number"),
            F.col("sent_at").alias("struck_at"),
            F.lit(0).alias("kafka_partition"),
            F.col("id").alias("kafka_offset"),
            F.lit(0).cast("long").alias("batch_id"),
        )
        .write.format("delta")
        .mode("overwrite")
        .save(str(warehouse / paths.STRIKES))
    )
    per_user = numbered.groupBy("author").agg(
        F.count(F.lit(1)).alias("messages"),
        F.least(F.sum(F.col("is_profane").cast("int")), F.lit(3)).cast("int").alias("strikes"),
        F.min(F.when(F.col("is_profane") & (F.col("profane_so_far") == 3), F.col("sent_at"))).alias("blocked_at"),
        F.min("sent_at").alias("first_seen"),
        F.max("sent_at").alias("last_seen"),
    )
    (
        per_user.select(
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
            F.lit(0).cast("long").alias("last_batch_id"),
        )
        .write.format("delta")
        .mode("overwrite")
        .save(str(warehouse / paths.USER_MODERATION))
    )
    numbered.unpersist()
    marker.touch()


def time_stats_job(data_dir: Path) -> dict:
    """Run the job the way an operator does; return its wall time and its own timing line."""
    venv_bin = Path(sys.executable).parent
    env = dict(
        os.environ,
        PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOCAL_IP=os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    )
    started = time.monotonic()
    result = subprocess.run(
        [
            str(venv_bin / "spark-submit"),
            "--properties-file",
            "conf/spark-defaults.conf",
            "pipelines/user_stats.py",
            "--data-dir",
            str(data_dir),
        ],
        cwd=settings.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"the statistics job failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    job = re.search(r"job took ([\d.]+)s", result.stdout)
    users = re.search(r"^([\d,]+) users, ", result.stdout, re.M)
    return {
        "seconds": round(wall, 1),
        "job_seconds": float(job.group(1)) if job else None,
        "users": int(users.group(1).replace(",", "")) if users else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=settings.load().data_dir / "bench" / "stats")
    args = parser.parse_args()
    from pipelines.session import get_spark

    results = {}
    spark = get_spark("bench-stats-data")
    spark.sparkContext.setLogLevel("ERROR")
    for n in args.sizes:
        t = time.monotonic()
        build_tables(spark, args.work / str(n), n)
        print(f"stats-scale: {n:,} messages in Delta ready in {time.monotonic() - t:.0f}s", flush=True)
    spark.stop()
    for n in args.sizes:
        results[n] = time_stats_job(args.work / str(n))
        print(f"stats-scale: {n:,} messages: {results[n]}", flush=True)
    print(json.dumps({str(k): v for k, v in results.items()}))


if __name__ == "__main__":
    main()
