"""Steady-state throughput of the Spark queries on a backlog: the relay against Spark's own floor, and the ledger.

    python -m bench.pipelines_throughput --bootstrap HOST:PORT --records N --valid V
        [--source chat] [--triggers realtime microbatch] [--passes 3] [--master spark://…] [--what relay|ledger]

The relay runs exactly as in production (pipelines/relay.py `start_relay`:
validate, mask, the Kafka sink with acks=all) from the backlog into a fresh
topic with a fresh checkpoint. The floor is Spark's own Kafka source → Kafka
sink with no transform at all (key, value and headers copied), with the relay's
sink options and trigger: what Spark and Kafka cost on this machine before the
relay does any work. One pass reads the whole backlog; the first pass of each
query on a JVM is a warm-up (the JIT compiles the hot code) and is not counted;
then `passes` passes of the floor and of the relay alternate, so that a change
in the machine hits both alike. A pass's rate is counted where it matters, in
the output topic (bench/steady.py `OutputCounter`), from the first sample that
saw output to the one that saw the last record (sampled every 50 ms), so each query's start-up is left
out (reported apart); it is given in records of the source per second (the
relay writes only the valid ones: its output is scaled by records / valid). The
figure is the median of the passes, with their spread (bench/steady.py).

The ledger (pipelines/ledger.py, foreachBatch into Delta) runs on the backlog
into a fresh warehouse each pass, after a warm-up pass; a pass's rate is the
records it consumed over the time from the start of its first batch to the end
of its last, taken from the query's progress reports.

With `--master` the same runs go to a Spark standalone cluster (bench/run.py's
parallelism part runs this as a subprocess: one SparkContext per process).
Prints progress to stderr, then the result as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from bench.kafka_limits import delete_topic, recreate_topic
from bench.steady import OutputCounter, spread, steady_figure, window_rates
from config import contract, settings
from pipelines.kafka_io import read_topics, stream_to_topic
from pipelines.ledger import start_ledger
from pipelines.relay import start_relay, trigger_args
from pipelines.wordlists import load_word_lists

QUERIES = ("floor", "relay")


def start_floor(
    spark: SparkSession, bootstrap: str, checkpoint: Path, trigger: str, source_topic: str, target_topic: str
) -> StreamingQuery:
    """Spark's own Kafka source → Kafka sink, nothing in between: the relay's sink options and trigger."""
    raw_df = read_topics(spark, bootstrap, [source_topic])
    return (
        stream_to_topic(raw_df.select("key", "value", "headers"), bootstrap, target_topic)
        .queryName(f"bench_floor_{trigger}")
        .option("checkpointLocation", str(checkpoint))
        .outputMode("update")
        .trigger(**trigger_args(trigger))
        .start()
    )


def stream_pass(
    bootstrap: str,
    start: Callable[[Path, str], StreamingQuery],
    target: str,
    expected: int,
    scale: float = 1.0,
    partitions: int = 1,
    timeout_s: float = 900,
    keep_output: bool = False,
) -> dict:
    """One pass: `start(checkpoint, target)` runs a query until `target` (created afresh, deleted afterwards
    unless `keep_output`) holds `expected` records.

    Returns {"msgs_per_s" (sustained, × `scale`), "sustained_seconds", "first_output_after_s",
    "total_seconds", "records"}."""
    recreate_topic(bootstrap, target, partitions)
    checkpoint = Path(tempfile.mkdtemp(prefix=f"bench-{target}-"))
    started = time.monotonic()
    try:
        with OutputCounter(bootstrap, target, period_s=0.05) as counter:
            query = start(checkpoint, target)
            try:
                while counter.latest < expected:
                    if time.monotonic() - started > timeout_s:
                        raise RuntimeError(f"{target}: {counter.latest} of {expected} records in {timeout_s:.0f}s")
                    if query.exception() is not None:
                        raise RuntimeError(f"{target}: the query failed: {query.exception()}")
                    time.sleep(0.05)
                done_at = time.monotonic()
            finally:
                query.stop()
        samples = counter.samples
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
        if not keep_output:
            delete_topic(bootstrap, target)
    [rate] = window_rates(samples, 1)
    first_at = next(t for t, n in samples if n > 0)
    last_at = next(t for t, n in samples if n >= expected)
    return {
        "msgs_per_s": round(rate * scale),
        "records": samples[-1][1],
        "sustained_seconds": round(last_at - first_at, 2),
        "first_output_after_s": round(first_at - started, 2),
        "total_seconds": round(done_at - started, 2),
    }


def relay_and_floor(
    spark: SparkSession,
    bootstrap: str,
    records: int,
    valid: int,
    *,
    source: str = contract.TOPIC_CHAT,
    triggers: Sequence[str] = ("realtime", "microbatch"),
    passes: int = 3,
    partitions: int = 1,
    progress: Callable[[str], None] = lambda _: None,
) -> dict:
    """For each trigger: a warm-up pass of the relay and of the floor, then `passes` of each, alternating.

    Returns {trigger: {"relay": figure, "floor": figure, "relay_vs_floor": {"value", "windows"},
    "warmup": {"relay": pass, "floor": pass}, "passes": {"relay": [pass...], "floor": [pass...]}}}
    where a figure is bench/steady.py's `steady_figure` of the passes' rates (records of `source`/s)."""
    word_lists = load_word_lists()
    starts = {
        "floor": lambda trigger: (
            lambda checkpoint, target: start_floor(spark, bootstrap, checkpoint, trigger, source, target)
        ),
        "relay": lambda trigger: (
            lambda checkpoint, target: start_relay(
                spark,
                bootstrap,
                checkpoint,
                trigger,
                word_lists,
                source_topic=source,
                target_topic=target,
                query_name=f"bench_relay_{trigger}",
            )
        ),
    }
    expected = {"floor": records, "relay": valid}
    scale = {"floor": 1.0, "relay": records / valid}

    def one(what: str, trigger: str, label: str) -> dict:
        result = stream_pass(
            bootstrap, starts[what](trigger), f"bench_{what}_{trigger}", expected[what], scale[what], partitions
        )
        progress(
            f"{what} ({trigger}, {partitions} partition(s)) {label}: {result['msgs_per_s']:,} msg/s "
            f"over {result['sustained_seconds']}s (first output after {result['first_output_after_s']}s)"
        )
        return result

    out = {}
    for trigger in triggers:
        warmup = {what: one(what, trigger, "warm-up") for what in ("relay", "floor")}
        runs: dict[str, list[dict]] = {"floor": [], "relay": []}
        for n in range(passes):
            for what in QUERIES:
                runs[what].append(one(what, trigger, f"pass {n + 1}/{passes}"))
        figures = {what: steady_figure([r["msgs_per_s"] for r in runs[what]]) for what in QUERIES}
        paired = [r["msgs_per_s"] / f["msgs_per_s"] for r, f in zip(runs["relay"], runs["floor"])]
        out[trigger] = {
            **figures,
            "relay_vs_floor": {
                "value": round(figures["relay"]["value"] / figures["floor"]["value"], 3),
                "windows": [round(x, 3) for x in paired],
                "spread": spread(paired),
            },
            "warmup": warmup,
            "passes": runs,
        }
    return out


def ledger_pass(spark: SparkSession, bootstrap: str, records: int, timeout_s: float = 1800) -> dict:
    """The ledger over the `chat` backlog (`records` records) into a fresh warehouse and checkpoint."""
    work = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    started = time.monotonic()
    try:
        query = start_ledger(spark, bootstrap, work / "warehouse", work / "checkpoint", load_word_lists(), trigger_s=0)
        consumed = 0
        try:
            while consumed < records:
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"the ledger consumed {consumed} of {records} records in {timeout_s:.0f}s")
                if query.exception() is not None:
                    raise RuntimeError(f"the ledger failed: {query.exception()}")
                time.sleep(0.5)
                batches = [p for p in query.recentProgress if p["numInputRows"] > 0]
                consumed = sum(p["numInputRows"] for p in batches)
            done_at = time.monotonic()
        finally:
            query.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first_start = _epoch(batches[0]["timestamp"])
    last_end = _epoch(batches[-1]["timestamp"]) + batches[-1]["durationMs"]["triggerExecution"] / 1000
    busy_s = last_end - first_start
    return {
        "records": consumed,
        "batches": len(batches),
        "msgs_per_s": round(consumed / busy_s),
        "batch_seconds": round(busy_s, 2),
        "total_seconds": round(done_at - started, 2),
        "largest_batch": max(p["numInputRows"] for p in batches),
    }


def ledger_throughput(
    spark: SparkSession, bootstrap: str, records: int, passes: int = 3, progress: Callable[[str], None] = lambda _: None
) -> dict:
    """A warm-up pass of the ledger, then `passes` passes: {"figure", "warmup", "passes"}."""
    warmup = ledger_pass(spark, bootstrap, records)
    progress(f"ledger warm-up: {warmup['msgs_per_s']:,} msg/s ({warmup['batches']} batch(es))")
    runs = []
    for n in range(passes):
        runs.append(ledger_pass(spark, bootstrap, records))
        progress(f"ledger pass {n + 1}/{passes}: {runs[-1]['msgs_per_s']:,} msg/s ({runs[-1]['batches']} batch(es))")
    return {"figure": steady_figure([r["msgs_per_s"] for r in runs]), "warmup": warmup, "passes": runs}


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipelines_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=settings.load().kafka_bootstrap)
    parser.add_argument("--records", type=int, required=True, help="records in the source backlog")
    parser.add_argument("--valid", type=int, help="valid messages among them (needed for the relay)")
    parser.add_argument("--source", default=contract.TOPIC_CHAT, help="the backlog's topic (the ledger reads chat)")
    parser.add_argument("--what", choices=("relay", "ledger"), default="relay")
    parser.add_argument("--triggers", nargs="+", choices=("realtime", "microbatch"), default=["realtime"])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the output topics")
    parser.add_argument("--master", help="a Spark master URL (default CHAT_SPARK_MASTER)")
    args = parser.parse_args(argv)
    if args.what == "relay" and not args.valid:
        parser.error("--valid is needed for the relay")
    from pipelines.session import get_spark

    spark = get_spark("bench-pipelines", master=args.master)
    spark.sparkContext.setLogLevel("ERROR")

    def say(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}  {line}", file=sys.stderr, flush=True)

    try:
        if args.what == "relay":
            result = relay_and_floor(
                spark,
                args.bootstrap,
                args.records,
                args.valid,
                source=args.source,
                triggers=args.triggers,
                passes=args.passes,
                partitions=args.partitions,
                progress=say,
            )
        else:
            result = ledger_throughput(spark, args.bootstrap, args.records, args.passes, progress=say)
    finally:
        spark.stop()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
