"""pipelines/user_stats.py, its report and the SQL shell: every statistic on a hand-computed dataset,
then the job run with spark-submit on a temporary warehouse, rerun, and queried by name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from chispa import assert_df_equality

from config.settings import REPO_ROOT
from pipelines.report import ReportData, render_report
from pipelines.sql import show_value, split_statements
from pipelines.textable import display_width, format_table
from pipelines.user_stats import (
    StatsError,
    activity_over_time,
    moderation_over_time,
    profanity_rate_histogram,
    run,
    top_terms,
    user_stats,
    write_stats,
)
from warehouse import paths
from warehouse.tables import (
    MESSAGES_SCHEMA,
    REJECTED_MESSAGES_SCHEMA,
    STRIKES_SCHEMA,
    USER_MODERATION_SCHEMA,
    USER_STATS_SCHEMA,
    ensure_tables,
)

ZOE, LI = "Zoë 🌍", "李小龙"


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second)


def by_hour(counts: dict[int, int]) -> list[int]:
    return [counts.get(h, 0) for h in range(24)]


# (author, sent_at, verdict, terms); is_profane = bool(terms)
MESSAGES = [
    ("ana", at(25, 9, 10), "clean", []),  # ana: never profane, two active days
    ("ana", at(26, 21, 5), "clean", []),
    ("ana", at(26, 9, 30), "clean", []),
    (ZOE, at(26, 10, 0), "profane", ["mierda"]),  # Zoë: three strikes, blocked at 11:20
    (ZOE, at(26, 10, 5), "clean", []),
    (ZOE, at(26, 10, 10), "profane", ["mierda", "joder"]),
    (ZOE, at(26, 11, 20), "profane", ["puta"]),
    (ZOE, at(26, 11, 30), "withheld", ["culo"]),  # after the block: recorded, not served
    (LI, at(27, 3, 0), "clean", []),  # a single message
    ("bob", at(27, 23, 59, 59), "profane", ["shit", "shit"]),  # one strike; active on two dates
    ("bob", at(28, 0, 0, 1), "clean", []),
]
STRIKES = [(ZOE, at(26, 10, 0), 1), (ZOE, at(26, 10, 10), 2), (ZOE, at(26, 11, 20), 3), ("bob", at(27, 23, 59, 59), 1)]
MODERATION = [
    ("ana", 3, 0, False, None),
    (ZOE, 5, 3, True, at(26, 11, 20)),
    (LI, 1, 0, False, None),
    ("bob", 2, 1, False, None),
]

EXPECTED = [  # computed by hand from the rows above
    # author, messages, profane, rate, withheld, strikes, blocked, blocked_at, first, last, days, by hour, busiest, terms
    ("ana", 3, 0, 0.0, 0, 0, False, None, at(25, 9, 10), at(26, 21, 5), 2, by_hour({9: 2, 21: 1}), 9, []),
    (
        "bob",
        2,
        1,
        0.5,
        0,
        1,
        False,
        None,
        at(27, 23, 59, 59),
        at(28, 0, 0, 1),
        2,
        by_hour({23: 1, 0: 1}),
        0,
        [("shit", 2)],
    ),
    (
        ZOE,
        5,
        4,
        0.8,
        1,
        3,
        True,
        at(26, 11, 20),
        at(26, 10, 0),
        at(26, 11, 30),
        1,
        by_hour({10: 3, 11: 2}),
        10,
        [("mierda", 2), ("culo", 1), ("joder", 1), ("puta", 1)],
    ),
    (LI, 1, 0, 0.0, 0, 0, False, None, at(27, 3, 0), at(27, 3, 0), 1, by_hour({3: 1}), 3, []),
]


def message_rows():
    return [
        (f"m{i}", author, f"text {i}", f"masked {i}", bool(terms), terms, verdict, sent, sent, 0, i, 1)
        for i, (author, sent, verdict, terms) in enumerate(MESSAGES)
    ]


def strike_rows():
    return [(f"s{i}", author, ["x"], number, struck, 0, i, 1) for i, (author, struck, number) in enumerate(STRIKES)]


def moderation_rows():
    return [
        (
            author,
            messages,
            strikes,
            blocked,
            blocked_at,
            0 if blocked else None,
            6 if blocked else None,
            at(25, 0),
            at(28, 0),
            at(28, 0),
            1,
        )
        for author, messages, strikes, blocked, blocked_at in MODERATION
    ]


@pytest.fixture(scope="module")
def sources(spark):
    return (
        spark.createDataFrame(message_rows(), MESSAGES_SCHEMA),
        spark.createDataFrame(strike_rows(), STRIKES_SCHEMA),
        spark.createDataFrame(moderation_rows(), USER_MODERATION_SCHEMA),
    )


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


def test_report_is_self_contained_and_escapes_user_text(spark, sources):
    hostile = "<img src=x onerror=alert(1)>"
    row = spark.createDataFrame([(hostile, *EXPECTED[2][1:])], USER_STATS_SCHEMA).first()
    data = ReportData(
        versions={"messages": 7},
        totals={
            "users": 1,
            "messages": 5,
            "profane_messages": 4,
            "strikes": 3,
            "blocked": 1,
            "first_seen": at(26, 10),
            "last_seen": at(26, 11, 30),
        },
        rejected=2,
        activity=[],
        offenders=[row],
        rate_histogram=[],
        moderation=[],
        top_users=[row],
    )
    page = render_report(data, generated_at=datetime(2026, 11, 27, 12, 0))
    assert page.count("<svg") == 5
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the report must not load anything"
    assert "<script" not in page
    assert "chat.messages VERSION AS OF 7" in page and "no data yet" in page


def test_text_tables_align_wide_characters():
    table = format_table(["author", "n"], [[LI, "1"], ["ana", "22"]], align_right={1})
    widths = {display_width(line) for line in table.splitlines()}
    assert display_width(LI) == 6 and len(widths) == 1, table


def test_sql_statement_splitting_and_values():
    assert split_statements("SELECT ';' AS a; -- a comment; here\nSELECT 2;  SELECT") == (
        ["SELECT ';' AS a", "SELECT 2"],
        "  SELECT",
    )
    assert (
        show_value(None) == "NULL"
        and show_value(True) == "true"
        and show_value(at(26, 11, 20)) == "2026-11-26 11:20:00"
    )
    assert show_value([1, None]) == "[1, NULL]"


def test_a_missing_ledger_is_a_clear_error(spark, tmp_path):
    with pytest.raises(StatsError, match="no Delta table `messages`.*make up"):
        run(spark, tmp_path)


# -- the real thing: Delta tables on disk, spark-submit, the SQL shell ------------------------------


@pytest.fixture(scope="module")
def warehouse_dir(spark, tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("stats-data")
    warehouse = paths.warehouse_dir(data_dir)
    ensure_tables(spark, warehouse)
    for name, rows, schema in (
        (paths.MESSAGES, message_rows(), MESSAGES_SCHEMA),
        (paths.STRIKES, strike_rows(), STRIKES_SCHEMA),
        (paths.USER_MODERATION, moderation_rows(), USER_MODERATION_SCHEMA),
        (
            paths.REJECTED_MESSAGES,
            [(b"{", "{", "value is not JSON", None, 0, 99, None, at(28, 0), 1)],
            REJECTED_MESSAGES_SCHEMA,
        ),
    ):
        spark.createDataFrame(rows, schema).write.format("delta").mode("append").save(str(warehouse / name))
    # a user_stats table from an earlier run, so the SQL tests do not depend on the spark-submit test
    write_stats(
        spark,
        user_stats(
            *(
                spark.read.format("delta").load(str(warehouse / n))
                for n in (paths.MESSAGES, paths.STRIKES, paths.USER_MODERATION)
            )
        ),
        warehouse,
    )
    return data_dir


def spark_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""),
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
    )


@pytest.mark.integration
def test_spark_submit_builds_user_stats_and_a_rerun_gives_the_same_table(spark, warehouse_dir):
    report = warehouse_dir / "reports" / "stats.html"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "spark-submit"),
            "--properties-file",
            "conf/spark-defaults.conf",
            "pipelines/user_stats.py",
            "--data-dir",
            str(warehouse_dir),
            "--report",
            str(report),
        ],
        cwd=REPO_ROOT,
        env=spark_env(),
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

    location = str(paths.table_path(paths.USER_STATS, paths.warehouse_dir(warehouse_dir)))
    expected = spark.createDataFrame(EXPECTED, USER_STATS_SCHEMA).orderBy("author")
    first = spark.read.format("delta").load(location)
    assert_df_equality(first.orderBy("author"), expected, ignore_nullable=True)

    built = run(spark, warehouse_dir, report, top=3)  # the rerun, in this process
    history = spark.sql(f"DESCRIBE HISTORY delta.`{location}`").orderBy("version").collect()
    assert built["version"] == history[-1].version == history[-2].version + 1
    assert [h.operation for h in history[-2:]] == ["WRITE", "WRITE"]
    assert all(h.operationParameters["mode"] == "Overwrite" for h in history[-2:])
    again = spark.read.format("delta").load(location)
    assert again.count() == len(EXPECTED)
    assert_df_equality(again.orderBy("author"), expected, ignore_nullable=True)


@pytest.mark.integration
def test_sql_shell_queries_every_table_by_name_with_time_travel(warehouse_dir):
    queries = (
        "SELECT author, strikes, is_blocked FROM chat.user_stats ORDER BY strikes DESC LIMIT 2; "
        "SELECT count(*) AS n FROM chat.messages VERSION AS OF 0; "
        "SELECT reason FROM chat.rejected_messages; SELECT count(*) AS s FROM chat.strikes; "
        "SELECT author FROM chat.user_moderation WHERE is_blocked; SELECT * FROM chat.no_such_table"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.sql", "--data-dir", str(warehouse_dir), "-e", queries],
        cwd=REPO_ROOT,
        env=spark_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, "the last statement fails, so the exit code says so"
    out = result.stdout
    assert re.search(rf"^{re.escape(ZOE)}\s+3\s+true$", out, re.M), out
    assert re.search(r"^bob\s+1\s+false$", out, re.M) and "(2 rows)" in out
    assert re.search(r"^n\n-+\n\s*0$", out, re.M), "version 0 of messages is the empty table ensure_tables made"
    assert "value is not JSON" in out and re.search(r"^s\n-+\n\s*4$", out, re.M)
    assert "error:" in result.stderr and "no_such_table" in result.stderr and "Traceback" not in result.stderr
    for table in paths.ALL_TABLES:
        assert f"chat.{table}" in result.stderr


@pytest.mark.integration
def test_sql_shell_reads_statements_from_its_prompt(warehouse_dir):
    session = "\\d\nSELECT author,\n  messages FROM chat.user_stats\n  WHERE author = 'ana';\n\\q\n"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.sql", "--data-dir", str(warehouse_dir)],
        input=session,
        cwd=REPO_ROOT,
        env=spark_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "user_stats" in result.stdout and "rejected_messages" in result.stdout  # \d
    assert re.search(r"^ana\s+3$", result.stdout, re.M), result.stdout
