"""Supervision of streaming queries, for every streaming job: start-up, the ready file, status lines, stopping."""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from config import settings
from pipelines.session import get_spark

# the relay's query name: a real-time query, running once its long-running task is scheduled
RELAY_QUERY = "relay"


def wait_until_running(spark: SparkSession, queries: list[StreamingQuery], timeout_s: float = 180.0) -> None:
    """Return once every query really reads Kafka: the relay's long-running real-time task is
    scheduled (before that, a message would wait), the others have their sources (they catch up by themselves)."""
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + timeout_s
    pending = list(queries)
    while pending and time.monotonic() < deadline:
        for query in list(pending):
            if not query.isActive:
                raise SystemExit(f"{query.name}: stopped while starting: {query.exception()}")
            started = (
                query.lastProgress is not None
                or (query.name == RELAY_QUERY and tracker.getActiveStageIds())
                or (
                    query.name != RELAY_QUERY
                    and query.status["message"] not in ("Initializing sources", "Initializing StreamExecution")
                )
            )
            if started:
                pending.remove(query)
        time.sleep(0.1)
    if pending:
        print(
            f"streams: {', '.join(q.name for q in pending)} still starting after {timeout_s:.0f}s; carrying on",
            flush=True,
        )


def supervise(
    spark: SparkSession, queries: list[StreamingQuery], ready_file: Path | None, status_every_s: float = 60.0
) -> None:
    """Wait until the queries run, mark ready, then wait on them, printing a status line now and
    then. Ctrl-C / SIGTERM stop them cleanly; a failed query ends the process with its error."""
    stopping: list[int] = []
    failed: StreamingQuery | None = None
    previous = {
        sig: signal.signal(sig, lambda signum, _f: stopping.append(signum)) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        wait_until_running(spark, queries)
        if ready_file:
            ready_file.parent.mkdir(parents=True, exist_ok=True)
            ready_file.write_text("".join(f"{q.name} {q.id}\n" for q in queries))
        print(f"streams: {', '.join(q.name for q in queries)} running", flush=True)
        last = time.monotonic()
        while not stopping and not failed:
            time.sleep(0.5)
            failed = next((q for q in queries if not q.isActive), None)
            if time.monotonic() - last >= status_every_s:
                for q in queries:
                    p = q.lastProgress
                    batch = f"batch {p['batchId']}, {p['numInputRows']} rows" if p else "no batch yet"
                    print(f"{q.name}: {q.status['message']}; last {batch}", flush=True)
                last = time.monotonic()
    finally:
        if ready_file:
            ready_file.unlink(missing_ok=True)
        for q in queries:
            if q.isActive:
                print(f"{q.name}: stopping", flush=True)
                q.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed is not None:
        raise SystemExit(f"{failed.name}: query failed: {failed.exception()}")


def run_queries(
    app_name: str,
    start: Callable[[SparkSession], list[StreamingQuery]],
    ready_file: Path,
    spark_conf: dict[str, str] | None = None,
) -> int:
    """A streaming job's main: a Spark session, its queries from `start`, supervised until stopped."""
    spark = get_spark(app_name, extra=spark_conf)
    try:
        supervise(spark, start(spark), ready_file)
    finally:
        spark.stop()
    return 0


def run_job(
    argv: list[str] | None,
    description: str,
    name: str,
    start: Callable[[SparkSession, settings.Settings, Path], StreamingQuery],
) -> int:
    """The main of a job with one streaming query `name`: `--checkpoint` (default DATA_DIR/checkpoints/<name>),
    then the query that `start(spark, settings, checkpoint)` starts, supervised."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", type=Path, help=f"checkpoint directory (default DATA_DIR/checkpoints/{name})")
    args = parser.parse_args(argv)
    s = settings.load()
    checkpoint = args.checkpoint or s.checkpoint_dir / name
    print(f"{name}: starting Spark ({s.spark_master}), Kafka {s.kafka_bootstrap}, checkpoint {checkpoint}", flush=True)
    return run_queries(f"chat-{name}", lambda spark: [start(spark, s, checkpoint)], s.run_dir / f"{name}.ready")
