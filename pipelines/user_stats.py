"""Per-user statistics: the ledger's Delta tables → Delta `user_stats` (one overwrite), a summary, an HTML report.

    spark-submit --properties-file conf/spark-defaults.conf pipelines/user_stats.py [--data-dir DIR]
                 [--report FILE] [--top N]

or `make stats`. The report names the Delta version of every table it was built from. README
"Statistics, report and SQL" describes the table and the report.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyspark.sql.functions as F
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession

from pipelines import cli
from pipelines.report import NUMERIC_USER_COLUMNS, USER_COLUMNS, ReportData, user_cells, write_report
from pipelines.session import get_spark
from pipelines.textable import format_table
from warehouse import paths
from warehouse.tables import USER_STATS_SCHEMA, ensure_table

TOP_TERMS = 5
HOURS = 24
SOURCES = (paths.MESSAGES, paths.STRIKES, paths.USER_MODERATION)


# -- the statistics (pure DataFrame functions, tested with chispa) ------------------------------


def _by_hour_of_day(sent_at: Column) -> Column:
    """24 counts: the messages sent in each hour of the day (UTC)."""
    return F.array(*[F.count(F.when(F.hour(sent_at) == h, 1)) for h in range(HOURS)])


def _most_frequent_first(left: Column, right: Column) -> Column:
    return (
        F.when(left["hits"] > right["hits"], -1)
        .when(left["hits"] < right["hits"], 1)
        .when(left["term"] < right["term"], -1)
        .when(left["term"] > right["term"], 1)
        .otherwise(0)
    )


def top_terms(messages: DataFrame, limit: int = TOP_TERMS) -> DataFrame:
    """Per author, the `limit` most frequent matched terms, as (term, count), ties by term."""
    counts = (
        messages.where(F.col("is_profane"))
        .select("author", F.explode("terms").alias("term"))
        .groupBy("author", "term")
        .agg(F.count(F.lit(1)).alias("hits"))
    )
    return counts.groupBy("author").agg(
        F.slice(F.array_sort(F.collect_list(F.struct("term", "hits")), _most_frequent_first), 1, limit).alias(
            "top_terms"
        )
    )


def user_stats(messages: DataFrame, strikes: DataFrame, user_moderation: DataFrame) -> DataFrame:
    """One row per author of `messages`, in USER_STATS_SCHEMA's columns.

    One aggregation pass over `messages` (no DISTINCT, which Spark would plan as
    an expansion of every row: the active days are the size of a set of dates),
    one over its profane rows for the terms.
    """
    activity = messages.groupBy("author").agg(
        F.count(F.lit(1)).alias("messages"),
        F.count(F.when(F.col("is_profane"), 1)).alias("profane_messages"),
        F.count(F.when(F.col("verdict") == "withheld", 1)).alias("withheld_messages"),
        F.min("sent_at").alias("first_seen"),
        F.max("sent_at").alias("last_seen"),
        F.size(F.collect_set(F.to_date("sent_at"))).cast("int").alias("active_days"),
        _by_hour_of_day(F.col("sent_at")).alias("messages_by_hour"),
    )
    struck = strikes.groupBy("author").agg(F.count(F.lit(1)).cast("long").alias("strikes"))
    blocked = user_moderation.select("author", "is_blocked", "blocked_at")
    busiest = F.array_position("messages_by_hour", F.array_max("messages_by_hour")) - 1
    return (
        activity.join(struck, "author", "left")
        .join(blocked, "author", "left")
        .join(top_terms(messages), "author", "left")
        .select(
            "author",
            "messages",
            "profane_messages",
            (F.col("profane_messages") / F.col("messages")).alias("profanity_rate"),
            "withheld_messages",
            F.coalesce("strikes", F.lit(0).cast("long")).alias("strikes"),
            F.coalesce("is_blocked", F.lit(False)).alias("is_blocked"),
            F.when(F.col("is_blocked"), F.col("blocked_at")).alias("blocked_at"),
            "first_seen",
            "last_seen",
            "active_days",
            "messages_by_hour",
            busiest.cast("int").alias("busiest_hour"),
            F.coalesce("top_terms", F.array().cast(USER_STATS_SCHEMA["top_terms"].dataType)).alias("top_terms"),
        )
    )


# -- what the report plots (small aggregates, collected to the driver) ---------------------------

RATE_BINS = 20  # 5 % wide


def activity_over_time(messages: DataFrame) -> DataFrame:
    """Messages and profane messages per clock hour, all users together."""
    return (
        messages.groupBy(F.date_trunc("hour", "sent_at").alias("hour"))
        .agg(F.count(F.lit(1)).alias("messages"), F.count(F.when(F.col("is_profane"), 1)).alias("profane_messages"))
        .orderBy("hour")
    )


def profanity_rate_histogram(stats: DataFrame, bins: int = RATE_BINS) -> DataFrame:
    """Users per profanity-rate bin: bin i holds rates in [i/bins, (i+1)/bins), the last bin includes 1."""
    bin_of = F.least(F.floor(F.col("profanity_rate") * bins), F.lit(bins - 1)).cast("int")
    return stats.groupBy(bin_of.alias("bin")).agg(F.count(F.lit(1)).alias("users")).orderBy("bin")


def moderation_over_time(strikes: DataFrame, user_moderation: DataFrame) -> DataFrame:
    """Per clock hour: strikes given and users blocked."""
    s = strikes.groupBy(F.date_trunc("hour", "struck_at").alias("hour")).agg(F.count(F.lit(1)).alias("strikes"))
    b = (
        user_moderation.where(F.col("is_blocked") & F.col("blocked_at").isNotNull())
        .groupBy(F.date_trunc("hour", "blocked_at").alias("hour"))
        .agg(F.count(F.lit(1)).alias("blocks"))
    )
    return (
        s.join(b, "hour", "full")
        .select(
            "hour",
            F.coalesce("strikes", F.lit(0)).cast("long").alias("strikes"),
            F.coalesce("blocks", F.lit(0)).cast("long").alias("blocks"),
        )
        .orderBy("hour")
    )


def report_data(
    stats: DataFrame,
    messages: DataFrame,
    strikes: DataFrame,
    user_moderation: DataFrame,
    versions: dict[str, int],
    rejected: int | None,
    top: int,
) -> ReportData:
    """What the report shows, collected: totals, the series of its charts, the `top` users by strikes."""
    ranked = stats.orderBy(F.desc("strikes"), F.desc("profane_messages"), F.desc("messages"), "author")
    return ReportData(
        versions=versions,
        totals=stats.agg(
            F.count(F.lit(1)).alias("users"),
            F.sum("messages").alias("messages"),
            F.sum("profane_messages").alias("profane_messages"),
            F.sum("strikes").alias("strikes"),
            F.count(F.when(F.col("is_blocked"), 1)).alias("blocked"),
            F.min("first_seen").alias("first_seen"),
            F.max("last_seen").alias("last_seen"),
        )
        .first()
        .asDict(),
        rejected=rejected,
        activity=activity_over_time(messages).collect(),
        offenders=ranked.where(F.col("profane_messages") > 0).limit(top).collect(),
        rate_histogram=profanity_rate_histogram(stats).collect(),
        moderation=moderation_over_time(strikes, user_moderation).collect(),
        top_users=ranked.limit(top).collect(),
        rate_bins=RATE_BINS,
    )


# -- the job -------------------------------------------------------------------------------------


class StatsError(Exception):
    """Something the operator has to fix (no data yet, ...): printed as one line, exit code 1."""


@dataclass
class Progress:
    steps: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def step(self, text: str) -> float:
        self.done += 1
        print(f"stats  [{self.done}/{self.steps}] {text} ...", flush=True)
        return time.monotonic()

    def finished(self, since: float, text: str = "") -> None:
        print(f"stats        done in {time.monotonic() - since:.1f}s{'  ' + text if text else ''}", flush=True)


def read_source(spark: SparkSession, warehouse: Path, name: str) -> tuple[DataFrame, int]:
    location = paths.table_path(name, warehouse)
    if not DeltaTable.isDeltaTable(spark, str(location)):
        raise StatsError(
            f"no Delta table `{name}` at {location}: start the chat (`make up`) and send "
            "some messages (or `make demo-data`) first"
        )
    table = DeltaTable.forPath(spark, str(location))
    version = table.history(1).select("version").first()[0]
    # read the version the report names, even if the ledger commits meanwhile
    return spark.read.format("delta").option("versionAsOf", version).load(str(location)), version


def _columns(schema) -> list[tuple[str, str]]:
    return [(f.name, f.dataType.simpleString()) for f in schema.fields]


def write_stats(spark: SparkSession, stats: DataFrame, warehouse: Path) -> int:
    """Replace `user_stats` in one commit; return the new version."""
    location = str(paths.table_path(paths.USER_STATS, warehouse))
    existing = ensure_table(spark, paths.USER_STATS, warehouse).toDF().schema
    # a table written by an older version of this job, with other columns, is replaced as a whole
    replace_schema = _columns(existing) != _columns(USER_STATS_SCHEMA)
    (
        stats.orderBy("author")
        .coalesce(1)
        .write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", str(replace_schema).lower())
        .option("userMetadata", "pipelines/user_stats.py")
        .save(location)
    )
    return DeltaTable.forPath(spark, location).history(1).select("version").first()[0]


def run(spark: SparkSession, data_dir: Path, report_path: Path | None = None, top: int = 15) -> dict:
    """The whole job; returns what it built (for the tests and the caller's last line)."""
    warehouse = paths.warehouse_dir(data_dir)
    progress = Progress(steps=5)

    t = progress.step(f"reading {', '.join(SOURCES)} from {warehouse}")
    sources, versions = {}, {}
    for name in SOURCES:
        sources[name], versions[name] = read_source(spark, warehouse, name)
    rejected_count = None
    if DeltaTable.isDeltaTable(spark, str(paths.table_path(paths.REJECTED_MESSAGES, warehouse))):
        rejected_count = (
            spark.read.format("delta").load(str(paths.table_path(paths.REJECTED_MESSAGES, warehouse))).count()
        )
    progress.finished(t, "versions " + ", ".join(f"{n} v{v}" for n, v in versions.items()))

    t = progress.step("computing per-user statistics")
    messages = sources[paths.MESSAGES].select("author", "sent_at", "is_profane", "verdict", "terms")
    stats = user_stats(messages, sources[paths.STRIKES], sources[paths.USER_MODERATION]).persist()
    users = stats.count()
    progress.finished(t, f"{users:,} users")

    t = progress.step(f"writing Delta {paths.USER_STATS} (one overwrite commit)")
    version = write_stats(spark, stats, warehouse)
    progress.finished(t, f"{paths.USER_STATS} v{version}")

    t = progress.step("aggregating the report's series")
    data = report_data(
        stats,
        messages,
        sources[paths.STRIKES],
        sources[paths.USER_MODERATION],
        {**versions, paths.USER_STATS: version},
        rejected_count,
        top,
    )
    progress.finished(t, f"{len(data.activity):,} hours of activity")

    t = progress.step("drawing the charts and writing the HTML report")
    report_path = report_path or data_dir / "reports" / "user_stats.html"
    write_report(data, report_path)
    progress.finished(t, str(report_path))

    stats.unpersist()
    totals = data.totals
    print()
    rows = [user_cells(r) for r in data.top_users]
    print(f"Top {len(rows)} of {users:,} users by strikes (table {paths.DATABASE}.{paths.USER_STATS} v{version}):")
    print(format_table(USER_COLUMNS, rows, align_right=NUMERIC_USER_COLUMNS))
    print(
        f"\n{users:,} users, {totals['messages'] or 0:,} messages, {totals['profane_messages'] or 0:,} profane, "
        f"{totals['strikes'] or 0:,} strikes, {totals['blocked']:,} blocked"
        + (f", {rejected_count:,} rejected records" if rejected_count is not None else "")
        + f"; job took {time.monotonic() - progress.started:.1f}s"
    )
    print(f"Report: {report_path}")
    return {"users": users, "version": version, "report": report_path, "versions": data.versions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipelines/user_stats.py", description=__doc__.split("\n")[0])
    cli.add_data_dir(parser)
    parser.add_argument("--report", type=Path, help="HTML report file (default: DATA_DIR/reports/user_stats.html)")
    parser.add_argument(
        "--top", type=cli.at_least_one, default=15, help="users in the printed summary and the offenders chart"
    )
    args = parser.parse_args(argv)
    data_dir = cli.data_dir(args)
    started = time.monotonic()
    print(f"stats  starting Spark (warehouse {paths.warehouse_dir(data_dir)}) ...", flush=True)
    spark = get_spark("chat-user-stats")
    spark.sparkContext.setLogLevel("WARN")
    print(
        f"stats  Spark {spark.version} ready in {time.monotonic() - started:.1f}s (master {spark.sparkContext.master})",
        flush=True,
    )
    try:
        run(spark, data_dir, args.report, args.top)
    except StatsError as exc:
        print(f"stats  error: {exc}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
