"""Delta table maintenance: compaction and clustering (`OPTIMIZE`) of the ledger's append-only tables, `VACUUM`,
and the tables' Delta checkpoints.

The streams process runs it on a timer in a background thread (CHAT_MAINTENANCE_INTERVAL_S,
CHAT_VACUUM_INTERVAL_S, CHAT_DELTA_CHECKPOINT_INTERVAL_S); an operator runs the same by hand, beside the running
chat or not:

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
# A Delta checkpoint (the table's state at one version, as Parquet) spares a cold reader replaying the JSON commits
# before it. The tables' own `delta.checkpointInterval` is so high (warehouse/tables.py) that the ledger's commits
# (almost) never write one in its batch, where it cost 0.5-2 s a table; the scheduler writes them instead, beside the
# ledger. That is safe: a checkpoint of version v summarises commits 0..v, which never change; it is written to a
# file of its own (`<v>.checkpoint.parquet`, atomically: a temporary file renamed, or one PUT on S3) that no commit
# writes, and the commits v+1... a concurrent batch adds are JSON files a reader applies on top of it. Two
# checkpoints of the same version (the ledger's 1000th commit beside the scheduler) hold the same state.
CHECKPOINTED = paths.ALL_TABLES


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


@dataclass(frozen=True)
class Checkpointed:
    """A Delta checkpoint the maintenance wrote: the table's version, and the commits a cold reader replayed
    before it (those after the previous checkpoint)."""

    table: str
    version: int
    commits_before: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"checkpoint {self.table} at version {self.version:,} ({self.commits_before:,} commits since the last) "
            f"in {self.seconds:.1f}s"
        )


def _delta_log(spark: SparkSession, location: str):
    """The JVM's DeltaLog of the table and its latest snapshot (the log listed anew)."""
    log_and_snapshot = spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTableWithSnapshot(
        spark._jsparkSession, location
    )
    return log_and_snapshot._1(), log_and_snapshot._2()


def commits_since_checkpoint(spark: SparkSession, location: Path | str) -> tuple[int, int]:
    """The table's latest version and how many commits came after its last checkpoint: the JSON files a cold
    reader replays on top of that checkpoint (all of them, from version 0, when there is none)."""
    _, snapshot = _delta_log(spark, str(location))
    return snapshot.version(), snapshot.logSegment().deltas().size()


def checkpoint_table(spark: SparkSession, warehouse: Path, name: str) -> Checkpointed | None:
    """A Delta checkpoint of the table's latest version, then the clean-up of log files past
    `delta.logRetentionDuration` that Delta does after each checkpoint; None: no such table, or no commit since its
    last checkpoint (nothing to write)."""
    location = str(paths.table_path(name, warehouse))
    if not DeltaTable.isDeltaTable(spark, location):
        return None
    started = time.monotonic()
    log, snapshot = _delta_log(spark, location)
    commits = snapshot.logSegment().deltas().size()
    if commits == 0:
        return None
    none = spark._jvm.scala.Option.empty()
    log.checkpoint(snapshot, none)
    log.doLogCleanup(snapshot, none)
    return Checkpointed(name, snapshot.version(), commits, time.monotonic() - started)


def checkpoint_tables(
    spark: SparkSession, warehouse: Path, names: Iterable[str] = CHECKPOINTED, log: Callable[[str], None] = print
) -> list[Checkpointed]:
    """A checkpoint of each of the `names` tables that has commits after its last one; each is logged."""
    return _each(spark, warehouse, checkpoint_table, names, log)


def _each(
    spark: SparkSession, warehouse: Path, step: Callable, names: Iterable[str], log: Callable[[str], None]
) -> list:
    """`step` on each of the `names` tables in turn; what it did to each (None: nothing) is logged and returned."""
    outcomes = []
    for name in names:
        outcome = step(spark, warehouse, name)
        if outcome is not None:
            log(f"maintenance: {outcome}")
            outcomes.append(outcome)
    return outcomes


def run_maintenance(
    spark: SparkSession,
    warehouse: Path,
    compact: Iterable[str] = COMPACTED,
    vacuum: Iterable[str] = VACUUMED,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    """OPTIMIZE the `compact` tables, then VACUUM the `vacuum` ones; each table's outcome is logged."""
    return _each(spark, warehouse, optimize_table, compact, log) + _each(spark, warehouse, vacuum_table, vacuum, log)


def _stopped(spark: SparkSession) -> bool:
    try:
        return spark.sparkContext._jsc is None or spark.sparkContext._jsc.sc().isStopped()
    except Exception:  # noqa: BLE001 - a gateway that is gone: stopped too
        return True


class Scheduler(threading.Thread):
    """The streams process's maintenance: every `interval_s` an OPTIMIZE of the compacted tables, every
    `vacuum_interval_s` a VACUUM of all, every `checkpoint_interval_s` a Delta checkpoint of each table with new
    commits (0: never, each). A failed run is logged and tried again next time: maintenance never stops the chat's
    queries."""

    def __init__(
        self,
        spark: SparkSession,
        warehouse: Path,
        interval_s: float,
        vacuum_interval_s: float,
        checkpoint_interval_s: float = 0,
        log: Callable[[str], None] = lambda text: print(text, flush=True),
    ) -> None:
        super().__init__(name="delta-maintenance", daemon=True)
        self.spark, self.warehouse, self.log = spark, warehouse, log
        self.interval_s, self.vacuum_interval_s = interval_s, vacuum_interval_s
        self.checkpoint_interval_s = checkpoint_interval_s
        self.runs = 0
        self._stop_event = threading.Event()

    @property
    def enabled(self) -> bool:
        return self.interval_s > 0 or self.vacuum_interval_s > 0 or self.checkpoint_interval_s > 0

    def _step(self, action: str) -> None:
        if action == "checkpoint":
            checkpoint_tables(self.spark, self.warehouse, CHECKPOINTED, self.log)
        else:
            compact, vacuum = (COMPACTED, ()) if action == "optimize" else ((), VACUUMED)
            run_maintenance(self.spark, self.warehouse, compact, vacuum, self.log)

    def run(self) -> None:
        # a job group names the maintenance's Spark jobs in the UI and logs, apart from the queries'
        self.spark.sparkContext.setJobGroup("maintenance", "Delta table maintenance (pipelines/maintenance.py)")
        self.log(
            f"maintenance: OPTIMIZE {', '.join(COMPACTED)} every {self.interval_s:g}s, "
            f"VACUUM every {self.vacuum_interval_s:g}s, "
            f"Delta checkpoints every {self.checkpoint_interval_s:g}s (0: never)"
        )
        # in this order when several are due at once: a checkpoint after the OPTIMIZE covers its commit
        intervals = {
            "optimize": self.interval_s,
            "vacuum": self.vacuum_interval_s,
            "checkpoint": self.checkpoint_interval_s,
        }
        now = time.monotonic()
        next_run = {action: now + seconds for action, seconds in intervals.items() if seconds > 0}
        while True:
            if self._stop_event.wait(max(0.0, min(next_run.values()) - time.monotonic())):
                return
            now = time.monotonic()
            for action in [a for a, due in next_run.items() if now >= due]:
                try:
                    self._step(action)
                except Exception as exc:  # noqa: BLE001 - logged; the next run tries again
                    if self._stop_event.is_set() or _stopped(self.spark):
                        return  # the process is stopping: Spark went away under the step
                    self.log(
                        f"maintenance: {action} failed, trying again at the next interval: {type(exc).__name__}: {exc}"
                    )
                next_run[action] = time.monotonic() + intervals[action]
            self.runs += 1

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
        checkpoint_tables(spark, warehouse)
    finally:
        spark.stop()
    if not outcomes:
        print(f"maintenance: no Delta table under {warehouse}", file=sys.stderr)
        return 1
    print(f"maintenance: {len(outcomes)} step(s) done under {warehouse}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
