"""pipelines/sql.py (`make sql`): statements split and values shown, then the shell run on a temporary warehouse."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from config.settings import REPO_ROOT
from pipelines.sql import show_value, split_statements
from tests.pipelines.conftest import spark_env
from tests.pipelines.stats_data import MESSAGES, ZOE, at, message_rows
from warehouse import paths
from warehouse.tables import MESSAGES_SCHEMA


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


@pytest.fixture(scope="module")
def travelled(spark, stats_data_dir, tmp_path_factory):
    """A copy of the hand-computed warehouse whose `messages` has a version 2 (one more row) after the version 1
    holding the dataset; (its data directory, version 1's commit time as Spark SQL writes a timestamp)."""
    data_dir = tmp_path_factory.mktemp("travelled") / "data"
    shutil.copytree(stats_data_dir, data_dir)  # commit files keep their times
    location = str(paths.table_path(paths.MESSAGES, paths.warehouse_dir(data_dir)))
    [row] = message_rows()[:1]
    spark.createDataFrame([("later", *row[1:])], MESSAGES_SCHEMA).write.format("delta").mode("append").save(location)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{location}`")
    [(first_version, at_first)] = (
        history.where("version = 1")
        .selectExpr("version", "date_format(timestamp, 'yyyy-MM-dd HH:mm:ss.SSS') AS at")
        .collect()
    )
    assert first_version == 1 and history.agg({"version": "max"}).first()[0] == 2
    return data_dir, at_first


@pytest.mark.integration
def test_sql_shell_queries_every_table_by_name_with_time_travel(travelled):
    """README: `make sql` reads every table as chat.<table>, travels back with `VERSION AS OF n` and
    `TIMESTAMP AS OF '…'` to an earlier version that holds data, and `DESCRIBE HISTORY` lists the versions."""
    data_dir, at_first = travelled
    queries = (
        "SELECT author, strikes, is_blocked FROM chat.user_stats ORDER BY strikes DESC LIMIT 2; "
        "SELECT count(*) AS n FROM chat.messages VERSION AS OF 0; "
        "SELECT count(*) AS v1 FROM chat.messages VERSION AS OF 1; SELECT count(*) AS v2 FROM chat.messages; "
        f"SELECT count(*) AS at_v1 FROM chat.messages TIMESTAMP AS OF '{at_first}'; "
        "SELECT message_id AS gone FROM chat.messages VERSION AS OF 1 WHERE message_id = 'later'; "
        "DESCRIBE HISTORY chat.messages; "
        "SELECT reason FROM chat.rejected_messages; SELECT count(*) AS s FROM chat.strikes; "
        "SELECT author FROM chat.user_moderation WHERE is_blocked; SELECT * FROM chat.no_such_table"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.sql", "--data-dir", str(data_dir), "-e", queries],
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
    for column, count in (("v1", len(MESSAGES)), ("v2", len(MESSAGES) + 1), ("at_v1", len(MESSAGES))):
        assert re.search(rf"^{column}\n-+\n\s*{count}$", out, re.M), (column, count, out)
    assert re.search(r"^gone\n-+\n\(0 rows\)$", out, re.M), out
    history = re.findall(r"^\s*(\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", out, re.M)
    assert history == ["2", "1", "0"], out  # DESCRIBE HISTORY: newest first
    assert "value is not JSON" in out and re.search(r"^s\n-+\n\s*4$", out, re.M)
    assert "error:" in result.stderr and "no_such_table" in result.stderr and "Traceback" not in result.stderr
    for table in paths.ALL_TABLES:
        assert f"chat.{table}" in result.stderr


@pytest.mark.integration
def test_sql_shell_reads_statements_from_its_prompt(stats_data_dir):
    session = "\\d\n\\d chat.messages\nSELECT author,\n  messages FROM chat.user_stats\n  WHERE author = 'ana';\n\\q\n"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.sql", "--data-dir", str(stats_data_dir)],
        input=session,
        cwd=REPO_ROOT,
        env=spark_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "user_stats" in result.stdout and "rejected_messages" in result.stdout  # \d
    assert re.search(r"^masked_data\s+string", result.stdout, re.M), result.stdout  # \d chat.messages
    assert re.search(r"^ana\s+3$", result.stdout, re.M), result.stdout
