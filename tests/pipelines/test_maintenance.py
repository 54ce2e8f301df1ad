"""Delta maintenance on real Spark and Delta: compaction keeps every row, VACUUM keeps the current version
readable, a Delta checkpoint is written outside the ledger's commits (only for new commits, safely beside
concurrent appends), an old table gains its layout, the scheduler carries on after a failure, and a JVM killed
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
from pipelines.maintenance import (
    COMPACTED,
    Checkpointed,
    Scheduler,
    checkpoint_table,
    checkpoint_tables,
    commits_since_checkpoint,
    file_count,
    run_maintenance,
)
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
        for key, value in {**TABLE_PROPERTIES, "delta.checkpointInterval": "10"}.items():
            builder = builder.property(key, value)
        builder.execute()  # as the code before clustering (and before the checkpoints left the ledger) made it
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
    # the ledger's commits no longer write the checkpoints: the raised interval reaches the old tables too
    assert detail.properties["delta.checkpointInterval"] == moderation.properties["delta.checkpointInterval"] == "1000"
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


def checkpoint_files(location: Path) -> list[str]:
    return sorted(p.name for p in (location / "_delta_log").glob("*.checkpoint*.parquet"))


def test_a_checkpoint_is_written_outside_the_commits_only_when_there_are_new_ones_and_deltalake_reads_it(
    spark, tmp_path
):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    location = paths.table_path(paths.MESSAGES, warehouse)
    append_batches(spark, location, range(10))  # versions 1 … 10

    # version 10 is where a checkpoint interval of 10 had the ledger's commit write one in its batch
    assert checkpoint_files(location) == []
    assert commits_since_checkpoint(spark, location) == (10, 11)  # a cold reader replays versions 0 … 10

    lines: list[str] = []
    written = checkpoint_tables(spark, warehouse, [paths.MESSAGES, paths.USER_STATS], log=lines.append)

    assert [(c.table, c.version, c.commits_before) for c in written] == [(paths.MESSAGES, 10, 11)]  # no user_stats
    assert lines == [f"maintenance: {written[0]}"]
    assert lines[0].startswith(f"maintenance: checkpoint {paths.MESSAGES} at version 10 (11 commits since the last)")
    assert checkpoint_files(location) == ["00000000000000000010.checkpoint.parquet"]
    assert commits_since_checkpoint(spark, location) == (10, 0)
    # nothing new: nothing written
    assert checkpoint_table(spark, warehouse, paths.MESSAGES) is None
    assert checkpoint_files(location) == ["00000000000000000010.checkpoint.parquet"]

    append_batches(spark, location, range(10, 12))
    assert commits_since_checkpoint(spark, location) == (12, 2)
    outcome = checkpoint_table(spark, warehouse, paths.MESSAGES)
    assert isinstance(outcome, Checkpointed) and (outcome.version, outcome.commits_before) == (12, 2)
    assert checkpoint_files(location)[-1] == "00000000000000000012.checkpoint.parquet"
    rows = read(spark, location)
    assert rows.count() == 36 and rows.select("message_id").distinct().count() == 36
    from_rs = DeltaRsTable(str(location))
    assert from_rs.version() == 12
    assert sorted(from_rs.to_pyarrow_table().column("message_id").to_pylist()) == sorted(
        r.message_id for r in rows.collect()
    )


def test_checkpoints_written_while_appends_commit_lose_nothing_for_spark_or_deltalake(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    location = paths.table_path(paths.MESSAGES, warehouse)
    failures: list[BaseException] = []

    def appends() -> None:
        try:
            append_batches(spark, location, range(16))
        except BaseException as exc:  # noqa: BLE001 - the test fails on it below
            failures.append(exc)

    writer = threading.Thread(target=appends)
    writer.start()
    written: list[Checkpointed] = []
    while writer.is_alive():  # as the scheduler does beside the ledger: checkpoints while the commits go on
        outcome = checkpoint_table(spark, warehouse, paths.MESSAGES)
        if outcome is not None:
            written.append(outcome)
    writer.join()

    assert failures == []
    assert len(written) >= 2, "the checkpoints ran beside the appends"
    assert [c.version for c in written] == sorted({c.version for c in written})
    assert written[0].version < 16, "at least one checkpoint was of a version the appends went on from"
    expected = sorted(f"m-{b}-{i}" for b in range(16) for i in range(3))
    assert sorted(r.message_id for r in read(spark, location).select("message_id").collect()) == expected
    assert DeltaTable.forPath(spark, str(location)).history(1).first().version == 16
    # a cold reader in each: Spark with the JVM's DeltaLogs forgotten, and delta-rs, from the newest checkpoint on
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    assert sorted(r.message_id for r in read(spark, location).select("message_id").collect()) == expected
    from_rs = DeltaRsTable(str(location))
    assert from_rs.version() == 16
    assert sorted(from_rs.to_pyarrow_table().column("message_id").to_pylist()) == expected
    for checkpoint in written:  # and each checkpointed version as it was
        at = DeltaRsTable(str(location), version=checkpoint.version).to_pyarrow_table()
        assert at.num_rows == 3 * checkpoint.version


def test_the_scheduler_writes_checkpoints_on_their_own_interval(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    location = paths.table_path(paths.STRIKES, warehouse)
    lines: list[str] = []
    done = threading.Event()

    def log(text: str) -> None:
        lines.append(text)
        if f"checkpoint {paths.STRIKES} at version 0" in text:
            done.set()

    scheduler = Scheduler(spark, warehouse, interval_s=0, vacuum_interval_s=0, checkpoint_interval_s=0.2, log=log)
    assert scheduler.enabled
    scheduler.start()
    try:
        assert done.wait(300), lines
    finally:
        scheduler.stop()

    assert not scheduler.is_alive()
    assert lines[0] == (
        "maintenance: OPTIMIZE messages, strikes, rejected_messages, moderator_actions every 0s, "
        "VACUUM every 0s, Delta checkpoints every 0.2s (0: never)"
    )
    assert checkpoint_files(location) == ["00000000000000000000.checkpoint.parquet"]
    assert not [line for line in lines if "optimize" in line or "vacuum" in line or "failed" in line], lines
    # every table once: later runs find no new commit and write nothing
    assert sum(" at version " in line for line in lines) == len(
        [n for n in paths.ALL_TABLES if DeltaTable.isDeltaTable(spark, str(paths.table_path(n, warehouse)))]
    )


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
