"""pipelines/maintenance.py: compaction that keeps every row (readable by deltalake too), VACUUM within the
retention, the schedule that runs them by themselves, and a run killed half-way that loses nothing."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest
from deltalake import DeltaTable as DeltaLakeTable

from pipelines.maintenance import Housekeeper, Maintainer, Task
from tests.pipelines.conftest import spark_env
from warehouse import paths
from warehouse.tables import MESSAGES_SCHEMA, STRIKES_SCHEMA, ensure_tables


def wait_for(predicate, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_housekeeper_runs_each_task_on_its_schedule_and_goes_on_after_a_failure():
    runs = {"refresh": 0, "broken": 0}
    alive = threading.Event()
    alive.set()

    def refresh():
        runs["refresh"] += 1

    def broken():
        runs["broken"] += 1
        raise RuntimeError("a failed OPTIMIZE")

    keeper = Housekeeper(
        [Task("refresh", 0.02, refresh), Task("broken", 0.02, broken), Task("never", 3600, lambda: 1 / 0)],
        alive=alive.is_set,
        poll_s=0.01,
    )
    keeper.start()
    wait_for(lambda: runs["refresh"] >= 3 and runs["broken"] >= 3)
    alive.clear()  # the query stopped: the housekeeper stops with it
    keeper.join(10)
    assert not keeper.is_alive()
    assert keeper.failures["broken"] == runs["broken"] and keeper.failures["refresh"] == 0
    assert keeper.failures["never"] == 0  # not due yet


def message_rows(batch: int, n: int, text: str = "hola") -> list[tuple]:
    start = datetime(2026, 11, 1) + timedelta(hours=batch)
    return [
        (
            f"m{batch}-{i}",
            f"user{i % 7}",
            f"{text} {batch} {i} {secrets.token_hex(12)}",
            text,
            False,
            [],
            "clean",
            start + timedelta(seconds=i),
            start + timedelta(seconds=i),
            0,
            batch * n + i,
            batch,
        )
        for i in range(n)
    ]


def append(spark, warehouse, table: str, schema, rows, batch: int) -> None:
    """An append as the ledger makes it: one file, the batch id as the transaction version."""
    (
        spark.createDataFrame(rows, schema)
        .coalesce(1)
        .write.format("delta")
        .mode("append")
        .option("txnAppId", f"test-{table}")
        .option("txnVersion", batch)
        .save(str(paths.table_path(table, warehouse)))
    )


def ids_in(spark, location) -> list[str]:
    return sorted(r.message_id for r in spark.read.format("delta").load(str(location)).select("message_id").collect())


@pytest.mark.integration
def test_compaction_clusters_the_small_files_keeps_every_row_and_vacuum_keeps_the_retention(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    for batch in range(12):
        append(spark, warehouse, paths.MESSAGES, MESSAGES_SCHEMA, message_rows(batch, 5), batch)
    append(
        spark,
        warehouse,
        paths.STRIKES,
        STRIKES_SCHEMA,
        [("m0-1", "user1", ["x"], 1, datetime(2026, 11, 1), 0, 1, 0)],
        0,
    )
    location = paths.table_path(paths.MESSAGES, warehouse)
    before = ids_in(spark, location)
    maintainer = Maintainer(spark, warehouse, min_new_files=10, vacuum_every_s=0)

    # a compaction while the ledger goes on appending: neither gets in the other's way
    appended = threading.Thread(
        target=lambda: [
            append(spark, warehouse, paths.MESSAGES, MESSAGES_SCHEMA, message_rows(b, 5), b) for b in range(12, 15)
        ]
    )
    appended.start()
    assert maintainer.compact_due() == [paths.MESSAGES]  # strikes has one file: not due
    appended.join()
    after = ids_in(spark, location)
    assert after == sorted(before + [r[0] for b in range(12, 15) for r in message_rows(b, 5)])
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()
    assert detail.numFiles < 12 and detail.clusteringColumns == ["sent_at", "author"]
    history = spark.sql(f"DESCRIBE HISTORY delta.`{location}`").select("version", "operation").collect()
    [optimized] = [h.version for h in history if h.operation == "OPTIMIZE"]
    lake = DeltaLakeTable(str(location))
    assert lake.protocol().min_reader_version == 1
    assert sorted(lake.to_pyarrow_table(columns=["message_id"]).column(0).to_pylist()) == after
    assert maintainer.compact_due() == []  # nothing new since

    # VACUUM with the table's 7 days: the files the compaction replaced stay, older versions stay readable
    on_disk = {p.name for p in location.glob("*.parquet")}
    assert maintainer.vacuum_due() == [t for t in paths.ALL_TABLES if t != paths.USER_STATS]
    assert {p.name for p in location.glob("*.parquet")} == on_disk
    old = spark.read.format("delta").option("versionAsOf", optimized - 1).load(str(location))
    assert old.count() >= len(before)


def untracked_files(location, tracked: set[str]) -> set[str]:
    return {p.name for p in location.glob("*.parquet")} - tracked


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_a_maintenance_run_killed_half_way_leaves_the_table_readable_and_whole(spark, tmp_path):
    data_dir = tmp_path / "data"
    warehouse = paths.warehouse_dir(data_dir)
    ensure_tables(spark, warehouse)
    for batch in range(8):  # enough rows that writing the compacted file takes a while
        append(spark, warehouse, paths.MESSAGES, MESSAGES_SCHEMA, message_rows(batch, 20_000, "texto " * 8), batch)
    location = paths.table_path(paths.MESSAGES, warehouse)
    before = ids_in(spark, location)
    tracked = {p.name for p in location.glob("*.parquet")}
    commits = set((location / "_delta_log").glob("*.json"))

    run = subprocess.Popen(
        [sys.executable, "-m", "pipelines.maintenance", "--data-dir", str(data_dir), "--table", "messages"],
        env=spark_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # killed once the compacted file is being written and before its commit
        wait_for(lambda: untracked_files(location, tracked) or run.poll() is not None, timeout_s=600)
        os.killpg(run.pid, signal.SIGKILL)
    finally:
        output = run.communicate(timeout=60)[0].decode(errors="replace")
    assert run.returncode == -signal.SIGKILL, output
    assert untracked_files(location, tracked), "the run wrote nothing before it was killed"
    assert set((location / "_delta_log").glob("*.json")) == commits, "the OPTIMIZE had committed: not half-way"

    assert ids_in(spark, location) == before  # readable, nothing lost
    lake = DeltaLakeTable(str(location))
    assert sorted(lake.to_pyarrow_table(columns=["message_id"]).column(0).to_pylist()) == before
    orphans = untracked_files(location, tracked)

    # the next run compacts; VACUUM (here without the 7 days) deletes the killed run's files with the replaced ones
    assert Maintainer(spark, warehouse, min_new_files=2).compact_due() == [paths.MESSAGES]
    assert ids_in(spark, location) == before
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        spark.sql(f"VACUUM delta.`{location}` RETAIN 0 HOURS")
    finally:
        spark.conf.unset("spark.databricks.delta.retentionDurationCheck.enabled")
    left = {p.name for p in location.glob("*.parquet")}
    assert not left & orphans and not left & tracked
    assert ids_in(spark, location) == before
    assert (
        sorted(DeltaLakeTable(str(location)).to_pyarrow_table(columns=["message_id"]).column(0).to_pylist()) == before
    )
