"""pipelines/user_stats.py: every statistic on a hand-computed dataset, then the job run with spark-submit on a
temporary warehouse, and rerun."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from chispa import assert_df_equality

from config.settings import REPO_ROOT
from pipelines.user_stats import (
    StatsError,
    activity_over_time,
    moderation_over_time,
    profanity_rate_histogram,
    run,
    top_terms,
    user_stats,
)
from tests.pipelines.conftest import spark_env
from tests.pipelines.stats_data import EXPECTED, ZOE, at
from tests.pipelines.stats_data import sources as stats_sources
from warehouse import paths
from warehouse.tables import USER_STATS_SCHEMA


@pytest.fixture(scope="module")
def sources(spark):
    return stats_sources(spark)


def test_every_statistic_matches_the_hand_computed_rows(spark, sources):
    actual = user_stats(*sources).orderBy("author")
    expected = spark.createDataFrame(EXPECTED, USER_STATS_SCHEMA).orderBy("author")
    assert actual.columns == USER_STATS_SCHEMA.names
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_top_terms_keeps_the_five_most_frequent_ties_by_term(spark):
    terms = ["zorra"] * 3 + ["puta"] * 3 + ["mierda"] * 2 + ["joder", "culo", "coño", "hostia"]
    rows = [("troll", True, [t]) for t in terms] + [("troll", False, ["ignored"]), ("clean", False, [])]
    df = spark.createDataFrame(rows, "author string, is_profane boolean, terms array<string>")
    actual = {r.author: [(t.term, t.hits) for t in r.top_terms] for r in top_terms(df).collect()}
    # 'clean' has no profane message, so no row: user_stats gives it an empty list
    assert actual == {"troll": [("puta", 3), ("zorra", 3), ("mierda", 2), ("coño", 1), ("culo", 1)]}


def test_report_series(spark, sources):
    messages, strikes, moderation = sources
    activity = [(r.hour, r.messages, r.profane_messages) for r in activity_over_time(messages).collect()]
    assert activity == [
        (at(25, 9), 1, 0),
        (at(26, 9), 1, 0),
        (at(26, 10), 3, 2),
        (at(26, 11), 2, 2),
        (at(26, 21), 1, 0),
        (at(27, 3), 1, 0),
        (at(27, 23), 1, 1),
        (at(28, 0), 1, 0),
    ]
    over_time = [tuple(r) for r in moderation_over_time(strikes, moderation).collect()]
    assert over_time == [(at(26, 10), 2, 0), (at(26, 11), 1, 1), (at(27, 23), 1, 0)]
    rates = spark.createDataFrame([(r,) for r in (0.0, 0.049, 0.05, 0.5, 0.999, 1.0)], "profanity_rate double")
    assert [tuple(r) for r in profanity_rate_histogram(rates).collect()] == [(0, 2), (1, 1), (10, 1), (19, 2)]


def test_a_missing_ledger_is_a_clear_error(spark, tmp_path):
    with pytest.raises(StatsError, match="no Delta table `messages`.*make up"):
        run(spark, tmp_path)


# -- the real thing: Delta tables on disk, spark-submit ------------------------------------------


@pytest.mark.integration
def test_spark_submit_builds_user_stats_and_a_rerun_gives_the_same_table(spark, stats_data_dir, tmp_path):
    report = stats_data_dir / "reports" / "stats.html"
    # As on a cluster: the job is given a data directory of its own, the warehouse is CHAT_WAREHOUSE_DIR
    # (the job once read DATA_DIR/warehouse whenever a data directory was passed, issue 12).
    elsewhere = tmp_path / "a-data-dir-without-the-warehouse"
    warehouse = paths.warehouse_dir(stats_data_dir)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "spark-submit"),
            "--properties-file",
            "conf/spark-defaults.conf",
            "pipelines/user_stats.py",
            "--data-dir",
            str(elsewhere),
            "--report",
            str(report),
        ],
        cwd=REPO_ROOT,
        env={**spark_env(), "CHAT_WAREHOUSE_DIR": str(warehouse)},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert [int(n) for n in re.findall(r"^stats  \[(\d)/5\]", out, re.M)] == [1, 2, 3, 4, 5], out
    assert re.search(rf"^{re.escape(ZOE)}\s+5\s+4\s+80\.0%\s+3\s+2026-11-26 11:20", out, re.M), out
    assert "4 users, 11 messages, 5 profane, 4 strikes, 1 blocked, 1 rejected records" in out
    assert report.read_text().count("<svg") == 5
    assert not (elsewhere / "warehouse").exists()

    location = str(paths.table_path(paths.USER_STATS, paths.warehouse_dir(stats_data_dir)))
    expected = spark.createDataFrame(EXPECTED, USER_STATS_SCHEMA).orderBy("author")
    first = spark.read.format("delta").load(location)
    assert_df_equality(first.orderBy("author"), expected, ignore_nullable=True)

    built = run(spark, stats_data_dir, report, top=3)  # the rerun, in this process
    history = spark.sql(f"DESCRIBE HISTORY delta.`{location}`").orderBy("version").collect()
    assert built["version"] == history[-1].version == history[-2].version + 1
    assert [h.operation for h in history[-2:]] == ["WRITE", "WRITE"]
    assert all(h.operationParameters["mode"] == "Overwrite" for h in history[-2:])
    again = spark.read.format("delta").load(location)
    assert again.count() == len(EXPECTED)
    assert_df_equality(again.orderBy("author"), expected, ignore_nullable=True)
