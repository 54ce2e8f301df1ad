"""Delta table maintenance: compaction and clustering (`OPTIMIZE`) of the ledger's append-only tables, `VACUUM`.

The streams process runs it on a timer in a background thread (CHAT_MAINTENANCE_INTERVAL_S,
CHAT_VACUUM_INTERVAL_S); an operator runs the same by hand, beside the running chat or not:

    python -m pipelines.maintenance [--data-dir DIR] [--no-vacuum]
    spark-submit --properties-file conf/spark-defaults.conf pipelines/maintenance.py

README "Delta tables" says what runs, when, and why this layout.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from config.object_store import is_object
from pipelines import cli
from warehouse import paths

# Only blind appends write these, and an append never conflicts with a concurrent OPTIMIZE (it reads no
# files), so compacting them beside the running ledger cannot fail one of its batches. `user_moderation`,
# which the ledger MERGEs, compacts itself in the MERGE's own thread instead (warehouse/tables.py).
COMPACTED = (paths.MESSAGES, paths.STRIKES, paths.REJECTED_MESSAGES, paths.MODERATOR_ACTIONS)
VACUUMED = paths.ALL_TABLES


@dataclass(frozen=True)
class Outcome:
    """What one maintenance step did to one table."""

    table: str
    action: str  # "optimize" or "vacuum"
    files_before: int
    files_after: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.action} {self.table}: {self.files_before:,} -> {self.files_after:,} files in {self.seconds:.1f}s"


def file_count(spark: SparkSession, location: Path | str) -> int:
    """Data files in the table's current version."""
    return spark.sql(f"DESCRIBE DETAIL delta.`{location}`").select("numFiles").first()[0]


def _step(spark: SparkSession, warehouse: Path, name: str, action: str, run: Callable[[str], None]) -> Outcome | None:
    location = str(paths.table_path(name, warehouse))
    if not DeltaTable.isDeltaTable(spark, location):
        return None  # not created yet (user_stats before the first `make stats`)
    started = time.monotonic()
    before = file_count(spark, location)
    run(location)
    return Outcome(name, action, before, file_count(spark, location), time.monotonic() - started)


def optimize_table(spark: SparkSession, warehouse: Path, name: str) -> Outcome | None:
    """Compact the table's small files (and cluster them, on a clustered table); None: no such table."""
    return _step(spark, warehouse, name, "optimize", lambda loc: spark.sql(f"OPTIMIZE delta.`{loc}`").collect())


def vacuum_table(spark: SparkSession, warehouse: Path, name: str) -> Outcome | None:
    """Delete the files the table no longer references and removed longer ago than its
    `delta.deletedFileRetentionDuration` (so every version younger than that stays readable)."""
    return _step(spark, warehouse, name, "vacuum", lambda loc: spark.sql(f"VACUUM delta.`{loc}`").collect())


def run_maintenance(
    spark: SparkSession,
    warehouse: Path,
    compact: Iterable[str] = COMPACTED,
    vacuum: Iterable[str] = VACUUMED,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    """OPTIMIZE the `compact` tables, then VACUUM the `vacuum` ones; each table's outcome is logged."""
    outcomes = []
    for step, names in ((optimize_table, compact), (vacuum_table, vacuum)):
        for name in names:
            outcome = step(spark, warehouse, name)
            if outcome is not None:
                log(f"maintenance: {outcome}")
                outcomes.append(outcome)
    return outcomes


def _stopped(spark: SparkSession) -> bool:
    try:
        return spark.sparkContext._jsc is None or spark.sparkContext._jsc.sc().isStopped()
    except Exception:  # noqa: BLE001 - a gateway that is gone: stopped too
        return True


class Scheduler(threading.Thread):
    """The streams process's maintenance: every `interval_s` an OPTIMIZE of the compacted tables, every
    `vacuum_interval_s` a VACUUM of all (0: never). A failed run is logged and tried again next time:
    maintenance never stops the chat's queries."""

    def __init__(
        self,
        spark: SparkSession,
        warehouse: Path,
        interval_s: float,
        vacuum_interval_s: float,
        log: Callable[[str], None] = lambda text: print(text, flush=True),
    ) -> None:
        super().__init__(name="delta-maintenance", daemon=True)
        self.spark, self.warehouse, self.log = spark, warehouse, log
        self.interval_s, self.vacuum_interval_s = interval_s, vacuum_interval_s
        self.runs = 0
        self._stop_event = threading.Event()

    @property
    def enabled(self) -> bool:
        return self.interval_s > 0 or self.vacuum_interval_s > 0

    def run(self) -> None:
        # a job group names the maintenance's Spark jobs in the UI and logs, apart from the queries'
        self.spark.sparkContext.setJobGroup("maintenance", "Delta table maintenance (pipelines/maintenance.py)")
        self.log(
            f"maintenance: OPTIMIZE {', '.join(COMPACTED)} every {self.interval_s:g}s, "
            f"VACUUM every {self.vacuum_interval_s:g}s (0: never)"
        )
        now = time.monotonic()
        next_optimize = now + self.interval_s if self.interval_s > 0 else None
        next_vacuum = now + self.vacuum_interval_s if self.vacuum_interval_s > 0 else None
        while True:
            due = min(t for t in (next_optimize, next_vacuum) if t is not None)
            if self._stop_event.wait(max(0.0, due - time.monotonic())):
                return
            now = time.monotonic()
            compact = next_optimize is not None and now >= next_optimize
            vacuum = next_vacuum is not None and now >= next_vacuum
            try:
                run_maintenance(
                    self.spark, self.warehouse, COMPACTED if compact else (), VACUUMED if vacuum else (), self.log
                )
            except Exception as exc:  # noqa: BLE001 - logged; the next run tries again
                if self._stop_event.is_set() or _stopped(self.spark):
                    return  # the process is stopping: Spark went away under the step
                self.log(f"maintenance: failed, trying again at the next interval: {type(exc).__name__}: {exc}")
            self.runs += 1
            if compact:
                next_optimize = time.monotonic() + self.interval_s
            if vacuum:
                next_vacuum = time.monotonic() + self.vacuum_interval_s

    def start(self) -> None:
        if self.enabled:
            super().start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Let a running step finish (a killed OPTIMIZE leaves the table as it was: nothing commits half)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipelines/maintenance.py", description=__doc__.splitlines()[0])
    cli.add_data_dir(parser)
    parser.add_argument("--no-vacuum", action="store_true", help="compact only")
    args = parser.parse_args(argv)
    from pipelines.session import get_spark

    warehouse = paths.warehouse_dir(cli.data_dir(args))
    if is_object(warehouse):
        # S3SingleDriverLogStore: two drivers committing to one table on S3 can overwrite each other's commit
        print(
            f"maintenance: {warehouse} is on object storage: run this only while the chat's streams are stopped "
            "(there the streams process compacts its tables itself, CHAT_MAINTENANCE_INTERVAL_S)",
            file=sys.stderr,
            flush=True,
        )
    spark = get_spark("chat-maintenance")
    spark.sparkContext.setLogLevel("WARN")
    try:
        outcomes = run_maintenance(spark, warehouse, vacuum=() if args.no_vacuum else VACUUMED)
    finally:
        spark.stop()
    if not outcomes:
        print(f"maintenance: no Delta table under {warehouse}", file=sys.stderr)
        return 1
    print(f"maintenance: {len(outcomes)} step(s) done under {warehouse}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
