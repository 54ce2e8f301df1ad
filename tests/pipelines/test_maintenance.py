"""Delta maintenance on real Spark and Delta: compaction keeps every row, VACUUM keeps the current version
readable, an old table gains its layout, the scheduler carries on after a failure, and a JVM killed
half-way through an OPTIMIZE leaves the table readable with nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from deltalake import DeltaTable as DeltaRsTable

from config import settings
from pipelines.maintenance import COMPACTED, Scheduler, file_count, run_maintenance
from tests.pipelines.conftest import spark_env
from warehouse import paths
from warehouse.tables import (
    CLUSTERING,
    LAYOUT_PROPERTIES,
    MESSAGES_SCHEMA,
    TABLE_PROPERTIES,
    USER_MODERATION_SCHEMA,
    ensure_tables,
)

START = datetime(2026, 11, 1)


def message_rows(batch: int, n: int) -> list[tuple]:
    """`n` messages of ledger batch `batch`, with Unicode authors and a null `ingested_at`/`spam_reason`."""
    return [
        (
            f"m-{batch}-{i}",
            ("Zoë 🌍", "李小龙", "ana")[i % 3],
            f"hola {i}",
            f"hola {i}",
            False,
            [],
            "clean",
            START + timedelta(minutes=batch, seconds=i),
            None,
            0,
            batch * 1000 + i,
            batch,
            None,
        )
        for i in range(n)
    ]


def append_batches(spark, location: Path, batches: range, rows_per_batch: int = 3) -> None:
    """One small file per batch, as the ledger's appends leave them."""
    for batch in batches:
        spark.createDataFrame(message_rows(batch, rows_per_batch), MESSAGES_SCHEMA).coalesce(1).write.format(
            "delta"
        ).mode("append").save(str(location))


def read(spark, location: Path, version: int | None = None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(str(location))


def test_optimize_compacts_many_small_files_into_few_and_keeps_every_row(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    location = paths.table_path(paths.MESSAGES, warehouse)
    append_batches(spark, location, range(12))
    before = read(spark, location).localCheckpoint()
    assert file_count(spark, location) == 12

    lines: list[str] = []
    outcomes = run_maintenance(spark, warehouse, compact=[paths.MESSAGES], vacuum=[], log=lines.append)

    assert [(o.table, o.action, o.files_before, o.files_after) for o in outcomes] == [
        (paths.MESSAGES, "optimize", 12, 1)
    ]
    assert lines == [f"maintenance: {outcomes[0]}"]
    assert_df_equality(read(spark, location), before, ignore_row_order=True)
    history = DeltaTable.forPath(spark, str(location)).history(1).first()
    assert history.operation == "OPTIMIZE"
    assert history.operationMetrics["numRemovedFiles"] == "12"
    # clustered by the analysts' filters, and still readable by the API's deltalake package
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()
    assert tuple(detail.clusteringColumns) == CLUSTERING[paths.MESSAGES]
    assert detail.minReaderVersion == 1
    assert DeltaRsTable(str(location)).to_pyarrow_table().num_rows == 36


def test_vacuum_keeps_compacted_files_for_the_retention_and_deletes_them_past_it_reading_the_same(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    location = paths.table_path(paths.MESSAGES, warehouse)
    append_batches(spark, location, range(5))
    version_before = DeltaTable.forPath(spark, str(location)).history(1).first().version
    rows = read(spark, location).localCheckpoint()
    run_maintenance(spark, warehouse, compact=[paths.MESSAGES], vacuum=[])
    on_disk = len(list(location.glob("*.parquet")))
    assert on_disk == 5 + 1, "the compacted files stay on disk until the retention has passed"

    # within the retention: removed 0 s ago, so within the 7 days kept
    outcomes = run_maintenance(spark, warehouse, compact=[], vacuum=[paths.MESSAGES])

    assert [(o.action, o.files_before, o.files_after) for o in outcomes] == [("vacuum", 1, 1)]
    assert len(list(location.glob("*.parquet"))) == on_disk
    assert_df_equality(read(spark, location), rows, ignore_row_order=True)
    assert_df_equality(read(spark, location, version_before), rows, ignore_row_order=True)
    assert DeltaRsTable(str(location)).to_pyarrow_table().num_rows == 15

    # past the retention, as if 7 days had passed: Delta refuses so short a one unless its check is off
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        spark.sql(
            f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 0 seconds')"
        )
        run_maintenance(spark, warehouse, compact=[], vacuum=[paths.MESSAGES])
    finally:
        spark.conf.unset("spark.databricks.delta.retentionDurationCheck.enabled")

    assert len(list(location.glob("*.parquet"))) == 1
    assert_df_equality(read(spark, location), rows, ignore_row_order=True)
    assert DeltaRsTable(str(location)).to_pyarrow_table().num_rows == 15
    with pytest.raises(Exception, match="(?i)file|path|exist"):
        read(spark, location, version_before).collect()  # the point of the retention: old versions are gone


def test_a_table_made_before_the_layout_gains_it_at_the_ledgers_start_and_keeps_its_rows(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    for name, schema in ((paths.MESSAGES, MESSAGES_SCHEMA), (paths.USER_MODERATION, USER_MODERATION_SCHEMA)):
        builder = DeltaTable.create(spark).location(str(paths.table_path(name, warehouse))).addColumns(schema)
        for key, value in TABLE_PROPERTIES.items():
            builder = builder.property(key, value)
        builder.execute()  # as the code before clustering made it
    location = paths.table_path(paths.MESSAGES, warehouse)
    append_batches(spark, location, range(3))
    rows = read(spark, location).localCheckpoint()

    ensure_tables(spark, warehouse)
    ensure_tables(spark, warehouse)  # a second start changes nothing
    versions = {
        n: DeltaTable.forPath(spark, str(paths.table_path(n, warehouse))).history(1).first().version
        for n in (paths.MESSAGES, paths.USER_MODERATION)
    }
    ensure_tables(spark, warehouse)

    detail = spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()
    assert tuple(detail.clusteringColumns) == CLUSTERING[paths.MESSAGES]
    moderation = spark.sql(f"DESCRIBE DETAIL delta.`{paths.table_path(paths.USER_MODERATION, warehouse)}`").first()
    assert {k: moderation.properties.get(k) for k in LAYOUT_PROPERTIES[paths.USER_MODERATION]} == (
        LAYOUT_PROPERTIES[paths.USER_MODERATION]
    )
    assert versions == {
        n: DeltaTable.forPath(spark, str(paths.table_path(n, warehouse))).history(1).first().version for n in versions
    }
    assert_df_equality(read(spark, location), rows, ignore_row_order=True)
    assert DeltaRsTable(str(location)).to_pyarrow_table().num_rows == 9


def test_user_moderation_compacts_itself_in_the_merge_that_finds_many_small_files(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    location = str(paths.table_path(paths.USER_MODERATION, warehouse))
    row = ("author", 1, 0, False, None, None, None, START, START, START, 0)
    spark.conf.set("spark.databricks.delta.autoCompact.minNumFiles", "4")  # the default is 50: fewer MERGEs
    try:
        for batch in range(5):
            updates = spark.createDataFrame(
                [(f"u{batch}-{i}", *row[1:-1], batch) for i in range(2)], USER_MODERATION_SCHEMA
            ).coalesce(1)
            DeltaTable.forPath(spark, location).alias("t").merge(
                updates.alias("s"), "t.author = s.author"
            ).whenNotMatchedInsertAll().execute()
    finally:
        spark.conf.unset("spark.databricks.delta.autoCompact.minNumFiles")

    assert file_count(spark, location) < 4
    assert sorted(r.author for r in read(spark, Path(location)).collect()) == sorted(
        f"u{b}-{i}" for b in range(5) for i in range(2)
    )
    assert "OPTIMIZE" in {r.operation for r in DeltaTable.forPath(spark, location).history().collect()}


def test_the_scheduler_compacts_on_its_interval_and_carries_on_after_a_failed_run(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    location = paths.table_path(paths.MESSAGES, warehouse)
    append_batches(spark, location, range(4))
    broken = paths.table_path(paths.STRIKES, warehouse) / "_delta_log" / "00000000000000000001.json"
    broken.write_text("not a Delta commit\n")  # every maintenance run fails on this table
    lines: list[str] = []
    done = threading.Event()

    def log(text: str) -> None:
        lines.append(text)
        if sum("failed" in line for line in lines) >= 2:
            done.set()

    scheduler = Scheduler(spark, warehouse, interval_s=0.2, vacuum_interval_s=0, log=log)
    scheduler.start()
    try:
        assert done.wait(300), lines
    finally:
        scheduler.stop()

    assert not scheduler.is_alive()
    assert lines[0].startswith(f"maintenance: OPTIMIZE {', '.join(COMPACTED)} every 0.2s")
    assert f"maintenance: optimize {paths.MESSAGES}: 4 -> 1 files" in "\n".join(lines)
    assert sum("failed, trying again at the next interval" in line for line in lines) >= 2
    assert file_count(spark, location) == 1


def test_a_scheduler_with_both_intervals_zero_starts_no_thread(spark, tmp_path):
    scheduler = Scheduler(spark, tmp_path, interval_s=0, vacuum_interval_s=0)
    scheduler.start()
    assert not scheduler.is_alive() and not scheduler.enabled
    scheduler.stop()


KILLED_OPTIMIZE = textwrap.dedent(
    """
    import sys
    from pipelines.session import get_spark
    spark = get_spark("killed-maintenance", master="local[1]", extra={"spark.ui.enabled": "false"})
    print("optimizing", flush=True)
    spark.sql(f"OPTIMIZE delta.`{sys.argv[1]}`").collect()
    print("optimized", flush=True)
    """
)


def test_a_jvm_killed_half_way_through_optimize_leaves_the_table_readable_with_nothing_lost(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    location = paths.table_path(paths.MESSAGES, warehouse)
    # enough small files that compacting them takes a while: one append of 300 files
    spark.createDataFrame(message_rows(0, 20_000), MESSAGES_SCHEMA).repartition(300).write.format("delta").mode(
        "append"
    ).save(str(location))
    append_batches(spark, location, range(1, 4))
    rows = read(spark, location).localCheckpoint()
    version = DeltaTable.forPath(spark, str(location)).history(1).first().version
    files = set(location.glob("*.parquet"))

    with subprocess.Popen(
        [sys.executable, "-c", KILLED_OPTIMIZE, str(location)],
        cwd=settings.REPO_ROOT,
        env=dict(spark_env(), PYTHONPATH=str(settings.REPO_ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: the kill takes the JVM too
    ) as child:
        try:
            assert child.stdout.readline().strip() == "optimizing"
            while not set(location.glob("*.parquet")) - files:  # the compacted file is being written
                assert child.poll() is None, "the OPTIMIZE ended before it wrote a file"
                time.sleep(0.01)
        finally:
            os.killpg(child.pid, signal.SIGKILL)

    table = DeltaTable.forPath(spark, str(location))
    assert table.history(1).first().version == version, "the killed OPTIMIZE committed nothing"
    assert set(location.glob("*.parquet")) - files, "it was killed half-way: its file is left over"
    assert_df_equality(read(spark, location), rows, ignore_row_order=True)
    assert DeltaRsTable(str(location)).to_pyarrow_table().num_rows == rows.count()

    # the next run does the work; the left-over file is in no version (a VACUUM deletes it after the retention)
    outcomes = run_maintenance(spark, warehouse, compact=[paths.MESSAGES], vacuum=[])
    assert [(o.action, o.files_before, o.files_after) for o in outcomes] == [("optimize", 303, 1)]
    assert_df_equality(read(spark, location), rows, ignore_row_order=True)
