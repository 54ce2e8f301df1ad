"""pipelines/sql.py (`make sql`): statements split and values shown, then the shell run on a temporary warehouse."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from config.settings import REPO_ROOT
from pipelines.sql import show_value, split_statements
from tests.pipelines.conftest import spark_env
from tests.pipelines.stats_data import ZOE, at
from warehouse import paths


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


@pytest.mark.integration
def test_sql_shell_queries_every_table_by_name_with_time_travel(stats_data_dir):
    queries = (
        "SELECT author, strikes, is_blocked FROM chat.user_stats ORDER BY strikes DESC LIMIT 2; "
        "SELECT count(*) AS n FROM chat.messages VERSION AS OF 0; "
        "SELECT reason FROM chat.rejected_messages; SELECT count(*) AS s FROM chat.strikes; "
        "SELECT author FROM chat.user_moderation WHERE is_blocked; SELECT * FROM chat.no_such_table"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.sql", "--data-dir", str(stats_data_dir), "-e", queries],
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
def test_sql_shell_reads_statements_from_its_prompt(stats_data_dir):
    session = "\\d\nSELECT author,\n  messages FROM chat.user_stats\n  WHERE author = 'ana';\n\\q\n"
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
    assert re.search(r"^ana\s+3$", result.stdout, re.M), result.stdout
