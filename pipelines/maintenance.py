"""Maintenance of the chat's Delta tables: compaction (OPTIMIZE, which also clusters the clustered tables) of
the small files every ledger batch adds, and VACUUM within each table's own retention.

The streams run it by themselves (a `Housekeeper` thread beside the ledger); by hand, once:

    python -m pipelines.maintenance [--data-dir DIR] [--table NAME ...] [--no-vacuum]
    spark-submit --properties-file conf/spark-defaults.conf pipelines/maintenance.py

Every step is one Delta commit or none: a run killed half-way leaves the table as it was (the files it had
written belong to no version, and VACUUM deletes them once they are older than the retention).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from pipelines import cli
from warehouse import paths

# The ledger's tables, compacted and vacuumed; user_stats is replaced whole by its job, so only vacuumed.
COMPACTED = (paths.MESSAGES, paths.STRIKES, paths.USER_MODERATION, paths.REJECTED_MESSAGES, paths.MODERATOR_ACTIONS)
VACUUMED = (*COMPACTED, paths.USER_STATS)
# A table is compacted once it has this many files more than after its last compaction: a ledger batch adds
# one per table it writes, and a query pays per file it opens.
MIN_NEW_FILES = 50
CHECK_EVERY_S = 300.0
VACUUM_EVERY_S = 24 * 3600.0


def say(text: str) -> None:
    print(f"maintenance: {text}", flush=True)


def exists(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


def file_count(spark: SparkSession, path: Path) -> int:
    """The data files in the table's current version."""
    return DeltaTable.forPath(spark, str(path)).detail().select("numFiles").first()[0]


def compact(spark: SparkSession, path: Path) -> dict:
    """OPTIMIZE the table (clustering it when it is clustered): one commit, or none when there is nothing to do.
    Returns its files before and after and the seconds it took."""
    before = file_count(spark, path)
    started = time.monotonic()
    DeltaTable.forPath(spark, str(path)).optimize().executeCompaction()
    return {"files_before": before, "files_after": file_count(spark, path), "seconds": time.monotonic() - started}


def vacuum(spark: SparkSession, path: Path) -> float:
    """VACUUM with the table's own `delta.deletedFileRetentionDuration`; the seconds it took."""
    started = time.monotonic()
    DeltaTable.forPath(spark, str(path)).vacuum()
    return time.monotonic() - started


@dataclass
class Maintainer:
    """Decides which tables need compaction (by the files they gained since their last) and when to vacuum."""

    spark: SparkSession
    warehouse: Path
    min_new_files: int = MIN_NEW_FILES
    vacuum_every_s: float = VACUUM_EVERY_S
    tables: Sequence[str] = COMPACTED
    _files_after: dict[str, int] = field(default_factory=dict, init=False)
    _vacuumed_at: float | None = field(default=None, init=False)

    def path(self, table: str) -> Path:
        return paths.table_path(table, self.warehouse)

    def compact_due(self) -> list[str]:
        """Compact the tables that gained `min_new_files` files since their last compaction (or since the
        start, when this process has compacted none yet); the names compacted."""
        done = []
        for table in self.tables:
            path = self.path(table)
            if not exists(path) or file_count(self.spark, path) - self._files_after.get(table, 0) < self.min_new_files:
                continue
            result = compact(self.spark, path)
            self._files_after[table] = result["files_after"]
            say(f"{table}: {result['files_before']} -> {result['files_after']} files in {result['seconds']:.1f}s")
            done.append(table)
        return done

    def vacuum_due(self, now: float | None = None) -> list[str]:
        """VACUUM every table once `vacuum_every_s` passed since the last (the first time: that long after start)."""
        now = time.monotonic() if now is None else now
        if self._vacuumed_at is None:
            self._vacuumed_at = now
        if now - self._vacuumed_at < self.vacuum_every_s:
            return []
        self._vacuumed_at = now
        done = [t for t in VACUUMED if exists(self.path(t))]
        for table in done:
            say(f"{table}: vacuumed in {vacuum(self.spark, self.path(table)):.1f}s")
        return done

    def run(self) -> None:
        self.compact_due()
        self.vacuum_due()


@dataclass
class Task:
    name: str
    every_s: float
    run: Callable[[], object]


class Housekeeper(threading.Thread):
    """Runs each task every `every_s` seconds, one at a time, while `alive()`; a task that fails is logged and
    tried again at its next turn (its work is one Delta commit or none, so nothing is left half-done)."""

    def __init__(self, tasks: Sequence[Task], alive: Callable[[], bool], poll_s: float = 0.5):
        super().__init__(name="ledger-housekeeper", daemon=True)
        self.tasks = list(tasks)
        self.alive = alive
        self.poll_s = poll_s
        self.failures: dict[str, int] = {t.name: 0 for t in self.tasks}
        self._halt = threading.Event()

    def run(self) -> None:
        due = {t.name: time.monotonic() + t.every_s for t in self.tasks}
        while not self._halt.wait(self.poll_s) and self.alive():
            for task in self.tasks:
                if time.monotonic() < due[task.name] or self._halt.is_set():
                    continue
                try:
                    task.run()
                except Exception as exc:  # noqa: BLE001 - one failed turn must not end the maintenance
                    self.failures[task.name] += 1
                    if self.alive() and not self._halt.is_set():
                        say(f"{task.name} failed, tried again in {task.every_s:g}s: {type(exc).__name__}: {exc}")
                due[task.name] = time.monotonic() + task.every_s

    def stop(self, timeout_s: float = 60.0) -> None:
        self._halt.set()
        self.join(timeout_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_data_dir(parser)
    parser.add_argument(
        "--table", action="append", choices=VACUUMED, help="only this table (repeat for more; default all)"
    )
    parser.add_argument("--no-vacuum", action="store_true", help="compact only")
    args = parser.parse_args(argv)
    warehouse = paths.warehouse_dir(cli.data_dir(args))
    from pipelines.session import get_spark

    spark = get_spark("chat-maintenance")
    try:
        for table in args.table or VACUUMED:
            path = paths.table_path(table, warehouse)
            if not exists(path):
                say(f"{table}: no table at {path}")
                continue
            if table in COMPACTED:
                result = compact(spark, path)
                say(f"{table}: {result['files_before']} -> {result['files_after']} files in {result['seconds']:.1f}s")
            if not args.no_vacuum:
                say(f"{table}: vacuumed in {vacuum(spark, path):.1f}s")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
