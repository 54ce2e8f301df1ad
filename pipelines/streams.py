"""Both streaming queries of the chat in one Spark application: the relay and the ledger.

One JVM for both (less memory, fewer cores fought over on one machine), each
query with its own checkpoint. This is what `make up` runs.

    python -m pipelines.streams
    spark-submit --properties-file conf/spark-defaults.conf pipelines/streams.py

Settings: CHAT_KAFKA_BOOTSTRAP, CHAT_SPARK_MASTER, CHAT_DATA_DIR, CHAT_RELAY_TRIGGER,
CHAT_LEDGER_TRIGGER_SECONDS (see README).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from config import contract, settings


def wait_until_running(spark: SparkSession, queries: list[StreamingQuery], timeout_s: float = 180.0) -> None:
    """Return once every query really reads Kafka: the relay's long-running real-time task is
    scheduled (before that, a message would wait), the ledger has its sources (it catches up by itself)."""
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + timeout_s
    pending = list(queries)
    while pending and time.monotonic() < deadline:
        for query in list(pending):
            if not query.isActive:
                raise SystemExit(f"{query.name}: stopped while starting: {query.exception()}")
            started = (
                query.lastProgress is not None
                or (query.name == "relay" and tracker.getActiveStageIds())
                or (
                    query.name != "relay"
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
    signal.signal(signal.SIGTERM, lambda signum, _f: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _f: stopping.append(signum))
    wait_until_running(spark, queries)
    if ready_file:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.write_text("".join(f"{q.name} {q.id}\n" for q in queries))
    print(f"streams: {', '.join(q.name for q in queries)} running", flush=True)
    last = time.monotonic()
    failed = None
    try:
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
    if failed is not None:
        raise SystemExit(f"{failed.name}: query failed: {failed.exception()}")


def main() -> int:
    from pipelines.ledger import start_ledger
    from pipelines.moderation import load_word_lists
    from pipelines.relay import start_relay
    from pipelines.session import get_spark

    s = settings.load()
    relay_trigger = s.relay_trigger
    ledger_trigger_s = s.ledger_trigger_s
    word_lists = load_word_lists()
    print(
        f"streams: starting Spark ({s.spark_master}), Kafka {s.kafka_bootstrap}, data {s.data_dir}; "
        f"{len(word_lists.profane)} listed words, {len(word_lists.allow)} allowed",
        flush=True,
    )
    # the ledger's micro-batches are small: few shuffle partitions, and AQE coalesces the rest
    spark = get_spark("chat-streams", extra={"spark.sql.shuffle.partitions": "2"})
    relay = start_relay(spark, s.kafka_bootstrap, s.checkpoint_dir / "relay", relay_trigger, word_lists)
    ledger = start_ledger(
        spark, s.kafka_bootstrap, s.warehouse_dir, s.checkpoint_dir / "ledger", word_lists, ledger_trigger_s
    )
    print(
        f"streams: relay ({relay_trigger}) {contract.TOPIC_CHAT} -> {contract.TOPIC_CONTROLLED}; "
        f"ledger (every {ledger_trigger_s:g}s) -> Delta {s.warehouse_dir}",
        flush=True,
    )
    supervise(spark, [relay, ledger], s.run_dir / "streams.ready")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
